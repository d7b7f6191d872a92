use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

pub struct Database;

#[handler]
async fn on_user(event: UserCreated, db: &Database) -> Result<(), HandlerError> {
    let _ = (event, db);
    Ok(())
}
fn main() {}
