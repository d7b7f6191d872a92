//! Per-key concurrency inside a partition (`#[handler(concurrency = N)]`) over the Kafka protocol
//! (the test broker: embedded, or `HERALD_TEST_KAFKA`): events of different keys of one partition
//! run at once, each key's events in order and one at a time, and the committed offset never
//! passes an event that has not reached its verdict — through dead letters and a shutdown with
//! events in flight.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald::headers::dlq;
use herald::prelude::*;
use rdkafka::message::Message;
use support::*;

/// What a test's handlers saw.
#[derive(Default)]
struct Log {
    /// (member, key, seq) of each event handled to success, in the order they finished.
    handled: Mutex<Vec<(&'static str, String, u64)>>,
    /// How many handlers run now, and the most that ever ran at once.
    running: AtomicUsize,
    most: AtomicUsize,
    /// The keys with a handler running now: a key found here again ran twice at once.
    keys_running: Mutex<BTreeSet<String>>,
    overlapped: AtomicBool,
}

impl Log {
    /// Marks a handler of `key` running until the guard drops.
    fn enter(&self, key: &str) -> Running<'_> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        if !self.keys_running.lock().unwrap().insert(key.to_owned()) {
            self.overlapped.store(true, Ordering::SeqCst);
        }
        Running {
            log: self,
            key: key.to_owned(),
        }
    }

    fn handled(&self, member: &'static str, key: &str, seq: u64) {
        self.handled
            .lock()
            .unwrap()
            .push((member, key.to_owned(), seq));
    }

    fn count(&self) -> usize {
        self.handled.lock().unwrap().len()
    }

    /// The seqs handled of each key, in the order they finished.
    fn by_key(&self) -> BTreeMap<String, Vec<u64>> {
        let mut keys: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (_, key, seq) in self.handled.lock().unwrap().iter() {
            keys.entry(key.clone()).or_default().push(*seq);
        }
        keys
    }
}

struct Running<'a> {
    log: &'a Log,
    key: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.log.keys_running.lock().unwrap().remove(&self.key);
        self.log.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn log(ctx: &Context) -> &Arc<Log> {
    ctx.state::<Arc<Log>>().expect("test state registered")
}

/// Which bus of the test a handler ran on.
#[derive(Clone, Copy)]
struct Member(&'static str);

fn member(ctx: &Context) -> &'static str {
    ctx.state::<Member>().map_or("a", |m| m.0)
}

/// One partition per topic, so that every key of a test shares it.
fn config(service: &str) -> Config {
    Config {
        max_retries: 2,
        retry_jitter: 0.0,
        ..Config::new(service)
            .topic_partitions(1)
            .commit_interval(Duration::from_millis(100))
            .retry_delays(Duration::from_millis(10), Duration::from_millis(40))
            .shutdown_timeout(Duration::from_secs(20))
    }
}

async fn bus_on(kafka: &TestKafka, group: &str, log: &Arc<Log>, who: &'static str) -> Bus {
    kafka
        .builder(config(group))
        .only_groups([group])
        .state(log.clone())
        .state(Member(who))
        .build()
        .await
        .expect("bus builds")
}

fn committed(kafka: &TestKafka, bus: &Bus, group: &str, topic: &str) -> (i64, i64) {
    let offsets = committed_and_high(
        bus.bootstrap_servers(),
        &kafka.group(group),
        &kafka.topic(topic),
    );
    assert_eq!(offsets.len(), 1, "{topic} has one partition");
    (offsets[0].1, offsets[0].2)
}

// ------------------------------------------- keys run in parallel, each key stays in order

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "keyed.samples")]
pub struct Sampled {
    #[event(key)]
    pub sensor: String,
    pub seq: u64,
}

#[handler(group = "keyed-order", concurrency = 8)]
async fn record_sample(event: Sampled, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    let _running = log.enter(&event.sensor);
    // 10 to 20 ms, varying so that keys overtake each other.
    tokio::time::sleep(Duration::from_millis(
        10 + (event.seq * 7 + event.sensor.len() as u64) % 11,
    ))
    .await;
    log.handled(member(ctx), &event.sensor, event.seq);
    Ok(())
}

