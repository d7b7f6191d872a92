use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
}

pub struct User {
    pub id: String,
    pub email: String,
}

// The body moves `email` into the user, so `emit` cannot use it: read it from the user instead.
#[domain_event(emit = |user: &User| UserRegistered { user_id: user.id.clone(), email: email.clone() })]
async fn create(email: String) -> anyhow::Result<User> {
    Ok(User { id: "u-1".into(), email })
}

fn main() {}
