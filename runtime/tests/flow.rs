//! End-to-end behaviour over the Kafka protocol, against herald's embedded broker (librdkafka's mock
//! cluster): publishing, typed dispatch, metadata, consumer groups, ordering, commit-after-success,
//! bad input and shutdown. Each test runs its own broker and only its own consumer groups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use herald::prelude::*;
use herald::Error;
use rdkafka::producer::FutureProducer;
use support::{assert_all_committed, committed_and_high, wait_until, TestKafka, WAIT};

/// Whether `group` has committed every partition of `topic` up to its high watermark.
fn committed_everything(kafka: &TestKafka, group: &str, topic: &str) -> bool {
    committed_and_high(kafka.bootstrap(), &kafka.group(group), &kafka.topic(topic))
        .iter()
        .all(|(_, committed, high)| committed == high)
}

/// What a test's handlers saw, shared through the bus state.
#[derive(Default)]
struct Seen {
    events: Mutex<Vec<(String, u64, Metadata)>>,
    fail_from: AtomicU64,
    panic_once: AtomicBool,
    worker: Mutex<String>,
}

impl Seen {
    fn failing_from(seq: u64) -> Self {
        Self {
            fail_from: AtomicU64::new(seq),
            ..Self::default()
        }
    }

    fn record(&self, handler: &str, seq: u64, meta: Metadata) {
        self.events
            .lock()
            .unwrap()
            .push((handler.to_owned(), seq, meta));
    }

