//! Structured content mode (`Config::content_mode(ContentMode::Structured)`, `KAFKA_CONTENT_MODE`)
//! over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): what a structured
//! publisher writes (one `content-type` header, the whole event in the value), that typed handlers
//! read it beside binary events in one group, that a failing one is dead-lettered as written, and
//! that a structured command gets its reply.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use herald::headers::dlq;
use herald::prelude::*;
use herald::ContentMode;
use rdkafka::message::Message;
use support::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "modes.signups")]
pub struct SignedUp {
    #[event(key)]
    pub user: String,
    /// `99`: the handler fails for good.
    pub n: u64,
}

/// What `signed_up` saw of one event: the data's `n`, the event's id, correlation id and schema
/// version.
type Seen = (u64, String, Option<String>, Option<u32>);
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

#[handler(group = "modes")]
async fn signed_up(event: Event<SignedUp>) -> Result<(), HandlerError> {
    if event.data.n == 99 {
        return Err(HandlerError::permanent(HandlerError::msg("poison")));
    }
    SEEN.lock().unwrap().push((
        event.data.n,
        event.meta.id.clone(),
        event.meta.correlation_id.clone(),
        event.meta.schema_version,
    ));
    Ok(())
}

#[derive(Command, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[command(reply = String, name = "modes.greet", timeout = "10s")]
pub struct Greet {
    pub name: String,
}

#[handler(group = "modes-commands")]
async fn greet(command: Greet) -> Result<String, HandlerError> {
    Ok(format!("hello, {}", command.name))
}

