//! Counters of what the bus did, readable at any time with `Bus::stats` (seed 003's statistics) and
//! emitted through the `metrics` facade under seed 003's names as they change.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::telemetry::metrics::names;

/// A snapshot of the bus's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Events the broker acknowledged.
    pub events_published: u64,
    /// Publishes the broker did not acknowledge.
    pub publish_failures: u64,
    /// Producers replaced after a fatal error (each failed the publishes it hit): herald's
    /// reconnections.
    pub producer_restarts: u64,
    /// Messages received by the consumers.
    pub events_consumed: u64,
    /// Messages every handler succeeded on (their offsets were stored for commit).
    pub events_handled: u64,
    /// Handler attempts started (each retry counts).
    pub handler_invocations: u64,
    /// Handler runs that failed (each retry counts).
    pub handler_failures: u64,
    /// Messages that were not readable CloudEvents or did not fit the handler's type.
    pub undecodable: u64,
    /// Messages of an event type no handler of the group takes (skipped, or dead-lettered when
    /// configured).
    pub skipped_unknown_type: u64,
    /// Records of a retry topic skipped because another consumer group retries them.
    pub retry_records_skipped: u64,
    /// Replayed dead letters skipped because the replay was meant for another consumer group.
    pub replays_skipped: u64,
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
    /// Commands sent with [`Bus::request`](crate::Bus::request) (published).
    pub requests: u64,
    /// Requests that got no reply within their timeout.
    pub request_timeouts: u64,
    /// Replies this bus sent for commands its handlers handled (error replies included).
    pub replies_sent: u64,
    /// Replies to this bus's requests that came after the request gave up (timed out or dropped):
    /// dropped, never delivered to another request.
    pub late_replies: u64,
    /// When the bus connected (was built).
    pub connected_at: Option<DateTime<Utc>>,
    /// When the broker last acknowledged a publish.
    pub last_publish_at: Option<DateTime<Utc>>,
    /// When a consumer last received a message.
    pub last_consume_at: Option<DateTime<Utc>>,
    /// When a publish, a handler attempt, a decode or a dead-letter write last failed.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// One live counter: its value, the metric it is emitted as, and when it last moved (kept only for
/// the counters [`Stats`] reports a time of).
#[derive(Debug)]
pub(crate) struct Counter {
    value: AtomicU64,
    metric: &'static str,
    stamped: bool,
    /// Microseconds since the Unix epoch; 0: never.
    last_at: AtomicI64,
}

impl Counter {
    const fn new(metric: &'static str, stamped: bool) -> Self {
        Self {
            value: AtomicU64::new(0),
            metric,
            stamped,
            last_at: AtomicI64::new(0),
        }
    }

    fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    fn last_at(&self) -> i64 {
        self.last_at.load(Ordering::Relaxed)
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug)]
pub(crate) struct Counters {
    pub events_published: Counter,
    pub publish_failures: Counter,
    pub producer_restarts: Counter,
    pub events_consumed: Counter,
    pub events_handled: Counter,
    pub handler_invocations: Counter,
    pub handler_failures: Counter,
    pub undecodable: Counter,
    pub skipped_unknown_type: Counter,
    pub retry_records_skipped: Counter,
    pub replays_skipped: Counter,
    pub rebalances: Counter,
    pub retries: Counter,
    pub handler_timeouts: Counter,
    pub dead_lettered: Counter,
    pub dead_letter_failures: Counter,
    pub partitions_paused: Counter,
    pub breaker_opens: Counter,
    pub requests: Counter,
    pub request_timeouts: Counter,
    pub replies_sent: Counter,
    pub late_replies: Counter,
    /// Microseconds since the Unix epoch when the bus was built.
    connected_at: AtomicI64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            events_published: Counter::new(names::MESSAGES_PUBLISHED, true),
            publish_failures: Counter::new(names::PUBLISH_ERRORS, true),
            producer_restarts: Counter::new(names::RECONNECTIONS, false),
            events_consumed: Counter::new(names::MESSAGES_CONSUMED, true),
            events_handled: Counter::new(names::MESSAGES_HANDLED, false),
            handler_invocations: Counter::new(names::HANDLER_INVOCATIONS, false),
            handler_failures: Counter::new(names::HANDLER_ERRORS, true),
            undecodable: Counter::new(names::MESSAGES_UNDECODABLE, true),
            skipped_unknown_type: Counter::new(names::MESSAGES_SKIPPED, false),
            retry_records_skipped: Counter::new(names::RETRY_SKIPPED, false),
            replays_skipped: Counter::new(names::REPLAY_SKIPPED, false),
            rebalances: Counter::new(names::REBALANCES, false),
            retries: Counter::new(names::HANDLER_RETRIES, false),
            handler_timeouts: Counter::new(names::HANDLER_TIMEOUTS, false),
            dead_lettered: Counter::new(names::MESSAGES_DLQ, false),
            dead_letter_failures: Counter::new(names::DLQ_ERRORS, true),
            partitions_paused: Counter::new(names::PARTITIONS_PAUSED, false),
            breaker_opens: Counter::new(names::BREAKER_OPENS, false),
            requests: Counter::new(names::REQUESTS, false),
            request_timeouts: Counter::new(names::REQUEST_TIMEOUTS, false),
            replies_sent: Counter::new(names::REPLIES_SENT, false),
            late_replies: Counter::new(names::REPLIES_LATE, false),
            connected_at: AtomicI64::new(0),
        }
    }
}

/// Microseconds since the Unix epoch, now.
fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn time(micros: i64) -> Option<DateTime<Utc>> {
    (micros > 0)
        .then(|| DateTime::from_timestamp_micros(micros))
        .flatten()
}

impl Counters {
    /// Adds `n` to `counter` and to its metric (a no-op without an installed `metrics` recorder).
    pub fn add(counter: &Counter, n: u64) {
        counter.value.fetch_add(n, Ordering::Relaxed);
        if counter.stamped {
            counter.last_at.store(now_micros(), Ordering::Relaxed);
        }
        metrics::counter!(counter.metric).increment(n);
    }

    /// Notes that the bus connected now.
    pub fn connected(&self) {
        self.connected_at.store(now_micros(), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let last_error = [
            &self.publish_failures,
            &self.handler_failures,
            &self.undecodable,
            &self.dead_letter_failures,
        ]
        .iter()
        .map(|c| c.last_at())
        .max()
        .unwrap_or(0);
        Stats {
            events_published: self.events_published.get(),
            publish_failures: self.publish_failures.get(),
            producer_restarts: self.producer_restarts.get(),
            events_consumed: self.events_consumed.get(),
            events_handled: self.events_handled.get(),
            handler_invocations: self.handler_invocations.get(),
            handler_failures: self.handler_failures.get(),
            undecodable: self.undecodable.get(),
            skipped_unknown_type: self.skipped_unknown_type.get(),
            retry_records_skipped: self.retry_records_skipped.get(),
            replays_skipped: self.replays_skipped.get(),
            rebalances: self.rebalances.get(),
            retries: self.retries.get(),
            handler_timeouts: self.handler_timeouts.get(),
            dead_lettered: self.dead_lettered.get(),
            dead_letter_failures: self.dead_letter_failures.get(),
            partitions_paused: self.partitions_paused.get(),
            breaker_opens: self.breaker_opens.get(),
            requests: self.requests.get(),
            request_timeouts: self.request_timeouts.get(),
            replies_sent: self.replies_sent.get(),
            late_replies: self.late_replies.get(),
            connected_at: time(self.connected_at.load(Ordering::Relaxed)),
            last_publish_at: time(self.events_published.last_at()),
            last_consume_at: time(self.events_consumed.last_at()),
            last_error_at: time(last_error),
        }
    }
}
