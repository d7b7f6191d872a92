use herald::prelude::*;

#[derive(Clone)]
pub struct RegisterCommand {
    pub user_id: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(from = RegisterCommand)]
pub struct UserJoined {
    pub user_id: String,
}

impl From<RegisterCommand> for UserJoined {
    fn from(command: RegisterCommand) -> Self {
        Self { user_id: command.user_id }
    }
}

fn main() {}
