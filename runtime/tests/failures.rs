//! The consumer's failure paths over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): nothing stalls a
//! partition for good and nothing is dropped without a trace — failing, hanging and undecodable
//! messages end in the dead-letter topic byte for byte, paused partitions come back after a
//! rebalance, and the revoke grace works on a current-thread runtime.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::headers::dlq;
use herald::prelude::*;
use rdkafka::message::Message;
use support::*;

/// What a test's handlers saw.
#[derive(Default)]
struct Log {
    handled: Mutex<Vec<(String, u64)>>,
    attempts: Mutex<HashMap<u64, u32>>,
    broker: Mutex<Option<Arc<herald::EmbeddedBroker>>>,
    busy_ms: AtomicU64,
}

impl Log {
    fn handled(&self, who: &str, seq: u64) {
        self.handled.lock().unwrap().push((who.to_owned(), seq));
    }

    fn attempt(&self, seq: u64) -> u32 {
        let mut attempts = self.attempts.lock().unwrap();
        let n = attempts.entry(seq).or_default();
        *n += 1;
        *n
    }

    fn seqs(&self, who: &str) -> Vec<u64> {
        let handled = self.handled.lock().unwrap();
        handled
            .iter()
            .filter(|(w, _)| w == who)
            .map(|(_, s)| *s)
            .collect()
    }

    fn attempts_of(&self, seq: u64) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(&seq)
            .copied()
            .unwrap_or(0)
    }
}

fn log(ctx: &Context) -> &Arc<Log> {
    ctx.state::<Arc<Log>>().expect("test state registered")
}

fn config(service: &str) -> Config {
    Config {
        max_retries: 2,
        retry_jitter: 0.0,
        ..Config::new(service)
            .commit_interval(Duration::from_millis(100))
            .retry_delays(Duration::from_millis(10), Duration::from_millis(40))
            .shutdown_timeout(Duration::from_secs(20))
    }
}

async fn bus_on(kafka: &TestKafka, config: Config, group: &str, log: &Arc<Log>) -> Bus {
    kafka
        .builder(config)
        .only_groups([group])
        .state(log.clone())
        .build()
        .await
        .expect("bus builds")
}

// ------------------------------------------------- a paused partition resumes after a rebalance

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.ticks")]
pub struct Ticked {
    #[event(key)]
    pub clock: String,
    pub seq: u64,
}

#[handler(group = "failures-ticks")]
async fn count_tick(event: Ticked, ctx: &Context) -> Result<(), HandlerError> {
    // Slow enough that A is far behind, with its partition paused, when the rebalance comes.
    tokio::time::sleep(Duration::from_millis(10)).await;
    log(ctx).handled("tick", event.seq);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_partition_resumes_after_a_rebalance() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let small_buffer = Config {
        max_buffered_per_partition: 16,
        ..config("ticks")
    };
    let a = bus_on(&kafka, small_buffer.clone(), "failures-ticks", &log).await;
    a.publish_batch((0..400).map(|seq| Ticked {
        clock: "one-partition".into(),
        seq,
    }))
    .await
    .unwrap();
    a.start().await.unwrap();
    wait_until("the partition was paused", || {
        a.stats().partitions_paused > 0
    })
    .await;
    // A second member joins and leaves: the partition is revoked from A and assigned back.
    let b = bus_on(&kafka, small_buffer, "failures-ticks", &log).await;
    b.start().await.unwrap();
    let rebalances = a.stats().rebalances;
    wait_until("A's partitions were revoked", || {
        a.stats().rebalances > rebalances
    })
    .await;
    assert!(
        log.seqs("tick").len() < 400,
        "A finished before the rebalance: nothing was proven"
    );
    b.shutdown().await.unwrap();
    wait_until("all 400 ticks were handled", || {
        log.seqs("tick").into_iter().collect::<BTreeSet<_>>().len() == 400
    })
    .await;
    wait_until("A committed the whole partition", || {
        committed_and_high(
            a.bootstrap_servers(),
            &kafka.group("failures-ticks"),
            &kafka.topic("failures.ticks"),
        )
        .iter()
        .all(|(_, committed, high)| committed == high)
    })
    .await;
    a.shutdown().await.unwrap();
    assert_all_committed(
        a.bootstrap_servers(),
        &kafka.group("failures-ticks"),
        &kafka.topic("failures.ticks"),
    );
}

// --------------------------------------- a revocation waits for the handler that is running

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.slow")]
pub struct ReportRendered {
    #[event(key)]
    pub report: String,
    pub seq: u64,
}

/// Which bus of the test a handler ran on.
#[derive(Clone, Copy)]
struct Member(&'static str);

/// When each handling of each report began and ended, and on which member.
#[derive(Default)]
struct Runs(Mutex<Vec<(u64, &'static str, std::time::Instant, std::time::Instant)>>);

/// Takes 6 s on member A (longer than the old 2 s revoke grace plus the embedded broker's
/// rebalance), 200 ms on B.
#[handler(group = "failures-slow")]
async fn render_slowly(event: ReportRendered, ctx: &Context) -> Result<(), HandlerError> {
    let member = ctx.state::<Member>().unwrap().0;
    let started = std::time::Instant::now();
    let takes = if member == "a" { 6_000 } else { 200 };
    tokio::time::sleep(Duration::from_millis(takes)).await;
    let runs = ctx.state::<Arc<Runs>>().unwrap();
    runs.0
        .lock()
        .unwrap()
        .push((event.seq, member, started, std::time::Instant::now()));
    Ok(())
}

/// A member that loses its partitions in a rebalance lets the handler that is running finish (and
/// stores its offset) before the partitions move, however long it takes within the rebalance
/// timeout: a report is never rendered on two members at once. Before, the revocation waited 2 s,
/// and the new owner started the same report while the old one still rendered it: per-partition
/// order was gone. (A report may still be rendered again by its new owner, at least once: the
/// embedded broker refuses commits while a rebalance is in progress.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_lets_the_running_handler_finish_before_the_partition_moves() {
    let kafka = TestKafka::start();
    let runs = Arc::new(Runs::default());
    let member = |name| {
        kafka
            .builder(config("slow").topic_partitions(2))
            .only_groups(["failures-slow"])
            .state(Member(name))
            .state(runs.clone())
            .build()
    };
    let a = member("a").await.unwrap();
    // Eight keys: both partitions get reports, so the partition B takes has one in flight on A.
    a.publish_batch((0..8).map(|seq| ReportRendered {
        report: format!("r{seq}"),
        seq,
    }))
    .await
    .unwrap();
    a.start().await.unwrap();
    wait_until("A is rendering", || a.stats().handler_invocations >= 1).await;
    let b = member("b").await.unwrap();
    b.start().await.unwrap();
    // Longer than `wait_until`'s limit: up to eight 6 s renderings in a row on a partition.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let rendered = || {
        runs.0
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect::<BTreeSet<_>>()
    };
    while rendered().len() < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every report was rendered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a_stats, b_stats) = (a.stats(), b.stats());
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    let runs = runs.0.lock().unwrap().clone();
    for (i, (seq, who, start, end)) in runs.iter().enumerate() {
        for (other_seq, other, other_start, other_end) in &runs[i + 1..] {
            assert!(
                seq != other_seq || end <= other_start || other_end <= start,
                "report {seq} was rendered on {who} and {other} at once"
            );
        }
    }
    say(&format!(
        "revocation: {} renderings of 8 reports: {:?}",
        runs.len(),
        runs.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>()
    ));
    assert!(
        b_stats.events_handled > 0,
        "B never got a partition: nothing was proven ({a_stats:?})"
    );
}

// ------------------------------------------- failing and hanging handlers end in the dead letters

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.charges")]
pub struct CardCharged {
    #[event(key)]
    pub card: String,
    pub seq: u64,
}

