use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
}

#[derive(Debug)]
pub enum RegisterError {
    Taken,
}

#[domain_event]
async fn register(user_id: String) -> Result<UserRegistered, RegisterError> {
    Ok(UserRegistered { user_id })
}

fn main() {}
