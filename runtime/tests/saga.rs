//! Saga metadata over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): `publish_saga_event` puts the saga's
//! id, type and step in `ce_sagaid`/`ce_sagatype`/`ce_sagastep`; a handler reads them back with
//! `Metadata::saga`; what it publishes through its `Context` stays in the saga (with its own step,
//! not the handled one's) unless it names another saga; events outside a saga carry none.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::prelude::*;
use herald::Saga;
use support::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "saga-tests.requests")]
pub struct TransferRequested {
    pub transfer_id: String,
    /// Publish the follow-up in a new saga instead of continuing this one.
    pub split: bool,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "saga-tests.debits")]
pub struct AccountDebited {
    pub transfer_id: String,
}

/// What the handler saw: (saga, step) of each handled request.
#[derive(Default)]
struct Seen(Mutex<Vec<(Option<Saga>, Option<String>)>>);

#[handler(group = "saga-debits", retries = 0)]
async fn debit(event: Event<TransferRequested>, ctx: &Context) -> Result<(), HandlerError> {
    let seen = ctx.state::<Arc<Seen>>().expect("state");
    seen.0
        .lock()
        .unwrap()
        .push((event.meta.saga(), event.meta.saga_step().map(str::to_owned)));
    let options = if event.data.split {
        Saga::new("other-saga", "refunds").step("refund-started")
    } else {
        PublishOptions::new().saga_step("account-debited")
    };
    ctx.publish_with(
        AccountDebited {
            transfer_id: event.data.transfer_id,
        },
        options,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_metadata_travels_with_its_events_and_through_handlers() {
    let kafka = TestKafka::start();
    let seen = Arc::new(Seen::default());
    let bus = kafka
        .builder(
            Config::new("transfers")
                .commit_interval(Duration::from_millis(100))
                .shutdown_timeout(Duration::from_secs(20)),
        )
        .only_groups(["saga-debits"])
        .state(seen.clone())
        .build()
        .await
        .expect("bus builds");
    let bootstrap = bus.bootstrap_servers().to_owned();
    bus.start().await.expect("starts");

    let saga = Saga::start("money-transfer");
    bus.publish_saga_event(
        TransferRequested {
            transfer_id: "t-1".into(),
            split: false,
        },
        &saga,
        "transfer-requested",
    )
    .await
    .expect("published");
    bus.publish_saga_event(
        TransferRequested {
            transfer_id: "t-2".into(),
            split: true,
        },
        &saga,
        "transfer-requested",
    )
    .await
    .expect("published");
    bus.publish(TransferRequested {
        transfer_id: "t-3".into(),
        split: false,
    })
    .await
    .expect("published");

    let requests = read_topic(&bootstrap, &kafka.topic("saga-tests.requests"), 3);
    let debits = read_topic(&bootstrap, &kafka.topic("saga-tests.debits"), 3);
    let by_transfer = |messages: &[rdkafka::message::OwnedMessage], id: &str| {
        messages
            .iter()
            .find(|m| {
                use rdkafka::message::Message;
                let value: serde_json::Value =
                    serde_json::from_slice(m.payload().unwrap()).unwrap();
                value["transfer_id"] == id
            })
            .cloned()
            .expect("the transfer's message")
    };
    let first = by_transfer(&requests, "t-1");
    assert_eq!(header(&first, "ce_sagaid"), Some(saga.id.clone()));
    assert_eq!(
        header(&first, "ce_sagatype").as_deref(),
        Some("money-transfer")
    );
    assert_eq!(
        header(&first, "ce_sagastep").as_deref(),
        Some("transfer-requested")
    );

    // Continued: same saga, the handler's own step.
    let continued = by_transfer(&debits, "t-1");
    assert_eq!(header(&continued, "ce_sagaid"), Some(saga.id.clone()));
    assert_eq!(
        header(&continued, "ce_sagatype").as_deref(),
        Some("money-transfer")
    );
    assert_eq!(
        header(&continued, "ce_sagastep").as_deref(),
        Some("account-debited")
    );
    // Another saga named by the handler wins over the carried one.
    let split = by_transfer(&debits, "t-2");
    assert_eq!(header(&split, "ce_sagaid").as_deref(), Some("other-saga"));
    assert_eq!(header(&split, "ce_sagatype").as_deref(), Some("refunds"));
    assert_eq!(
        header(&split, "ce_sagastep").as_deref(),
        Some("refund-started")
    );
    // Outside a saga nothing is carried; only the step the handler named.
    let plain = by_transfer(&debits, "t-3");
    assert_eq!(header(&plain, "ce_sagaid"), None);
    assert_eq!(
        header(&plain, "ce_sagastep").as_deref(),
        Some("account-debited")
    );

    let mut seen = seen.0.lock().unwrap().clone();
    seen.sort_by_key(|(saga, _)| saga.is_none());
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0],
        (Some(saga.clone()), Some("transfer-requested".into()))
    );
    assert_eq!(
        seen[1],
        (Some(saga.clone()), Some("transfer-requested".into()))
    );
    assert_eq!(seen[2], (None, None));
    bus.shutdown().await.expect("shutdown");
}
