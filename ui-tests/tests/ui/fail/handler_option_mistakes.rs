use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler(group = mail, topic = "users", name)]
async fn on_user(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}
fn main() {}
