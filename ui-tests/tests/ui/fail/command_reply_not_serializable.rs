use herald::prelude::*;

/// Derives nothing: cannot travel as JSON.
pub struct Created {
    pub user_id: u64,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = Created)]
pub struct CreateUser {
    pub email: String,
}

fn main() {}
