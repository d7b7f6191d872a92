use herald::prelude::*;

#[domain_event(aggregate = "", aggregate_id = "user_id", topic = "users")]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
}

#[domain_event(aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRenamed {
    pub user_id: String,
}

fn main() {}
