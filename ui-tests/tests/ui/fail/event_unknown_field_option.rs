use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(partition_key)]
    pub user_id: u64,
}

fn main() {}
