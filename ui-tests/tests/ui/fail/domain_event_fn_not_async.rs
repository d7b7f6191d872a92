use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
}

#[domain_event]
fn register(user_id: String) -> anyhow::Result<UserRegistered> {
    Ok(UserRegistered { user_id })
}

fn main() {}
