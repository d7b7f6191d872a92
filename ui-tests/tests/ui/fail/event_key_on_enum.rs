use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub enum UserChanged {
    Renamed {
        #[event(key)]
        user_id: u64,
        name: String,
    },
    Deleted {
        user_id: u64,
    },
}

fn main() {}
