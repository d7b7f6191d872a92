//! Which broker a bus talks to, and which topics it creates there: the embedded broker only when
//! asked for, and the dead-letter topic of every consumed topic next to the topics themselves
//! (created on the test broker: embedded, or the real Kafka of `HERALD_TEST_KAFKA`).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald::prelude::*;
use herald::{Brokers, EmbeddedBroker, Error};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use support::TestKafka;

/// Consumed by a handler: gets a dead-letter topic.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
#[event(topic = "brokers.shipments")]
pub struct ParcelShipped {
    #[event(key)]
    pub parcel: u64,
}

/// Only published: gets no dead-letter topic.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
#[event(topic = "brokers.audit")]
pub struct AuditNoted {
    #[event(key)]
    pub note: u64,
}

#[handler(group = "brokers-shipping")]
async fn ship(_event: ParcelShipped) -> Result<(), HandlerError> {
    Ok(())
}

/// The topics on the broker the bus talks to, with their partition counts.
async fn topics_on(bus: &Bus) -> BTreeMap<String, usize> {
    let servers = bus.bootstrap_servers().to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .set("allow.auto.create.topics", "false")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_owned(), t.partitions().len()))
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn without_brokers_building_fails_and_says_what_to_set() {
    for config in [
        Config::new("nowhere"),
        Config::from_vars("nowhere", |name| {
            (name == "KAFKA_BOOTSTRAP_SERVERS").then(|| "   ".to_owned())
        })
        .unwrap(),
    ] {
        let err = Bus::new(config).await.unwrap_err();
        let Error::Config(message) = &err else {
            panic!("expected a configuration error, got {err:?}");
        };
        assert!(
            message.contains("KAFKA_BOOTSTRAP_SERVERS") && message.contains("`embedded`"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn embedded_in_the_environment_starts_the_embedded_broker() {
    let config = Config::from_vars("shipping", |name| {
        (name == "KAFKA_BOOTSTRAP_SERVERS").then(|| "Embedded".to_owned())
    })
    .unwrap();
    let bus = Bus::new(config).await.unwrap();
    assert!(bus.config().is_embedded());
    let delivery = bus.publish(AuditNoted { note: 1 }).await.unwrap();
    assert_eq!(delivery.topic, "brokers.audit");
}

#[tokio::test]
async fn a_supplied_embedded_broker_counts_as_asking_for_it() {
    let broker = Arc::new(EmbeddedBroker::start(1).unwrap());
    let bus = Bus::builder(Config::new("shipping"))
        .embedded_broker(broker.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(bus.config().brokers, Brokers::Embedded);
    assert_eq!(bus.bootstrap_servers(), broker.bootstrap_servers());
    assert!(topics_on(&bus).await.contains_key("brokers.shipments"));

    let err = Bus::builder(Config::new("shipping").bootstrap_servers("127.0.0.1:1"))
        .embedded_broker(broker)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn consumed_topics_get_a_dead_letter_topic() {
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(Config::new("shipping").topic_partitions(2))
        .build()
        .await
        .unwrap();
    let topics = topics_on(&bus).await;
    let count = |topic: &str| topics.get(&kafka.topic(topic)).copied();
    assert_eq!(count("brokers.shipments"), Some(2), "{topics:?}");
    assert_eq!(count("brokers.shipments.dlq"), Some(2), "{topics:?}");
    assert_eq!(count("brokers.audit"), Some(2), "{topics:?}");
    assert_eq!(count("brokers.audit.dlq"), None, "{topics:?}");

    let kafka = TestKafka::start();
    let custom = kafka
        .builder(Config::new("shipping").dlq_suffix("-dead"))
        .build()
        .await
        .unwrap();
    let topics = topics_on(&custom).await;
    assert!(
        topics.contains_key(&kafka.topic("brokers.shipments-dead")),
        "{topics:?}"
    );
    assert!(
        !topics.contains_key(&kafka.topic("brokers.shipments.dlq")),
        "{topics:?}"
    );
}

#[tokio::test]
async fn no_topics_are_created_when_auto_creation_is_off() {
    let kafka = TestKafka::start();
    let config = kafka
        .apply(Config::new("shipping"))
        .auto_create_topics(false);
    let mut builder = Bus::builder(config);
    if !TestKafka::is_real() {
        builder = builder.embedded_broker(kafka.embedded().clone());
    }
    let bus = builder.build().await.unwrap();
    let topics = topics_on(&bus).await;
    let ours = kafka.topic("brokers.");
    assert!(!topics.keys().any(|t| t.starts_with(&ours)), "{topics:?}");
}

/// The mock cluster names a controller (id 0) that is none of its brokers, so a DescribeTopics
/// request, which librdkafka sends to the controller, is never answered. A bus pointed at a mock
/// cluster by address (as `herald broker` is used) must not wait out the permission check's 10 s
/// limit for that answer: before the fix every such start took 10 s.
#[tokio::test]
async fn a_bus_on_a_mock_cluster_by_address_starts_without_waiting_for_a_controller() {
    let broker = EmbeddedBroker::start(1).unwrap();
    broker.create_topic("brokers.shipments", 1).unwrap();
    broker.create_topic("brokers.shipments.dlq", 1).unwrap();
    let started = std::time::Instant::now();
    let bus = Bus::builder(Config::new("shipping").bootstrap_servers(broker.bootstrap_servers()))
        .only_groups(["brokers-shipping"])
        .build()
        .await
        .unwrap();
    let took = started.elapsed();
    // A stall bound, not a speed target: the check waits 10 s before it gives up.
    assert!(
        took < Duration::from_secs(5),
        "the start waited {took:?} for an answer the mock cluster never sends"
    );
    assert!(!bus.config().is_embedded());
}
