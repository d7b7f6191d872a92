use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Clone)]
pub struct UserRegistered {
    pub user_id: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Clone)]
pub struct UserImported {
    pub user_id: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(from = UserRegistered, from = UserImported)]
pub struct UserJoined {
    pub user_id: String,
}

fn main() {}

impl From<UserRegistered> for UserJoined {
    fn from(event: UserRegistered) -> Self {
        Self { user_id: event.user_id }
    }
}
