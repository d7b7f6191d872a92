//! The event trait every herald event implements, and the envelope a handler can receive.

mod dynamic;
pub(crate) mod envelope;
pub mod naming;
mod reply;
pub(crate) mod saga;

pub(crate) use dynamic::topic_problem;
pub use dynamic::DynamicEvent;
pub use reply::Reply;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::envelope::Metadata;

/// A herald event: a Rust type with an event type name, a topic, a schema version and a partition
/// key. Derive it with `#[derive(IntegrationEvent)]`; writing it by hand is possible but loses the
/// registration that lets the runtime find the event.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a herald event",
    label = "not a herald event",
    note = "derive it: `#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]` on `{Self}`"
)]
// `for<'de> Deserialize<'de>` rather than the equivalent `DeserializeOwned`: rustc reports a missing
// `Deserialize` derive against `DeserializeOwned` with a misleading "sealed trait" note.
pub trait HeraldEvent:
    Serialize + for<'de> Deserialize<'de> + JsonSchema + Send + Sync + 'static
{
    /// The CloudEvents `type`, e.g. `user.created`.
    const EVENT_TYPE: &'static str;
    /// The Kafka topic the event is published to.
    const TOPIC: &'static str;
    /// The version of the event's schema.
    const VERSION: u32;

    /// What a handler of this message returns when it succeeds: `()` for an event; for a command
    /// (`#[derive(Command)]`), its reply, which herald sends back to the caller of
    /// [`Bus::request`](crate::Bus::request). The derives set it; `#[handler]` checks the handler's
    /// return type against it.
    type Reply: Reply;

    /// Whether this message is a command, whose handler's reply is sent to the `ce_replyto` topic
    /// of a request: `true` only in what `#[derive(Command)]` generates.
    const IS_COMMAND: bool = false;

    /// The aggregate type the event belongs to (`ce_aggregatetype`): set by
    /// `#[domain_event(aggregate = "...")]`; `None` for other events.
    const AGGREGATE_TYPE: Option<&'static str> = None;

    /// The Kafka key: events with the same key land in the same partition, in order.
    fn partition_key(&self) -> Option<String>;

    /// The id of the aggregate the event belongs to (`ce_aggregateid`): the `aggregate_id = field`
    /// of a `#[domain_event]`, or a field named `aggregate_id` of an `IntegrationEvent`. Publishing
    /// copies it into the metadata unless `PublishOptions::aggregate_id` is given.
    fn aggregate_id(&self) -> Option<String> {
        None
    }

    /// The aggregate's version after this event (`ce_aggregateversion`): the
    /// `aggregate_version = field` of a `#[domain_event]`. Publishing copies it into the metadata
    /// unless `PublishOptions::aggregate_version` is given.
    fn aggregate_version(&self) -> Option<i64> {
        None
    }

    /// This event decoded from the JSON data of an older schema `version` of it, when the type
    /// declares an upcaster (`#[event(upcast_from = OlderType)]` with `impl From<OlderType>`, which
    /// chains through the older type's own upcaster); `None` when there is none for `version`.
    fn upcast(version: u32, data: &[u8]) -> Option<Result<Self, String>>
    where
        Self: Sized,
    {
        let _ = (version, data);
        None
    }
}

/// A value usable as a partition key (`#[event(key)]`): anything that displays.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a partition key",
    label = "`#[event(key)]` needs a field that implements `Display`",
    note = "implement `std::fmt::Display` for `{Self}`, or mark another field with `#[event(key)]`"
)]
pub trait PartitionKey {
    /// The key as a string.
    fn partition_key(&self) -> String;
}

impl<T: std::fmt::Display + ?Sized> PartitionKey for T {
    fn partition_key(&self) -> String {
        self.to_string()
    }
}

/// An event together with its metadata: what a handler receives when it takes `Event<T>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<T> {
    /// The envelope: id, type, source, time, correlation, aggregate, Kafka position.
    pub meta: Metadata,
    /// The event itself.
    pub data: T,
}

impl<T> Event<T> {
    /// Splits the event into its metadata and payload.
    pub fn into_parts(self) -> (Metadata, T) {
        (self.meta, self.data)
    }
}

impl<T> std::ops::Deref for Event<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}
