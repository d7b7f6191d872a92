use herald::prelude::*;

#[derive(IntegrationEvent, Debug)]
pub struct UserCreated {
    pub user_id: u64,
}

fn main() {}
