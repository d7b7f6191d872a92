//! herald's metrics, under seed 003's names, through the [`metrics`] facade: nothing is recorded
//! until the application installs a recorder (`metrics-exporter-prometheus` is the easy one; see
//! `docs/observability.md`). Install it before building the bus so that [`describe`] gives every
//! metric its unit and help text.
//!
//! Counters move where the bus's [`Stats`](crate::Stats) counters move; the histograms are
//! measured where herald publishes and dispatches; the gauges are set when the bus starts or stops
//! consumers and when lag is read ([`Bus::consumer_lag`](crate::Bus::consumer_lag),
//! [`Bus::topic_info`](crate::Bus::topic_info)).

use std::time::Duration;

use metrics::Unit;

/// The metric names, all with seed 003's `kafka.eventbus.` prefix (Prometheus shows the dots as
/// underscores: `kafka_eventbus_messages_published`).
pub mod names {
    /// Counter: events the broker acknowledged.
    pub const MESSAGES_PUBLISHED: &str = "kafka.eventbus.messages.published";
    /// Counter: messages the consumers received.
    pub const MESSAGES_CONSUMED: &str = "kafka.eventbus.messages.consumed";
    /// Counter: handler attempts started (each retry counts).
    pub const HANDLER_INVOCATIONS: &str = "kafka.eventbus.handler.invocations";
    /// Counter: handler attempts that failed.
    pub const HANDLER_ERRORS: &str = "kafka.eventbus.handler.errors";
    /// Counter: messages copied to a dead-letter topic.
    pub const MESSAGES_DLQ: &str = "kafka.eventbus.messages.dlq";
    /// Counter: publishes the broker did not acknowledge.
    pub const PUBLISH_ERRORS: &str = "kafka.eventbus.publish.errors";
    /// Counter: producers replaced after a fatal error.
    pub const RECONNECTIONS: &str = "kafka.eventbus.reconnections";
    /// Counter: partition assignments and revocations.
    pub const REBALANCES: &str = "kafka.eventbus.rebalances";
    /// Histogram (seconds, label `topic`): from a publish's start to the broker's acknowledgement.
    pub const PUBLISH_DURATION: &str = "kafka.eventbus.publish.duration";
    /// Histogram (seconds, label `verdict`): from a consumed message's dispatch to its verdict
    /// (`handled`, `skipped`, `dead_letter`, `retry`, `stopped`), retries included.
    pub const CONSUME_DURATION: &str = "kafka.eventbus.consume.duration";
    /// Histogram (seconds, labels `handler`, `outcome` = `ok` / `error`): one handler attempt.
    pub const HANDLER_DURATION: &str = "kafka.eventbus.handler.duration";
    /// Histogram (events): the size of each `publish_batch` / `publish_encoded_batch`.
    pub const BATCH_SIZE: &str = "kafka.eventbus.batch.size";
    /// Gauge: the bus's Kafka clients, the producer and one consumer per running group.
    pub const CONNECTIONS_ACTIVE: &str = "kafka.eventbus.connections.active";
    /// Gauge (labels `topic`, `partition`, `group`): messages not yet committed by the group, as
    /// last read from the broker's watermarks.
    pub const CONSUMER_LAG: &str = "kafka.eventbus.consumer.lag";
    /// Counter (herald's own): messages every handler succeeded on.
    pub const MESSAGES_HANDLED: &str = "kafka.eventbus.messages.handled";
    /// Counter (herald's own): messages that were not readable CloudEvents or did not fit.
    pub const MESSAGES_UNDECODABLE: &str = "kafka.eventbus.messages.undecodable";
    /// Counter (herald's own): messages of an event type no handler of the group takes.
    pub const MESSAGES_SKIPPED: &str = "kafka.eventbus.messages.skipped";
    /// Counter (herald's own): records of a retry topic skipped because another consumer group
    /// retries them.
    pub const RETRY_SKIPPED: &str = "kafka.eventbus.retry.skipped";
    /// Counter (herald's own): replayed dead letters skipped because the replay was meant for
    /// another consumer group.
    pub const REPLAY_SKIPPED: &str = "kafka.eventbus.replay.skipped";
    /// Counter (herald's own): retries of a failed handler.
    pub const HANDLER_RETRIES: &str = "kafka.eventbus.handler.retries";
    /// Counter (herald's own): handler attempts that timed out.
    pub const HANDLER_TIMEOUTS: &str = "kafka.eventbus.handler.timeouts";
    /// Counter (herald's own): failed writes to a dead-letter topic.
    pub const DLQ_ERRORS: &str = "kafka.eventbus.dlq.errors";
    /// Counter (herald's own): partitions paused because their handlers were behind.
    pub const PARTITIONS_PAUSED: &str = "kafka.eventbus.partitions.paused";
    /// Counter (herald's own): circuit breaker openings.
    pub const BREAKER_OPENS: &str = "kafka.eventbus.breaker.opens";
    /// Counter (herald's own): commands sent with `Bus::request`.
    pub const REQUESTS: &str = "kafka.eventbus.requests";
    /// Counter (herald's own): requests that got no reply within their timeout.
    pub const REQUEST_TIMEOUTS: &str = "kafka.eventbus.requests.timeouts";
    /// Counter (herald's own): replies a command handler's service sent (error replies included).
    pub const REPLIES_SENT: &str = "kafka.eventbus.replies.sent";
    /// Counter (herald's own): replies that came after their request gave up, dropped.
    pub const REPLIES_LATE: &str = "kafka.eventbus.replies.late";
}

