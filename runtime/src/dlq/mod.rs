//! Dead-letter topics: what a dead letter carries ([`headers`]), and how to inspect and replay
//! them ([`DeadLetters`]). A message that cannot be handled is copied to `{topic}{dlq_suffix}`
//! (default `.dlq`) byte for byte, plus these headers, before its offset is committed; see
//! `docs/failure-handling.md`.

mod inspect;
mod letter;
mod read;
mod replay;

pub use inspect::DeadLetters;
pub(crate) use inspect::DEFAULT_TIMEOUT;
pub use letter::{DeadLetter, Failure, Header};
pub use replay::{ReplayAudience, ReplayFilter, ReplayReport, ReplayStopped, Replayed, Skipped};

/// Names of the headers herald adds to a dead-lettered message (seed 003's names, plus position and
/// handler).
pub mod headers {
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
    /// Set on a replayed copy meant for one consumer group (see
    /// [`ReplayAudience`](super::ReplayAudience)): every other group skips it.
    pub const REPLAY_GROUP: &str = "dlq_replay_group";
}
