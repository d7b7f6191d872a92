use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

pub struct Notifier;

impl Notifier {
    #[handler]
    async fn on_user(&self, event: UserCreated) -> Result<(), HandlerError> {
        let _ = event;
        Ok(())
    }
}
fn main() {}