#[handler(group = "failures-charges")]
async fn settle_charge(event: CardCharged, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    log.attempt(event.seq);
    if event.seq == 1 {
        return Err(HandlerError::msg("the ledger rejects charge 1"));
    }
    log.handled("settle", event.seq);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_always_fails_is_dead_lettered_and_its_partition_moves_on() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let bus = bus_on(&kafka, config("charges"), "failures-charges", &log).await;
    let deliveries = bus
        .publish_batch((1..=3).map(|seq| CardCharged {
            card: "4242".into(),
            seq,
        }))
        .await
        .unwrap();
    bus.start().await.unwrap();
    wait_until("the events after the failing one were handled", || {
        log.seqs("settle") == [2, 3]
    })
    .await;
    bus.shutdown().await.unwrap();
    assert_eq!(log.attempts_of(1), 3, "1 attempt + max_retries (2)");
    let stats = bus.stats();
    assert_eq!((stats.dead_lettered, stats.retries), (1, 2), "{stats:?}");

    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.charges.dlq"),
        1,
    );
    let letter = &letters[0];
    let original = &read_topic(bus.bootstrap_servers(), &kafka.topic("failures.charges"), 3)
        .into_iter()
        .find(|m| m.offset() == deliveries[0].offset && m.partition() == deliveries[0].partition)
        .unwrap();
    // Byte for byte: key, value, and the original headers first, in order.
    assert_eq!(letter.key(), original.key());
    assert_eq!(letter.payload(), original.payload());
    let original_headers = all_headers(original);
    assert_eq!(
        all_headers(letter)[..original_headers.len()],
        original_headers[..]
    );
    let h = |name| header(letter, name).unwrap_or_default();
    assert_eq!(h(dlq::ORIGINAL_TOPIC), kafka.topic("failures.charges"));
    assert_eq!(
        h(dlq::ORIGINAL_PARTITION),
        deliveries[0].partition.to_string()
    );
    assert_eq!(h(dlq::ORIGINAL_OFFSET), deliveries[0].offset.to_string());
    assert_eq!(h(dlq::CONSUMER_GROUP), "failures-charges");
    assert_eq!(h(dlq::HANDLER), "settle_charge");
    assert_eq!(h(dlq::ERROR_KIND), "retries-exhausted");
    assert_eq!(h(dlq::ERROR_MESSAGE), "the ledger rejects charge 1");
    assert_eq!(h(dlq::RETRY_COUNT), "3");
    assert!(h(dlq::TIMESTAMP).ends_with('Z'), "{}", h(dlq::TIMESTAMP));
    // Dead-lettered and committed: nothing is left to redeliver.
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("failures-charges"),
        &kafka.topic("failures.charges"),
    );
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.renders")]
pub struct RenderRequested {
    #[event(key)]
    pub document: String,
    pub seq: u64,
}

#[handler(group = "failures-renders")]
async fn render(event: RenderRequested, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    log.attempt(event.seq);
    if event.seq == 1 {
        std::future::pending::<()>().await; // hangs
    }
    log.handled("render", event.seq);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_handler_times_out_and_is_dead_lettered() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let config = Config {
        handler_timeout: Some(Duration::from_millis(200)),
        max_retries: 1,
        ..config("renders")
    };
    let bus = bus_on(&kafka, config, "failures-renders", &log).await;
    bus.publish_batch((1..=2).map(|seq| RenderRequested {
        document: "d".into(),
        seq,
    }))
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("the event behind the hung one was handled", || {
        log.seqs("render") == [2]
    })
    .await;
    bus.shutdown().await.unwrap();
    assert_eq!(log.attempts_of(1), 2);
    let stats = bus.stats();
    assert_eq!(
        (stats.handler_timeouts, stats.dead_lettered),
        (2, 1),
        "{stats:?}"
    );
    let letter = &read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.renders.dlq"),
        1,
    )[0];
    let message = header(letter, dlq::ERROR_MESSAGE).unwrap();
    assert!(message.contains("timed out after 200ms"), "{message}");
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("failures-renders"),
        &kafka.topic("failures.renders"),
    );
}

// ------------------------------------------------------------- the revoke grace on one thread

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.reports")]
pub struct ReportQueued {
    pub seq: u64,
}

#[handler(group = "failures-reports")]
async fn compile_report(event: ReportQueued, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    log.attempt(event.seq);
    let busy = log.busy_ms.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(busy)).await;
    log.handled("report", event.seq);
    Ok(())
}

/// On a current-thread runtime (the `#[tokio::test]` default) the revoke grace must not block the
/// only thread: the in-flight handler has to be able to finish during it. A ticker measures the
/// longest time the runtime did not run.
#[tokio::test]
async fn the_revoke_grace_does_not_block_a_current_thread_runtime() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    log.busy_ms.store(3_000, Ordering::SeqCst);
    let a = bus_on(&kafka, config("reports"), "failures-reports", &log).await;
    a.start().await.unwrap();
    a.wait_for_assignment(WAIT).await.unwrap();
    a.publish(ReportQueued { seq: 1 }).await.unwrap();
    wait_until("the report handler started", || log.attempts_of(1) == 1).await;

    let longest_stall = Arc::new(Mutex::new(Duration::ZERO));
    let ticker = {
        let longest_stall = longest_stall.clone();
        tokio::spawn(async move {
            let mut last = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let now = std::time::Instant::now();
                let mut longest = longest_stall.lock().unwrap();
                *longest = (*longest).max(now - last);
                last = now;
            }
        })
    };
    // A second member joins while the handler runs: A's partitions are revoked mid-handler.
    let rebalances = a.stats().rebalances;
    let b = bus_on(&kafka, config("reports"), "failures-reports", &log).await;
    b.start().await.unwrap();
    wait_until("A's partitions were revoked", || {
        a.stats().rebalances > rebalances
    })
    .await;
    wait_until("the report was handled", || !log.seqs("report").is_empty()).await;
    ticker.abort();
    let stall = *longest_stall.lock().unwrap();
    assert!(
        stall < Duration::from_millis(1_000),
        "the runtime stood still for {stall:?} during the rebalance"
    );
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

// ------------------------------------------------------- a failed dead-letter write is retried

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.refunds")]
pub struct RefundIssued {
    #[event(key)]
    pub order: String,
    pub seq: u64,
}

#[handler(group = "failures-refunds")]
async fn book_refund(event: RefundIssued, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    if event.seq == 1 && log.attempt(1) == 1 {
        // The broker goes away just as the event is about to be dead-lettered.
        let broker = log.broker.lock().unwrap().clone().unwrap();
        broker.broker_down().unwrap();
        return Err(HandlerError::msg("refund 1 is for an unknown order"));
    }
    log.handled("refund", event.seq);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dead_letter_write_holds_the_partition_until_it_succeeds() {
    if !runs_on_embedded_only(
        "a_failed_dead_letter_write_holds_the_partition_until_it_succeeds",
        "its handler takes the broker down with the embedded broker's fault injection",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let broker = kafka.embedded();
    let log = Arc::new(Log::default());
    *log.broker.lock().unwrap() = Some(broker.clone());
    let config = Config {
        max_retries: 0,
        ..config("refunds").delivery_timeout(Duration::from_secs(2))
    };
    let bus = bus_on(&kafka, config, "failures-refunds", &log).await;
    bus.publish_batch((1..=2).map(|seq| RefundIssued {
        order: "o".into(),
        seq,
    }))
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("a dead-letter write failed", || {
        bus.stats().dead_letter_failures >= 1
    })
    .await;
    assert!(
        log.seqs("refund").is_empty(),
        "the partition moved on before its failed event was dead-lettered"
    );
    broker.broker_up().unwrap();
    // librdkafka reconnects with a backoff of up to 10 s, and the dead-letter write retries with
    // its own: under load this takes longer than `WAIT`, so this wait is longer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !log.seqs("refund").contains(&2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until the event behind it was handled: {:?}",
            log.seqs("refund")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Either the held dead-letter write went through (the usual case), or the group rebalanced
    // while the broker was away and event 1 was delivered again and handled (at least once);
    // either way it was settled before event 2.
    let redelivered = log.seqs("refund") == [1, 2];
    assert!(
        redelivered || log.seqs("refund") == [2],
        "event 2 was handled before event 1 was settled: {:?}",
        log.seqs("refund")
    );
    wait_until("the group committed both events", || {
        committed_and_high(
            bus.bootstrap_servers(),
            &kafka.group("failures-refunds"),
            &kafka.topic("failures.refunds"),
        )
        .iter()
        .all(|(_, committed, high)| committed == high)
    })
    .await;
    bus.shutdown().await.unwrap();
    // Every letter in the topic is one the bus counted as written: none twice, none stray. When
    // event 1 was redelivered and handled its copy may still have landed first (then 1 letter).
    let written = bus.stats().dead_lettered;
    if !redelivered {
        assert_eq!(written, 1);
    }
    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.refunds.dlq"),
        written as usize,
    );
    for letter in &letters {
        assert_eq!(
            header(letter, dlq::ERROR_KIND).as_deref(),
            Some("retries-exhausted")
        );
    }
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("failures-refunds"),
        &kafka.topic("failures.refunds"),
    );
}

