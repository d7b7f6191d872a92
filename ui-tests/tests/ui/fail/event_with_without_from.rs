use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(with = joined)]
pub struct UserJoined {
    pub user_id: String,
}

fn main() {}
