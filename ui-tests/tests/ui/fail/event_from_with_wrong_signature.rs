use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(from = UserRegistered, with = joined)]
pub struct UserJoined {
    pub user_id: String,
}

fn joined(event: UserRegistered) -> UserJoined {
    UserJoined { user_id: event.user_id }
}

fn main() {}