// ------------------------------------------------ dead-letter copies the topic never takes

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.archive")]
pub struct ScanUploaded {
    #[event(key)]
    pub scanner: String,
    pub seq: u64,
    pub image: String,
}

/// Seq 1 (a large image) and seq 2 (a huge error text) fail for good; seq 3 is handled. Seq 4
/// makes every produce request fail as unauthorized from then on, then fails for good.
#[handler(group = "failures-archive")]
async fn archive_scan(event: ScanUploaded, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    match event.seq {
        1 => Err(HandlerError::permanent(HandlerError::msg(format!(
            "the archive rejects the scan: {}",
            "x".repeat(1_500)
        )))),
        2 => Err(HandlerError::permanent(HandlerError::msg(
            "e".repeat(100_000),
        ))),
        4 => {
            let broker = log.broker.lock().unwrap().clone().unwrap();
            broker
                .fail_requests(
                    herald::KafkaRequest::Produce,
                    herald::BrokerFault::TopicAuthorizationFailed,
                    100,
                )
                .unwrap();
            Err(HandlerError::permanent(HandlerError::msg(
                "the scan is unreadable",
            )))
        }
        seq => {
            log.handled("scan", seq);
            Ok(())
        }
    }
}

fn scans_config() -> Config {
    // The producer takes records of up to 20,000 bytes: a 19,000-byte scan fits, its dead letter
    // (the scan plus the `dlq_*` headers and a 1.5 KB error) does not.
    config("scans").property("message.max.bytes", "20000")
}

/// A dead letter too large for its topic is written without the message's value (saying so in
/// `dlq_value_omitted`), and an error text of any size is capped, so neither holds the partition.
/// Before, the copy was retried forever (librdkafka refuses it locally with MSG_SIZE_TOO_LARGE)
/// and the scan behind it was never handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_for_its_topic_is_written_without_its_value() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let bus = bus_on(&kafka, scans_config(), "failures-archive", &log).await;
    for (seq, image) in [
        (1, "i".repeat(19_000)),
        (2, "small".into()),
        (3, "ok".into()),
    ] {
        let scan = ScanUploaded {
            scanner: "s".into(),
            seq,
            image,
        };
        bus.publish(scan).await.unwrap();
    }
    bus.start().await.unwrap();
    wait_until("the scan behind them was handled", || {
        log.seqs("scan") == [3]
    })
    .await;
    bus.shutdown().await.unwrap();
    let mut letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.archive.dlq"),
        2,
    );
    letters.sort_by_key(|m| header(m, dlq::ORIGINAL_OFFSET).unwrap());
    let (large, verbose) = (&letters[0], &letters[1]);
    assert_eq!(large.payload(), None, "the value was kept");
    let size: usize = header(large, dlq::VALUE_OMITTED).unwrap().parse().unwrap();
    assert!(size > 19_000, "{size}");
    assert_eq!(header(large, dlq::ERROR_KIND).as_deref(), Some("permanent"));
    assert!(header(verbose, dlq::VALUE_OMITTED).is_none());
    assert!(verbose.payload().is_some());
    let reason = header(verbose, dlq::ERROR_MESSAGE).unwrap();
    assert!(reason.len() < 4_200, "{} bytes of error text", reason.len());
    assert!(
        reason.ends_with("more bytes cut)"),
        "{}",
        &reason[reason.len() - 40..]
    );
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("failures-archive"),
        &kafka.topic("failures.archive"),
    );
}

/// A dead-letter topic that refuses a letter for good (here: every produce request answered
/// TOPIC_AUTHORIZATION_FAILED) fails the consumer group: health says so, `run_until_shutdown`
/// returns the error instead of waiting for a signal, and the message stays uncommitted. Before,
/// the copy was retried forever with health live and `run_until_shutdown` waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_that_refuses_for_good_fails_the_group() {
    if !runs_on_embedded_only(
        "a_dead_letter_topic_that_refuses_for_good_fails_the_group",
        "its handler makes the broker refuse writes with the embedded broker's fault injection",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    *log.broker.lock().unwrap() = Some(kafka.embedded().clone());
    let bus = bus_on(&kafka, config("scans"), "failures-archive", &log).await;
    for seq in [3, 4, 5] {
        let scan = ScanUploaded {
            scanner: "s".into(),
            seq,
            image: "ok".into(),
        };
        bus.publish(scan).await.unwrap();
    }
    let result = tokio::time::timeout(Duration::from_secs(60), bus.run_until_shutdown())
        .await
        .expect("run_until_shutdown returned when the group failed");
    let Err(herald::Error::ConsumerFailed { reason, .. }) = &result else {
        panic!("expected the group's failure, got {result:?}");
    };
    assert!(reason.contains("cannot be dead-lettered"), "{reason}");
    let health = bus.health().await;
    assert!(!health.live, "{health:?}");
    assert_eq!(
        log.seqs("scan"),
        [3],
        "the partition moved past the message"
    );
    let committed: i64 = committed_and_high(
        bus.bootstrap_servers(),
        &kafka.group("failures-archive"),
        &kafka.topic("failures.archive"),
    )
    .iter()
    .map(|(_, committed, _)| (*committed).max(0))
    .sum();
    assert!(
        committed <= 1,
        "committed {committed}: past the refused message"
    );
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.faxes")]
pub struct FaxReceived {
    #[event(key)]
    pub line: String,
    pub seq: u64,
}

/// Fails for good after making the broker slow (1.5 s a round trip), so its dead letter is in
/// flight for that long.
#[handler(group = "failures-faxes")]
async fn file_fax(event: FaxReceived, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    log.attempt(event.seq);
    let broker = log.broker.lock().unwrap().clone();
    if let Some(broker) = broker {
        broker
            .round_trip_time(Duration::from_millis(1_500))
            .unwrap();
    }
    Err(HandlerError::permanent(HandlerError::msg(
        "the fax is blank",
    )))
}

/// A shutdown while a dead letter is in flight lets the copy finish (within the shutdown timeout)
/// and commits the original: after a restart the message is not dead-lettered a second time.
/// Before, the copy was abandoned at the shutdown while librdkafka still delivered it, the
/// original stayed uncommitted, and the restarted service wrote a second letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_the_dead_letter_in_flight_finish() {
    if !runs_on_embedded_only(
        "a_shutdown_lets_the_dead_letter_in_flight_finish",
        "its handler slows the broker down with the embedded broker's fault injection",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    *log.broker.lock().unwrap() = Some(kafka.embedded().clone());
    let first = bus_on(&kafka, config("faxes"), "failures-faxes", &log).await;
    first
        .publish(FaxReceived {
            line: "l".into(),
            seq: 1,
        })
        .await
        .unwrap();
    first.start().await.unwrap();
    wait_until("the handler failed", || log.attempts_of(1) == 1).await;
    first.shutdown().await.unwrap();
    kafka.embedded().round_trip_time(Duration::ZERO).unwrap();
    *log.broker.lock().unwrap() = None;

    let second = bus_on(&kafka, config("faxes"), "failures-faxes", &log).await;
    second.start().await.unwrap();
    second
        .wait_for_assignment(Duration::from_secs(30))
        .await
        .unwrap();
    wait_until("the group committed the topic", || {
        committed_and_high(
            second.bootstrap_servers(),
            &kafka.group("failures-faxes"),
            &kafka.topic("failures.faxes"),
        )
        .iter()
        .all(|(_, committed, high)| committed == high)
    })
    .await;
    second.shutdown().await.unwrap();
    assert_eq!(log.attempts_of(1), 1, "the message was handled again");
    read_topic(
        second.bootstrap_servers(),
        &kafka.topic("failures.faxes.dlq"),
        1,
    );
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.meters")]
pub struct MeterRead {
    #[event(key)]
    pub meter: String,
    pub seq: u64,
}

/// Seq 1 fails for good after making the next 30 produce requests fail with a retriable error
/// (NOT_ENOUGH_REPLICAS): its dead letter keeps failing for several seconds, then lands.
#[handler(group = "failures-meters")]
async fn bill_meter(event: MeterRead, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    if event.seq == 1 {
        let broker = log.broker.lock().unwrap().clone().unwrap();
        broker
            .fail_requests(
                herald::KafkaRequest::Produce,
                herald::BrokerFault::NotEnoughReplicas,
                30,
            )
            .unwrap();
        return Err(HandlerError::permanent(HandlerError::msg(
            "the meter is unknown",
        )));
    }
    log.handled("meter", event.seq);
    Ok(())
}

/// A dead-letter copy that keeps failing holds its partition: once it has failed for longer than
/// `stuck_after`, health reports the bus as not live, naming it; when the copy lands the partition
/// moves on. Before, health stayed live while the copy was retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_dead_letter_copy_that_keeps_failing() {
    if !runs_on_embedded_only(
        "health_reports_a_dead_letter_copy_that_keeps_failing",
        "its handler makes produce requests fail with the embedded broker's fault injection",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    *log.broker.lock().unwrap() = Some(kafka.embedded().clone());
    let publisher = bus_on(&kafka, config("meters"), "failures-meters", &log).await;
    publisher
        .publish_batch((1..=2).map(|seq| MeterRead {
            meter: "m".into(),
            seq,
        }))
        .await
        .unwrap();
    // Each copy waits 1 s for the broker: the 30 errors fail a few in a row.
    let config = config("meters").delivery_timeout(Duration::from_secs(1));
    let bus = bus_on(&kafka, config, "failures-meters", &log).await;
    bus.start().await.unwrap();
    let options = herald::telemetry::HealthOptions {
        probe_timeout: Duration::from_secs(2),
        stuck_after: Duration::from_millis(300),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let health = loop {
        let health = bus.health_with(options).await;
        if !health.live || tokio::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!health.live, "{health:?}");
    assert!(
        health.problems.iter().any(|p| p.contains("dead-letter")),
        "{:?}",
        health.problems
    );
    assert!(log.seqs("meter").is_empty(), "the partition moved on");
    wait_until("the meter behind it was billed", || {
        log.seqs("meter") == [2]
    })
    .await;
    assert!(bus.health_with(options).await.live);
    bus.shutdown().await.unwrap();
    read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.meters.dlq"),
        1,
    );
}

// ------------------------------------------------------------------- the poison catalogue

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.parcels")]
pub struct ParcelWeighed {
    pub parcel: String,
    pub grams: u64,
}

#[handler(group = "failures-parcels")]
async fn weigh_parcel(event: ParcelWeighed, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).handled(&event.parcel, event.grams);
    Ok(())
}

const CE: [(&str, &[u8]); 5] = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"ext-1"),
    ("ce_type", b"parcel.weighed"),
    ("ce_source", b"/depot"),
    ("content-type", b"application/json"),
];

