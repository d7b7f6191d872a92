//! Dead-letter topics: what a dead letter carries ([`headers::dlq`](crate::headers::dlq)), and how to inspect and replay
//! them ([`DeadLetters`]). A message that cannot be handled is copied to `{topic}{dlq_suffix}`
//! (default `.dlq`) byte for byte, plus these headers, before its offset is committed; see
//! `docs/failure-handling.md`.

mod inspect;
mod letter;
pub(crate) mod read;
mod replay;

pub use inspect::DeadLetters;
pub(crate) use inspect::DEFAULT_TIMEOUT;
pub use letter::{DeadLetter, Failure, Header};
pub use replay::{ReplayAudience, ReplayFilter, ReplayReport, ReplayStopped, Replayed, Skipped};
