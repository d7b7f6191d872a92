use herald::prelude::*;

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(name = "user.create")]
pub struct CreateUser {
    pub email: String,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
pub struct DeleteUser {
    pub user_id: u64,
}

fn main() {}