fn with(extra: &[(&'static str, &'static [u8])]) -> Vec<(&'static str, &'static [u8])> {
    let mut headers: Vec<_> = CE
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    headers.extend(extra.iter().filter(|(_, v)| !v.is_empty()).copied());
    headers
}

/// Every kind of message herald cannot handle ends in the dead-letter topic with its reason, while
/// the partition goes on; then everything is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_poison_message_is_dead_lettered_with_its_reason() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let config = Config {
        max_message_bytes: Some(2_000),
        dead_letter_unknown_types: true,
        ..config("depot")
    };
    let bus = bus_on(&kafka, config, "failures-parcels", &log).await;
    let producer = plain_producer(bus.bootstrap_servers());
    let topic = &kafka.topic("failures.parcels");
    let good: &[u8] = br#"{"parcel":"p","grams":1}"#;
    let big = format!(r#"{{"parcel":"{}","grams":1}}"#, "x".repeat(4_000));
    // (what, headers, value, expected dlq_error_kind)
    type Case = (
        &'static str,
        Vec<(&'static str, &'static [u8])>,
        Vec<u8>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("no headers", vec![], good.to_vec(), "undecodable"),
        (
            "malformed time",
            with(&[("ce_time", b"last tuesday")]),
            good.to_vec(),
            "undecodable",
        ),
        (
            "missing source",
            with(&[("ce_source", b"")]),
            good.to_vec(),
            "undecodable",
        ),
        (
            "non-UTF-8 ce header",
            with(&[("ce_subject", b"\xff\xfe")]),
            good.to_vec(),
            "undecodable",
        ),
        (
            "non-JSON value",
            CE.to_vec(),
            b"grams=1".to_vec(),
            "incompatible",
        ),
        ("empty value", CE.to_vec(), Vec::new(), "undecodable"),
        (
            "wrong shape",
            CE.to_vec(),
            br#"{"parcel":5}"#.to_vec(),
            "incompatible",
        ),
        (
            "incompatible version",
            with(&[("ce_schemaversion", b"7")]),
            br#"{"parcel":"p","kilograms":1}"#.to_vec(),
            "incompatible",
        ),
        ("oversized", CE.to_vec(), big.into_bytes(), "oversized"),
        (
            "unknown type",
            with(&[("ce_type", b"parcel.lost")]),
            good.to_vec(),
            "unknown-type",
        ),
    ];
    for (_, headers, value, _) in &cases {
        send_raw(&producer, topic, Some(b"k"), value, headers).await;
    }
    // A header name that is not UTF-8 (rdkafka's own header reader panics on it).
    send_with_raw_header_name(&producer, topic, b"k", good, &CE, b"x-\xff\xfe").await;
    let cases = [
        cases,
        vec![(
            "non-UTF-8 header name",
            CE.to_vec(),
            good.to_vec(),
            "undecodable",
        )],
    ]
    .concat();
    // A valid event behind them all on the same partition, with a binary tracing header that is not
    // a CloudEvents attribute.
    let last = with(&[("x-b3-binary", b"\x00\xff\x10")]);
    send_raw(
        &producer,
        topic,
        Some(b"k"),
        br#"{"parcel":"last","grams":9}"#,
        &last,
    )
    .await;
    bus.start().await.unwrap();
    wait_until("the valid event was handled", || log.seqs("last") == [9]).await;
    let health = bus.health().await;
    assert!(health.live, "{:?}", health.problems);
    bus.shutdown().await.unwrap();

    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.parcels.dlq"),
        cases.len(),
    );
    assert_eq!(letters.len(), cases.len());
    let mut letters: Vec<_> = letters.iter().collect();
    letters.sort_by_key(|m| {
        header(m, dlq::ORIGINAL_OFFSET)
            .unwrap()
            .parse::<i64>()
            .unwrap()
    });
    for ((name, _, value, kind), letter) in cases.iter().zip(letters) {
        let reason = header(letter, dlq::ERROR_MESSAGE).unwrap_or_default();
        assert_eq!(
            header(letter, dlq::ERROR_KIND).as_deref(),
            Some(*kind),
            "{name}: {reason}"
        );
        assert!(!reason.is_empty(), "{name} has no reason");
        assert_eq!(letter.payload().unwrap_or_default(), &value[..], "{name}");
        assert_eq!(letter.key(), Some(&b"k"[..]), "{name}");
    }
    let stats = bus.stats();
    assert_eq!(stats.dead_lettered, cases.len() as u64, "{stats:?}");
    assert_eq!(stats.events_handled, 1, "{stats:?}");
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("failures-parcels"),
        topic,
    );
}

