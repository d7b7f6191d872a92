//! Events published at run time (`Bus::publish_dynamic`): topic and type chosen at the call, the
//! envelope of typed events, read by a typed `#[handler]` of that type; mixed-type batches in
//! order; a typed event sent to a topic chosen at the call; bad events refused before anything is
//! sent. On the embedded broker or the real Kafka of `HERALD_TEST_KAFKA`.

mod support;

use std::sync::{Arc, Mutex};

use herald::headers;
use herald::prelude::*;
use rdkafka::message::Message;
use support::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "dyn.user.created", topic = "dynamic.users")]
pub struct UserCreated {
    #[event(key)]
    pub user: String,
    pub email: String,
}

/// What the handler saw: each user and the id of its event.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, String)>>);

/// Records the user and welcomes it with a run-time event caused by the handled one.
#[handler(group = "dynamic-users")]
async fn welcome(event: UserCreated, ctx: &Context) -> Result<(), HandlerError> {
    let seen = ctx.state::<Arc<Seen>>().expect("state");
    seen.0
        .lock()
        .unwrap()
        .push((event.user.clone(), ctx.metadata().id.clone()));
    let welcome = DynamicEvent::new(
        "dynamic.welcomes",
        "dyn.user.welcomed",
        serde_json::json!({ "user": event.user }),
    )
    .key(event.user.clone());
    ctx.publish_dynamic(&welcome).await?;
    Ok(())
}

