//! Publishing more than the producer's queue holds: EVENTS publishes at once with librdkafka's queue
//! bounded to QUEUE messages (`queue.buffering.max.messages`), so most of them wait for room.
//!
//! `cargo bench -p herald --bench backpressure -- [EVENTS] [QUEUE]` (defaults 200000 and 10000).
//! The embedded broker runs in the process (its CPU counted with herald's) unless
//! `KAFKA_BOOTSTRAP_SERVERS` names brokers (a real Kafka, or `herald broker`). Prints events/s,
//! CPU µs an event and the peak RSS; asserts nothing.
//!
//! Measured 2026-12-06 (2 cores, release, 200,000 publishes, Kafka 4.1.1 single node out of the
//! process): queue of 100,000 (librdkafka's default) 62.8k events/s, 16.6 µs CPU an event, peak RSS
//! 184 MB; queue of 10,000 71.5k/s, 15.8 µs, 203 MB; queue of 1,000 79.4k/s, 16.1 µs, 341 MB. A
//! publish the full queue refuses retries every 2 ms on its own timer. Waiting in turn instead (one
//! retrying, the rest queued in arrival order on a fair lock) was tried and measured: no faster at
//! these sizes (62.9–73.4k/s), up to 1.7× the peak RSS, and half the throughput with a queue of 100
//! on the embedded broker (25k against 50k events/s); it was not kept.

use std::time::Instant;

use herald::prelude::*;

mod support;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "bench.backpressure")]
pub struct Reading {
    #[event(key)]
    pub sensor: u64,
    pub seq: u64,
    pub celsius: f64,
    pub site: String,
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> herald::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(200_000);
    let queue = args.get(1).copied().unwrap_or(10_000);
    let servers = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.trim().is_empty() && s != "embedded");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut config = Config::new("bench-backpressure")
        .topic_partitions(4)
        .auto_create_topics(true)
        .topic_prefix(format!("bp{secs}"))
        .property("queue.buffering.max.messages", queue.to_string());
    config = match &servers {
        Some(servers) => config.bootstrap_servers(servers.clone()),
        None => config.embedded(),
    };
    let bus = Bus::new(config).await?;
    // One publish first: the topic exists and the producer is connected before the clock starts.
    bus.publish(reading(u64::MAX)).await?;
    let (cpu, started) = (support::cpu(), Instant::now());
    let sends = (0..events).map(|seq| bus.publish(reading(seq)));
    let mut failed = 0;
    for result in futures::future::join_all(sends).await {
        failed += u64::from(result.is_err());
    }
    let (cpu, secs) = (support::cpu() - cpu, started.elapsed().as_secs_f64());
    println!(
        "{events} publishes at once, queue of {queue}, {}: {:.0} events/s, {:.2} µs CPU an event, peak RSS {:.1} MB, {failed} failed",
        if servers.is_some() { "brokers out of the process" } else { "embedded broker in the process" },
        events as f64 / secs,
        cpu.as_secs_f64() * 1e6 / events as f64,
        peak_rss_mb(),
    );
    bus.shutdown().await
}

fn reading(seq: u64) -> Reading {
    Reading {
        sensor: seq % 64,
        seq,
        celsius: 20.0 + (seq % 100) as f64 / 10.0,
        site: "plant-north".into(),
    }
}
