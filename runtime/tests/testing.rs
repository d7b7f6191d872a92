//! `herald::testing`: the in-process test bus runs a service's handlers without a broker, with the
//! consumer groups' own decisions. Flows cascade through published events; a failing handler is
//! retried and dead-lettered exactly as on Kafka (proved side by side with the test broker);
//! retry topics, undecodable records, dynamic handlers, state and direct handler calls work.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::headers::dlq;
use herald::prelude::*;
use herald::testing::{Became, TestBus};
use herald::EncodedEvent;
use support::*;

// --- a small flow: a signup publishes a welcome, which is recorded -------------------------------

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "kit.users")]
pub struct UserSignedUp {
    #[event(key)]
    pub user_id: u64,
    pub email: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "kit.welcomes")]
pub struct WelcomeSent {
    #[event(key)]
    pub user_id: u64,
}

/// What the flow's handlers saw.
#[derive(Default)]
struct Seen {
    welcomed: Mutex<Vec<u64>>,
}

#[handler(group = "kit-mailer")]
async fn send_welcome(event: Event<UserSignedUp>, ctx: &Context) -> Result<(), HandlerError> {
    ctx.publish(WelcomeSent {
        user_id: event.data.user_id,
    })
    .await?;
    Ok(())
}

#[handler(group = "kit-audit")]
async fn record_welcome(event: Event<WelcomeSent>, ctx: &Context) -> Result<(), HandlerError> {
    let seen = ctx.state::<Arc<Seen>>().expect("state registered");
    seen.welcomed.lock().unwrap().push(event.data.user_id);
    Ok(())
}