fn config(service: &str, mode: ContentMode) -> Config {
    Config::new(service)
        .content_mode(mode)
        .commit_interval(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_events_are_one_header_and_one_object_read_beside_binary_ones() {
    let kafka = TestKafka::start();
    let structured = kafka
        .builder(config("modes", ContentMode::Structured))
        .only_groups(["modes"])
        .build()
        .await
        .unwrap();
    let binary = kafka
        .builder(config("modes-binary", ContentMode::Binary))
        .build()
        .await
        .unwrap();
    let signup = |n| SignedUp {
        user: format!("u{n}"),
        n,
    };
    let first = structured.publish(signup(1)).await.unwrap();
    let second = binary.publish(signup(2)).await.unwrap();
    structured.publish(signup(99)).await.unwrap();
    structured.start().await.unwrap();

    // On the wire: the structured records carry one header and the whole event.
    let records = read_topic(kafka.bootstrap(), &kafka.topic("modes.signups"), 3);
    let by_n = |n: u64| {
        records
            .iter()
            .find(|r| {
                let value: serde_json::Value =
                    serde_json::from_slice(r.payload().unwrap()).unwrap();
                value["n"] == n || value["data"]["n"] == n
            })
            .unwrap()
    };
    let written = by_n(1);
    assert_eq!(
        all_headers(written),
        [(
            "content-type".to_owned(),
            b"application/cloudevents+json".to_vec()
        )]
    );
    assert_eq!(written.key(), Some(&b"u1"[..]));
    let value: serde_json::Value = serde_json::from_slice(written.payload().unwrap()).unwrap();
    assert_eq!(value["specversion"], "1.0");
    assert_eq!(value["id"], first.event_id.as_str());
    assert_eq!(value["type"], <SignedUp as HeraldEvent>::EVENT_TYPE);
    assert_eq!(value["source"], "modes");
    assert_eq!(value["datacontenttype"], "application/json");
    assert_eq!(value["data"], serde_json::json!({ "user": "u1", "n": 1 }));
    assert_eq!(header(by_n(2), "ce_id"), Some(second.event_id.clone()));

    // Both read by one typed handler, with their attributes.
    // (The other tests of this file run the same handler at the same time, with other `n`s.)
    let mine = || -> Vec<Seen> {
        let mut seen: Vec<Seen> = SEEN
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.0 <= 2)
            .cloned()
            .collect();
        seen.sort();
        seen
    };
    wait_until("both events handled", || mine().len() >= 2).await;
    let seen = mine();
    assert_eq!(
        seen,
        [
            (1, first.event_id.clone(), Some(first.event_id), Some(1)),
            (2, second.event_id.clone(), Some(second.event_id), Some(1)),
        ]
    );

    // The poison one is dead-lettered as it was written, with the failure in headers.
    let letters = read_topic(kafka.bootstrap(), &kafka.topic("modes.signups.dlq"), 1);
    assert_eq!(
        header(&letters[0], "content-type").as_deref(),
        Some("application/cloudevents+json")
    );
    assert_eq!(
        header(&letters[0], dlq::ERROR_KIND).as_deref(),
        Some("permanent")
    );
    let letter: serde_json::Value = serde_json::from_slice(letters[0].payload().unwrap()).unwrap();
    assert_eq!(letter["data"]["n"], 99);
    structured.shutdown().await.unwrap();
    assert_all_committed(
        kafka.bootstrap(),
        &kafka.group("modes"),
        &kafka.topic("modes.signups"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_structured_command_gets_its_reply() {
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(config("greeter", ContentMode::Structured))
        .only_groups(["modes-commands"])
        .build()
        .await
        .unwrap();
    bus.start().await.unwrap();
    bus.wait_for_assignment(WAIT).await.unwrap();
    bus.start_replies().await.unwrap();
    let reply = bus.request(Greet { name: "Ada".into() }).await.unwrap();
    assert_eq!(reply, "hello, Ada");
    let commands = read_topic(kafka.bootstrap(), &kafka.topic("modes.commands"), 1);
    let command: serde_json::Value =
        serde_json::from_slice(commands[0].payload().unwrap()).unwrap();
    assert_eq!(command["replyto"], kafka.topic("greeter.replies"));
    assert_eq!(command["data"]["name"], "Ada");
    bus.shutdown().await.unwrap();
}

/// The in-process test bus stores what a structured bus writes, and runs its handlers on it.
#[tokio::test]
async fn the_test_bus_keeps_structured_records_and_reads_them() {
    let bus = herald::testing::TestBus::build(
        Bus::builder(config("modes", ContentMode::Structured)).only_groups(["modes"]),
    )
    .unwrap();
    let report = bus
        .dispatch(SignedUp {
            user: "u7".into(),
            n: 7,
        })
        .await
        .unwrap();
    assert!(report.all_handled());
    assert_eq!(
        report.outcomes[0].event_type(),
        Some(<SignedUp as HeraldEvent>::EVENT_TYPE)
    );
    let records = bus.records("modes.signups").await.unwrap();
    assert_eq!(records.len(), 1);
    let value: serde_json::Value =
        serde_json::from_slice(records[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(value["data"]["n"], 7);
    assert_eq!(
        records[0].headers,
        [(
            "content-type".to_owned(),
            Some(b"application/cloudevents+json".to_vec())
        )]
    );
    let published = bus.published::<SignedUp>().await.unwrap();
    assert_eq!(published[0].data.user, "u7");
    assert!(SEEN.lock().unwrap().iter().any(|seen| seen.0 == 7));
}

/// An event published at run time is written in the bus's content mode too, and read back as the
/// typed event of its type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_event_is_written_structured_and_read_as_its_type() {
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(config("modes-dynamic", ContentMode::Structured))
        .build()
        .await
        .unwrap();
    let event = herald::DynamicEvent::new(
        "modes.dynamic",
        <SignedUp as HeraldEvent>::EVENT_TYPE,
        serde_json::json!({ "user": "u5", "n": 5 }),
    );
    let delivery = bus.publish_dynamic(&event).await.unwrap();
    let records = read_topic(kafka.bootstrap(), &kafka.topic("modes.dynamic"), 1);
    assert_eq!(
        header(&records[0], "content-type").as_deref(),
        Some("application/cloudevents+json")
    );
    assert_eq!(header(&records[0], "ce_id"), None);
    let value: serde_json::Value = serde_json::from_slice(records[0].payload().unwrap()).unwrap();
    assert_eq!(value["id"], delivery.event_id.as_str());
    assert_eq!(value["type"], <SignedUp as HeraldEvent>::EVENT_TYPE);
    assert_eq!(value["data"], serde_json::json!({ "user": "u5", "n": 5 }));
    bus.shutdown().await.unwrap();
}
