//! Consuming only, one client per process, for instruction counts (callgrind) and CPU per message:
//! the consume half of `compare.rs` without the rest, so that a profile holds nothing else.
//!
//! ```sh
//! consume produce PREFIX EVENTS        # PREFIX.bench.consume, 4 partitions, EVENTS events published by herald
//!                                      # (BENCH_STRUCTURED=1: the same events in structured mode, written raw)
//! consume raw PREFIX EVENTS            # raw rdkafka: payload parsed, headers never asked for
//! consume raw-headers PREFIX EVENTS    # raw rdkafka that also reads every header (as herald must)
//! consume herald PREFIX EVENTS         # herald: a typed #[handler]
//! ```
//!
//! Against `KAFKA_BOOTSTRAP_SERVERS` (a real Kafka, another process). Each consuming mode joins a
//! new group, reads EVENTS messages from the start and prints the process CPU (getrusage) from its
//! first message to its last, per message. Under `valgrind --tool=callgrind`, the difference between
//! two runs with different EVENTS, divided by the difference in EVENTS, is the instructions per
//! message with start-up, group join and shutdown taken out (docs/performance.md).

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald::prelude::*;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use support::cpu;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "bench.consume")]
pub struct Reading {
    #[event(key)]
    pub sensor: u64,
    pub seq: u64,
    pub celsius: f64,
    pub site: String,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);
static EXPECTED: AtomicU64 = AtomicU64::new(u64::MAX);
/// Wall clock and CPU at one moment.
type Mark = (Instant, Duration);
/// Marks at the first and the last handled message.
static MARKS: Mutex<Option<(Mark, Mark)>> = Mutex::new(None);

/// Counts one handled message; marks the first and the last.
fn handled() {
    let n = HANDLED.fetch_add(1, Ordering::Relaxed) + 1;
    if n == 1 || n == EXPECTED.load(Ordering::Relaxed) {
        let mark = (Instant::now(), cpu());
        let mut marks = MARKS.lock().unwrap();
        match &mut *marks {
            None => *marks = Some((mark, mark)),
            Some((_, last)) => *last = mark,
        }
    }
}

#[handler(group = "bench-consume")]
async fn read(reading: Reading) -> Result<(), HandlerError> {
    std::hint::black_box(reading.seq);
    handled();
    Ok(())
}

fn reading(seq: u64) -> Reading {
    Reading {
        sensor: seq % 64,
        seq,
        celsius: 20.0 + (seq % 100) as f64 / 10.0,
        site: "plant-north".into(),
    }
}

/// A structured-mode event as a raw client reads it (`BENCH_STRUCTURED=1`).
#[derive(Deserialize)]
struct Structured<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    source: &'a str,
    time: &'a str,
    data: Reading,
}

async fn raw(bootstrap: &str, topic: &str, events: u64, with_headers: bool) {
    let structured = std::env::var_os("BENCH_STRUCTURED").is_some();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}.raw-{with_headers}"))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("raw consumer");
    consumer.subscribe(&[topic]).unwrap();
    let mut stream = consumer.stream();
    while HANDLED.load(Ordering::Relaxed) < events {
        let message = stream.next().await.unwrap().unwrap();
        if with_headers {
            for header in message.headers().into_iter().flat_map(|h| h.iter()) {
                std::hint::black_box((header.key.len(), header.value.map(<[u8]>::len)));
            }
        }
        let payload = message.payload().unwrap();
        let reading: Reading = if structured {
            // The whole envelope, its attributes borrowed: what a raw client of structured
            // CloudEvents must read.
            let event: Structured = serde_json::from_slice(payload).unwrap();
            std::hint::black_box((event.id, event.event_type, event.source, event.time));
            event.data
        } else {
            serde_json::from_slice(payload).unwrap()
        };
        std::hint::black_box(reading.seq);
        consumer.store_offset_from_message(&message).unwrap();
        handled();
    }
    drop(stream);
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
}

/// The same events in structured content mode, as another CloudEvents SDK writes them: one
/// `content-type: application/cloudevents+json` header, the attributes and the data in the value.
async fn produce_structured(bootstrap: &str, topic: &str, events: u64) {
    use rdkafka::message::OwnedHeaders;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let sends = (0..events).map(|seq| {
        let reading = reading(seq);
        let value = serde_json::json!({
            "specversion": "1.0",
            "id": uuid::Uuid::new_v4().to_string(),
            "type": <Reading as HeraldEvent>::EVENT_TYPE,
            "source": "/bench-consume",
            "time": "2026-12-06T00:00:00.000000Z",
            "datacontenttype": "application/json",
            "schemaversion": "1",
            "data": reading,
        })
        .to_string();
        let key = reading.sensor.to_string();
        let producer = &producer;
        async move {
            let headers = OwnedHeaders::new().insert(rdkafka::message::Header {
                key: "content-type",
                value: Some("application/cloudevents+json"),
            });
            let record = FutureRecord::to(topic)
                .key(&key)
                .payload(&value)
                .headers(headers);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .expect("structured event sent");
        }
    });
    futures::stream::iter(sends)
        .buffer_unordered(10_000)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::main]
async fn main() -> herald::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [mode, prefix, events] = &args[..] else {
        // Not an error, so that `cargo bench -p herald` (every bench, no arguments) still passes.
        eprintln!("usage: consume produce|raw|raw-headers|herald PREFIX EVENTS (nothing to do)");
        return Ok(());
    };
    let events: u64 = events.parse().expect("EVENTS");
    EXPECTED.store(events, Ordering::Relaxed);
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").expect("KAFKA_BOOTSTRAP_SERVERS");
    let topic = format!("{prefix}.bench.consume");
    let config = Config::new("bench-consume")
        .bootstrap_servers(bootstrap.clone())
        .topic_prefix(prefix.clone())
        .group_prefix(prefix.clone())
        .topic_partitions(4)
        .auto_create_topics(true)
        .auto_offset_reset(herald::OffsetReset::Earliest);
    match mode.as_str() {
        "produce" if std::env::var_os("BENCH_STRUCTURED").is_some() => {
            let bus = Bus::new(config).await?; // creates the topic; publishes nothing
            produce_structured(&bootstrap, &topic, events).await;
            bus.shutdown().await?;
            println!("published {events} structured events to {topic}");
            return Ok(());
        }
        "produce" => {
            let bus = Bus::new(config).await?; // not started: it publishes only
            for chunk in (0..events).collect::<Vec<_>>().chunks(5_000) {
                bus.publish_batch(chunk.iter().map(|&seq| reading(seq)))
                    .await?;
            }
            bus.shutdown().await?;
            println!("published {events} to {topic}");
            return Ok(());
        }
        "raw" | "raw-headers" => raw(&bootstrap, &topic, events, mode == "raw-headers").await,
        "herald" => {
            let bus = Bus::builder(config)
                .only_groups(["bench-consume"])
                .build()
                .await?;
            bus.start().await?;
            while HANDLED.load(Ordering::Relaxed) < events {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            bus.shutdown().await?;
        }
        other => panic!("unknown mode {other}"),
    }
    let ((t0, c0), (t1, c1)) = MARKS.lock().unwrap().expect("no message");
    let n = events.saturating_sub(1).max(1) as f64;
    println!(
        "{mode}: {events} messages, {:.0} messages/s, CPU {:.2} µs/message (first to last)",
        n / (t1 - t0).as_secs_f64().max(1e-9),
        (c1 - c0).as_secs_f64() * 1e6 / n
    );
    Ok(())
}