fn config() -> Config {
    Config::new("dynamic-test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_event_reaches_the_typed_handler_of_its_type_with_the_full_envelope() {
    let kafka = TestKafka::start();
    kafka.create_topic(&kafka.topic("dynamic.welcomes"), 1);
    let seen = Arc::new(Seen::default());
    let bus = kafka
        .builder(config())
        .only_groups(["dynamic-users"])
        .state(seen.clone())
        .build()
        .await
        .unwrap();
    let event = DynamicEvent::new(
        "dynamic.users",
        "dyn.user.created",
        serde_json::json!({ "user": "u1", "email": "u1@example.com" }),
    )
    .key("u1");
    let options = PublishOptions::new()
        .correlation_id("flow-7")
        .extension("tenant", "acme");
    let delivery = bus.publish_dynamic_with(&event, options).await.unwrap();
    bus.start().await.unwrap();
    wait_until("the typed handler read the dynamic event", || {
        !seen.0.lock().unwrap().is_empty()
    })
    .await;

    let records = read_topic(bus.bootstrap_servers(), &kafka.topic("dynamic.users"), 1);
    let record = &records[0];
    assert_eq!(record.key(), Some(&b"u1"[..]));
    let value: serde_json::Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
    assert_eq!(value["email"], "u1@example.com");
    assert_eq!(
        header(record, headers::TYPE).as_deref(),
        Some("dyn.user.created")
    );
    assert_eq!(
        header(record, headers::SOURCE).as_deref(),
        Some("dynamic-test")
    );
    assert_eq!(
        header(record, headers::SPEC_VERSION).as_deref(),
        Some("1.0")
    );
    assert_eq!(
        header(record, headers::SCHEMA_VERSION).as_deref(),
        Some("1")
    );
    assert_eq!(
        header(record, headers::CORRELATION_ID).as_deref(),
        Some("flow-7")
    );
    assert_eq!(header(record, "ce_tenant").as_deref(), Some("acme"));
    assert_eq!(
        header(record, headers::ID).as_deref(),
        Some(delivery.event_id.as_str())
    );
    assert!(header(record, headers::TIME).is_some());

    let welcomes = read_topic(bus.bootstrap_servers(), &kafka.topic("dynamic.welcomes"), 1);
    let welcome = &welcomes[0];
    assert_eq!(
        header(welcome, headers::TYPE).as_deref(),
        Some("dyn.user.welcomed")
    );
    assert_eq!(
        header(welcome, headers::CAUSATION_ID).as_deref(),
        Some(delivery.event_id.as_str()),
        "caused by the handled event"
    );
    assert_eq!(
        header(welcome, headers::CORRELATION_ID).as_deref(),
        Some("flow-7")
    );
    assert_eq!(
        seen.0.lock().unwrap().clone(),
        [("u1".to_owned(), delivery.event_id.clone())]
    );
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_mixed_types_lands_in_its_order() {
    let kafka = TestKafka::start();
    kafka.create_topic(&kafka.topic("dynamic.audit"), 1);
    let bus = kafka
        .builder(config())
        .only_groups(["dynamic-users"])
        .build()
        .await
        .unwrap();
    let events: Vec<DynamicEvent> = (0..30)
        .map(|n| {
            let kind = ["created", "updated", "deleted"][n % 3];
            DynamicEvent::new(
                "dynamic.audit",
                format!("audit.{kind}"),
                serde_json::json!({ "n": n }),
            )
            .key("one-key")
            .version(1 + (n % 2) as u32)
        })
        .collect();
    let deliveries = bus.publish_dynamic_batch(&events).await.unwrap();
    assert_eq!(deliveries.len(), 30);
    let records = read_topic(bus.bootstrap_servers(), &kafka.topic("dynamic.audit"), 30);
    let mut by_offset: Vec<_> = records.iter().collect();
    by_offset.sort_by_key(|r| r.offset());
    for (n, record) in by_offset.iter().enumerate() {
        let value: serde_json::Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
        assert_eq!(value["n"], n, "out of order at {n}");
        assert_eq!(header(record, headers::TYPE).unwrap(), events[n].event_type);
        assert_eq!(
            header(record, headers::SCHEMA_VERSION).unwrap(),
            events[n].version.to_string()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_event_goes_to_the_topic_chosen_at_the_call() {
    let kafka = TestKafka::start();
    kafka.create_topic(&kafka.topic("dynamic.users.eu"), 1);
    let bus = kafka
        .builder(config())
        .only_groups(["dynamic-users"])
        .build()
        .await
        .unwrap();
    let user = UserCreated {
        user: "u2".into(),
        email: "u2@example.eu".into(),
    };
    bus.publish_with(user, PublishOptions::new().topic("dynamic.users.eu"))
        .await
        .unwrap();
    let records = read_topic(bus.bootstrap_servers(), &kafka.topic("dynamic.users.eu"), 1);
    assert_eq!(
        header(&records[0], headers::TYPE).as_deref(),
        Some("dyn.user.created")
    );
    assert_eq!(records[0].key(), Some(&b"u2"[..]));
    assert_eq!(
        bus.stats().events_published,
        1,
        "one event, to the chosen topic only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_dynamic_events_are_refused_before_anything_is_sent() {
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(config())
        .only_groups(["dynamic-users"])
        .build()
        .await
        .unwrap();
    let good = DynamicEvent::new("dynamic.audit", "audit.created", serde_json::json!({}));
    let cases = [
        (
            DynamicEvent::new("user events", "user.created", serde_json::json!({})),
            "contains ` `",
        ),
        (
            DynamicEvent::new("dynamic.audit", "", serde_json::json!({})),
            "event type is empty",
        ),
        (good.clone().version(0), "count from 1"),
    ];
    for (event, expected) in &cases {
        let error = bus.publish_dynamic(event).await.unwrap_err();
        assert!(matches!(error, herald::Error::Config(_)), "{error:?}");
        assert!(error.to_string().contains(expected), "{error}");
        let batch = bus
            .publish_dynamic_batch(&[good.clone(), event.clone()])
            .await
            .unwrap_err();
        assert!(batch.to_string().contains(expected), "{batch}");
    }
    let error = bus
        .publish_with(
            UserCreated {
                user: "u".into(),
                email: "e".into(),
            },
            PublishOptions::new().topic("bad/topic"),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("contains `/`"), "{error}");
    assert_eq!(bus.stats().events_published, 0, "nothing was sent");
}
