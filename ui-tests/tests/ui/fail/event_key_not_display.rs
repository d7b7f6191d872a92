use herald::prelude::*;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserId {
    pub tenant: u32,
    pub id: u64,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: UserId,
}

fn main() {}
