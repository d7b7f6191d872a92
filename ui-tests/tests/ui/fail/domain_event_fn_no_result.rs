use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
}

#[domain_event]
async fn register(user_id: String) -> UserRegistered {
    UserRegistered { user_id }
}

#[domain_event]
async fn forget(user_id: String) {
    let _ = user_id;
}

fn main() {}
