//! Handlers registered at run time (`BusBuilder::subscribe`, `subscribe_all`, `handler`): beside
//! a typed `#[handler]` of the same group on the same topic, through one consumer; retried and
//! dead-lettered like typed ones; refused at build when they cannot run. On the embedded broker
//! or the real Kafka of `HERALD_TEST_KAFKA`.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::headers::dlq;
use herald::prelude::*;
use herald::DynamicHandler;
use support::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "mixed.order.placed", topic = "mixed.orders")]
pub struct OrderPlaced {
    #[event(key)]
    pub order: String,
    pub total: u64,
}

/// Who saw what: (handler, event type, order).
#[derive(Default)]
struct Seen(Mutex<Vec<(&'static str, String, String)>>);

impl Seen {
    fn of(&self, who: &str) -> Vec<(String, String)> {
        let seen = self.0.lock().unwrap();
        let mut of: Vec<(String, String)> = seen
            .iter()
            .filter(|(w, _, _)| *w == who)
            .map(|(_, t, o)| (t.clone(), o.clone()))
            .collect();
        of.sort();
        of
    }
}

/// The typed handler of the group.
#[handler(group = "mixed")]
async fn typed(event: OrderPlaced, ctx: &Context) -> Result<(), HandlerError> {
    let seen = ctx.state::<Arc<Seen>>().expect("state");
    seen.0
        .lock()
        .unwrap()
        .push(("typed", "mixed.order.placed".into(), event.order));
    Ok(())
}

fn order_of(event: &Event<serde_json::Value>) -> String {
    event.data["order"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_and_typed_handlers_of_one_group_share_a_topic_and_its_consumer() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let (for_type, for_all) = (seen.clone(), seen.clone());
    let bus = kafka
        .builder(Config::new("mixed-test"))
        .only_groups(["mixed"])
        .state(seen.clone())
        .subscribe(
            "mixed",
            "mixed.orders",
            "mixed.order.cancelled",
            move |event, _ctx| {
                let seen = for_type.clone();
                async move {
                    seen.0.lock().unwrap().push((
                        "cancelled",
                        event.meta.event_type.clone(),
                        order_of(&event),
                    ));
                    Ok(())
                }
            },
        )
        .subscribe_all("mixed", "mixed.orders", move |event, _ctx| {
            let seen = for_all.clone();
            async move {
                // A typed view on demand, for the type it knows.
                if event.meta.event_type == "mixed.order.placed" {
                    let placed: OrderPlaced = event.data_as()?;
                    assert_eq!(placed.total, 12);
                }
                seen.0.lock().unwrap().push((
                    "all",
                    event.meta.event_type.clone(),
                    order_of(&event),
                ));
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    bus.publish(OrderPlaced {
        order: "o1".into(),
        total: 12,
    })
    .await
    .unwrap();
    bus.publish_dynamic(
        &DynamicEvent::new(
            "mixed.orders",
            "mixed.order.cancelled",
            serde_json::json!({ "order": "o1" }),
        )
        .key("o1"),
    )
    .await
    .unwrap();
    bus.publish_dynamic(
        &DynamicEvent::new(
            "mixed.orders",
            "mixed.order.shipped",
            serde_json::json!({ "order": "o2" }),
        )
        .key("o2"),
    )
    .await
    .unwrap();
    bus.start().await.unwrap();
    wait_until("every handler saw its events", || {
        seen.of("all").len() == 3 && seen.of("typed").len() == 1 && seen.of("cancelled").len() == 1
    })
    .await;
    bus.shutdown().await.unwrap();
    let pair = |t: &str, o: &str| (t.to_owned(), o.to_owned());
    assert_eq!(seen.of("typed"), [pair("mixed.order.placed", "o1")]);
    assert_eq!(seen.of("cancelled"), [pair("mixed.order.cancelled", "o1")]);
    assert_eq!(
        seen.of("all"),
        [
            pair("mixed.order.cancelled", "o1"),
            pair("mixed.order.placed", "o1"),
            pair("mixed.order.shipped", "o2"),
        ]
    );
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("mixed"),
        &kafka.topic("mixed.orders"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dynamic_handler_is_retried_then_dead_lettered_like_a_typed_one() {
    let kafka = TestKafka::start();
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let bus = kafka
        .builder(Config::new("mixed-test"))
        .only_groups(["mixed-failing"])
        .handler(
            DynamicHandler::new(
                "mixed-failing",
                "mixed.payments",
                "mixed.payment.received",
                move |_event, _ctx| {
                    let counted = counted.clone();
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        Err(HandlerError::msg("the ledger is down"))
                    }
                },
            )
            .name("post-payment")
            .retries(2)
            .backoff(Duration::from_millis(10), Duration::from_millis(20)),
        )
        .build()
        .await
        .unwrap();
    bus.publish_dynamic(&DynamicEvent::new(
        "mixed.payments",
        "mixed.payment.received",
        serde_json::json!({ "amount": 5 }),
    ))
    .await
    .unwrap();
    bus.start().await.unwrap();
    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("mixed.payments.dlq"),
        1,
    );
    bus.shutdown().await.unwrap();
    let letter = &letters[0];
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "one try and two retries"
    );
    assert_eq!(
        header(letter, dlq::HANDLER).as_deref(),
        Some("post-payment")
    );
    assert_eq!(
        header(letter, dlq::ERROR_KIND).as_deref(),
        Some("retries-exhausted")
    );
    assert_eq!(header(letter, dlq::RETRY_COUNT).as_deref(), Some("3"));
    // The handler's group as declared (the group prefix is the environment's, as for typed ones).
    assert_eq!(
        header(letter, dlq::CONSUMER_GROUP).as_deref(),
        Some("mixed-failing")
    );
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("mixed-failing"),
        &kafka.topic("mixed.payments"),
    );
}

#[tokio::test]
async fn dynamic_handlers_that_cannot_run_are_refused_at_build() {
    let kafka = TestKafka::start();
    let ok = |_event: Event<serde_json::Value>, _ctx: Context| async { Ok(()) };
    let cases: Vec<(DynamicHandler, &str)> = vec![
        (
            DynamicHandler::new("g", "bad topic", "t", ok),
            "topic `bad topic` contains ` `",
        ),
        (
            DynamicHandler::new("g", "orders", " ", ok),
            "event type is empty",
        ),
        (
            DynamicHandler::new("", "orders", "t", ok),
            "consumer group is empty",
        ),
        (
            DynamicHandler::new("g", "orders", "t", ok).policy("nowhere"),
            "nowhere",
        ),
        (
            DynamicHandler::new("g", "orders", "t", ok).concurrency(0),
            "concurrency 0",
        ),
    ];
    for (handler, expected) in cases {
        let error = kafka
            .builder(Config::new("mixed-test"))
            .handler(handler)
            .build()
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
    let error = kafka
        .builder(Config::new("mixed-test"))
        .subscribe("g", "orders", "t", ok)
        .subscribe("g", "orders", "t", ok)
        .build()
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("two handlers are named `orders:t` in group `g`"),
        "{error}"
    );
}
