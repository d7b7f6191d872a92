use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

pub struct Notifier;

impl Notifier {
    #[handler]
    async fn on_user(event: UserCreated, notifier: &Self) -> Result<(), HandlerError> {
        let _ = (event, notifier);
        Ok(())
    }
}

fn main() {}
