use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
}

pub struct User {
    pub id: String,
}

#[domain_event]
async fn register(email: String) -> anyhow::Result<UserRegistered> {
    Ok(UserRegistered { user_id: "u-1".into(), email })
}

#[domain_event(emit = |user: &User| UserRegistered { user_id: user.id.clone(), email: email.clone() })]
async fn create(email: String) -> Result<User, Box<dyn std::error::Error + Send + Sync>> {
    let _ = email.len();
    Ok(User { id: "u-2".into() })
}

fn registered(user: &User) -> UserRegistered {
    UserRegistered { user_id: user.id.clone(), email: String::new() }
}

#[domain_event(emit = registered)]
async fn import(id: String) -> anyhow::Result<User> {
    Ok(User { id })
}

fn main() {}
