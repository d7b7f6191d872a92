//! Per-key concurrency inside a partition (`#[handler(concurrency = N)]`, `docs/concurrency.md`):
//! 2,000 events over 16 keys on one partition, a handler that takes 5 ms (waiting, as on a
//! database), run with concurrency 1, 8 and 16 on the embedded broker. Prints events/s of each
//! and the speed-up over concurrency 1; asserts nothing.
//!
//! `cargo bench -p herald --bench keyed -- [EVENTS]` (default 2,000).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::prelude::*;
use herald::EmbeddedBroker;

const KEYS: u64 = 16;
const HANDLER_TAKES: Duration = Duration::from_millis(5);

/// Per run (concurrency 1, 8, 16): events handled, and when the first and last were (µs since
/// the start of the benchmark).
static HANDLED: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static FIRST_US: [AtomicU64; 3] = [const { AtomicU64::new(u64::MAX) }; 3];
static LAST_US: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

async fn handle(run: usize) -> Result<(), HandlerError> {
    let started = now_us();
    FIRST_US[run].fetch_min(started, Ordering::Relaxed);
    tokio::time::sleep(HANDLER_TAKES).await;
    LAST_US[run].fetch_max(now_us(), Ordering::Relaxed);
    HANDLED[run].fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "bench.keyed-1")]
pub struct PostedOne {
    #[event(key)]
    pub account: u64,
    pub seq: u64,
}

#[handler(group = "bench-keyed-1", concurrency = 1)]
async fn post_one(event: PostedOne) -> Result<(), HandlerError> {
    std::hint::black_box(event.seq);
    handle(0).await
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "bench.keyed-8")]
pub struct PostedEight {
    #[event(key)]
    pub account: u64,
    pub seq: u64,
}

#[handler(group = "bench-keyed-8", concurrency = 8)]
async fn post_eight(event: PostedEight) -> Result<(), HandlerError> {
    std::hint::black_box(event.seq);
    handle(1).await
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "bench.keyed-16")]
pub struct PostedSixteen {
    #[event(key)]
    pub account: u64,
    pub seq: u64,
}

#[handler(group = "bench-keyed-16", concurrency = 16)]
async fn post_sixteen(event: PostedSixteen) -> Result<(), HandlerError> {
    std::hint::black_box(event.seq);
    handle(2).await
}

/// Publishes `events` over [`KEYS`] keys, starts a bus of `group` alone and waits until all are
/// handled; returns events/s from the first handler start to the last handler end.
async fn run<E: HeraldEvent + Clone>(
    broker: &Arc<EmbeddedBroker>,
    group: &str,
    run: usize,
    events: u64,
    make: impl Fn(u64, u64) -> E,
) -> f64 {
    let config = Config::new("bench-keyed").topic_partitions(1);
    let bus = Bus::builder(config)
        .embedded_broker(broker.clone())
        .only_groups([group])
        .build()
        .await
        .expect("bus builds");
    bus.publish_batch((0..events).map(|seq| make(seq % KEYS, seq)))
        .await
        .expect("publish");
    bus.start().await.expect("bus starts");
    let deadline = Instant::now() + Duration::from_secs(600);
    while HANDLED[run].load(Ordering::Relaxed) < events {
        assert!(Instant::now() < deadline, "{group} did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bus.shutdown().await.expect("shutdown");
    let (first, last) = (
        FIRST_US[run].load(Ordering::Relaxed),
        LAST_US[run].load(Ordering::Relaxed),
    );
    events as f64 / ((last - first) as f64 / 1e6)
}

#[tokio::main]
async fn main() {
    let events: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000);
    now_us();
    let broker = Arc::new(EmbeddedBroker::start(1).expect("embedded broker"));
    println!(
        "{events} events over {KEYS} keys on one partition, a {} ms handler, embedded broker",
        HANDLER_TAKES.as_millis()
    );
    let one = run(&broker, "bench-keyed-1", 0, events, |account, seq| {
        PostedOne { account, seq }
    })
    .await;
    let eight = run(&broker, "bench-keyed-8", 1, events, |account, seq| {
        PostedEight { account, seq }
    })
    .await;
    let sixteen = run(&broker, "bench-keyed-16", 2, events, |account, seq| {
        PostedSixteen { account, seq }
    })
    .await;
    println!(
        "{:>12}  {:>10}  {:>9}",
        "concurrency", "events/s", "speed-up"
    );
    for (concurrency, rate) in [(1, one), (8, eight), (16, sixteen)] {
        println!("{concurrency:>12}  {rate:>10.0}  {:>8.2}x", rate / one);
    }
}
