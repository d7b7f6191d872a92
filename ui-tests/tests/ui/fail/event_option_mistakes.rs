use herald::prelude::*;

// Every mistake of the list is reported, not only the first.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = user_created, group = "users", version = "2", topic)]
pub struct UserCreated {
    #[event(key = true)]
    pub user_id: u64,
    #[event(topic = "users")]
    pub email: String,
}

fn main() {}
