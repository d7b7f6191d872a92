use herald::prelude::*;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserId {
    pub value: u64,
}

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: UserId,
}

fn main() {}
