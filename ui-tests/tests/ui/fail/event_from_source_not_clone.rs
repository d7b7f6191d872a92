use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(from = UserRegistered)]
pub struct UserJoined {
    pub user_id: String,
}

impl From<UserRegistered> for UserJoined {
    fn from(event: UserRegistered) -> Self {
        Self { user_id: event.user_id }
    }
}

fn main() {}
