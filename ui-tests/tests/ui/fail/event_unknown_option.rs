use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(partitions = 3)]
pub struct UserCreated {
    pub user_id: u64,
}

fn main() {}
