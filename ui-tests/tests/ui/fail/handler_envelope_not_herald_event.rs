use herald::prelude::*;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    pub user_id: u64,
}

#[handler]
async fn on_user(event: Event<UserCreated>, ctx: &Context) -> Result<(), HandlerError> {
    let _ = (event, ctx);
    Ok(())
}

fn main() {}
