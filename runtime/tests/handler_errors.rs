//! Handlers returning the errors Rust services usually return (`anyhow`, `String`, boxed errors),
//! over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): the failure is retried and dead-lettered like any
//! other, with its whole cause chain in the dead-letter headers, and a permanent `HandlerError`
//! still skips the retries.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use herald::headers::dlq;
use herald::prelude::*;

use support::*;

/// How often each handler ran.
#[derive(Default)]
struct Attempts {
    anyhow: AtomicU32,
    string: AtomicU32,
    permanent: AtomicU32,
}

fn attempts(ctx: &Context) -> &Arc<Attempts> {
    ctx.state::<Arc<Attempts>>().expect("test state registered")
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "errors.cards")]
pub struct CardCharged {
    #[event(key)]
    pub card: u32,
}

#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for Declined {}

fn charge(_card: u32) -> Result<(), Declined> {
    Err(Declined)
}

#[handler(group = "errors-anyhow", retries = 1, backoff = "10ms")]
async fn settle_with_anyhow(event: CardCharged, ctx: &Context) -> anyhow::Result<()> {
    attempts(ctx).anyhow.fetch_add(1, Ordering::SeqCst);
    charge(event.card).with_context(|| format!("charging card {}", event.card))?;
    Ok(())
}

#[handler(group = "errors-string", retries = 1, backoff = "10ms")]
async fn settle_with_string(event: CardCharged, ctx: &Context) -> Result<(), String> {
    attempts(ctx).string.fetch_add(1, Ordering::SeqCst);
    Err(format!("no ledger for card {}", event.card))
}

#[handler(group = "errors-permanent", retries = 3, backoff = "10ms")]
async fn settle_permanently(event: CardCharged, ctx: &Context) -> Result<(), HandlerError> {
    attempts(ctx).permanent.fetch_add(1, Ordering::SeqCst);
    let boxed: Box<dyn std::error::Error + Send + Sync> = anyhow::Error::new(Declined)
        .context(format!("card {}", event.card))
        .into();
    Err(HandlerError::permanent(HandlerError::from_boxed(boxed)))
}

async fn run_group(
    group: &str,
    attempts: &Arc<Attempts>,
) -> (Bus, Vec<rdkafka::message::OwnedMessage>) {
    let kafka = TestKafka::start();
    let config = Config::new(group)
        .commit_interval(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(20));
    let bus = kafka
        .builder(config)
        .only_groups([group])
        .state(attempts.clone())
        .build()
        .await
        .expect("bus builds");
    bus.publish(CardCharged { card: 7 }).await.unwrap();
    bus.start().await.unwrap();
    let letters = read_topic(bus.bootstrap_servers(), &kafka.topic("errors.cards.dlq"), 1);
    bus.shutdown().await.unwrap();
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group(group),
        &kafka.topic("errors.cards"),
    );
    (bus, letters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anyhow_error_is_retried_and_dead_lettered_with_its_cause_chain() {
    let attempts = Arc::new(Attempts::default());
    let (_bus, letters) = run_group("errors-anyhow", &attempts).await;
    let h = |name| header(&letters[0], name).unwrap_or_default();
    assert_eq!(h(dlq::ERROR_KIND), "retries-exhausted");
    assert_eq!(h(dlq::ERROR_MESSAGE), "charging card 7: card declined");
    assert_eq!(
        attempts.anyhow.load(Ordering::SeqCst),
        2,
        "1 attempt + 1 retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_error_is_a_transient_handler_error() {
    let attempts = Arc::new(Attempts::default());
    let (_bus, letters) = run_group("errors-string", &attempts).await;
    let h = |name| header(&letters[0], name).unwrap_or_default();
    assert_eq!(h(dlq::ERROR_KIND), "retries-exhausted");
    assert_eq!(h(dlq::ERROR_MESSAGE), "no ledger for card 7");
    assert_eq!(
        attempts.string.load(Ordering::SeqCst),
        2,
        "1 attempt + 1 retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_handler_error_over_a_boxed_anyhow_error_is_not_retried() {
    let attempts = Arc::new(Attempts::default());
    let (_bus, letters) = run_group("errors-permanent", &attempts).await;
    let h = |name| header(&letters[0], name).unwrap_or_default();
    assert_eq!(h(dlq::ERROR_KIND), "permanent");
    assert_eq!(h(dlq::ERROR_MESSAGE), "card 7: card declined");
    assert_eq!(attempts.permanent.load(Ordering::SeqCst), 1, "no retry");
}
