use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Clone)]
pub struct UserRegistered {
    pub user_id: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(from = UserRegistered)]
pub struct UserJoined {
    pub user_id: String,
}

fn main() {}