// ----------------------------------------------------------------------- schema versions

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "seat.booked", topic = "failures.seats", version = 1)]
pub struct SeatBookedV1 {
    pub seat: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "seat.booked", topic = "failures.seats", version = 2, upcast_from = SeatBookedV1)]
pub struct SeatBookedV2 {
    pub seat: String,
    pub row: u32,
}

/// The upcaster: a v1 booking had no row; the front row is 1.
impl From<SeatBookedV1> for SeatBookedV2 {
    fn from(v1: SeatBookedV1) -> Self {
        Self {
            seat: v1.seat,
            row: 1,
        }
    }
}

#[handler(group = "failures-seats-v2")]
async fn seat_map(event: SeatBookedV2, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).handled(&format!("map:{}", event.seat), u64::from(event.row));
    Ok(())
}

#[handler(group = "failures-seats-v1")]
async fn usher(event: SeatBookedV1, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).handled("usher-v1", event.seat.len() as u64);
    Ok(())
}

#[handler(group = "failures-seats-both", name = "plan_v1")]
async fn plan_v1(event: SeatBookedV1, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).handled(&format!("plan-v1:{}", event.seat), 1);
    Ok(())
}

#[handler(group = "failures-seats-both", name = "plan_v2")]
async fn plan_v2(event: SeatBookedV2, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).handled(&format!("plan-v2:{}", event.seat), u64::from(event.row));
    Ok(())
}

/// A v1 reader handles a v2 event whose data still fits and dead-letters one that does not; a
/// group with a handler per version sends each version to its own handler, with no false decode
/// failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_versions_reach_the_handler_that_reads_them() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let bus = kafka
        .builder(config("theatre"))
        .only_groups(["failures-seats-v1", "failures-seats-both"])
        .state(log.clone())
        .build()
        .await
        .unwrap();
    bus.publish(SeatBookedV1 { seat: "a1".into() })
        .await
        .unwrap();
    bus.publish(SeatBookedV2 {
        seat: "b22".into(),
        row: 2,
    })
    .await
    .unwrap();
    // A v3 whose data a v1 or v2 reader cannot read.
    let producer = plain_producer(bus.bootstrap_servers());
    let v3 = [
        ("ce_specversion", &b"1.0"[..]),
        ("ce_id", b"v3-1"),
        ("ce_type", b"seat.booked"),
        ("ce_source", b"/box-office"),
        ("ce_schemaversion", b"3"),
        ("content-type", b"application/json"),
    ];
    send_raw(
        &producer,
        &kafka.topic("failures.seats"),
        None,
        br#"{"seats":["c3"]}"#,
        &v3,
    )
    .await;
    bus.start().await.unwrap();
    wait_until("both groups handled both versions", || {
        log.seqs("usher-v1").len() == 2
            && log.seqs("plan-v1:a1").len() == 1
            && log.seqs("plan-v2:b22").len() == 1
    })
    .await;
    wait_until("the v3 event was dead-lettered by both groups", || {
        bus.stats().dead_lettered == 2
    })
    .await;
    bus.shutdown().await.unwrap();
    let mut usher = log.seqs("usher-v1");
    usher.sort_unstable();
    assert_eq!(usher, [2, 3], "the v1 reader handled v1 (a1) and v2 (b22)");
    assert!(log.seqs("plan-v1:b22").is_empty() && log.seqs("plan-v2:a1").is_empty());
    assert_eq!(
        bus.stats().undecodable,
        2,
        "only the v3 event, once per group"
    );
    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.seats.dlq"),
        2,
    );
    for letter in &letters {
        let reason = header(letter, dlq::ERROR_MESSAGE).unwrap();
        assert!(reason.contains("version 3 is not compatible"), "{reason}");
    }
}

// ------------------------------------------- permanent errors, per-handler and named policies

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.invoices")]
pub struct InvoiceSent {
    pub seq: u64,
}

/// A permanent error: no retry, straight to the dead letters.
#[handler(group = "failures-invoices")]
async fn archive_invoice(event: InvoiceSent, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).attempt(event.seq);
    Err(HandlerError::permanent(HandlerError::msg(format!(
        "invoice {} has no customer",
        event.seq
    ))))
}

/// Its own policy: one retry, whatever the bus-wide default says.
#[handler(group = "failures-invoices", retries = 1, backoff = "5ms")]
async fn mail_invoice(event: InvoiceSent, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).attempt(event.seq + 1_000);
    Err(HandlerError::msg("the mail server is down"))
}

