//! Throughput of publish and consume on the embedded broker, and how much of a backlog the mock
//! cluster keeps (each partition keeps about 5 MiB of message sets and drops older ones silently).
//!
//! `cargo bench -p herald --bench throughput -- [EVENTS] [PARTITIONS] [COMPRESSION]`
//! (defaults: 50000 events, 4 partitions, the embedded default compression); `BENCH_BUFFER=N` sets
//! `max_buffered_per_partition`. Prints numbers; asserts nothing.
//!
//! Measured on the 2-core development machine (release, 100,000 events, 4 partitions, lz4): publish
//! about 155,000 events/s; consume about 13,000 events/s with a 1,000-message partition buffer (every
//! pause and resume makes librdkafka drop and refetch what it had prefetched) and about 160,000 events/s
//! with the default 10,000.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "bench.readings")]
pub struct Reading {
    #[event(key)]
    pub sensor: u64,
    pub seq: u64,
    pub celsius: f64,
    pub site: String,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);

#[handler(group = "bench")]
async fn count(_reading: Reading) -> Result<(), HandlerError> {
    HANDLED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[tokio::main]
async fn main() -> herald::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let events: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let partitions: i32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let mut config = Config::new("bench").embedded().topic_partitions(partitions);
    if let Some(n) = std::env::var("BENCH_BUFFER")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        config.max_buffered_per_partition = n;
    }
    if let Some(compression) = args.get(2) {
        config = config.property("compression.type", compression.as_str());
    }
    let bus = Bus::new(config).await?;

    let started = Instant::now();
    let mut published = 0u64;
    for chunk in (0..events).collect::<Vec<_>>().chunks(5_000) {
        let batch = chunk.iter().map(|&seq| Reading {
            sensor: seq % 64,
            seq,
            celsius: 20.0 + (seq % 100) as f64 / 10.0,
            site: "plant-north".into(),
        });
        published += bus.publish_batch(batch).await?.len() as u64;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    println!(
        "publish: {published} events in {publish_secs:.2} s = {:.0} events/s ({partitions} partitions)",
        published as f64 / publish_secs
    );

    let started = Instant::now();
    bus.start().await?;
    bus.wait_for_assignment(Duration::from_secs(30)).await?;
    let joined = started.elapsed().as_secs_f64();
    let (mut last, mut idle_since) = (0, Instant::now());
    while HANDLED.load(Ordering::Relaxed) < published
        && idle_since.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = HANDLED.load(Ordering::Relaxed);
        if now != last {
            (last, idle_since) = (now, Instant::now());
        }
    }
    let handled = HANDLED.load(Ordering::Relaxed);
    let consume_secs =
        started.elapsed().as_secs_f64() - joined - if handled < published { 5.0 } else { 0.0 };
    bus.shutdown().await?;
    println!(
        "consume: {handled} events in {consume_secs:.2} s after a {joined:.1} s group join = {:.0} events/s",
        handled as f64 / consume_secs.max(0.001)
    );
    if handled < published {
        println!(
            "backlog: the embedded broker dropped {} of {published} events it no longer retained ({:.0} per partition kept)",
            published - handled,
            handled as f64 / partitions as f64
        );
    } else {
        println!("backlog: all {published} events were retained and handled");
    }
    println!("stats: {:?}", bus.stats());
    Ok(())
}
