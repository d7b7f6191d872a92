use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "user.created", version = 1)]
pub struct UserCreatedV1 {
    pub user_id: u64,
}

// No `impl From<UserCreatedV1> for UserCreatedV2`.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "user.created", version = 2, upcast_from = UserCreatedV1)]
pub struct UserCreatedV2 {
    pub user_id: u64,
    pub email: String,
}

fn main() {}
