use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler]
async fn on_user(event: UserCreated) -> Result<u32, HandlerError> {
    let _ = event;
    Ok(0)
}
fn main() {}