/// 8 keys × 40 events on one partition with `concurrency = 8`: several handlers run at once (never
/// more than 8, never two of one key), each key's events are handled in order with no gap, every
/// event exactly once, and the partition is committed to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_run_in_parallel_and_each_key_stays_in_order() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let bus = bus_on(&kafka, "keyed-order", &log, "a").await;
    let (keys, per_key) = (8u64, 40u64);
    bus.publish_batch((0..per_key).flat_map(|seq| {
        (0..keys).map(move |k| Sampled {
            sensor: format!("sensor-{k}"),
            seq,
        })
    }))
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("every sample was handled", || {
        log.count() >= (keys * per_key) as usize
    })
    .await;
    wait_until("the partition was committed to its end", || {
        let (committed, high) = committed(&kafka, &bus, "keyed-order", "keyed.samples");
        committed == high
    })
    .await;
    bus.shutdown().await.unwrap();

    let by_key = log.by_key();
    assert_eq!(by_key.len(), keys as usize, "{by_key:?}");
    for (key, seqs) in &by_key {
        assert_eq!(
            seqs,
            &(0..per_key).collect::<Vec<_>>(),
            "{key} was handled out of order, with a gap or twice"
        );
    }
    assert_eq!(
        log.count(),
        (keys * per_key) as usize,
        "an event was handled twice"
    );
    let most = log.most.load(Ordering::SeqCst);
    assert!(
        most > 1,
        "the keys ran one at a time (at most {most} at once)"
    );
    assert!(
        most <= 8,
        "{most} handlers ran at once, more than concurrency = 8"
    );
    assert!(
        !log.overlapped.load(Ordering::SeqCst),
        "two events of one key ran at once"
    );
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("keyed-order"),
        &kafka.topic("keyed.samples"),
    );
}

// ------------------------------- the committed offset never passes an unfinished event

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "keyed.transfers")]
pub struct Transferred {
    #[event(key)]
    pub account: String,
    pub seq: u64,
}

/// Published on another topic of the same group after the other keys are done: its commit is
/// part of the same offset commits as the blocked partition's, so once it is committed, any
/// offset stored for that partition before it was committed too.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "keyed.witness")]
pub struct Witnessed {
    pub seq: u64,
}

/// Released by the test: the first transfer of account `blocked` waits for it.
#[derive(Default)]
struct Gate(tokio::sync::Notify, AtomicBool);

#[handler(group = "keyed-blocked", concurrency = 4)]
async fn book_transfer(event: Transferred, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    if event.account == "blocked" && event.seq == 0 {
        let gate = ctx.state::<Arc<Gate>>().unwrap();
        gate.1.store(true, Ordering::SeqCst);
        gate.0.notified().await;
    }
    let _running = log.enter(&event.account);
    tokio::time::sleep(Duration::from_millis(2)).await;
    log.handled(member(ctx), &event.account, event.seq);
    Ok(())
}

#[handler(group = "keyed-blocked")]
async fn witness(event: Witnessed, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).handled(member(ctx), "witness", event.seq);
    Ok(())
}