    fn seqs(&self, handler: &str) -> Vec<u64> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.0 == handler)
            .map(|e| e.1)
            .collect()
    }

    fn count(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

fn config(service: &str) -> Config {
    Config::new(service)
        .commit_interval(Duration::from_millis(100))
        .retry_delays(Duration::from_millis(20), Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(20))
}

async fn test_bus(service: &str, group: &str, seen: Arc<Seen>, kafka: &TestKafka) -> Bus {
    test_bus_with(config(service), group, seen, kafka).await
}

async fn test_bus_with(config: Config, group: &str, seen: Arc<Seen>, kafka: &TestKafka) -> Bus {
    kafka
        .builder(config)
        .only_groups([group])
        .state(seen)
        .build()
        .await
        .expect("bus builds")
}

// ---------------------------------------------------------------- events and handlers

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(version = 2)]
pub struct OrderPlaced {
    #[event(key)]
    pub order_id: String,
    pub seq: u64,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct OrderConfirmed {
    pub aggregate_id: String,
    pub seq: u64,
}

fn seen(ctx: &Context) -> &Arc<Seen> {
    ctx.state::<Arc<Seen>>().expect("test state registered")
}

#[handler(group = "flow-metadata")]
async fn confirm_order(event: Event<OrderPlaced>, ctx: &Context) -> Result<(), HandlerError> {
    seen(ctx).record("confirm_order", event.data.seq, event.meta.clone());
    ctx.publish(OrderConfirmed {
        aggregate_id: event.data.order_id.clone(),
        seq: event.data.seq,
    })
    .await?;
    Ok(())
}

#[handler(group = "flow-metadata")]
async fn on_confirmed(event: Event<OrderConfirmed>, ctx: &Context) -> Result<(), HandlerError> {
    seen(ctx).record("on_confirmed", event.data.seq, event.meta);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_event_reaches_typed_handler_with_metadata() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let bus = test_bus("shop", "flow-metadata", seen.clone(), &kafka).await;
    let options = PublishOptions::new()
        .correlation_id("checkout-42")
        .aggregate("o-1", "order", Some(3))
        .extension("tenant", "acme");
    let delivery = bus
        .publish_with(
            OrderPlaced {
                order_id: "o-1".into(),
                seq: 7,
            },
            options,
        )
        .await
        .unwrap();
    assert_eq!(
        delivery.topic,
        kafka.topic("integration-events.order_placed")
    );
    bus.start().await.unwrap();
    wait_until("both handlers ran", || seen.count() == 2).await;
    bus.shutdown().await.unwrap();

    let events = seen.events.lock().unwrap().clone();
    let placed = &events.iter().find(|e| e.0 == "confirm_order").unwrap().2;
    assert_eq!(placed.id, delivery.event_id);
    assert_eq!(placed.event_type, "order.placed");
    assert_eq!(placed.source, "shop");
    assert_eq!(placed.spec_version, "1.0");
    assert_eq!(placed.schema_version, Some(2));
    assert_eq!(placed.correlation_id.as_deref(), Some("checkout-42"));
    assert_eq!(placed.aggregate_id.as_deref(), Some("o-1"));
    assert_eq!(placed.aggregate_type.as_deref(), Some("order"));
    assert_eq!(placed.aggregate_version, Some(3));
    assert_eq!(
        placed.extensions.get("tenant").map(String::as_str),
        Some("acme")
    );
    assert_eq!(placed.key.as_deref(), Some("o-1"));
    let position = placed.position.clone().unwrap();
    assert_eq!(
        (position.topic.as_str(), position.partition, position.offset),
        (delivery.topic.as_str(), delivery.partition, delivery.offset)
    );
    assert!(placed.time.is_some());

    // Published from the handler: correlation carried over, caused by the handled event,
    // keyed by the `aggregate_id` field.
    let confirmed = &events.iter().find(|e| e.0 == "on_confirmed").unwrap().2;
    assert_eq!(confirmed.event_type, "order.confirmed");
    assert_eq!(confirmed.correlation_id.as_deref(), Some("checkout-42"));
    assert_eq!(confirmed.causation_id.as_deref(), Some(placed.id.as_str()));
    assert_eq!(confirmed.key.as_deref(), Some("o-1"));
    let stats = bus.stats();
    assert_eq!(
        (
            stats.events_published,
            stats.events_handled,
            stats.handler_failures
        ),
        (2, 2, 0)
    );
}

// ---------------------------------------------------------------- consumer groups

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct TicketSold {
    #[event(key)]
    pub seat: u64,
}

#[handler(group = "flow-projections")]
async fn project_ticket(event: TicketSold, ctx: &Context) -> Result<(), HandlerError> {
    seen(ctx).record("projections", event.seat, Metadata::default());
    Ok(())
}

#[handler(group = "flow-mailer")]
async fn mail_ticket(event: TicketSold, ctx: &Context) -> Result<(), HandlerError> {
    seen(ctx).record("mailer", event.seat, Metadata::default());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_gets_every_event() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let bus = kafka
        .builder(config("box-office"))
        .only_groups(["flow-projections", "flow-mailer"])
        .state(seen.clone())
        .build()
        .await
        .unwrap();
    bus.publish_batch((0..50).map(|seat| TicketSold { seat }))
        .await
        .unwrap();
    bus.start().await.unwrap();
    wait_until("both groups saw 50 events", || seen.count() == 100).await;
    bus.shutdown().await.unwrap();
    let expected: BTreeSet<u64> = (0..50).collect();
    for group in ["projections", "mailer"] {
        let got = seen.seqs(group);
        assert_eq!(got.len(), 50, "{group} handled an event twice");
        assert_eq!(
            got.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{group}"
        );
    }
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct JobQueued {
    #[event(key)]
    pub job: u64,
}

#[handler(group = "flow-workers")]
async fn run_job(event: JobQueued, ctx: &Context) -> Result<(), HandlerError> {
    let seen = seen(ctx);
    let worker = seen.worker.lock().unwrap().clone();
    seen.record(&worker, event.job, Metadata::default());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_one_group_share_the_work() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let (a, b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    *a.worker.lock().unwrap() = "a".into();
    *b.worker.lock().unwrap() = "b".into();
    let worker_a = test_bus("jobs", "flow-workers", a.clone(), &kafka).await;
    let worker_b = test_bus("jobs", "flow-workers", b.clone(), &kafka).await;
    worker_a.start().await.unwrap();
    worker_b.start().await.unwrap();
    worker_a.wait_for_assignment(WAIT).await.unwrap();
    worker_b.wait_for_assignment(WAIT).await.unwrap();

    let publisher = test_bus("jobs-api", "flow-workers", seen, &kafka).await;
    publisher
        .publish_batch((0..200).map(|job| JobQueued { job }))
        .await
        .unwrap();
    wait_until("200 jobs handled", || a.count() + b.count() >= 200).await;
    // Once everything is committed no job can come again: the counts below are final.
    wait_until("the group committed every job", || {
        committed_everything(&kafka, "flow-workers", JobQueued::TOPIC)
    })
    .await;
    worker_a.shutdown().await.unwrap();
    worker_b.shutdown().await.unwrap();

    let (jobs_a, jobs_b) = (a.seqs("a"), b.seqs("b"));
    assert!(
        !jobs_a.is_empty() && !jobs_b.is_empty(),
        "one worker got nothing: a={} b={}",
        jobs_a.len(),
        jobs_b.len()
    );
    let mut all: Vec<u64> = jobs_a.iter().chain(&jobs_b).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..200).collect::<Vec<_>>(),
        "every job exactly once between the two workers"
    );
}

// ---------------------------------------------------------------- ordering

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct AccountDebited {
    #[event(key)]
    pub account: String,
    pub seq: u64,
}

#[handler(group = "flow-ledger")]
async fn apply_debit(event: AccountDebited, ctx: &Context) -> Result<(), HandlerError> {
    // A little jitter so that partitions interleave.
    if event.seq % 7 == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let meta = Metadata {
        key: Some(event.account),
        ..Metadata::default()
    };
    seen(ctx).record("ledger", event.seq, meta);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_with_one_key_are_handled_in_order() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let bus = test_bus("bank", "flow-ledger", seen.clone(), &kafka).await;
    let accounts = ["alice", "bob", "carol", "dave", "erin"];
    let events: Vec<AccountDebited> = (0..500)
        .map(|seq| AccountDebited {
            account: accounts[(seq % 5) as usize].into(),
            seq,
        })
        .collect();
    bus.publish_batch(events).await.unwrap();
    bus.start().await.unwrap();
    wait_until("500 debits applied", || seen.count() == 500).await;
    bus.shutdown().await.unwrap();
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (_, seq, meta) in seen.events.lock().unwrap().iter() {
        per_key
            .entry(meta.key.clone().unwrap())
            .or_default()
            .push(*seq);
    }
    assert_eq!(per_key.len(), 5);
    for (account, seqs) in per_key {
        assert_eq!(seqs.len(), 100);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{account} out of order: {seqs:?}"
        );
    }
}

