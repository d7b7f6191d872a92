//! `#[domain_event]` on an `async fn` over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): after `Ok` the
//! domain event — the `Ok` value itself, or built by `emit` from it and the arguments — is
//! published through the bus scope; an `Err` publishes nothing; a failed publish becomes the
//! function's error; inside a handler the event is caused by the handled one; outside any scope
//! the call panics instead of losing the event.

mod support;

use std::time::Duration;

use herald::prelude::*;
use rdkafka::message::Message;
use support::*;

#[domain_event(aggregate = "domainfn-account", aggregate_id = account_id)]
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct AccountOpened {
    pub account_id: String,
    pub owner: String,
}

/// What the service stores; not an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: String,
    pub balance_cents: u64,
}

/// The service's own error, with a variant for "the event did not go out".
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("owner must not be empty")]
    NoOwner,
    #[error("the account was opened but its event was not published: {0}")]
    Publish(#[from] herald::Error),
}

/// The `Ok` value is the event.
#[domain_event]
async fn record_opening(account_id: &str, owner: &str) -> anyhow::Result<AccountOpened> {
    anyhow::ensure!(!owner.is_empty(), "owner must not be empty");
    Ok(AccountOpened {
        account_id: account_id.to_owned(),
        owner: owner.to_owned(),
    })
}

/// The event is built by `emit` from the `Ok` value and an argument the body only borrowed.
#[domain_event(emit = |account: &Account| AccountOpened {
    account_id: account.id.clone(),
    owner: owner.clone(),
})]
async fn open_account(owner: String, deposit_cents: u64) -> Result<Account, AccountError> {
    if owner.is_empty() {
        return Err(AccountError::NoOwner);
    }
    Ok(Account {
        id: format!("acc-{}", owner.to_lowercase()),
        balance_cents: deposit_cents,
    })
}

/// A command-like event whose handler opens an account.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "domainfn-tests.requests")]
pub struct OpeningRequested {
    pub owner: String,
}

#[handler(group = "domainfn-openers", retries = 0)]
async fn open_requested(event: OpeningRequested) -> Result<(), AccountError> {
    open_account(event.owner, 100).await.map(drop)
}

async fn bus(kafka: &TestKafka, delivery_timeout: Duration) -> Bus {
    kafka
        .builder(
            Config::new("accounts")
                .delivery_timeout(delivery_timeout)
                .commit_interval(Duration::from_millis(100))
                .shutdown_timeout(Duration::from_secs(20)),
        )
        .only_groups(["domainfn-openers"])
        .build()
        .await
        .expect("bus builds")
}

const TOPIC: &str = "domain.domainfn-account.events";

fn opened(message: &rdkafka::message::OwnedMessage) -> AccountOpened {
    serde_json::from_slice(message.payload().expect("a value")).expect("an AccountOpened")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_ok_the_event_is_published_and_the_value_returned_after_err_nothing() {
    let kafka = TestKafka::start();
    let bus = bus(&kafka, Duration::from_secs(10)).await;
    let bootstrap = bus.bootstrap_servers().to_owned();

    let account = herald::scope(&bus, open_account("Ada".into(), 500))
        .await
        .expect("opened");
    assert_eq!(
        account,
        Account {
            id: "acc-ada".into(),
            balance_cents: 500
        }
    );
    let refused = herald::scope(&bus, open_account(String::new(), 1)).await;
    assert!(matches!(refused, Err(AccountError::NoOwner)), "{refused:?}");
    let event = herald::scope(&bus, record_opening("acc-bob", "Bob"))
        .await
        .expect("recorded");
    assert_eq!(event.owner, "Bob", "the Ok value is returned unchanged");
    let failed = herald::scope(&bus, record_opening("acc-none", "")).await;
    assert!(failed.is_err());

    let messages = read_topic(&bootstrap, &kafka.topic(TOPIC), 2);
    let mut events: Vec<AccountOpened> = messages.iter().map(opened).collect();
    events.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    assert_eq!(
        events,
        [
            AccountOpened {
                account_id: "acc-ada".into(),
                owner: "Ada".into()
            },
            AccountOpened {
                account_id: "acc-bob".into(),
                owner: "Bob".into()
            },
        ]
    );
    let ada = messages
        .iter()
        .find(|m| opened(m).account_id == "acc-ada")
        .unwrap();
    assert_eq!(header(ada, "ce_aggregateid").as_deref(), Some("acc-ada"));
    assert_eq!(
        header(ada, "ce_aggregatetype").as_deref(),
        Some("domainfn-account")
    );
    // The two failed calls published nothing: the topic holds exactly two events.
    assert_eq!(message_count(&bootstrap, &kafka.topic(TOPIC)), 2);
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_is_the_functions_error() {
    if !runs_on_embedded_only(
        "a_failed_publish_is_the_functions_error",
        "it takes the broker down with the embedded broker's fault injection",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let bus = bus(&kafka, Duration::from_millis(500)).await;
    let broker = kafka.embedded();
    broker.broker_down().unwrap();
    let result = herald::scope(&bus, open_account("Eve".into(), 1)).await;
    match result {
        Err(AccountError::Publish(error)) => {
            assert!(error.is_retriable(), "a broker outage: {error}")
        }
        other => panic!("expected the publish error, got {other:?}"),
    }
    let recorded = herald::scope(&bus, record_opening("acc-eve", "Eve")).await;
    let error = recorded.expect_err("the event did not go out");
    assert!(
        error.downcast_ref::<herald::Error>().is_some(),
        "anyhow keeps herald's error: {error:#}"
    );
    broker.broker_up().unwrap();
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_handler_the_event_is_caused_by_the_handled_one() {
    let kafka = TestKafka::start();
    let bus = bus(&kafka, Duration::from_secs(10)).await;
    let bootstrap = bus.bootstrap_servers().to_owned();
    bus.start().await.expect("starts");
    bus.publish_with(
        OpeningRequested {
            owner: "Grace".into(),
        },
        PublishOptions::new().correlation_id("onboarding-9"),
    )
    .await
    .expect("published");
    let messages = read_topic(&bootstrap, &kafka.topic(TOPIC), 1);
    let requests = read_topic(&bootstrap, &kafka.topic("domainfn-tests.requests"), 1);
    assert_eq!(opened(&messages[0]).owner, "Grace");
    assert_eq!(
        header(&messages[0], "ce_correlationid").as_deref(),
        Some("onboarding-9")
    );
    assert_eq!(
        header(&messages[0], "ce_causationid"),
        header(&requests[0], "ce_id")
    );
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test]
#[should_panic(expected = "`#[domain_event]` fn `open_account` ran outside a bus scope")]
async fn a_call_outside_any_scope_panics_instead_of_losing_the_event() {
    let _ = open_account("Mallory".into(), 1).await;
}