/// A named policy registered on the bus builder.
#[handler(group = "failures-invoices", policy = "ledger")]
async fn post_invoice(event: InvoiceSent, ctx: &Context) -> Result<(), HandlerError> {
    log(ctx).attempt(event.seq + 2_000);
    Err(HandlerError::msg("the ledger is locked"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_skip_retries_and_each_handler_keeps_its_own_policy() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let ledger = herald::RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(5),
        jitter: 0.0,
        timeout: None,
        breaker: None,
        mode: Default::default(),
    };
    let bus = kafka
        .builder(config("billing")) // bus-wide: 2 retries
        .only_groups(["failures-invoices"])
        .state(log.clone())
        .retry_policy("ledger", ledger)
        .build()
        .await
        .unwrap();
    bus.publish(InvoiceSent { seq: 1 }).await.unwrap();
    bus.start().await.unwrap();
    wait_until("the invoice was dead-lettered", || {
        bus.stats().dead_lettered == 1
    })
    .await;
    bus.shutdown().await.unwrap();
    assert_eq!(log.attempts_of(1), 1, "a permanent error is not retried");
    assert_eq!(log.attempts_of(1_001), 2, "retries = 1");
    assert_eq!(log.attempts_of(2_001), 4, "the `ledger` policy: 3 retries");
    let letter = &read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.invoices.dlq"),
        1,
    )[0];
    // One dead letter for the message, naming every handler that failed.
    assert_eq!(
        header(letter, dlq::ERROR_KIND).as_deref(),
        Some("permanent")
    );
    let handlers = header(letter, dlq::HANDLER).unwrap();
    for name in ["archive_invoice", "mail_invoice", "post_invoice"] {
        assert!(handlers.contains(name), "{handlers}");
    }
    let reason = header(letter, dlq::ERROR_MESSAGE).unwrap();
    assert!(
        reason.contains("invoice 1 has no customer") && reason.contains("the ledger is locked"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_handler_naming_an_unregistered_policy_is_refused_at_build() {
    let kafka = TestKafka::start();
    let err = kafka
        .builder(config("billing"))
        .only_groups(["failures-invoices"])
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, herald::Error::Config(_)), "{err:?}");
    assert!(
        text.contains("post_invoice") && text.contains("`ledger`"),
        "{text}"
    );
}

// ----------------------------------------------------------------- shutdown is bounded

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_waiting_wait_for_assignment() {
    if !runs_on_embedded_only(
        "shutdown_is_not_held_up_by_a_waiting_wait_for_assignment",
        "it takes the broker down with the embedded broker's fault injection",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let broker = kafka.embedded();
    broker.broker_down().unwrap(); // no group will ever get partitions
    let log = Arc::new(Log::default());
    let config = config("reports").shutdown_timeout(Duration::from_secs(2));
    let bus = bus_on(&kafka, config, "failures-reports", &log).await;
    bus.start().await.unwrap();
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.wait_for_assignment(Duration::from_secs(120)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Its own timeout bounds the shutdown (the broker being down, its final commit cannot finish).
    let shutdown = tokio::time::timeout(Duration::from_secs(10), bus.shutdown()).await;
    assert!(shutdown.is_ok(), "shutdown waited for wait_for_assignment");
    let waited = waiting.await.unwrap();
    assert!(
        matches!(waited, Err(herald::Error::NotRunning)),
        "{waited:?}"
    );
    broker.broker_up().unwrap(); // lets the consumer's close finish
}

/// A shutdown while the broker is unreachable returns at its timeout, and then the service can
/// exit: dropping the runtime does not wait for the consumer's close, which librdkafka only gives
/// up on seconds later. Before, the close ran on tokio's blocking pool and the runtime's drop (the
/// end of `#[tokio::main]`) waited for it: 10 s past a 2 s shutdown timeout here.
#[test]
fn after_a_shutdown_with_the_broker_down_the_runtime_drops_at_once() {
    if !runs_on_embedded_only(
        "after_a_shutdown_with_the_broker_down_the_runtime_drops_at_once",
        "it takes the broker down with the embedded broker's fault injection",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let broker = kafka.embedded().clone();
    let log = Arc::new(Log::default());
    log.busy_ms.store(1_000, Ordering::SeqCst);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = runtime.block_on(async {
        let config = config("reports").shutdown_timeout(Duration::from_secs(2));
        let bus = bus_on(&kafka, config, "failures-reports", &log).await;
        bus.publish(ReportQueued { seq: 1 }).await.unwrap();
        bus.start().await.unwrap();
        wait_until("the report handler started", || log.attempts_of(1) == 1).await;
        // The handled event's offset is stored while the broker is down: the close's final
        // commit has to wait for a broker that does not answer.
        broker.broker_down().unwrap();
        wait_until("the report was handled", || log.seqs("report") == [1]).await;
        bus.shutdown().await
    });
    assert!(
        matches!(shutdown, Err(herald::Error::ShutdownTimeout(_))),
        "{shutdown:?}"
    );
    let (dropped, gone) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(runtime);
        let _ = dropped.send(());
    });
    let waited = gone.recv_timeout(Duration::from_secs(5));
    broker.broker_up().unwrap(); // lets the consumer's close finish
    assert!(
        waited.is_ok(),
        "the runtime's drop waited for the consumer's close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_takes_at_most_its_timeout() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    log.busy_ms.store(60_000, Ordering::SeqCst);
    let config = config("reports").shutdown_timeout(Duration::from_secs(2));
    let bus = bus_on(&kafka, config, "failures-reports", &log).await;
    bus.publish(ReportQueued { seq: 1 }).await.unwrap();
    bus.start().await.unwrap();
    wait_until("the report handler started", || log.attempts_of(1) == 1).await;
    let started = std::time::Instant::now();
    let result = bus.shutdown().await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(herald::Error::ShutdownTimeout(_))),
        "{result:?}"
    );
    // The documented bound, with room for the scheduler: not twice the timeout plus the grace.
    assert!(
        took < Duration::from_millis(2_900),
        "shutdown took {took:?}"
    );
}

// ------------------------------------------------------------------------ circuit breaker

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.orders")]
pub struct OrderShipped {
    #[event(key)]
    pub order: String,
    pub seq: u64,
}

/// Fails while the test says its database is down (`busy_ms` = 1).
#[handler(group = "failures-orders")]
async fn store_shipment(event: OrderShipped, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    log.attempt(event.seq);
    if log.busy_ms.load(Ordering::SeqCst) == 1 {
        return Err(HandlerError::msg("the database is down"));
    }
    log.handled("shipment", event.seq);
    Ok(())
}

/// While the dependency is down the breaker opens, holds the handler (its partition paused) and
/// spares the messages' retry budget; once the dependency is back a probe closes it and everything
/// is handled, nothing dead-lettered — with one retry only, without the breaker they would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_breaker_holds_the_handler_until_a_probe_succeeds() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    log.busy_ms.store(1, Ordering::SeqCst);
    let config = Config {
        max_retries: 1,
        ..config("shipping").circuit_breaker(2, Duration::from_millis(300))
    };
    let bus = bus_on(&kafka, config, "failures-orders", &log).await;
    bus.publish_batch((1..=5).map(|seq| OrderShipped {
        order: "o".into(),
        seq,
    }))
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("the breaker opened more than once", || {
        bus.stats().breaker_opens >= 3
    })
    .await;
    let status = &bus.breakers()[0];
    assert_eq!(status.handler, "store_shipment");
    assert_ne!(status.state, herald::BreakerState::Closed(0), "{status:?}");
    assert!(
        bus.stats().partitions_paused >= 1,
        "the partition was not held"
    );
    assert!(log.seqs("shipment").is_empty());
    // Probes only, one per cool-down: not a busy loop.
    let attempts = log.attempts_of(1);
    assert!(
        attempts <= 2 + bus.stats().breaker_opens as u32,
        "{attempts} attempts"
    );

    log.busy_ms.store(0, Ordering::SeqCst);
    wait_until("every shipment was handled", || {
        log.seqs("shipment") == [1, 2, 3, 4, 5]
    })
    .await;
    bus.shutdown().await.unwrap();
    assert_eq!(bus.stats().dead_lettered, 0);
    assert_eq!(bus.breakers()[0].state, herald::BreakerState::Closed(0));
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("failures-orders"),
        &kafka.topic("failures.orders"),
    );
}

/// A poison message (charge 1 always fails) under a breaker that its own failures keep open
/// (threshold 1: every failure opens it) is not held for good: once it has waited on the open breaker longer than the
/// breaker's hold limit its failures count against its retries, it is dead-lettered, and the
/// partition goes on. Before the hold limit it was probed forever and the events behind it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_under_a_breaker_it_keeps_open_is_dead_lettered() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let config = Config {
        max_retries: 1,
        ..config("printing")
            .circuit_breaker(1, Duration::from_millis(50))
            .breaker_hold_limit(Duration::from_millis(400))
    };
    let bus = bus_on(&kafka, config, "failures-charges", &log).await;
    bus.publish_batch((1..=3).map(|seq| CardCharged {
        card: "c".into(),
        seq,
    }))
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("the charges behind the poison one were settled", || {
        log.seqs("settle") == [2, 3]
    })
    .await;
    bus.shutdown().await.unwrap();
    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.charges.dlq"),
        1,
    );
    assert_eq!(
        header(&letters[0], dlq::ERROR_KIND).as_deref(),
        Some("retries-exhausted")
    );
    assert!(bus.stats().breaker_opens >= 2, "{:?}", bus.stats());
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("failures-charges"),
        &kafka.topic("failures.charges"),
    );
}

// ------------------------------------------------------------------------- retry topics

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.stock")]
pub struct StockReserved {
    #[event(key)]
    pub sku: String,
    pub seq: u64,
}

/// Seq 1 fails twice, then succeeds; seq 99 always fails.
#[handler(group = "failures-stock", policy = "async")]
async fn reserve_stock(event: StockReserved, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    let attempt = log.attempt(event.seq);
    if event.seq == 99 || (event.seq == 1 && attempt <= 2) {
        return Err(HandlerError::msg(format!(
            "warehouse busy (attempt {attempt})"
        )));
    }
    log.handled("stock", event.seq);
    Ok(())
}

/// A bus of `group` whose `async` retry policy goes through retry topics: 3 retries, 100 ms
/// doubling to 200 ms, no jitter.
async fn bus_retrying_through_topics(
    kafka: &TestKafka,
    service: &str,
    group: &'static str,
    log: &Arc<Log>,
) -> Bus {
    kafka
        .builder(config(service))
        .only_groups([group])
        .state(log.clone())
        .retry_policy("async", through_topics())
        .build()
        .await
        .unwrap()
}

fn stock_headers(retry: &[(&'static str, &'static [u8])]) -> Vec<(&'static str, &'static [u8])> {
    let mut headers = vec![
        ("ce_specversion", &b"1.0"[..]),
        ("ce_id", b"forged"),
        ("ce_type", b"stock.reserved"),
        ("ce_source", b"/elsewhere"),
        ("content-type", b"application/json"),
        ("herald_retry_handler", b"reserve_stock"),
        ("herald_retry_first_failure", b"2026-01-01T00:00:00Z"),
        ("herald_retry_original_topic", b"failures.stock"),
        ("herald_retry_original_partition", b"0"),
        ("herald_retry_original_offset", b"0"),
    ];
    headers.extend_from_slice(retry);
    headers
}

