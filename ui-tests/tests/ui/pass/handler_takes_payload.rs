//! A handler that only needs the payload takes `T` and no context.
use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler]
async fn on_user(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event.user_id;
    Ok(())
}

fn main() {
    // The function is kept as written and can still be called directly.
    let _ = on_user(UserCreated { user_id: 1 });
}
