use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler]
async fn on_user(ctx: &Context, event: UserCreated) -> Result<(), HandlerError> {
    let _ = (event, ctx);
    Ok(())
}
fn main() {}
