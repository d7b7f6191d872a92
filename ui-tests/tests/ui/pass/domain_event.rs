use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = user_id, name = "user.signed_up", version = 2)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: u64,
    pub email: String,
}

#[handler]
async fn on_registered(event: Event<UserRegistered>) -> Result<(), HandlerError> {
    let _ = (event.meta.aggregate_id, event.data.email);
    Ok(())
}

fn main() {
    let event = UserRegistered { user_id: 7, email: "a@b.c".into() };
    assert_eq!(UserRegistered::TOPIC, "domain.user.events");
    assert_eq!(UserRegistered::EVENT_TYPE, "user.signed_up");
    assert_eq!(UserRegistered::VERSION, 2);
    assert_eq!(UserRegistered::AGGREGATE_TYPE, Some("user"));
    assert_eq!(event.partition_key().as_deref(), Some("7"));
    assert_eq!(event.aggregate_id().as_deref(), Some("7"));
}