/// Gives every herald metric its unit and help text in the installed recorder (called when a bus
/// is built; harmless to call again).
pub fn describe() {
    use names::*;
    let counters = [
        (MESSAGES_PUBLISHED, "Events the broker acknowledged"),
        (MESSAGES_CONSUMED, "Messages the consumers received"),
        (HANDLER_INVOCATIONS, "Handler attempts started"),
        (HANDLER_ERRORS, "Handler attempts that failed"),
        (MESSAGES_DLQ, "Messages copied to a dead-letter topic"),
        (PUBLISH_ERRORS, "Publishes the broker did not acknowledge"),
        (RECONNECTIONS, "Producers replaced after a fatal error"),
        (REBALANCES, "Partition assignments and revocations"),
        (MESSAGES_HANDLED, "Messages every handler succeeded on"),
        (
            MESSAGES_UNDECODABLE,
            "Messages that were not readable CloudEvents",
        ),
        (MESSAGES_SKIPPED, "Messages no handler of the group takes"),
        (
            RETRY_SKIPPED,
            "Retry-topic records another consumer group retries",
        ),
        (
            REPLAY_SKIPPED,
            "Replayed dead letters meant for another consumer group",
        ),
        (HANDLER_RETRIES, "Retries of failed handlers"),
        (HANDLER_TIMEOUTS, "Handler attempts that timed out"),
        (DLQ_ERRORS, "Failed writes to a dead-letter topic"),
        (
            PARTITIONS_PAUSED,
            "Partitions paused because their handlers were behind",
        ),
        (BREAKER_OPENS, "Circuit breaker openings"),
        (REQUESTS, "Commands sent with a request for their reply"),
        (REQUEST_TIMEOUTS, "Requests that got no reply in time"),
        (REPLIES_SENT, "Replies sent by command handlers' services"),
        (
            REPLIES_LATE,
            "Replies dropped because their request gave up",
        ),
    ];
    for (name, help) in counters {
        metrics::describe_counter!(name, help);
    }
    let durations = [
        (PUBLISH_DURATION, "From a publish to its acknowledgement"),
        (CONSUME_DURATION, "From a message's dispatch to its verdict"),
        (HANDLER_DURATION, "One handler attempt"),
    ];
    for (name, help) in durations {
        metrics::describe_histogram!(name, Unit::Seconds, help);
    }
    metrics::describe_histogram!(BATCH_SIZE, Unit::Count, "Events per published batch");
    metrics::describe_gauge!(CONNECTIONS_ACTIVE, "The bus's Kafka clients");
    metrics::describe_gauge!(CONSUMER_LAG, Unit::Count, "Messages not yet committed");
}

/// Records a publish's duration.
pub(crate) fn publish_duration(topic: &'static str, elapsed: Duration) {
    metrics::histogram!(names::PUBLISH_DURATION, "topic" => topic).record(elapsed.as_secs_f64());
}

/// The metadata of the histograms recorded per message, as `metrics::histogram!` would give them.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Records into the histogram of `key` (a key made once: recording per message allocates nothing,
/// where `metrics::histogram!` with a label that is not a literal builds its key each time).
fn record(key: &metrics::Key, value: f64) {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA)).record(value);
}

/// Records a message's time to its verdict.
pub(crate) fn consume_duration(verdict: &'static str, elapsed: Duration) {
    macro_rules! key {
        ($verdict:literal) => {{
            static LABELS: [metrics::Label; 1] =
                [metrics::Label::from_static_parts("verdict", $verdict)];
            static KEY: metrics::Key =
                metrics::Key::from_static_parts(names::CONSUME_DURATION, &LABELS);
            &KEY
        }};
    }
    let key = match verdict {
        "handled" => key!("handled"),
        "skipped" => key!("skipped"),
        "dead_letter" => key!("dead_letter"),
        "retry" => key!("retry"),
        "stopped" => key!("stopped"),
        other => {
            metrics::histogram!(names::CONSUME_DURATION, "verdict" => other)
                .record(elapsed.as_secs_f64());
            return;
        }
    };
    record(key, elapsed.as_secs_f64());
}

/// The keys of one handler's attempt durations, made once per handler of a consumer.
#[derive(Debug)]
pub(crate) struct HandlerDurations {
    ok: metrics::Key,
    error: metrics::Key,
}

impl HandlerDurations {
    pub fn new(handler: &'static str) -> std::sync::Arc<Self> {
        let key = |outcome: &'static str| {
            metrics::Key::from_parts(
                names::HANDLER_DURATION,
                vec![
                    metrics::Label::new("handler", handler),
                    metrics::Label::new("outcome", outcome),
                ],
            )
        };
        std::sync::Arc::new(Self {
            ok: key("ok"),
            error: key("error"),
        })
    }
}

/// Records one handler attempt's duration.
pub(crate) fn handler_duration(handler: &HandlerDurations, ok: bool, elapsed: Duration) {
    let key = if ok { &handler.ok } else { &handler.error };
    record(key, elapsed.as_secs_f64());
}

/// Records a published batch's size.
pub(crate) fn batch_size(events: usize) {
    metrics::histogram!(names::BATCH_SIZE).record(events as f64);
}

/// Sets how many Kafka clients the bus runs.
pub(crate) fn connections_active(clients: usize) {
    metrics::gauge!(names::CONNECTIONS_ACTIVE).set(clients as f64);
}

/// Sets a group's lag on one partition.
pub(crate) fn consumer_lag(topic: &str, partition: i32, group: &str, lag: i64) {
    metrics::gauge!(names::CONSUMER_LAG, "topic" => topic.to_owned(),
        "partition" => partition.to_string(), "group" => group.to_owned())
    .set(lag as f64);
}
