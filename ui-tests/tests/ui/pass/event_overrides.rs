//! `name`, `topic`, `version` and `compat` override the defaults; without `#[event(key)]` a field named
//! `aggregate_id` is the partition key.
use herald::prelude::*;
use uuid::Uuid;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "billing.invoice.paid", topic = "billing-v2", version = 3)]
pub struct InvoicePaid {
    pub aggregate_id: Uuid,
    pub cents: u64,
}

/// Options may be split over several attributes; `compat` picks the schema check's policy.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(topic = "billing-v2")]
#[event(version = 2, compat = "full")]
pub enum InvoiceChanged {
    Voided { reason: String },
    Reissued(u64),
}

/// No key field: the event has no partition key.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct Tick;

/// A tuple struct can mark its key too.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct Renamed(#[event(key)] String, String);

fn main() {
    let id = Uuid::new_v4();
    let paid = InvoicePaid { aggregate_id: id, cents: 100 };
    assert_eq!(InvoicePaid::EVENT_TYPE, "billing.invoice.paid");
    assert_eq!(InvoicePaid::TOPIC, "billing-v2");
    assert_eq!(InvoicePaid::VERSION, 3);
    assert_eq!(paid.partition_key(), Some(id.to_string()));
    assert_eq!(InvoiceChanged::EVENT_TYPE, "invoice.changed");
    assert_eq!(InvoiceChanged::VERSION, 2);
    assert_eq!(Tick::TOPIC, "integration-events.tick");
    assert_eq!(Tick.partition_key(), None);
    assert_eq!(Renamed("a".into(), "b".into()).partition_key(), Some("a".into()));
}
