use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler]
async fn on_user(event: Event<UserCreated, u32>) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}
fn main() {}