fn flow_bus(seen: &Arc<Seen>) -> TestBus {
    TestBus::build(
        Bus::builder(Config::new("kit-service"))
            .only_groups(["kit-mailer", "kit-audit"])
            .state(seen.clone()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_dispatched_event_runs_its_flow_to_the_end_and_every_publish_is_kept() {
    let seen = Arc::new(Seen::default());
    let bus = flow_bus(&seen);
    let report = bus
        .dispatch(UserSignedUp {
            user_id: 7,
            email: "a@b.c".into(),
        })
        .await
        .unwrap();
    // The signup in the mailer group, then the welcome it published in the audit group.
    let steps: Vec<(&str, &str, &Became)> = report
        .outcomes
        .iter()
        .map(|o| (o.group.as_str(), o.event_type().unwrap(), &o.became))
        .collect();
    assert_eq!(
        steps,
        [
            ("kit-mailer", "user.signed.up", &Became::Handled),
            ("kit-audit", "welcome.sent", &Became::Handled),
        ]
    );
    assert!(report.all_handled());
    assert_eq!(*seen.welcomed.lock().unwrap(), [7]);

    let signups = bus.published::<UserSignedUp>().await.unwrap();
    let welcomes = bus.published::<WelcomeSent>().await.unwrap();
    assert_eq!((signups.len(), welcomes.len()), (1, 1));
    // The welcome carries the signup's correlation and names it as its cause.
    assert_eq!(
        welcomes[0].meta.correlation_id,
        signups[0].meta.correlation_id
    );
    assert_eq!(
        welcomes[0].meta.causation_id.as_deref(),
        Some(signups[0].meta.id.as_str())
    );
    assert_eq!(welcomes[0].meta.key.as_deref(), Some("7"));
    assert_eq!(bus.records("kit.welcomes").await.unwrap()[0].offset, 0);

    // Settling again consumes nothing new.
    assert!(bus.settle().await.unwrap().outcomes.is_empty());
}

#[tokio::test]
async fn publishes_wait_for_settle_and_a_handler_can_be_called_directly() {
    let seen = Arc::new(Seen::default());
    let bus = flow_bus(&seen);
    bus.publish(UserSignedUp {
        user_id: 1,
        email: "x@y.z".into(),
    })
    .await
    .unwrap();
    assert!(
        bus.published::<WelcomeSent>().await.unwrap().is_empty(),
        "nothing ran yet"
    );

    // A handler called as a function, with a context whose publishes the bus keeps.
    let event = bus
        .event(UserSignedUp {
            user_id: 2,
            email: "p@q.r".into(),
        })
        .unwrap();
    let ctx = bus.context_for(event.meta.clone());
    send_welcome(event.clone(), &ctx).await.unwrap();
    let welcomes = bus.published::<WelcomeSent>().await.unwrap();
    assert_eq!(welcomes.len(), 1);
    assert_eq!(
        welcomes[0].meta.causation_id.as_deref(),
        Some(event.meta.id.as_str())
    );
    assert_eq!(ctx.state::<Arc<Seen>>().map(Arc::strong_count), Some(2));

    // The queued signup and the direct call's welcome both run on settle.
    let report = bus.settle().await.unwrap();
    // The signup in the mailer group, the direct welcome and the signup's welcome in the audit group.
    assert_eq!(report.outcomes.len(), 3, "{report:#?}");
    let mut welcomed = seen.welcomed.lock().unwrap().clone();
    welcomed.sort_unstable();
    assert_eq!(welcomed, [1, 2]);
}

// --- failures: the same decisions as a consumer on Kafka ----------------------------------------

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "kit.payments")]
pub struct PaymentTaken {
    #[event(key)]
    pub payment: String,
    pub cents: u64,
    /// Fail with a permanent error rather than a transient one.
    pub permanent: bool,
}

/// How often the failing handler ran.
#[derive(Default)]
struct Tries(AtomicU32);

#[handler(group = "kit-ledger", retries = 2, backoff = "20ms")]
async fn book_payment(event: Event<PaymentTaken>, ctx: &Context) -> Result<(), HandlerError> {
    ctx.state::<Arc<Tries>>()
        .expect("state registered")
        .0
        .fetch_add(1, Ordering::SeqCst);
    if event.data.permanent {
        return Err(HandlerError::permanent(HandlerError::msg(
            "the ledger refuses this payment",
        )));
    }
    Err(HandlerError::msg("the ledger is down"))
}

fn payment(permanent: bool) -> PaymentTaken {
    PaymentTaken {
        payment: "pay-1".into(),
        cents: 1250,
        permanent,
    }
}

/// An in-process bus with the ledger group, and its handler's tries.
fn ledger_bus() -> (TestBus, Arc<Tries>) {
    let tries = Arc::new(Tries::default());
    let bus = TestBus::build(
        Bus::builder(Config::new("kit-service"))
            .only_groups(["kit-ledger"])
            .state(tries.clone()),
    )
    .unwrap();
    (bus, tries)
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_is_retried_then_dead_lettered_in_process() {
    let (bus, tries) = ledger_bus();

    let report = bus.dispatch(payment(false)).await.unwrap();
    assert_eq!(tries.0.load(Ordering::SeqCst), 3, "one try and two retries");
    let letters = report.dead_lettered();
    assert_eq!(letters.len(), 1);
    let letter = letters[0].dead_letter().unwrap();
    assert_eq!(letter.kind, "retries-exhausted");
    assert_eq!(letter.attempts, 3);
    assert!(letter.reason.contains("the ledger is down"), "{letter:?}");

    let dead = bus.dead_letters("kit.payments").await.unwrap();
    assert_eq!(dead.len(), 1);
    let original = &bus.records("kit.payments").await.unwrap()[0];
    assert_eq!(dead[0].key, original.key);
    assert_eq!(dead[0].value, original.value);
    assert_eq!(dead[0].header(dlq::ERROR_KIND), Some("retries-exhausted"));
    assert_eq!(dead[0].header(dlq::CONSUMER_GROUP), Some("kit-ledger"));

    // A permanent error is not retried.
    let report = bus.dispatch(payment(true)).await.unwrap();
    assert_eq!(tries.0.load(Ordering::SeqCst), 4);
    let letter = report.dead_lettered()[0].dead_letter().unwrap().clone();
    assert_eq!((letter.kind, letter.attempts), ("permanent", 1));
    assert_eq!(bus.dead_letters("kit.payments").await.unwrap().len(), 2);
}

/// The dead letter a failing handler leaves on the test broker (embedded, or the real Kafka of
/// `HERALD_TEST_KAFKA`) and in the test bus are the same record: same key, value and headers but
/// for the ids and times, after the same number of tries.
#[tokio::test]
async fn the_test_bus_dead_letters_exactly_as_a_consumer_on_kafka() {
    let in_memory = {
        let (bus, tries) = ledger_bus();
        bus.dispatch(payment(false)).await.unwrap();
        let letters = bus.dead_letters("kit.payments").await.unwrap();
        assert_eq!(letters.len(), 1);
        let letter = &letters[0];
        let headers: Vec<(String, Vec<u8>)> = letter
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone().unwrap_or_default()))
            .collect();
        (
            tries.0.load(Ordering::SeqCst),
            letter.key.clone(),
            letter.value.clone(),
            headers,
        )
    };

    let kafka = TestKafka::start();
    let tries = Arc::new(Tries::default());
    let bus = kafka
        .builder(Config::new("kit-service"))
        .only_groups(["kit-ledger"])
        .state(tries.clone())
        .build()
        .await
        .unwrap();
    bus.start().await.unwrap();
    bus.wait_for_assignment(Duration::from_secs(30))
        .await
        .unwrap();
    bus.publish(payment(false)).await.unwrap();
    let dlq = kafka.topic("kit.payments.dlq");
    let bootstrap = kafka.bootstrap().to_owned();
    let on_kafka = tokio::task::spawn_blocking(move || read_topic(&bootstrap, &dlq, 1))
        .await
        .unwrap();
    bus.shutdown().await.unwrap();
    assert_eq!(on_kafka.len(), 1);
    let letter = &on_kafka[0];
    let kafka_headers = all_headers(letter);

    // Values that differ by nature: ids, times, and names that carry the test's prefix on Kafka.
    let varies = |name: &str| {
        matches!(
            name,
            "ce_id" | "ce_time" | "ce_correlationid" | "ce_traceparent" | "ce_tracestate"
        ) || name == dlq::TIMESTAMP
            || name == dlq::ORIGINAL_TOPIC
            || name == dlq::ORIGINAL_PARTITION
            || name == dlq::CONSUMER_GROUP
            || name == dlq::ERROR_MESSAGE
    };
    let comparable = |headers: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        headers
            .iter()
            .map(|(n, v)| (n.clone(), if varies(n) { Vec::new() } else { v.clone() }))
            .collect()
    };
    let (memory_tries, key, value, memory_headers) = in_memory;
    assert_eq!(memory_tries, tries.0.load(Ordering::SeqCst));
    assert_eq!(key.as_deref(), rdkafka::Message::key(letter));
    // The values differ only in nothing: the same event data.
    let data = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    assert_eq!(
        data(value.as_deref().unwrap()),
        data(rdkafka::Message::payload(letter).unwrap())
    );
    assert_eq!(comparable(&memory_headers), comparable(&kafka_headers));
}

