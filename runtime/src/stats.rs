//! Counters of what the bus did, readable at any time with `Bus::stats` (seed 003's statistics).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the bus's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Events the broker acknowledged.
    pub events_published: u64,
    /// Publishes the broker did not acknowledge.
    pub publish_failures: u64,
    /// Producers replaced after a fatal error (each failed the publishes it hit).
    pub producer_restarts: u64,
    /// Messages received by the consumers.
    pub events_consumed: u64,
    /// Messages every handler succeeded on (their offsets were stored for commit).
    pub events_handled: u64,
    /// Handler runs that failed (each retry counts).
    pub handler_failures: u64,
    /// Messages that were not readable CloudEvents or did not fit the handler's type.
    pub undecodable: u64,
    /// Messages of an event type no handler of the group takes (skipped, or dead-lettered when
    /// configured).
    pub skipped_unknown_type: u64,
    /// Partition assignments and revocations.
    pub rebalances: u64,
    /// Tries of a failed handler on the same message.
    pub retries: u64,
    /// Handler attempts that ran past their retry policy's timeout.
    pub handler_timeouts: u64,
    /// Messages copied to a dead-letter topic.
    pub dead_lettered: u64,
    /// Writes to a dead-letter topic that failed (each is tried again).
    pub dead_letter_failures: u64,
    /// Times a partition was paused at the broker because its handlers were behind.
    pub partitions_paused: u64,
    /// Times a handler's circuit breaker opened (`Bus::breakers` has each one's state).
    pub breaker_opens: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub events_published: AtomicU64,
    pub publish_failures: AtomicU64,
    pub producer_restarts: AtomicU64,
    pub events_consumed: AtomicU64,
    pub events_handled: AtomicU64,
    pub handler_failures: AtomicU64,
    pub undecodable: AtomicU64,
    pub skipped_unknown_type: AtomicU64,
    pub rebalances: AtomicU64,
    pub retries: AtomicU64,
    pub handler_timeouts: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub dead_letter_failures: AtomicU64,
    pub partitions_paused: AtomicU64,
    pub breaker_opens: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            events_published: get(&self.events_published),
            publish_failures: get(&self.publish_failures),
            producer_restarts: get(&self.producer_restarts),
            events_consumed: get(&self.events_consumed),
            events_handled: get(&self.events_handled),
            handler_failures: get(&self.handler_failures),
            undecodable: get(&self.undecodable),
            skipped_unknown_type: get(&self.skipped_unknown_type),
            rebalances: get(&self.rebalances),
            retries: get(&self.retries),
            handler_timeouts: get(&self.handler_timeouts),
            dead_lettered: get(&self.dead_lettered),
            dead_letter_failures: get(&self.dead_letter_failures),
            partitions_paused: get(&self.partitions_paused),
            breaker_opens: get(&self.breaker_opens),
        }
    }
}