/// Retry headers are honoured on retry tiers only, and never trusted beyond what herald writes:
/// on the main topic a copied `herald_retry_group` naming another group does not make this group
/// skip (and commit) the event; on a tier a far-future `herald_retry_not_before` waits no longer
/// than the policy's longest delay, and an attempt count of `u32::MAX` does not overflow. Before,
/// seq 10 was skipped silently, seq 11 slept on its partition until 2099 and seq 12 panicked the
/// partition's worker on `attempt += 1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_headers_count_on_retry_topics_only_and_within_the_policy() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let bus = bus_retrying_through_topics(&kafka, "stock", "failures-stock", &log).await;
    let producer = plain_producer(bus.bootstrap_servers());
    let (main, tier) = (
        kafka.topic("failures.stock"),
        kafka.topic("failures.stock.retry.1"),
    );
    type Raw<'a> = (&'a str, &'static [u8], Vec<(&'static str, &'static [u8])>);
    let records: [Raw; 3] = [
        (
            &main,
            br#"{"sku":"a","seq":10}"#,
            stock_headers(&[
                ("herald_retry_group", b"someone-else"),
                ("herald_retry_attempts", b"1"),
                ("herald_retry_not_before", b"2026-01-01T00:00:00Z"),
            ]),
        ),
        (
            &tier,
            br#"{"sku":"c","seq":12}"#,
            stock_headers(&[
                ("herald_retry_group", b"failures-stock"),
                ("herald_retry_attempts", b"4294967295"),
                ("herald_retry_not_before", b"2026-01-01T00:00:00Z"),
            ]),
        ),
        (
            &tier,
            br#"{"sku":"b","seq":11}"#,
            stock_headers(&[
                ("herald_retry_group", b"failures-stock"),
                ("herald_retry_attempts", b"1"),
                ("herald_retry_not_before", b"2099-01-01T00:00:00Z"),
            ]),
        ),
    ];
    for (topic, value, headers) in &records {
        send_raw(&producer, topic, Some(b"k"), value, headers).await;
    }
    bus.start().await.unwrap();
    wait_until("all three events were handled", || {
        let mut seqs = log.seqs("stock");
        seqs.sort_unstable();
        seqs == [10, 11, 12]
    })
    .await;
    bus.shutdown().await.unwrap();
    assert_eq!(bus.stats().retry_records_skipped, 0);
    assert_eq!(bus.stats().dead_lettered, 0);
}

/// Records waiting in a retry tier are not orphaned when their handler stops retrying through
/// retry topics: the group keeps reading the tiers of its topics that exist, and the handler takes
/// the waiting record up in place. Before, the group subscribed to the tiers only while a handler
/// was in topics mode, and the record (its main offset committed) was never read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_waiting_in_a_retry_tier_is_handled_after_the_switch_to_in_place_retries() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let policy = |mode| herald::RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(5),
        jitter: 0.0,
        timeout: None,
        breaker: None,
        mode,
    };
    let bus_with = |mode| {
        kafka
            .builder(config("stock"))
            .only_groups(["failures-stock"])
            .state(log.clone())
            .retry_policy("async", policy(mode))
            .build()
    };
    let before = bus_with(herald::RetryMode::Topics).await.unwrap();
    before
        .publish(StockReserved {
            sku: "sku-1".into(),
            seq: 1,
        })
        .await
        .unwrap();
    before.start().await.unwrap();
    let tier = kafka.topic("failures.stock.retry.1");
    wait_until("the failed event waits in the first tier", || {
        message_count(before.bootstrap_servers(), &tier) == 1
    })
    .await;
    before.shutdown().await.unwrap();
    assert!(log.seqs("stock").is_empty());

    let after = bus_with(herald::RetryMode::InPlace).await.unwrap();
    after.start().await.unwrap();
    wait_until("the waiting event was handled in place", || {
        log.seqs("stock") == [1]
    })
    .await;
    after.shutdown().await.unwrap();
    assert_eq!(log.attempts_of(1), 3, "1 before the switch, 2 in place");
    assert_eq!(after.stats().dead_lettered, 0);
    assert_all_committed(
        after.bootstrap_servers(),
        &kafka.group("failures-stock"),
        &tier,
    );
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.returns")]
pub struct ParcelReturned {
    #[event(key)]
    pub parcel: String,
    pub seq: u64,
}

/// Retries through retry topics: fails on its first attempt only.
#[handler(group = "failures-returns", policy = "async")]
async fn refund_return(event: ParcelReturned, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    if log.attempt(event.seq) == 1 {
        return Err(HandlerError::msg("the payment service is busy"));
    }
    log.handled("refund", event.seq);
    Ok(())
}

/// Fails for good.
#[handler(group = "failures-returns")]
async fn restock_return(_event: ParcelReturned) -> Result<(), HandlerError> {
    Err(HandlerError::permanent(HandlerError::msg(
        "the parcel is damaged",
    )))
}

/// When one handler of an event fails for good while another defers to its retry topic, both
/// happen: the event is dead-lettered for the failed handler and retried for the deferring one.
/// Before, the dead letter won and the deferral was dropped: the refund never ran again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_does_not_drop_another_handlers_deferral() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let bus = bus_retrying_through_topics(&kafka, "returns", "failures-returns", &log).await;
    bus.publish(ParcelReturned {
        parcel: "p".into(),
        seq: 1,
    })
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("the refund ran from its retry topic", || {
        log.seqs("refund") == [1]
    })
    .await;
    bus.shutdown().await.unwrap();
    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.returns.dlq"),
        1,
    );
    assert_eq!(
        header(&letters[0], dlq::HANDLER).as_deref(),
        Some("restock_return")
    );
    assert_eq!(
        message_count(
            bus.bootstrap_servers(),
            &kafka.topic("failures.returns.retry.1")
        ),
        1
    );
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.labels")]
pub struct LabelPrinted {
    #[event(key)]
    pub printer: String,
    pub seq: u64,
    pub image: String,
}

/// Retries through retry topics: fails on seq 1 with a long error, which makes the retry copy of
/// its large image too large for the producer.
#[handler(group = "failures-labels", policy = "async")]
async fn print_label(event: LabelPrinted, ctx: &Context) -> Result<(), HandlerError> {
    let log = log(ctx);
    if event.seq == 1 {
        return Err(HandlerError::msg(format!(
            "the printer is jammed: {}",
            "j".repeat(1_500)
        )));
    }
    log.handled("label", event.seq);
    Ok(())
}

/// Fails seq 1 for good.
#[handler(group = "failures-labels")]
async fn void_label(event: LabelPrinted) -> Result<(), HandlerError> {
    match event.seq {
        1 => Err(HandlerError::permanent(HandlerError::msg(
            "the label was voided",
        ))),
        _ => Ok(()),
    }
}

/// When a retry topic refuses a deferral's copy for good (here: the copy, with its retry headers,
/// is larger than the producer takes) while another handler failed for good, one dead letter names
/// both handlers, and a replay reports the event dead-lettered. Before, the letter named the
/// deferring handler alone (the other's failure was lost with it) and a replay counted the event
/// deferred, though nothing went to a retry topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_retry_copy_and_a_failure_for_good_share_one_dead_letter() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    // The producer takes records of up to 20,000 bytes: the 19,000-byte label fits, its retry copy
    // (the label, the retry headers and the 1.5 KB error) does not.
    let bus = kafka
        .builder(config("labels").property("message.max.bytes", "20000"))
        .only_groups(["failures-labels"])
        .state(log.clone())
        .retry_policy("async", through_topics())
        .build()
        .await
        .unwrap();
    for (seq, image) in [(1, "i".repeat(19_000)), (2, "small".into())] {
        let label = LabelPrinted {
            printer: "p".into(),
            seq,
            image,
        };
        bus.publish(label).await.unwrap();
    }
    let replayed = bus
        .replay(herald::replay::Replay::topic("failures.labels").as_group("failures-labels.replay"))
        .await
        .unwrap();
    assert_eq!((replayed.records(), replayed.handled()), (2, 1));
    assert_eq!((replayed.dead_lettered(), replayed.deferred()), (1, 0));
    assert_eq!(log.seqs("label"), [2]);
    bus.start().await.unwrap();
    wait_until(
        "the label behind it was printed and one dead-lettered",
        || log.seqs("label") == [2, 2] && bus.stats().dead_lettered == 2,
    )
    .await;
    bus.shutdown().await.unwrap();
    // The replay's letter and the live group's.
    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.labels.dlq"),
        2,
    );
    for letter in &letters {
        assert_eq!(
            header(letter, dlq::HANDLER).as_deref(),
            Some("void_label,print_label")
        );
        assert_eq!(
            header(letter, dlq::ERROR_KIND).as_deref(),
            Some("permanent")
        );
        let reason = header(letter, dlq::ERROR_MESSAGE).unwrap();
        assert!(
            reason.starts_with("void_label: the label was voided; print_label: "),
            "{}",
            &reason[..120.min(reason.len())]
        );
    }
    assert_eq!(
        message_count(bus.bootstrap_servers(), &kafka.topic("failures.labels.dlq")),
        2
    );
    assert_eq!(
        message_count(
            bus.bootstrap_servers(),
            &kafka.topic("failures.labels.retry.1")
        ),
        0
    );
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("failures-labels"),
        &kafka.topic("failures.labels"),
    );
}

