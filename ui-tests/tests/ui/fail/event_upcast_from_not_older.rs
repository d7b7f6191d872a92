use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "user.created", version = 2)]
pub struct UserCreatedV2 {
    pub user_id: u64,
}

// Names a newer version: an upcaster converts from an older one.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "user.created", version = 1, upcast_from = UserCreatedV2)]
pub struct UserCreatedV1 {
    pub user_id: u64,
}

impl From<UserCreatedV2> for UserCreatedV1 {
    fn from(v2: UserCreatedV2) -> Self {
        Self { user_id: v2.user_id }
    }
}

fn main() {}
