use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(version = "2")]
pub struct UserCreated {
    pub user_id: u64,
}

fn main() {}
