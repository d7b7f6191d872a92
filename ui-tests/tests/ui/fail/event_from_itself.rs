use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Clone)]
#[event(from = UserJoined)]
pub struct UserJoined {
    pub user_id: String,
}

fn main() {}
