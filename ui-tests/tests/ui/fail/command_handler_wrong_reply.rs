use herald::prelude::*;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserCreatedReply {
    pub user_id: u64,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = UserCreatedReply, name = "user.create")]
pub struct CreateUser {
    pub email: String,
}

#[handler]
async fn create_user(command: CreateUser, _ctx: &Context) -> anyhow::Result<String> {
    Ok(command.email)
}

fn main() {}
