//! What the outbox holds.

use std::time::Duration;

/// What [`Outbox::purge`](crate::sqlite::Outbox::purge) deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Published rows.
    pub published_rows: u64,
    /// Processed-event ids (`processed_once`).
    pub processed_ids: u64,
}

/// Counts of the outbox's rows by state, and how late the oldest due row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Rows waiting to be published, due or scheduled.
    pub pending: u64,
    /// Pending rows whose time has not come yet (`publish_scheduled`).
    pub scheduled: u64,
    /// Rows published.
    pub published: u64,
    /// Rows that failed `max_retries` times, or could not be read back as events, and wait for
    /// `revive`.
    pub dead: u64,
    /// How long the oldest due pending row has been due (zero when none is).
    pub oldest_pending_age: Duration,
}
