//! Metrics, stats, topic information with lag, and health, end to end on the test broker (embedded, or `HERALD_TEST_KAFKA`): the
//! Prometheus rendering of seed 003's metrics agrees with `Bus::stats`, lag falls to zero once
//! everything is committed, and health reports a stuck handler and an unreachable broker.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use herald::prelude::*;
use herald::telemetry::HealthOptions;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use support::*;

const TOPIC: &str = "telemetry.measured";
const GROUP: &str = "measured-consumers";

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
#[event(topic = "telemetry.measured")]
pub struct Measured {
    #[event(key)]
    pub seq: u64,
    /// Fail permanently (dead-lettered).
    pub fail: bool,
    /// Wait until the test releases it.
    pub stall: bool,
}

static RELEASE: AtomicBool = AtomicBool::new(false);

#[handler(group = "measured-consumers")]
async fn measure(event: Measured) -> Result<(), HandlerError> {
    if event.fail {
        return Err(HandlerError::permanent(HandlerError::msg(
            "this one is meant to fail",
        )));
    }
    while event.stall && !RELEASE.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
}

/// The value of the rendered sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
}

fn metric(series: &str) -> f64 {
    let text = recorder().render();
    sample(&text, series).unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
}

fn event(seq: u64, fail: bool, stall: bool) -> Measured {
    Measured { seq, fail, stall }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stats_lag_and_health_tell_what_the_bus_did() {
    recorder();
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(Config::new("measured").max_retries(0))
        .build()
        .await
        .unwrap();
    let (topic, group) = (kafka.topic(TOPIC), kafka.group(GROUP));
    let before = bus.stats();
    assert!(before.connected_at.is_some() && before.last_publish_at.is_none());

    // A backlog before the consumer starts: 3 to handle, 2 to dead-letter, a batch of 4.
    for seq in 0..5 {
        bus.publish(event(seq, seq >= 3, false)).await.unwrap();
    }
    bus.publish_batch((5..9).map(|seq| event(seq, false, false)))
        .await
        .unwrap();
    let info = bus.topic_info(&topic).await.unwrap();
    let high: i64 = info.partitions.iter().map(|p| p.high - p.low).sum();
    assert_eq!(high, 9, "{info:?}");
    assert_eq!(info.groups.len(), 1, "{info:?}");
    assert_eq!(info.groups[0].group, group);
    assert_eq!(info.groups[0].lag, 9, "nothing committed yet: {info:?}");
    assert!(info.groups[0]
        .partitions
        .iter()
        .all(|p| p.committed.is_none()));
    let idle = bus.health().await;
    assert!(idle.ready && idle.live && !idle.consuming, "{idle:?}");

    bus.start().await.unwrap();
    bus.wait_for_assignment(Duration::from_secs(30))
        .await
        .unwrap();
    wait_until("7 handled and 2 dead-lettered", || {
        let stats = bus.stats();
        stats.events_handled == 7 && stats.dead_lettered == 2
    })
    .await;
    let mut lag = bus.consumer_lag().await.unwrap();
    for _ in 0..500 {
        if lag[0].groups[0].lag == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        lag = bus.consumer_lag().await.unwrap();
    }
    assert_eq!(lag.len(), 1);
    assert_eq!(lag[0].topic, topic);
    assert_eq!(lag[0].groups[0].lag, 0, "all committed: {lag:?}");
    for p in &lag[0].groups[0].partitions {
        assert_eq!(
            metric(&format!(
                "kafka_eventbus_consumer_lag{{topic=\"{topic}\",partition=\"{}\",group=\"{group}\"}}",
                p.partition
            )),
            0.0
        );
    }

    let stats = bus.stats();
    assert_eq!(stats.events_published, 9);
    assert_eq!(stats.events_consumed, 9);
    assert_eq!(stats.handler_invocations, 9);
    assert_eq!(stats.handler_failures, 2);
    assert!(stats.last_publish_at >= stats.connected_at);
    assert!(stats.last_consume_at >= stats.last_publish_at);
    assert!(stats.last_error_at.is_some());
    let counters = [
        ("kafka_eventbus_messages_published", stats.events_published),
        ("kafka_eventbus_messages_consumed", stats.events_consumed),
        (
            "kafka_eventbus_handler_invocations",
            stats.handler_invocations,
        ),
        ("kafka_eventbus_handler_errors", stats.handler_failures),
        ("kafka_eventbus_messages_dlq", stats.dead_lettered),
        ("kafka_eventbus_messages_handled", stats.events_handled),
    ];
    for (name, value) in counters {
        assert_eq!(metric(name), value as f64, "{name}");
    }
    assert!(metric("kafka_eventbus_rebalances") >= 1.0);
    assert_eq!(metric("kafka_eventbus_connections_active"), 2.0);
    assert_eq!(metric("kafka_eventbus_batch_size_count"), 1.0);
    assert_eq!(metric("kafka_eventbus_batch_size_sum"), 4.0);
    // Five single publishes and one batch, timed at the call.
    assert_eq!(
        metric(&format!(
            "kafka_eventbus_publish_duration_count{{topic=\"{topic}\"}}"
        )),
        6.0
    );
    assert_eq!(
        metric("kafka_eventbus_handler_duration_count{handler=\"measure\",outcome=\"ok\"}"),
        7.0
    );
    assert_eq!(
        metric("kafka_eventbus_handler_duration_count{handler=\"measure\",outcome=\"error\"}"),
        2.0
    );
    assert_eq!(
        metric("kafka_eventbus_consume_duration_count{verdict=\"handled\"}"),
        7.0
    );
    assert_eq!(
        metric("kafka_eventbus_consume_duration_count{verdict=\"dead_letter\"}"),
        2.0
    );

    // Ready while consuming; a handler that runs too long makes the bus not live.
    let healthy = bus.health().await;
    assert!(
        healthy.ready && healthy.live && healthy.broker_reachable,
        "{healthy:?}"
    );
    assert_eq!(healthy.groups.len(), 1);
    assert!(healthy.groups[0].assigned_partitions > 0 && !healthy.groups[0].failed);
    bus.publish(event(100, false, true)).await.unwrap();
    let strict = HealthOptions {
        probe_timeout: Duration::from_secs(2),
        stuck_after: Duration::from_millis(200),
    };
    let mut stuck = bus.health_with(strict).await;
    for _ in 0..500 {
        if !stuck.live {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stuck = bus.health_with(strict).await;
    }
    assert!(!stuck.live && !stuck.ready, "{stuck:?}");
    assert!(
        stuck.problems.iter().any(|p| p.contains("`measure`")),
        "{stuck:?}"
    );
    RELEASE.store(true, Ordering::SeqCst);
    wait_until("the stalled event was handled", || {
        bus.stats().events_handled == 8
    })
    .await;
    assert!(bus.health_with(strict).await.live);

    // An unreachable broker: not ready, still live (the embedded broker's fault injection).
    if !runs_on_embedded_only(
        "the unreachable-broker part of metrics_stats_lag_and_health_tell_what_the_bus_did",
        "it takes the broker down with the embedded broker's fault injection",
    ) {
        bus.shutdown().await.unwrap();
        assert_eq!(metric("kafka_eventbus_connections_active"), 1.0);
        return;
    }
    let broker = kafka.embedded();
    broker.broker_down().unwrap();
    let down = bus
        .health_with(HealthOptions {
            probe_timeout: Duration::from_millis(500),
            ..strict
        })
        .await;
    broker.broker_up().unwrap();
    assert!(
        !down.broker_reachable && !down.ready && down.live,
        "{down:?}"
    );
    assert!(down
        .problems
        .iter()
        .any(|p| p.contains("KAFKA_BOOTSTRAP_SERVERS")));
    // Shut down once the bus is ready again: a shutdown during the reconnection may wait out its
    // timeout for the final commit (once in a loaded CI run).
    let mut again = bus.health_with(strict).await;
    for _ in 0..500 {
        if again.ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        again = bus.health_with(strict).await;
    }
    assert!(again.ready && again.broker_reachable, "{again:?}");

    bus.shutdown().await.unwrap();
    assert_eq!(metric("kafka_eventbus_connections_active"), 1.0);
}