// ---------------------------------------------------------------- commit only after success

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct InvoiceIssued {
    #[event(key)]
    pub customer: String,
    pub seq: u64,
}

#[handler(group = "flow-billing")]
async fn book_invoice(event: InvoiceIssued, ctx: &Context) -> Result<(), HandlerError> {
    let seen = seen(ctx);
    if event.seq >= seen.fail_from.load(Ordering::SeqCst) {
        return Err(HandlerError::msg(format!(
            "ledger unavailable for invoice {}",
            event.seq
        )));
    }
    seen.record("billing", event.seq, Metadata::default());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_after_the_last_success() {
    let kafka = TestKafka::start();
    let first = Arc::new(Seen::failing_from(5));
    let bus1 = test_bus("billing", "flow-billing", first.clone(), &kafka).await;
    bus1.publish_batch((0..10).map(|seq| InvoiceIssued {
        customer: "c-1".into(),
        seq,
    }))
    .await
    .unwrap();
    bus1.start().await.unwrap();
    wait_until("invoices 0..5 booked and 5 failing", || {
        first.count() == 5 && bus1.stats().handler_failures >= 3
    })
    .await;
    bus1.shutdown().await.unwrap();
    assert_eq!(
        first.seqs("billing"),
        vec![0, 1, 2, 3, 4],
        "nothing after the failing event was handled"
    );
    assert_eq!(bus1.stats().events_handled, 5);

    let second = Arc::new(Seen::failing_from(u64::MAX));
    let bus2 = test_bus("billing", "flow-billing", second.clone(), &kafka).await;
    bus2.start().await.unwrap();
    wait_until("invoices 5..10 booked", || second.count() >= 5).await;
    wait_until("the group committed every invoice", || {
        committed_everything(&kafka, "flow-billing", InvoiceIssued::TOPIC)
    })
    .await;
    bus2.shutdown().await.unwrap();
    assert_eq!(
        second.seqs("billing"),
        vec![5, 6, 7, 8, 9],
        "committed events are not handled again, uncommitted ones are"
    );
}

// ---------------------------------------------------------------- bad input and foreign producers

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "flow.payments")]
pub struct PaymentReceived {
    pub payment_id: String,
    pub cents: u64,
}

