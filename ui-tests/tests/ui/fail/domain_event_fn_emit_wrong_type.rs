use herald::prelude::*;

pub struct User {
    pub id: String,
}

#[domain_event(emit = |user: &User| user.id.clone())]
async fn create(id: String) -> anyhow::Result<User> {
    Ok(User { id })
}

fn main() {}
