//! `crate = "..."` names the herald crate for generated code, for re-exports and renamed
//! dependencies.
use herald::prelude::*;

mod reexport {
    pub use herald;
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(crate = "herald")]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(crate = "reexport::herald", version = 2)]
pub struct UserDeleted {
    pub aggregate_id: u64,
}

#[handler(crate = "herald")]
async fn on_created(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(crate = "reexport::herald", group = "cleanup")]
async fn on_deleted(event: Event<UserDeleted>, ctx: &Context) -> Result<(), HandlerError> {
    let _ = (event, ctx);
    Ok(())
}

fn main() {}
