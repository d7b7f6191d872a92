use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(key)]
pub struct UserCreated {
    pub user_id: u64,
}

fn main() {}