/// Ten transfers, then the first transfer of a blocked account, then 60 of three other accounts:
/// the other accounts are all handled while the blocked one waits, and the group commits (a
/// witness on another topic of the group is committed), yet the committed offset stays at the
/// blocked event. Released, it is handled and the whole partition is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_offset_never_passes_an_unfinished_event() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let gate = Arc::new(Gate::default());
    let bus = kafka
        .builder(config("keyed-blocked"))
        .only_groups(["keyed-blocked"])
        .state(log.clone())
        .state(gate.clone())
        .build()
        .await
        .unwrap();
    let before = (0..10).map(|seq| Transferred {
        account: format!("early-{}", seq % 2),
        seq,
    });
    let blocked = std::iter::once(Transferred {
        account: "blocked".into(),
        seq: 0,
    });
    let after = (0..60).map(|seq| Transferred {
        account: format!("other-{}", seq % 3),
        seq,
    });
    let deliveries = bus
        .publish_batch(before.chain(blocked).chain(after))
        .await
        .unwrap();
    let blocked_offset = deliveries[10].offset;
    bus.start().await.unwrap();
    wait_until("the blocked transfer started", || {
        gate.1.load(Ordering::SeqCst)
    })
    .await;
    wait_until(
        "the 70 transfers of the other accounts were handled",
        || log.count() >= 70,
    )
    .await;
    wait_until(
        "the transfers before the blocked one were committed",
        || committed(&kafka, &bus, "keyed-blocked", "keyed.transfers").0 >= blocked_offset,
    )
    .await;
    bus.publish(Witnessed { seq: 1 }).await.unwrap();
    wait_until("the witness was committed", || {
        let (committed, high) = committed(&kafka, &bus, "keyed-blocked", "keyed.witness");
        high > 0 && committed == high
    })
    .await;
    let (committed_now, high) = committed(&kafka, &bus, "keyed-blocked", "keyed.transfers");
    assert_eq!(
        high,
        blocked_offset + 61,
        "the topic holds the 71 transfers"
    );
    assert_eq!(
        committed_now, blocked_offset,
        "the committed offset passed the blocked event at {blocked_offset}"
    );
    assert!(
        !log.by_key().contains_key("blocked"),
        "the blocked transfer was handled before it was released"
    );

    gate.0.notify_one();
    wait_until("the blocked transfer was handled", || {
        log.by_key().contains_key("blocked")
    })
    .await;
    wait_until("the whole partition was committed", || {
        let (committed, high) = committed(&kafka, &bus, "keyed-blocked", "keyed.transfers");
        committed == high
    })
    .await;
    bus.shutdown().await.unwrap();
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("keyed-blocked"),
        &kafka.topic("keyed.transfers"),
    );
    let by_key = log.by_key();
    for (key, seqs) in by_key.iter().filter(|(k, _)| k.starts_with("other")) {
        assert_eq!(seqs.len(), 20, "{key}: {seqs:?}");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {seqs:?}"
        );
    }
}

// --------------------------- a failing event is dead-lettered while the other keys go on

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "keyed.orders")]
pub struct OrderPlaced {
    #[event(key)]
    pub customer: String,
    pub seq: u64,
}

/// The failing order's attempts, and how many orders of other customers were handled between
/// its first attempt and its last.
#[derive(Default)]
struct Failing {
    attempts: Mutex<Vec<Instant>>,
    others_during: AtomicUsize,
}

#[handler(group = "keyed-dlq", concurrency = 4, retries = 2, backoff = "150ms")]
async fn place_order(event: OrderPlaced, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    let _running = log.enter(&event.customer);
    if event.customer == "customer-1" && event.seq == 3 {
        let failing = ctx.state::<Arc<Failing>>().unwrap();
        failing.attempts.lock().unwrap().push(Instant::now());
        return Err(HandlerError::msg("the customer's credit check is down"));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let failing = ctx.state::<Arc<Failing>>().unwrap();
    let tries = failing.attempts.lock().unwrap().len();
    if event.customer != "customer-1" && (1..3).contains(&tries) {
        failing.others_during.fetch_add(1, Ordering::SeqCst);
    }
    log.handled(member(ctx), &event.customer, event.seq);
    Ok(())
}

/// One order of customer-1 fails on every try: after its retries it is dead-lettered (exactly one
/// record on the dead-letter topic, with its key and offset), the other customers' orders are
/// handled while it is retried, customer-1's later orders are handled after it, in order, and the
/// partition is committed to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_is_dead_lettered_while_the_other_keys_go_on() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let failing = Arc::new(Failing::default());
    let bus = kafka
        .builder(config("keyed-dlq"))
        .only_groups(["keyed-dlq"])
        .state(log.clone())
        .state(failing.clone())
        .build()
        .await
        .unwrap();
    let deliveries = bus
        .publish_batch((0..10).flat_map(|seq| {
            (0..4).map(move |c| OrderPlaced {
                customer: format!("customer-{c}"),
                seq,
            })
        }))
        .await
        .unwrap();
    // seq 3 of customer-1: the 4th round of four, second in it.
    let failed_offset = deliveries[3 * 4 + 1].offset;
    bus.start().await.unwrap();
    wait_until("the failing order was dead-lettered", || {
        bus.stats().dead_lettered >= 1
    })
    .await;
    wait_until("the 39 other orders were handled", || log.count() >= 39).await;
    wait_until("the partition was committed to its end", || {
        let (committed, high) = committed(&kafka, &bus, "keyed-dlq", "keyed.orders");
        committed == high
    })
    .await;
    let stats = bus.stats();
    bus.shutdown().await.unwrap();

    assert_eq!(stats.dead_lettered, 1);
    let letters = read_topic(bus.bootstrap_servers(), &kafka.topic("keyed.orders.dlq"), 1);
    assert_eq!(letters[0].key(), Some(&b"customer-1"[..]));
    assert_eq!(
        header(&letters[0], dlq::ORIGINAL_OFFSET),
        Some(failed_offset.to_string())
    );
    let attempts = failing.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3, "the first try and two retries");

    let by_key = log.by_key();
    for (key, seqs) in &by_key {
        let expected: Vec<u64> = (0..10)
            .filter(|seq| !(key == "customer-1" && *seq == 3))
            .collect();
        assert_eq!(seqs, &expected, "{key}");
    }
    assert_eq!(log.count(), 39, "an order was handled twice");
    // The other customers did not wait for the retries: orders of theirs were handled between
    // the failing order's first and last try (300 ms apart; an order takes 5 ms).
    assert!(attempts[2] - attempts[0] >= Duration::from_millis(300));
    let during = failing.others_during.load(Ordering::SeqCst);
    assert!(
        during > 0,
        "the other customers waited for the failing order's retries"
    );
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("keyed-dlq"),
        &kafka.topic("keyed.orders"),
    );
}

