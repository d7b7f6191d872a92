//! What `#[derive(IntegrationEvent)]` generates: names, topics, versions, keys, schemas and the
//! registration the runtime reads.

use herald::prelude::*;
use herald::registry::Registry;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
    pub email: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "billing.invoice.v2", topic = "billing", version = 2)]
pub struct HTTPInvoiceSent {
    pub aggregate_id: String,
    pub cents: u64,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct Heartbeat {
    pub at: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct Renamed(#[event(key)] pub String, pub u32);

#[test]
fn defaults_follow_the_naming_conventions() {
    assert_eq!(UserCreated::EVENT_TYPE, "user.created");
    assert_eq!(UserCreated::TOPIC, "integration-events.user_created");
    assert_eq!(UserCreated::VERSION, 1);
    assert_eq!(Heartbeat::EVENT_TYPE, "heartbeat");
}

#[test]
fn overrides_win() {
    assert_eq!(HTTPInvoiceSent::EVENT_TYPE, "billing.invoice.v2");
    assert_eq!(HTTPInvoiceSent::TOPIC, "billing");
    assert_eq!(HTTPInvoiceSent::VERSION, 2);
}

#[test]
fn partition_keys() {
    let user = UserCreated {
        user_id: 42,
        email: "a@b.c".into(),
    };
    assert_eq!(
        user.partition_key().as_deref(),
        Some("42"),
        "the #[event(key)] field"
    );
    let invoice = HTTPInvoiceSent {
        aggregate_id: "inv-7".into(),
        cents: 1,
    };
    assert_eq!(
        invoice.partition_key().as_deref(),
        Some("inv-7"),
        "a field named aggregate_id"
    );
    assert_eq!(
        Heartbeat { at: "now".into() }.partition_key(),
        None,
        "no key"
    );
    assert_eq!(
        Renamed("r-1".into(), 3).partition_key().as_deref(),
        Some("r-1"),
        "a tuple field"
    );
}

#[test]
fn every_event_is_registered_with_its_schema() {
    let registry = Registry::collect().unwrap();
    let user = registry
        .events()
        .iter()
        .find(|e| e.event_type == "user.created")
        .expect("registered");
    assert_eq!(user.rust_type, "derive::UserCreated");
    assert_eq!(user.topic, "integration-events.user_created");
    let schema = (user.schema)();
    assert_eq!(schema["title"], "UserCreated");
    assert_eq!(schema["properties"]["email"]["type"], "string");
    assert!(schema["required"]
        .as_array()
        .unwrap()
        .contains(&"user_id".into()));
    // This binary's four; herald's audit event only where `#[audit_event]` is used.
    assert_eq!(registry.events().len(), 4);
    assert!(!registry
        .events()
        .iter()
        .any(|e| e.rust_type == "herald::audit::AuditEvent"));
    assert!(registry.topics().contains(&"billing"));
}