// --- retry topics, undecodable records, dynamic handlers -----------------------------------------

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "kit.stock")]
pub struct StockReserved {
    #[event(key)]
    pub sku: String,
}

#[handler(group = "kit-warehouse", policy = "through-topics")]
async fn pick_stock(_event: Event<StockReserved>, ctx: &Context) -> Result<(), HandlerError> {
    let tries = ctx.state::<Arc<Tries>>().expect("state registered");
    // Fails twice, then succeeds on its second retry topic.
    if tries.0.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(HandlerError::msg("the picker is busy"));
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retries_through_retry_topics_run_in_process_until_handled() {
    let tries = Arc::new(Tries::default());
    let bus = TestBus::build(
        Bus::builder(Config::new("kit-service"))
            .only_groups(["kit-warehouse"])
            .retry_policy("through-topics", through_topics())
            .state(tries.clone()),
    )
    .unwrap();
    let report = bus
        .dispatch(StockReserved {
            sku: "sku-9".into(),
        })
        .await
        .unwrap();
    let path: Vec<(&str, bool)> = report
        .outcomes
        .iter()
        .map(|o| {
            (
                o.record.topic.as_str(),
                matches!(o.became, Became::Retrying { .. }),
            )
        })
        .collect();
    assert_eq!(
        path,
        [
            ("kit.stock", true),
            ("kit.stock.retry.1", true),
            ("kit.stock.retry.2", false),
        ]
    );
    assert_eq!(report.outcomes[2].became, Became::Handled);
    assert_eq!(tries.0.load(Ordering::SeqCst), 3);
    assert!(bus.dead_letters("kit.stock").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_undecodable_record_is_dead_lettered_and_the_rest_still_run() {
    let seen = Arc::new(Seen::default());
    let bus = flow_bus(&seen);
    let mut broken = bus
        .bus()
        .encode_event(&WelcomeSent { user_id: 5 }, PublishOptions::default())
        .unwrap();
    broken.payload = b"{not json".to_vec();
    bus.bus().publish_encoded(&broken).await.unwrap();
    let fine: EncodedEvent = bus
        .bus()
        .encode_event(&WelcomeSent { user_id: 6 }, PublishOptions::default())
        .unwrap();
    bus.bus().publish_encoded(&fine).await.unwrap();
    let report = bus.settle().await.unwrap();
    let kinds: Vec<Option<&str>> = report
        .outcomes
        .iter()
        .map(|o| o.dead_letter().map(|d| d.kind))
        .collect();
    assert_eq!(kinds, [Some("incompatible"), None]);
    assert_eq!(*seen.welcomed.lock().unwrap(), [6]);
    assert_eq!(bus.dead_letters("kit.welcomes").await.unwrap().len(), 1);
}

#[tokio::test]
async fn dynamic_handlers_and_dynamic_events_run_in_process() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let bus = TestBus::build(
        Bus::builder(Config::new("kit-service"))
            .only_groups(["kit-gateway"])
            .subscribe_all("kit-gateway", "kit.anything", move |event, _ctx| {
                let sink = sink.clone();
                async move {
                    sink.lock()
                        .unwrap()
                        .push((event.meta.event_type.clone(), event.data));
                    Ok(())
                }
            }),
    )
    .unwrap();
    for (kind, n) in [("order.placed", 1), ("order.paid", 2)] {
        let event = DynamicEvent::new("kit.anything", kind, serde_json::json!({ "n": n }));
        assert!(bus.dispatch_dynamic(&event).await.unwrap().all_handled());
    }
    assert_eq!(
        *got.lock().unwrap(),
        [
            ("order.placed".to_owned(), serde_json::json!({ "n": 1 })),
            ("order.paid".to_owned(), serde_json::json!({ "n": 2 })),
        ]
    );
}

#[tokio::test]
async fn from_env_runs_in_process_unless_asked_for_a_broker() {
    if std::env::var(herald::testing::REAL_VARIABLE).is_ok() {
        return say(
            "from_env_runs_in_process_unless_asked_for_a_broker: skipped, HERALD_TEST_REAL is set",
        );
    }
    let bus =
        TestBus::from_env(Bus::builder(Config::new("kit-service")).only_groups(["kit-mailer"]))
            .await
            .unwrap();
    assert!(!bus.is_real());
}

#[test]
fn a_group_the_binary_does_not_have_is_a_clear_error() {
    let error =
        TestBus::build(Bus::builder(Config::new("kit-service")).only_groups(["nope"])).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no handler runs in consumer group `nope`"),
        "{error}"
    );
}

// --- the same test in process and on a broker ----------------------------------------------------

/// What a flow test sees, in a form both kinds of test bus give alike.
async fn run_flow(bus: &TestBus, seen: &Seen) -> (Vec<(String, String, String)>, usize, usize) {
    let mut steps = Vec::new();
    for user_id in [1, 2] {
        let report = bus
            .dispatch(UserSignedUp {
                user_id,
                email: format!("{user_id}@b.c"),
            })
            .await
            .unwrap();
        steps.extend(report.outcomes.iter().map(|o| {
            (
                o.group.clone(),
                o.event_type().unwrap_or_default().to_owned(),
                format!("{:?}", o.became),
            )
        }));
    }
    steps.sort();
    let mut welcomed = seen.welcomed.lock().unwrap().clone();
    welcomed.sort_unstable();
    assert_eq!(welcomed, [1, 2]);
    (
        steps,
        bus.published::<WelcomeSent>().await.unwrap().len(),
        bus.dead_letters("kit.users").await.unwrap().len(),
    )
}

/// FastStream's `with_real`: the flow test, once in process and once on the test broker (the
/// embedded one, or the real Kafka of `HERALD_TEST_KAFKA`), sees the same outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_test_runs_in_process_and_on_a_broker() {
    let seen = Arc::new(Seen::default());
    let in_process = run_flow(&flow_bus(&seen), &seen).await;

    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let bus = TestBus::with_real(
        kafka
            .builder(Config::new("kit-service"))
            .only_groups(["kit-mailer", "kit-audit"])
            .state(seen.clone()),
    )
    .await
    .unwrap();
    assert!(bus.is_real());
    let on_broker = run_flow(&bus, &seen).await;
    bus.shutdown().await.unwrap();

    let handled =
        |group: &str, kind: &str| (group.to_owned(), kind.to_owned(), "Handled".to_owned());
    assert_eq!(
        in_process.0,
        [
            handled("kit-audit", "welcome.sent"),
            handled("kit-audit", "welcome.sent"),
            handled("kit-mailer", "user.signed.up"),
            handled("kit-mailer", "user.signed.up"),
        ]
    );
    assert_eq!(in_process, on_broker);
    assert_eq!((on_broker.1, on_broker.2), (2, 0));
}

