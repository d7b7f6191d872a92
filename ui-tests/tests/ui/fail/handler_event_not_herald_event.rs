use herald::prelude::*;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    pub user_id: u64,
}

#[handler]
async fn on_user(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}