#[handler(group = "flow-payments")]
async fn record_payment(event: Event<PaymentReceived>, ctx: &Context) -> Result<(), HandlerError> {
    let seen = seen(ctx);
    if seen.panic_once.swap(false, Ordering::SeqCst) {
        panic!("payment gateway exploded");
    }
    seen.record(&event.data.payment_id, event.data.cents, event.meta);
    Ok(())
}

/// A plain producer (not herald's) of `flow.payments` on the test's broker.
fn plain_producer(bus: &Bus, kafka: &TestKafka) -> (FutureProducer, String) {
    (
        support::plain_producer(bus.bootstrap_servers()),
        kafka.topic("flow.payments"),
    )
}

async fn send_raw(
    (producer, topic): &(FutureProducer, String),
    key: Option<&str>,
    value: &[u8],
    headers: &[(&str, &str)],
) {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    support::send_raw(producer, topic, key.map(str::as_bytes), value, &headers).await;
}

const CE: [(&str, &str); 5] = [
    ("ce_specversion", "1.0"),
    ("ce_id", "ext-1"),
    ("ce_type", "payment.received"),
    ("ce_source", "/billing/legacy"),
    ("content-type", "application/json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_foreign_messages_do_not_stop_consumption() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let bus = test_bus("payments", "flow-payments", seen.clone(), &kafka).await;
    let producer = plain_producer(&bus, &kafka);
    // 1. not a CloudEvent at all
    send_raw(&producer, Some("k"), b"\x00\x01garbage", &[]).await;
    // 2. a CloudEvent of the right type whose data does not fit the Rust type
    send_raw(&producer, Some("k"), br#"{"payment_id": 5}"#, &CE).await;
    // 3. a CloudEvent of a type no handler of the group takes
    let mut foreign = CE;
    foreign[2] = ("ce_type", "refund.requested");
    send_raw(&producer, Some("k"), br#"{"refund": 1}"#, &foreign).await;
    // 4. a malformed attribute
    let mut bad_time = CE.to_vec();
    bad_time.push(("ce_time", "last tuesday"));
    send_raw(
        &producer,
        Some("k"),
        br#"{"payment_id":"p0","cents":1}"#,
        &bad_time,
    )
    .await;
    // 5. a newer schema version than the handler reads, whose data still fits: handled
    let mut newer = CE.to_vec();
    newer.push(("ce_schemaversion", "9"));
    send_raw(
        &producer,
        Some("k"),
        br#"{"payment_id":"p0","cents":1}"#,
        &newer,
    )
    .await;
    // 6. a good event behind them all, on the same partition
    let good = bus
        .publish_with(
            PaymentReceived {
                payment_id: "p1".into(),
                cents: 1250,
            },
            PublishOptions::new().key("k"),
        )
        .await
        .unwrap();

    bus.start().await.unwrap();
    wait_until("the good payments were handled", || seen.count() == 2).await;
    bus.shutdown().await.unwrap();
    let handled = seen.events.lock().unwrap().clone();
    assert_eq!(handled[0].0, "p0", "the v9 event fits the v2 reader");
    assert_eq!(handled[1].2.id, good.event_id);
    let stats = bus.stats();
    // Not a CloudEvent, data that does not fit, a malformed attribute: dead-lettered.
    assert_eq!(stats.undecodable, 3, "{stats:?}");
    assert_eq!(stats.dead_lettered, 3, "{stats:?}");
    // Another service's event type on a shared topic: skipped (the default).
    assert_eq!(stats.skipped_unknown_type, 1, "{stats:?}");
    assert_eq!(stats.events_handled, 2, "{stats:?}");

    // Everything was committed past: a new consumer of the group finds nothing left to do.
    assert_all_committed(
        kafka.bootstrap(),
        &kafka.group("flow-payments"),
        &kafka.topic("flow.payments"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_from_another_producer_are_handled() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let bus = test_bus("payments", "flow-payments", seen.clone(), &kafka).await;
    let producer = plain_producer(&bus, &kafka);
    let mut binary = CE.to_vec();
    binary.extend([
        ("ce_time", "2026-11-23T08:30:00+01:00"),
        ("ce_correlationid", "corr-7"),
        ("ce_traceparent", "00-abc-def-01"),
    ]);
    send_raw(
        &producer,
        Some("pay-1"),
        br#"{"payment_id":"binary","cents":100}"#,
        &binary,
    )
    .await;
    let structured =
        br#"{"specversion":"1.0","id":"ext-2","type":"payment.received","source":"urn:legacy",
        "datacontenttype":"application/json","data":{"payment_id":"structured","cents":200}}"#;
    send_raw(
        &producer,
        None,
        structured,
        &[("content-type", "application/cloudevents+json")],
    )
    .await;

    bus.start().await.unwrap();
    wait_until("both foreign events were handled", || seen.count() == 2).await;
    bus.shutdown().await.unwrap();
    let events: HashMap<String, (u64, Metadata)> = seen
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|(id, cents, meta)| (id.clone(), (*cents, meta.clone())))
        .collect();
    let (cents, meta) = &events["binary"];
    assert_eq!(*cents, 100);
    assert_eq!(
        (meta.id.as_str(), meta.source.as_str()),
        ("ext-1", "/billing/legacy")
    );
    assert_eq!(meta.correlation_id.as_deref(), Some("corr-7"));
    assert_eq!(meta.extensions["traceparent"], "00-abc-def-01");
    assert_eq!(meta.time.unwrap().to_rfc3339(), "2026-11-23T07:30:00+00:00");
    assert_eq!(meta.key.as_deref(), Some("pay-1"));
    let (cents, meta) = &events["structured"];
    assert_eq!(
        (*cents, meta.id.as_str(), meta.source.as_str()),
        (200, "ext-2", "urn:legacy")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_and_the_consumer_survives() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    seen.panic_once.store(true, Ordering::SeqCst);
    let bus = test_bus("payments", "flow-payments", seen.clone(), &kafka).await;
    bus.publish(PaymentReceived {
        payment_id: "p9".into(),
        cents: 5,
    })
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("the payment was handled after the panic", || {
        seen.count() == 1
    })
    .await;
    bus.shutdown().await.unwrap();
    let stats = bus.stats();
    assert_eq!(
        (stats.handler_failures, stats.events_handled),
        (1, 1),
        "{stats:?}"
    );
}

// ---------------------------------------------------------------- shutdown and publishing errors

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct ReportRequested {
    pub id: u64,
}

#[handler(group = "flow-reports")]
async fn build_report(event: ReportRequested, ctx: &Context) -> Result<(), HandlerError> {
    let seen = seen(ctx);
    seen.record("started", event.id, Metadata::default());
    tokio::time::sleep(Duration::from_millis(800)).await;
    seen.record("finished", event.id, Metadata::default());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_handlers_and_commits_them() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let bus1 = test_bus("reports", "flow-reports", seen.clone(), &kafka).await;
    bus1.publish(ReportRequested { id: 1 }).await.unwrap();
    bus1.start().await.unwrap();
    wait_until("the report started", || seen.count() == 1).await;
    bus1.shutdown().await.unwrap();
    assert_eq!(
        seen.seqs("finished"),
        vec![1],
        "shutdown returned before the in-flight handler finished"
    );

    assert_all_committed(
        kafka.bootstrap(),
        &kafka.group("flow-reports"),
        &kafka.topic(ReportRequested::TOPIC),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_an_unreachable_broker_fails_within_the_delivery_timeout() {
    let config = Config::new("lonely")
        .bootstrap_servers("127.0.0.1:1")
        .delivery_timeout(Duration::from_millis(1500));
    let bus = Bus::builder(config)
        .only_groups(["flow-reports"])
        .build()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = bus.publish(ReportRequested { id: 1 }).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    match &err {
        Error::Publish {
            topic, event_type, ..
        } => {
            assert_eq!(
                (*topic, *event_type),
                ("integration-events.report_requested", "report.requested")
            );
        }
        other => panic!("expected a publish error, got {other:?}"),
    }
    assert!(err.to_string().contains("not published"), "{err}");
    assert_eq!(bus.stats().events_published, 0);
    assert_eq!(bus.stats().publish_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_come_back_in_order_and_illegal_extensions_are_refused() {
    let kafka = TestKafka::start();
    let bus = test_bus("bank", "flow-ledger", Arc::new(Seen::default()), &kafka).await;
    let deliveries = bus
        .publish_batch((0..20).map(|seq| AccountDebited {
            account: "zed".into(),
            seq,
        }))
        .await
        .unwrap();
    let offsets: Vec<i64> = deliveries.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>());
    assert!(deliveries
        .iter()
        .all(|d| d.partition == deliveries[0].partition));
    let err = bus
        .publish_with(
            AccountDebited {
                account: "zed".into(),
                seq: 99,
            },
            PublishOptions::new().extension("Tenant_ID", "x"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(_)) && err.to_string().contains("Tenant_ID"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_groups_and_double_starts_are_refused() {
    let kafka = TestKafka::start();
    let err = kafka
        .builder(config("x"))
        .only_groups(["no-such-group"])
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no-such-group") && err.to_string().contains("flow-ledger"),
        "{err}"
    );
    let bus = test_bus("bank", "flow-ledger", Arc::new(Seen::default()), &kafka).await;
    bus.start().await.unwrap();
    assert!(matches!(bus.start().await, Err(Error::AlreadyRunning)));
    bus.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- partitions in parallel, backpressure

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct SensorRead {
    #[event(key)]
    pub sensor: String,
    pub seq: u64,
}

#[handler(group = "flow-sensors")]
async fn store_reading(event: SensorRead, ctx: &Context) -> Result<(), HandlerError> {
    if event.sensor == "broken" {
        seen(ctx).record("broken-attempt", event.seq, Metadata::default());
        return Err(HandlerError::msg("storage for sensor `broken` is down"));
    }
    tokio::time::sleep(Duration::from_micros(200)).await;
    seen(ctx).record(&event.sensor, event.seq, Metadata::default());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_partition_does_not_hold_up_the_others() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let config = config("sensors");
    // The broken sensor's event is retried for as long as the test runs: its partition is stuck.
    let bus = kafka
        .builder(Config {
            max_buffered_per_partition: 16,
            max_retries: u32::MAX,
            ..config
        })
        .only_groups(["flow-sensors"])
        .state(seen.clone())
        .build()
        .await
        .unwrap();
    let stuck = bus
        .publish(SensorRead {
            sensor: "broken".into(),
            seq: 0,
        })
        .await
        .unwrap();
    // Pick a sensor whose events land on another partition than the broken one.
    let mut healthy = None;
    for i in 0..50 {
        let name = format!("sensor-{i}");
        let probe = bus
            .publish(SensorRead {
                sensor: name.clone(),
                seq: 0,
            })
            .await
            .unwrap();
        if probe.partition != stuck.partition {
            healthy = Some((name, probe.partition));
            break;
        }
    }
    let (healthy, healthy_partition) = healthy.expect("some key hashes to another partition");
    bus.publish_batch((1..=300).map(|seq| SensorRead {
        sensor: healthy.clone(),
        seq,
    }))
    .await
    .unwrap();
    bus.start().await.unwrap();
    // 300 events pass through a 16-message buffer: the partition is paused and resumed many times.
    wait_until("the healthy partition drained", || {
        seen.seqs(&healthy).len() == 301
    })
    .await;
    let handled = seen.seqs(&healthy);
    assert!(
        handled.windows(2).all(|w| w[0] < w[1]),
        "pausing reordered events"
    );
    let stats = bus.stats();
    assert!(stats.partitions_paused > 0, "never paused: {stats:?}");
    assert!(
        seen.seqs("broken-attempt").len() >= 2,
        "the broken partition is being retried"
    );
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    bus.shutdown().await.unwrap();
    // The stuck event was never committed past; the healthy partition was, completely.
    let offsets = support::committed_and_high(
        bus.bootstrap_servers(),
        &kafka.group("flow-sensors"),
        &kafka.topic(SensorRead::TOPIC),
    );
    for (partition, committed, high) in offsets {
        if partition == stuck.partition {
            assert_eq!(
                committed, stuck.offset,
                "the stuck event was committed past"
            );
        } else if high > 0 && partition == healthy_partition {
            assert_eq!(committed, high, "partition {partition}");
        }
    }
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct ExportRequested {
    pub id: u64,
}

#[handler(group = "flow-exports")]
async fn export(event: ExportRequested, ctx: &Context) -> Result<(), HandlerError> {
    let seen = seen(ctx);
    seen.record("started", event.id, Metadata::default());
    if seen.fail_from.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_secs(60)).await; // hangs, as far as shutdown is concerned
    }
    seen.record("finished", event.id, Metadata::default());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_handlers_that_outlive_the_timeout_and_their_events_come_back() {
    let kafka = TestKafka::start();
    let hanging = Arc::new(Seen::failing_from(0));
    let bus1 = kafka
        .builder(config("exports").shutdown_timeout(Duration::from_millis(500)))
        .only_groups(["flow-exports"])
        .state(hanging.clone())
        .build()
        .await
        .unwrap();
    bus1.publish(ExportRequested { id: 3 }).await.unwrap();
    bus1.start().await.unwrap();
    wait_until("the export started", || hanging.count() == 1).await;
    let started = std::time::Instant::now();
    let err = bus1.shutdown().await.unwrap_err();
    assert!(matches!(err, Error::ShutdownTimeout(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(hanging.seqs("finished").is_empty());

    let quick = Arc::new(Seen::failing_from(u64::MAX));
    let bus2 = test_bus("exports", "flow-exports", quick.clone(), &kafka).await;
    bus2.start().await.unwrap();
    wait_until("the abandoned export was delivered again", || {
        quick.seqs("finished") == vec![3]
    })
    .await;
    bus2.shutdown().await.unwrap();
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct ParcelScanned {
    #[event(key)]
    pub parcel: u64,
    pub seq: u64,
}

#[handler(group = "flow-rebalance")]
async fn track_parcel(event: ParcelScanned, ctx: &Context) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_micros(300)).await;
    let meta = Metadata {
        key: Some(event.parcel.to_string()),
        ..Metadata::default()
    };
    seen(ctx).record("scan", event.seq, meta);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_while_consumers_join_and_leave_mid_stream() {
    let kafka = TestKafka::start();
    let (a, b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    // A buffer far below one published batch (100 events): partitions are paused while they move,
    // on the embedded broker and on Kafka (whose fetches bring about one batch at a time).
    let small_buffer = || Config {
        max_buffered_per_partition: 20,
        ..config("depot")
    };
    let worker_a = test_bus_with(small_buffer(), "flow-rebalance", a.clone(), &kafka).await;
    worker_a.start().await.unwrap();
    worker_a.wait_for_assignment(WAIT).await.unwrap();

    let publisher = test_bus(
        "scanner",
        "flow-rebalance",
        Arc::new(Seen::default()),
        &kafka,
    )
    .await;
    let total = 8000u64;
    let producing = tokio::spawn(async move {
        for chunk in (0..total).collect::<Vec<_>>().chunks(100) {
            let batch = chunk.iter().map(|&seq| ParcelScanned {
                parcel: seq % 40,
                seq,
            });
            publisher.publish_batch(batch).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let worker_b = test_bus_with(small_buffer(), "flow-rebalance", b.clone(), &kafka).await;
    worker_b.start().await.unwrap(); // rebalance 1: b joins
    worker_b.wait_for_assignment(WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker_a.shutdown().await.unwrap(); // rebalance 2: a leaves
    producing.await.unwrap();
    let seen = || {
        let mut seqs: BTreeSet<u64> = a.seqs("scan").into_iter().collect();
        seqs.extend(b.seqs("scan"));
        seqs
    };
    // b works through the rest with its partitions paused every 20 events, which on a loaded
    // machine takes longer than WAIT (about 250 events/s was seen): the test fails when nothing
    // more is handled for WAIT, not when the whole takes longer.
    let (mut done, mut stalled_at) = (0, tokio::time::Instant::now() + WAIT);
    while done < total {
        let seqs = seen();
        if seqs.len() as u64 > done {
            done = seqs.len() as u64;
            stalled_at = tokio::time::Instant::now() + WAIT;
        } else if tokio::time::Instant::now() >= stalled_at {
            let health = worker_b.health().await;
            let missing: Vec<u64> = (0..total).filter(|s| !seqs.contains(s)).collect();
            let parcels: BTreeSet<u64> = missing.iter().map(|s| s % 40).collect();
            panic!(
                "{} of {total} scans not handled and none for {WAIT:?}, of parcels {parcels:?} (first {:?}); b: {:?}, health {health:?}",
                missing.len(),
                &missing[..missing.len().min(10)],
                worker_b.stats(),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker_b.shutdown().await.unwrap();

    let handled = a.count() + b.count();
    println!(
        "rebalance: {total} events, {} by a, {} by b, {} duplicates",
        a.count(),
        b.count(),
        handled as u64 - total
    );
    assert!(b.count() > 0 && a.count() > 0);
    let paused = worker_a.stats().partitions_paused + worker_b.stats().partitions_paused;
    assert!(
        paused > 0,
        "no partition was ever paused: the test did not exercise pausing"
    );
    assert_all_committed(
        kafka.bootstrap(),
        &kafka.group("flow-rebalance"),
        &kafka.topic(ParcelScanned::TOPIC),
    );
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct MemberJoined {
    pub member: u64,
}

#[handler(group = "flow-fanout")]
async fn greet_member(event: MemberJoined, ctx: &Context) -> Result<(), HandlerError> {
    seen(ctx).record("greet", event.member, Metadata::default());
    Ok(())
}

#[handler(group = "flow-fanout")]
async fn bill_member(event: MemberJoined, ctx: &Context) -> Result<(), HandlerError> {
    let seen = seen(ctx);
    seen.record("bill-attempt", event.member, Metadata::default());
    // Fails on its first two attempts, then succeeds.
    if seen.fail_from.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(HandlerError::msg("billing backend warming up"));
    }
    seen.record("billed", event.member, Metadata::default());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handler_of_a_type_runs_and_only_failed_ones_are_retried() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::failing_from(0));
    let bus = test_bus("club", "flow-fanout", seen.clone(), &kafka).await;
    bus.publish(MemberJoined { member: 1 }).await.unwrap();
    bus.start().await.unwrap();
    wait_until("the member was billed", || seen.seqs("billed") == vec![1]).await;
    bus.shutdown().await.unwrap();
    assert_eq!(
        seen.seqs("greet"),
        vec![1],
        "the handler that succeeded ran once"
    );
    assert_eq!(seen.seqs("bill-attempt"), vec![1, 1, 1]);
    let stats = bus.stats();
    assert_eq!(
        (stats.handler_failures, stats.events_handled),
        (2, 1),
        "{stats:?}"
    );

    // Committed once both succeeded: nothing comes back.
    assert_all_committed(
        kafka.bootstrap(),
        &kafka.group("flow-fanout"),
        &kafka.topic(MemberJoined::TOPIC),
    );
}
