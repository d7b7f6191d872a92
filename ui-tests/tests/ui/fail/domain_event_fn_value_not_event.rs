use herald::prelude::*;

pub struct User {
    pub id: String,
}

#[domain_event]
async fn register(id: String) -> anyhow::Result<User> {
    Ok(User { id })
}

fn main() {}