/// On a broker, the report tells a dead-lettered record from the dead-letter topic's headers: the
/// same kind and number of tries as in process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_on_a_broker_is_reported_as_in_process() {
    let kafka = TestKafka::start();
    let tries = Arc::new(Tries::default());
    let bus = TestBus::with_real(
        kafka
            .builder(Config::new("kit-service"))
            .only_groups(["kit-ledger"])
            .state(tries.clone()),
    )
    .await
    .unwrap();
    let report = bus.dispatch(payment(false)).await.unwrap();
    let letters = bus.dead_letters("kit.payments").await.unwrap();
    bus.shutdown().await.unwrap();
    assert_eq!(report.outcomes.len(), 1, "{report:#?}");
    let letter = report.outcomes[0].dead_letter().expect("dead-lettered");
    assert_eq!((letter.kind, letter.attempts), ("retries-exhausted", 3));
    assert!(letter.reason.contains("the ledger is down"), "{letter:?}");
    assert_eq!(tries.0.load(Ordering::SeqCst), 3);
    assert_eq!(letters.len(), 1);
}

#[derive(Command, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[command(reply = Pong, name = "kit.ping")]
pub struct Ping {
    pub n: u64,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct Pong {
    pub n: u64,
}

#[tokio::test]
async fn a_request_on_the_in_process_bus_is_refused_at_once_with_the_way_out() {
    let bus = TestBus::build(Bus::builder(Config::new("kit-service")).only_groups(["kit-mailer"]))
        .unwrap();
    let started = std::time::Instant::now();
    let error = bus.bus().request(Ping { n: 1 }).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.to_string().contains("TestBus::with_real"), "{error}");
}