// ------------------------------- a shutdown with events in flight on several keys loses nothing

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "keyed.jobs")]
pub struct JobQueued {
    #[event(key)]
    pub queue: String,
    pub seq: u64,
}

#[handler(group = "keyed-shutdown", concurrency = 4)]
async fn run_job(event: JobQueued, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    let _running = log.enter(&event.queue);
    tokio::time::sleep(Duration::from_millis(20 + event.seq % 7)).await;
    log.handled(member(ctx), &event.queue, event.seq);
    Ok(())
}

/// Bus A shuts down while jobs of several queues run: they finish, what is contiguously done is
/// committed, and bus B of the same group handles the rest. Every job is handled at least once,
/// and each queue's jobs were first handled in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_with_events_in_flight_on_several_keys_loses_nothing() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let a = bus_on(&kafka, "keyed-shutdown", &log, "a").await;
    let (queues, per_queue) = (4u64, 30u64);
    a.publish_batch((0..per_queue).flat_map(|seq| {
        (0..queues).map(move |q| JobQueued {
            queue: format!("queue-{q}"),
            seq,
        })
    }))
    .await
    .unwrap();
    a.start().await.unwrap();
    wait_until("A handled some jobs and runs several at once", || {
        log.count() >= 20 && log.running.load(Ordering::SeqCst) >= 2
    })
    .await;
    a.shutdown().await.unwrap();
    let by_a = log.count();
    assert!(
        by_a < (queues * per_queue) as usize,
        "A handled every job before it stopped: nothing was proven"
    );
    let b = bus_on(&kafka, "keyed-shutdown", &log, "b").await;
    b.start().await.unwrap();
    wait_until("every job was handled", || {
        let handled = log.handled.lock().unwrap();
        handled
            .iter()
            .map(|(_, q, s)| (q.clone(), *s))
            .collect::<BTreeSet<_>>()
            .len()
            == (queues * per_queue) as usize
    })
    .await;
    wait_until("B committed the whole partition", || {
        let (committed, high) = committed(&kafka, &b, "keyed-shutdown", "keyed.jobs");
        committed == high
    })
    .await;
    b.shutdown().await.unwrap();
    assert_all_committed(
        b.bootstrap_servers(),
        &kafka.group("keyed-shutdown"),
        &kafka.topic("keyed.jobs"),
    );

    let handled = log.handled.lock().unwrap().clone();
    assert!(
        handled.iter().any(|(m, _, _)| *m == "b"),
        "B handled nothing: A was not stopped mid-way"
    );
    // Each queue's jobs in the order of their first handling.
    let mut first: HashMap<String, Vec<u64>> = HashMap::new();
    let mut seen = BTreeSet::new();
    for (_, queue, seq) in &handled {
        if seen.insert((queue.clone(), *seq)) {
            first.entry(queue.clone()).or_default().push(*seq);
        }
    }
    for (queue, seqs) in &first {
        assert_eq!(
            seqs,
            &(0..per_queue).collect::<Vec<_>>(),
            "{queue} was first handled out of order"
        );
    }
    assert!(
        !log.overlapped.load(Ordering::SeqCst),
        "two jobs of one queue ran at once"
    );
}