/// A handler retrying through retry topics lets its partition move on: later events of the same key
/// are handled while the failed one waits in `{topic}.retry.N`; the attempt count travels in
/// headers; after the last retry the event lands in the *original* topic's dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_topics_let_the_partition_move_on() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let asynchronous = herald::RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_millis(400),
        jitter: 0.0,
        timeout: None,
        breaker: None,
        mode: herald::RetryMode::Topics,
    };
    let bus = kafka
        .builder(config("stock"))
        .only_groups(["failures-stock"])
        .state(log.clone())
        .retry_policy("async", asynchronous)
        .build()
        .await
        .unwrap();
    let deliveries = bus
        .publish_batch([1, 2, 3, 4, 5, 99].map(|seq| StockReserved {
            sku: "sku-1".into(),
            seq,
        }))
        .await
        .unwrap();
    bus.start().await.unwrap();
    wait_until(
        "seq 1 was handled after its retries and 99 dead-lettered",
        || log.seqs("stock").contains(&1) && bus.stats().dead_lettered == 1,
    )
    .await;
    bus.shutdown().await.unwrap();
    assert_eq!(log.seqs("stock"), [2, 3, 4, 5, 1], "the partition moved on");
    assert_eq!(log.attempts_of(1), 3);
    assert_eq!(log.attempts_of(99), 4, "1 attempt + max_retries (3)");

    let tier1 = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.stock.retry.1"),
        2,
    );
    let first = tier1
        .iter()
        .find(|m| header(m, "herald_retry_attempts").as_deref() == Some("1"))
        .unwrap();
    assert_eq!(
        header(first, "herald_retry_group").as_deref(),
        Some("failures-stock")
    );
    assert_eq!(
        header(first, "herald_retry_handler").as_deref(),
        Some("reserve_stock")
    );
    assert_eq!(
        header(first, "herald_retry_original_topic"),
        Some(kafka.topic("failures.stock"))
    );
    assert!(header(first, "herald_retry_first_failure").is_some());

    let letter = &read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("failures.stock.dlq"),
        1,
    )[0];
    let last = deliveries.last().unwrap();
    assert_eq!(
        header(letter, dlq::ORIGINAL_TOPIC),
        Some(kafka.topic("failures.stock"))
    );
    assert_eq!(
        header(letter, dlq::ORIGINAL_OFFSET),
        Some(last.offset.to_string())
    );
    assert_eq!(header(letter, dlq::RETRY_COUNT).as_deref(), Some("4"));
    assert_eq!(
        header(letter, dlq::ERROR_KIND).as_deref(),
        Some("retries-exhausted")
    );
    for topic in [
        &kafka.topic("failures.stock"),
        &kafka.topic("failures.stock.retry.1"),
        &kafka.topic("failures.stock.retry.2"),
    ] {
        assert_all_committed(
            bus.bootstrap_servers(),
            &kafka.group("failures-stock"),
            topic,
        );
    }

    // The letter came from the last tier with its retry headers; replayed, the event starts
    // afresh on the original topic, without them (they were copied along before).
    let letters = bus
        .dead_letters(&kafka.topic("failures.stock"))
        .await
        .unwrap();
    let replayed = letters
        .replay(letter.partition(), letter.offset())
        .await
        .unwrap();
    let main = read_topic(bus.bootstrap_servers(), &kafka.topic("failures.stock"), 7);
    let copy = main
        .iter()
        .find(|m| m.partition() == replayed.partition && m.offset() == replayed.offset)
        .unwrap();
    let names: Vec<String> = all_headers(copy).into_iter().map(|(k, _)| k).collect();
    assert!(
        !names.iter().any(|k| k.starts_with("herald_retry_")),
        "{names:?}"
    );
    assert!(names.iter().any(|k| k == "dlq_replay_count"), "{names:?}");
}

// ------------------------------------------------------------ memory bounded in bytes

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "failures.scans")]
pub struct DocumentScanned {
    #[event(key)]
    pub document: String,
    pub seq: u64,
    /// About 20 KB of scanned text.
    pub text: String,
}

#[handler(group = "failures-scans")]
async fn index_scan(event: DocumentScanned, ctx: &Context) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    log(ctx).handled("scan", event.seq);
    Ok(())
}

/// Few but large messages: the byte bound pauses the partition long before the message bound
/// (10,000) would, and everything is still handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_is_paused_by_the_bytes_it_has_buffered() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let config = Config {
        max_buffered_bytes_per_partition: 200_000,
        ..config("scanner")
    };
    assert_eq!(config.max_buffered_per_partition, 10_000);
    let bus = bus_on(&kafka, config, "failures-scans", &log).await;
    bus.publish_batch((0..200).map(|seq| DocumentScanned {
        document: "one-partition".into(),
        seq,
        text: "x".repeat(20_000),
    }))
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("all 200 scans were handled", || {
        log.seqs("scan").len() == 200
    })
    .await;
    bus.shutdown().await.unwrap();
    let stats = bus.stats();
    assert!(stats.partitions_paused > 0, "never paused: {stats:?}");
    assert_eq!(log.seqs("scan"), (0..200).collect::<Vec<_>>());
}

/// Many partitions, each far below its own bounds, add up past the consumer's byte bound: the
/// partitions that receive more are paused until the total is back to half, and everything is
/// still handled. Before, only per-partition bounds existed, so 200 partitions could buffer
/// 200 × 16 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_is_paused_by_the_bytes_all_its_partitions_buffered() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let config = Config {
        max_buffered_bytes_per_consumer: 200_000,
        ..config("scanner").topic_partitions(4)
    };
    assert_eq!(config.max_buffered_bytes_per_partition, 16 << 20);
    let bus = bus_on(&kafka, config, "failures-scans", &log).await;
    bus.publish_batch((0..200).map(|seq| DocumentScanned {
        document: format!("document-{}", seq % 16),
        seq,
        text: "x".repeat(20_000),
    }))
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("all 200 scans were handled", || {
        log.seqs("scan").len() == 200
    })
    .await;
    bus.shutdown().await.unwrap();
    let stats = bus.stats();
    assert!(stats.partitions_paused > 0, "never paused: {stats:?}");
    let mut seqs = log.seqs("scan");
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
}

/// A group that reads only v2 gets a v1 event converted by the v2 type's upcaster (its data lacks
/// `row`, so a plain decode would fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_version_is_upcast_for_a_newer_reader() {
    let kafka = TestKafka::start();
    let log = Arc::new(Log::default());
    let bus = bus_on(&kafka, config("seating"), "failures-seats-v2", &log).await;
    bus.publish(SeatBookedV1 { seat: "d4".into() })
        .await
        .unwrap();
    bus.publish(SeatBookedV2 {
        seat: "e5".into(),
        row: 7,
    })
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("both bookings were handled", || {
        log.seqs("map:d4").len() == 1 && log.seqs("map:e5").len() == 1
    })
    .await;
    bus.shutdown().await.unwrap();
    assert_eq!(log.seqs("map:d4"), [1], "v1 upcast: the front row");
    assert_eq!(log.seqs("map:e5"), [7]);
    let stats = bus.stats();
    assert_eq!(
        (stats.undecodable, stats.dead_lettered),
        (0, 0),
        "{stats:?}"
    );
}
