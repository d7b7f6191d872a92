use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = id)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
}

fn main() {}

// The type still works where events are expected: the one error is the attribute's.
fn publishes<E: HeraldEvent>(_: &E) {}

fn uses() {
    publishes(&UserRegistered { user_id: "u".into(), email: "e".into() });
}
