use herald::prelude::*;
use std::rc::Rc;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

async fn save(_: u64) {}

#[handler]
async fn on_user(event: UserCreated) -> Result<(), HandlerError> {
    let counter = Rc::new(event.user_id);
    save(*counter).await;
    drop(counter);
    Ok(())
}

fn main() {}
