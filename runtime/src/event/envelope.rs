//! The event envelope: metadata that travels with every event (CloudEvents attributes plus herald's
//! extensions) and where the event sits in Kafka.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// Where a message sits in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
}

/// The metadata of an event: the CloudEvents context attributes and herald's extensions.
/// See `docs/wire-format.md` for how each field maps to a Kafka header.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata {
    /// Unique id of the event (`ce_id`); herald uses a UUID, other producers may use any string.
    pub id: String,
    /// The event type (`ce_type`), e.g. `user.created`.
    pub event_type: String,
    /// The producing service (`ce_source`).
    pub source: String,
    /// The CloudEvents spec version (`ce_specversion`), `1.0`.
    pub spec_version: String,
    /// When the event happened (`ce_time`).
    pub time: Option<DateTime<Utc>>,
    /// The version of the event's schema (`ce_schemaversion`).
    pub schema_version: Option<u32>,
    /// The id shared by every event of one business transaction (`ce_correlationid`).
    pub correlation_id: Option<String>,
    /// The id of the event that caused this one (`ce_causationid`).
    pub causation_id: Option<String>,
    /// The aggregate the event belongs to (`ce_aggregateid`).
    pub aggregate_id: Option<String>,
    /// The aggregate's type (`ce_aggregatetype`).
    pub aggregate_type: Option<String>,
    /// The aggregate's version after the event (`ce_aggregateversion`).
    pub aggregate_version: Option<i64>,
    /// The CloudEvents `subject`, if any (`ce_subject`).
    pub subject: Option<String>,
    /// The media type of the data (`content-type`).
    pub content_type: Option<String>,
    /// Every other CloudEvents extension attribute, by name without the `ce_` prefix.
    pub extensions: BTreeMap<String, String>,
    /// The Kafka key (the partition key), if any.
    pub key: Option<String>,
    /// Where the event was read from; `None` for an event not yet consumed.
    pub position: Option<Position>,
}

impl Metadata {
    /// The topic a command asks its reply to be sent to (`ce_replyto`): set on commands sent with
    /// `Bus::request`, `None` on events and fire-and-forget commands.
    pub fn reply_to(&self) -> Option<&str> {
        self.extensions
            .get(crate::headers::extensions::REPLY_TO)
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }

    /// When the caller of a command stops waiting for its reply: `ce_time` plus `ce_timeoutms`,
    /// both set by `Bus::request`. A handler may skip work nobody waits for any more (the command
    /// is still committed as handled). `None` on events and fire-and-forget commands.
    pub fn reply_deadline(&self) -> Option<DateTime<Utc>> {
        let millis: i64 = self
            .extensions
            .get(crate::headers::extensions::TIMEOUT)?
            .parse()
            .ok()?;
        self.time?
            .checked_add_signed(chrono::Duration::milliseconds(millis))
    }
}

/// Where a published event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The event's id (`ce_id`).
    pub event_id: String,
}

/// Caller-supplied metadata for one publish: correlation, causation, aggregate and extensions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishOptions {
    /// The event's id (`ce_id`); when `None` herald makes a UUID. Give one only when it is unique
    /// (a stored event sent again keeps its id).
    pub id: Option<String>,
    /// Correlation id to carry; when `None` a fresh event starts its own correlation (its id).
    pub correlation_id: Option<String>,
    /// Id of the event that caused this one.
    pub causation_id: Option<String>,
    /// Aggregate id, type and version.
    pub aggregate_id: Option<String>,
    /// The aggregate's type.
    pub aggregate_type: Option<String>,
    /// The aggregate's version.
    pub aggregate_version: Option<i64>,
    /// Overrides the event's partition key.
    pub key: Option<String>,
    /// Extra CloudEvents extension attributes (lower-case letters and digits, see the wire format).
    pub extensions: BTreeMap<String, String>,
    /// Publishes to this topic (before the configured prefix) instead of the event's own.
    pub topic: Option<String>,
}

impl PublishOptions {
    /// No extra metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event's id (`ce_id`) instead of a fresh UUID; it must be unique.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Sets the aggregate id, type and version.
    pub fn aggregate(
        mut self,
        id: impl Into<String>,
        aggregate_type: impl Into<String>,
        version: Option<i64>,
    ) -> Self {
        self.aggregate_id = Some(id.into());
        self.aggregate_type = Some(aggregate_type.into());
        self.aggregate_version = version;
        self
    }

    /// Overrides the partition key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Publishes to `topic` (the configured prefix goes before it) instead of the event's own
    /// topic: one event type on a topic per tenant, region or customer.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Adds an extension attribute (`ce_{name}` header).
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(name.into(), value.into());
        self
    }

    /// Options that continue the story of `cause`: same correlation, causation = `cause.id`.
    pub fn caused_by(cause: &Metadata) -> Self {
        Self {
            correlation_id: Some(
                cause
                    .correlation_id
                    .clone()
                    .unwrap_or_else(|| cause.id.clone()),
            ),
            causation_id: Some(cause.id.clone()),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requests_reply_deadline_is_its_time_plus_its_timeout() {
        let time = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut meta = Metadata {
            time: Some(time),
            ..Metadata::default()
        };
        assert_eq!(meta.reply_deadline(), None, "not a request");
        meta.extensions.insert("timeoutms".into(), "1500".into());
        meta.extensions
            .insert("replyto".into(), "web.replies".into());
        assert_eq!(
            meta.reply_deadline(),
            Some(time + chrono::Duration::milliseconds(1500))
        );
        assert_eq!(meta.reply_to(), Some("web.replies"));
        meta.extensions.insert("timeoutms".into(), "soon".into());
        assert_eq!(meta.reply_deadline(), None, "unreadable");
    }
}
