//! `#[domain_event]` and topic naming over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): a domain event
//! goes to `domain.{aggregate}.events` keyed by its aggregate id, with the aggregate's type and id
//! in the CloudEvents headers; an integration event's `aggregate_id` field reaches
//! `ce_aggregateid`; and a topic prefix reaches every topic herald derives — published, consumed,
//! created and dead-lettered.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::headers::dlq;
use herald::prelude::*;
use rdkafka::message::Message;
use support::*;

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "domain-tests.invoices")]
pub struct InvoiceIssued {
    pub aggregate_id: u64,
    pub total_cents: u64,
}

/// What the handler saw of one event: (user id, `ce_aggregateid`, `ce_aggregatetype`, topic).
type Sighting = (String, Option<String>, Option<String>, String);

/// What the handler saw.
#[derive(Default)]
struct Seen(Mutex<Vec<Sighting>>);

#[handler(group = "domain-users", retries = 0)]
async fn welcome(event: Event<UserRegistered>, ctx: &Context) -> Result<(), HandlerError> {
    let seen = ctx.state::<Arc<Seen>>().expect("test state registered");
    let topic = event
        .meta
        .position
        .as_ref()
        .map(|p| p.topic.clone())
        .unwrap_or_default();
    seen.0.lock().unwrap().push((
        event.data.user_id.clone(),
        event.meta.aggregate_id.clone(),
        event.meta.aggregate_type.clone(),
        topic,
    ));
    if event.data.email.is_empty() {
        return Err(HandlerError::permanent(HandlerError::msg("no email")));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefixed_domain_event_is_published_consumed_and_dead_lettered_under_the_prefix() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let config = Config::new("users")
        .topic_prefix("staging")
        .commit_interval(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(20));
    let bus = kafka
        .builder(config)
        .only_groups(["domain-users"])
        .state(seen.clone())
        .build()
        .await
        .expect("bus builds");
    let ok = bus
        .publish(UserRegistered {
            user_id: "u-1".into(),
            email: "a@b.c".into(),
        })
        .await
        .unwrap();
    assert_eq!(ok.topic, kafka.topic("staging.domain.user.events"));
    bus.publish(UserRegistered {
        user_id: "u-2".into(),
        email: String::new(),
    })
    .await
    .unwrap();
    bus.start().await.unwrap();
    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("staging.domain.user.events.dlq"),
        1,
    );
    wait_until("both events were handled", || {
        seen.0.lock().unwrap().len() == 2
    })
    .await;
    bus.shutdown().await.unwrap();

    let mut seen = seen.0.lock().unwrap().clone();
    seen.sort();
    let topic = kafka.topic("staging.domain.user.events");
    assert_eq!(
        seen,
        [
            (
                "u-1".into(),
                Some("u-1".into()),
                Some("user".into()),
                topic.clone()
            ),
            (
                "u-2".into(),
                Some("u-2".into()),
                Some("user".into()),
                topic.clone()
            ),
        ]
    );
    // On the wire: keyed by the aggregate id, aggregate type and id in the CloudEvents headers.
    let records = read_topic(bus.bootstrap_servers(), &topic, 2);
    for record in &records {
        let key = String::from_utf8_lossy(record.key().unwrap()).into_owned();
        assert_eq!(header(record, "ce_aggregateid"), Some(key));
        assert_eq!(header(record, "ce_aggregatetype").as_deref(), Some("user"));
        assert_eq!(
            header(record, "ce_type").as_deref(),
            Some("user.registered")
        );
    }
    assert_eq!(
        header(&letters[0], "ce_aggregateid").as_deref(),
        Some("u-2")
    );
    assert_eq!(
        header(&letters[0], dlq::ORIGINAL_TOPIC).as_deref(),
        Some(topic.as_str())
    );
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("domain-users"),
        &topic,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_events_aggregate_id_field_reaches_ce_aggregateid() {
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(Config::new("billing"))
        .only_groups(["domain-users"])
        .build()
        .await
        .expect("bus builds");
    bus.publish(InvoiceIssued {
        aggregate_id: 42,
        total_cents: 990,
    })
    .await
    .unwrap();
    // An explicit aggregate id wins over the field.
    bus.publish_with(
        InvoiceIssued {
            aggregate_id: 43,
            total_cents: 10,
        },
        PublishOptions {
            aggregate_id: Some("override".into()),
            ..PublishOptions::default()
        },
    )
    .await
    .unwrap();
    let records = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("domain-tests.invoices"),
        2,
    );
    let mut ids: Vec<_> = records
        .iter()
        .map(|r| (header(r, "ce_aggregateid"), header(r, "ce_aggregatetype")))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [(Some("42".into()), None), (Some("override".into()), None)]
    );
}

#[test]
fn seed_000_topic_conventions() {
    assert_eq!(herald::naming::domain_events("user"), UserRegistered::TOPIC);
    assert_eq!(
        herald::naming::service_events("billing"),
        "service.billing.events"
    );
    assert_eq!(
        herald::naming::integration_events("crm"),
        "integration.crm.events"
    );
    assert_eq!(UserRegistered::AGGREGATE_TYPE, Some("user"));
}

#[domain_event(aggregate = "cart", aggregate_id = cart_id, aggregate_version = revision)]
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct ItemAdded {
    pub cart_id: String,
    pub revision: u32,
    pub sku: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_events_aggregate_version_field_reaches_ce_aggregateversion() {
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(Config::new("carts"))
        .only_groups(["domain-users"])
        .build()
        .await
        .expect("bus builds");
    for (revision, sku) in [(1, "apple"), (2, "pear")] {
        bus.publish(ItemAdded {
            cart_id: "c-1".into(),
            revision,
            sku: sku.into(),
        })
        .await
        .unwrap();
    }
    // An explicit version wins over the field.
    bus.publish_with(
        ItemAdded {
            cart_id: "c-2".into(),
            revision: 1,
            sku: "fig".into(),
        },
        PublishOptions::new().aggregate("c-2", "cart", Some(7)),
    )
    .await
    .unwrap();
    let records = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("domain.cart.events"),
        3,
    );
    let mut seen: Vec<_> = records
        .iter()
        .map(|r| {
            (
                header(r, "ce_aggregateid").unwrap_or_default(),
                header(r, "ce_aggregatetype").unwrap_or_default(),
                header(r, "ce_aggregateversion").unwrap_or_default(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String, String)> = [
        ("c-1", "cart", "1"),
        ("c-1", "cart", "2"),
        ("c-2", "cart", "7"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(seen, expected);
    bus.shutdown().await.expect("shutdown");
}
