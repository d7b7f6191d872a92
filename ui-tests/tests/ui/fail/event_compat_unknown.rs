use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(compat = "strict")]
pub struct UserCreated {
    pub user_id: u64,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(compat = full)]
pub struct UserDeleted {
    pub user_id: u64,
}

fn main() {}
