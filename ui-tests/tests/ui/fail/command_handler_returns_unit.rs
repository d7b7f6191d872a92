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

// A command's handler returns the reply, not `()`.
#[handler]
async fn create_user(command: Event<CreateUser>) -> Result<(), HandlerError> {
    let _ = command;
    Ok(())
}

fn main() {}
