use herald::prelude::*;

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = (), timeout = 5)]
pub struct Ping {
    pub n: u32,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = (), timeout = "0s")]
pub struct Pong {
    pub n: u32,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = (), timeout = "5 seconds")]
pub struct Peng {
    pub n: u32,
}

fn main() {}
