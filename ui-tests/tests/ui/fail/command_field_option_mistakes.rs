use herald::prelude::*;

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = ())]
pub struct CreateUser {
    #[command(key)]
    pub email: String,
    #[command(key)]
    pub user_id: u64,
    #[command(timeout = "5s")]
    pub name: String,
    #[command(colour)]
    pub colour: String,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = ())]
pub enum Housekeeping {
    Vacuum {
        #[command(key)]
        table: String,
    },
}

fn main() {}
