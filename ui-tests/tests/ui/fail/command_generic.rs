use herald::prelude::*;

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = u64)]
pub struct Count<T> {
    pub items: Vec<T>,
}

fn main() {}
