//! Every name herald writes to or reads from the wire, in one place: the CloudEvents headers and
//! extension attributes, the dead-letter and retry-topic headers, saga and trace extensions.
//! `docs/wire-format.md` is the human-readable version.

/// `ce_specversion`: always [`SPEC_VERSION_VALUE`].
pub const SPEC_VERSION: &str = "ce_specversion";
/// `ce_id`.
pub const ID: &str = "ce_id";
/// `ce_type`.
pub const TYPE: &str = "ce_type";
/// `ce_source`.
pub const SOURCE: &str = "ce_source";
/// `ce_time`, RFC 3339.
pub const TIME: &str = "ce_time";
/// `ce_subject`.
pub const SUBJECT: &str = "ce_subject";
/// `content-type`, the data's media type.
pub const CONTENT_TYPE: &str = "content-type";
/// `ce_schemaversion`: the event's schema version.
pub const SCHEMA_VERSION: &str = "ce_schemaversion";
/// `ce_correlationid`.
pub const CORRELATION_ID: &str = "ce_correlationid";
/// `ce_causationid`.
pub const CAUSATION_ID: &str = "ce_causationid";
/// `ce_aggregateid`.
pub const AGGREGATE_ID: &str = "ce_aggregateid";
/// `ce_aggregatetype`.
pub const AGGREGATE_TYPE: &str = "ce_aggregatetype";
/// `ce_aggregateversion`.
pub const AGGREGATE_VERSION: &str = "ce_aggregateversion";
/// `ce_replyto`: on a command sent by `Bus::request`, the topic its reply goes to.
pub const REPLY_TO: &str = "ce_replyto";
/// `ce_timeoutms`: on a command sent by `Bus::request`, how long its caller waits for the reply,
/// in milliseconds from `ce_time`.
pub const TIMEOUT: &str = "ce_timeoutms";
/// The prefix of every CloudEvents attribute header.
pub const PREFIX: &str = "ce_";

/// The only CloudEvents version herald speaks, the value of [`SPEC_VERSION`].
pub const SPEC_VERSION_VALUE: &str = "1.0";
/// The media type of herald's event data.
pub const JSON: &str = "application/json";
/// The media type of a CloudEvent in structured content mode.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";
/// The `ce_type` of the reply a command's handler sends when it failed for good.
pub const COMMAND_FAILED_TYPE: &str = "herald.command.failed";

/// Extension attributes as they appear in `Metadata::extensions` (the header is `ce_` + name).
pub mod extensions {
    /// [`REPLY_TO`](super::REPLY_TO)'s attribute.
    pub const REPLY_TO: &str = "replyto";
    /// [`TIMEOUT`](super::TIMEOUT)'s attribute.
    pub const TIMEOUT: &str = "timeoutms";
    /// The saga's id (`ce_sagaid`).
    pub const SAGA_ID: &str = "sagaid";
    /// The saga's type (`ce_sagatype`).
    pub const SAGA_TYPE: &str = "sagatype";
    /// The step an event records (`ce_sagastep`).
    pub const SAGA_STEP: &str = "sagastep";
    /// The W3C `traceparent` (`ce_traceparent`).
    pub const TRACEPARENT: &str = "traceparent";
    /// The W3C `tracestate` (`ce_tracestate`).
    pub const TRACESTATE: &str = "tracestate";
}

/// The headers herald adds to a dead-lettered message (seed 003's names, plus position and
/// handler).
pub mod dlq {
    /// The topic the message was consumed from.
    pub const ORIGINAL_TOPIC: &str = "dlq_original_topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "dlq_original_partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "dlq_original_offset";
    /// The consumer group that gave up on it.
    pub const CONSUMER_GROUP: &str = "dlq_consumer_group";
    /// The handlers that failed, comma-separated (empty when none ran).
    pub const HANDLER: &str = "dlq_handler";
    /// `undecodable`, `incompatible`, `unknown-type`, `oversized`, `permanent`, `retries-exhausted`,
    /// `reply-undeliverable` or `retry-undeliverable`.
    pub const ERROR_KIND: &str = "dlq_error_kind";
    /// The error, for people (at most 4 KiB; a longer one is cut, saying how much).
    pub const ERROR_MESSAGE: &str = "dlq_error_message";
    /// Present when the letter does not carry the message's value because the value made it too
    /// large for the dead-letter topic: the value's size in bytes. The original is at
    /// `dlq_original_topic`/`_partition`/`_offset` while the topic retains it.
    pub const VALUE_OMITTED: &str = "dlq_value_omitted";
    /// How many times the failing handler ran.
    pub const RETRY_COUNT: &str = "dlq_retry_count";
    /// When it was dead-lettered, RFC 3339 UTC.
    pub const TIMESTAMP: &str = "dlq_timestamp";
    /// How many times the message was replayed from a dead-letter topic, added by each replay
    /// (the previous count + 1) after the headers it already had.
    pub const REPLAY_COUNT: &str = "dlq_replay_count";
    /// Set on a replayed copy meant for one consumer group (see `dlq::ReplayAudience`): every
    /// other group skips it.
    pub const REPLAY_GROUP: &str = "dlq_replay_group";
}

/// The headers of a record in a retry topic.
pub mod retry {
    /// The consumer group that retries it.
    pub const GROUP: &str = "herald_retry_group";
    /// The handler that retries it (only this one runs).
    pub const HANDLER: &str = "herald_retry_handler";
    /// How many attempts were made so far.
    pub const ATTEMPTS: &str = "herald_retry_attempts";
    /// When it first failed, RFC 3339 UTC.
    pub const FIRST_FAILURE: &str = "herald_retry_first_failure";
    /// When it may run again, RFC 3339 UTC.
    pub const NOT_BEFORE: &str = "herald_retry_not_before";
    /// The topic it was first consumed from.
    pub const ORIGINAL_TOPIC: &str = "herald_retry_original_topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "herald_retry_original_partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "herald_retry_original_offset";
    /// The last error.
    pub const ERROR: &str = "herald_retry_error";
    /// The prefix of them all.
    pub const PREFIX: &str = "herald_retry_";
}