// ------------------- a stuck key bounds how far the partition runs ahead of the committed offset

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "keyed.deliveries")]
pub struct Delivered {
    #[event(key)]
    pub route: String,
    pub seq: u64,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "keyed.ahead-witness")]
pub struct AheadWitnessed {
    pub seq: u64,
}

#[handler(group = "keyed-ahead", concurrency = 4)]
async fn deliver(event: Delivered, ctx: &Context) -> Result<(), HandlerError> {
    if event.route == "stuck" {
        let gate = ctx.state::<Arc<Gate>>().unwrap();
        gate.1.store(true, Ordering::SeqCst);
        gate.0.notified().await;
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    log(ctx).handled(member(ctx), &event.route, event.seq);
    Ok(())
}

#[handler(group = "keyed-ahead")]
async fn witness_ahead(event: AheadWitnessed, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).handled(member(ctx), "witness", event.seq);
    Ok(())
}

/// With `max_buffered_per_partition = 16`, a stuck first event lets at most 15 later events of
/// other keys be handled (what a crash would hand out again), even after a commit went by; the
/// partition is paused meanwhile. Released, the remaining events are handled and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_key_bounds_how_far_the_partition_runs_ahead() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let gate = Arc::new(Gate::default());
    let small_buffer = Config {
        max_buffered_per_partition: 16,
        ..config("keyed-ahead")
    };
    let bus = kafka
        .builder(small_buffer)
        .only_groups(["keyed-ahead"])
        .state(log.clone())
        .state(gate.clone())
        .build()
        .await
        .unwrap();
    let stuck = std::iter::once(Delivered {
        route: "stuck".into(),
        seq: 0,
    });
    let others = (0..100).map(|seq| Delivered {
        route: format!("route-{}", seq % 3),
        seq,
    });
    bus.publish_batch(stuck.chain(others)).await.unwrap();
    bus.start().await.unwrap();
    wait_until("the stuck delivery started", || {
        gate.1.load(Ordering::SeqCst)
    })
    .await;
    wait_until("15 deliveries of other routes were handled", || {
        log.count() >= 15
    })
    .await;
    wait_until("the partition was paused", || {
        bus.stats().partitions_paused > 0
    })
    .await;
    bus.publish(AheadWitnessed { seq: 1 }).await.unwrap();
    wait_until("the witness was committed", || {
        let (committed, high) = committed(&kafka, &bus, "keyed-ahead", "keyed.ahead-witness");
        high > 0 && committed == high
    })
    .await;
    let handled = log
        .handled
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, route, _)| route.starts_with("route"))
        .count();
    assert_eq!(
        handled, 15,
        "the partition ran more than its buffer past the stuck event"
    );
    assert_eq!(
        committed(&kafka, &bus, "keyed-ahead", "keyed.deliveries").0,
        0,
        "the committed offset passed the stuck event"
    );
    gate.0.notify_one();
    wait_until("the whole partition was committed", || {
        let (committed, high) = committed(&kafka, &bus, "keyed-ahead", "keyed.deliveries");
        high == 101 && committed == high
    })
    .await;
    bus.shutdown().await.unwrap();
    let by_key = log.by_key();
    for route in 0..3 {
        let seqs = &by_key[&format!("route-{route}")];
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "route-{route}: {seqs:?}"
        );
    }
    assert_eq!(
        log.count(),
        102,
        "101 deliveries and the witness, each once"
    );
}
