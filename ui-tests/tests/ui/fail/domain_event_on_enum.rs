use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub enum UserChanged {
    Renamed { user_id: String },
}

#[domain_event(aggregate = "user", aggregate_id = user_id)]
async fn register(_user_id: String) {}

fn main() {}
