//! How a relay works: batch size, polling, retries.

use std::time::Duration;

/// Settings of a relay (seed 004's `OutboxConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Rows published per batch (at least 1).
    pub batch_size: usize,
    /// How long the relay waits when no row was due.
    pub poll_interval: Duration,
    /// Failed publishes of one row before it becomes `dead` (then visible in
    /// [`OutboxStats::dead`](crate::OutboxStats) and replayable with `revive`).
    pub max_retries: u32,
    /// The wait after the first failed batch; doubled after each further failure.
    pub retry_base_delay: Duration,
    /// The longest wait between failed batches.
    pub retry_max_delay: Duration,
    /// How long published rows and processed-event ids are kept before the relay deletes them
    /// (default 7 days; `None` keeps them for good). Pending and dead rows are never deleted.
    pub retain: Option<Duration>,
    /// How often the relay deletes what is past `retain` (default hourly).
    pub purge_interval: Duration,
    /// For tests only: after publishing its first batch the relay ends without marking the rows
    /// published, as a crash between publish and mark would. Leave `false`.
    pub crash_after_publish: bool,
}

impl Default for RelayConfig {
    /// Batches of 100, polled every 500 ms, 10 retries backing off from 100 ms to 10 s; published
    /// rows and processed ids kept 7 days, purged hourly.
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_millis(500),
            max_retries: 10,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(10),
            retain: Some(Duration::from_secs(7 * 24 * 3600)),
            purge_interval: Duration::from_secs(3600),
            crash_after_publish: false,
        }
    }
}

impl RelayConfig {
    /// The wait after `failures` failed batches in a row (1-based).
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.retry_base_delay
            .saturating_mul(factor)
            .min(self.retry_max_delay)
    }
}
