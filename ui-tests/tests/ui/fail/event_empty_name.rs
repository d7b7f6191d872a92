use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "")]
pub struct UserCreated {
    pub user_id: u64,
}

fn main() {}
