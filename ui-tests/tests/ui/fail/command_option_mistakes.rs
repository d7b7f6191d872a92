use herald::prelude::*;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Created {
    pub user_id: u64,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = Created, reply_to = "users.replies", retries = 3, colour = "red")]
pub struct CreateUser {
    pub email: String,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = "Created", topic = "has space", version = 0)]
pub struct RenameUser {
    pub email: String,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = Created, reply = Created, name = "")]
pub struct MergeUser {
    pub email: String,
}

fn main() {}
