//! herald against raw rdkafka, same broker, same bytes, same headers: publish and consume throughput,
//! process CPU per event, end-to-end latency at a fixed rate, and peak RSS of each phase (and how much
//! the phase added to the RSS it started with). Prints one table; asserts nothing.
//!
//! `cargo bench -p herald --bench compare -- [EVENTS]` (default 50,000). Against the embedded broker
//! in this process unless `KAFKA_BOOTSTRAP_SERVERS` names brokers in another process:
//! - a real Kafka: the bench puts every topic and group under a prefix of its own (`BENCH_TOPIC_PREFIX`,
//!   by default `b` and the Unix time) and creates the topics with 4 partitions through an rdkafka
//!   `AdminClient`, so every run starts on empty topics;
//! - `herald broker` (librdkafka's mock cluster as a process of its own) with `BENCH_BROKER=mock`:
//!   both clients then get the embedded broker's settings (`fetch.wait.max.ms=4`, lz4, `linger.ms=1`),
//!   and the topics are those `herald broker --topic` created (the mock creates unknown ones with 4
//!   partitions).
//!
//! With the broker in another process, `getrusage` counts the client alone.
//! `runtime/benches/run-compare.sh` runs it on both brokers beside the JVM peers (`BENCH_ROWS=1` adds
//! one tab-separated `ROW`/`LAT` line per result for that script) and prints one table;
//! `docs/performance.md` records the results. `BENCH_METRICS=1` installs a Prometheus `metrics`
//! recorder first, to measure what herald's metrics cost (`docs/observability.md`);
//! `BENCH_STRUCTURED=1` makes herald publish in structured content mode; `BENCH_HERALD_ALONE=1`
//! skips the raw all-concurrent publish (see there).

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald::prelude::*;
use herald::EmbeddedBroker;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::cpu;

const PARTITIONS: i32 = 4;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "bench.typed")]
pub struct Reading {
    #[event(key)]
    pub sensor: u64,
    pub seq: u64,
    pub celsius: f64,
    pub site: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "bench.typed-latency")]
pub struct Ping {
    #[event(key)]
    pub sensor: u64,
    /// Microseconds since the benchmark started, when it was published.
    pub sent_us: u64,
}

fn reading(seq: u64) -> Reading {
    Reading {
        sensor: seq % 64,
        seq,
        celsius: 20.0 + (seq % 100) as f64 / 10.0,
        site: "plant-north".into(),
    }
}

static HANDLED: AtomicU64 = AtomicU64::new(0);
static FIRST_HANDLED_US: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_HANDLED_US: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
static LATENCIES: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[handler(group = "bench-typed")]
async fn count(reading: Reading) -> Result<(), HandlerError> {
    std::hint::black_box(reading.seq);
    let now = now_us();
    FIRST_HANDLED_US.fetch_min(now, Ordering::Relaxed);
    LAST_HANDLED_US.fetch_max(now, Ordering::Relaxed);
    HANDLED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[handler(group = "bench-typed-latency")]
async fn pong(ping: Ping) -> Result<(), HandlerError> {
    let latency = now_us().saturating_sub(ping.sent_us);
    LATENCIES.lock().unwrap().push(latency);
    Ok(())
}

/// Resets the peak RSS, so the next reading is the peak of one phase.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak RSS since the last reset, in MB.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// The RSS now, in MB.
fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One measured phase.
struct Row {
    phase: &'static str,
    client: &'static str,
    events: u64,
    secs: f64,
    cpu: Duration,
    rss_mb: f64,
    /// The RSS when the phase started: `rss_mb` less this is what the phase itself added.
    start_rss_mb: f64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.events as f64 / self.secs.max(1e-9)
    }

    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.events.max(1) as f64
    }
}

/// Measures `work`, which returns how many events it did and over how many seconds.
async fn measure<F, Fut>(phase: &'static str, client: &'static str, work: F) -> Row
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (u64, f64)>,
{
    reset_peak_rss();
    let start_rss_mb = rss_mb();
    let cpu_before = cpu();
    let (events, secs) = work().await;
    Row {
        phase,
        client,
        events,
        secs,
        cpu: cpu() - cpu_before,
        rss_mb: peak_rss_mb(),
        start_rss_mb,
    }
}

fn client_config(bootstrap: &str, embedded: bool) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    if embedded {
        config.set("fetch.wait.max.ms", "4");
    }
    config
}

/// Where the bench's topics and groups live: a prefix of this run's own on a real Kafka.
struct Names {
    prefix: Option<String>,
}

impl Names {
    fn topic(&self, name: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}.{name}"),
            None => name.to_owned(),
        }
    }
}

/// Creates `topics` with [`PARTITIONS`] partitions on a real Kafka.
async fn create_topics(bootstrap: &str, topics: &[String]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = client_config(bootstrap, false)
        .create()
        .expect("admin client");
    let new: Vec<_> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin
        .create_topics(&new, &options)
        .await
        .expect("create topics")
    {
        result.expect("create topic");
    }
}

/// One tab-separated line per result for `run-compare.sh` (`BENCH_ROWS=1`).
fn rows_wanted() -> bool {
    std::env::var("BENCH_ROWS").is_ok_and(|v| v == "1")
}

/// The producer herald uses, built by hand: idempotent, acks=all, 5 ms linger; lz4 and 1 ms linger
/// on the embedded broker.
fn raw_producer(bootstrap: &str, embedded: bool) -> FutureProducer {
    let mut config = client_config(bootstrap, embedded);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    if embedded {
        config.set("compression.type", "lz4").set("linger.ms", "1");
    }
    config.create().expect("raw producer")
}

/// The same bytes and headers herald would send for `event`, written by hand as a service
/// using rdkafka directly would.
fn encode<E: HeraldEvent>(event: &E) -> (Vec<u8>, rdkafka::message::OwnedHeaders) {
    use herald::headers as h;
    use rdkafka::message::Header;
    let id = uuid::Uuid::new_v4().to_string();
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let version = E::VERSION.to_string();
    let headers = [
        (h::SPEC_VERSION, h::SPEC_VERSION_VALUE),
        (h::ID, id.as_str()),
        (h::TYPE, E::EVENT_TYPE),
        (h::SOURCE, "bench"),
        (h::TIME, time.as_str()),
        (h::CONTENT_TYPE, h::JSON),
        (h::SCHEMA_VERSION, version.as_str()),
        (h::CORRELATION_ID, id.as_str()),
    ]
    .into_iter()
    .fold(
        rdkafka::message::OwnedHeaders::new(),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        },
    );
    (serde_json::to_vec(event).unwrap(), headers)
}

async fn raw_send<E: HeraldEvent>(producer: &FutureProducer, topic: &str, event: &E) {
    let (payload, headers) = encode(event);
    let key = event.partition_key().unwrap_or_default();
    let record = FutureRecord::to(topic)
        .payload(&payload)
        .key(&key)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .expect("raw publish");
}

/// Consumes `expected` events of `topic` in a new group with herald's commit policy (offsets stored
/// after the event was parsed, committed every 500 ms); seconds from the first message to the last.
async fn raw_consume(bootstrap: &str, embedded: bool, topic: &str, expected: u64) -> (u64, f64) {
    let consumer: StreamConsumer = client_config(bootstrap, embedded)
        .set("group.id", format!("raw-{topic}"))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("raw consumer");
    consumer.subscribe(&[topic]).unwrap();
    let mut stream = consumer.stream();
    let (mut seen, mut first) = (0u64, None);
    while seen < expected {
        let message = stream.next().await.unwrap().unwrap();
        first.get_or_insert_with(Instant::now);
        let reading: Reading = serde_json::from_slice(message.payload().unwrap()).unwrap();
        std::hint::black_box(reading.seq);
        consumer.store_offset_from_message(&message).unwrap();
        seen += 1;
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    drop(stream);
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    (seen, secs)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// Publishes `Ping`s at `rate` per second for `secs` with `send`, returns the sorted latencies in µs
/// reported into `LATENCIES`.
async fn latency_run<F, Fut>(rate: u64, secs: u64, mut send: F) -> Vec<u64>
where
    F: FnMut(Ping) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    LATENCIES.lock().unwrap().clear();
    let total = rate * secs;
    let tick = Duration::from_millis(10);
    let per_tick = rate / 100;
    let mut interval = tokio::time::interval(tick);
    let mut sends = Vec::with_capacity(total as usize);
    for batch in 0..total / per_tick {
        interval.tick().await;
        for i in 0..per_tick {
            let ping = Ping {
                sensor: (batch * per_tick + i) % 64,
                sent_us: now_us(),
            };
            sends.push(tokio::spawn(send(ping)));
        }
    }
    for send in sends {
        send.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while (LATENCIES.lock().unwrap().len() as u64) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = LATENCIES.lock().unwrap().clone();
    latencies.sort_unstable();
    latencies
}

#[tokio::main]
async fn main() -> herald::Result<()> {
    let events: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    if std::env::var("BENCH_METRICS").is_ok_and(|v| v == "1") {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("installing the Prometheus recorder");
        // Nothing scrapes during the run; the recorder keeps what it records either way.
        drop(handle);
        println!("metrics: a Prometheus recorder is installed (BENCH_METRICS=1)");
    }
    now_us();
    let servers = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.trim().is_empty() && s != "embedded");
    let in_process = servers.is_none();
    let mock = !in_process && std::env::var("BENCH_BROKER").is_ok_and(|v| v == "mock");
    // The embedded broker's client settings, for both clients, whether the mock runs here or not.
    let embedded = in_process || mock;
    let real = !embedded;
    let names = Names {
        prefix: std::env::var("BENCH_TOPIC_PREFIX")
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| {
                real.then(|| {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    format!("b{secs}")
                })
            }),
    };
    let (raw_topic, raw_latency_topic) =
        (names.topic("bench.raw"), names.topic("bench.raw-latency"));
    let broker = in_process.then(|| Arc::new(EmbeddedBroker::start(1).expect("embedded broker")));
    let bootstrap = servers.unwrap_or_else(|| broker.as_ref().unwrap().bootstrap_servers().into());
    if let Some(broker) = &broker {
        for topic in [&raw_topic, &raw_latency_topic] {
            broker.create_topic(topic, PARTITIONS)?;
        }
    }
    if real {
        let topics = [
            "bench.raw",
            "bench.raw-latency",
            "bench.typed",
            "bench.typed-latency",
        ]
        .map(|t| names.topic(t));
        create_topics(&bootstrap, &topics).await;
    }
    // herald's configuration for a bus of the bench: the embedded broker's settings passed through
    // on an out-of-process mock, the run's prefix on a real Kafka.
    let herald_config = |service: &str| {
        let mut config = Config::new(service)
            .topic_partitions(PARTITIONS)
            .auto_create_topics(in_process);
        if std::env::var("BENCH_STRUCTURED").is_ok_and(|v| v == "1") {
            config = config.content_mode(herald::ContentMode::Structured);
        }
        if broker.is_none() {
            config = config.bootstrap_servers(bootstrap.clone());
        }
        if mock {
            config = config
                .property("fetch.wait.max.ms", "4")
                .property("compression.type", "lz4")
                .property("linger.ms", "1");
        }
        if let Some(prefix) = &names.prefix {
            config = config
                .topic_prefix(prefix.clone())
                .group_prefix(prefix.clone());
        }
        config
    };
    let config = herald_config("bench");
    let mut builder = Bus::builder(config).only_groups(["bench-typed"]);
    if let Some(broker) = &broker {
        builder = builder.embedded_broker(broker.clone());
    }
    let bus = builder.build().await?;
    let raw = raw_producer(&bootstrap, embedded);
    // Awaited one by one is bound by round trips (a real Kafka's acks=all and `linger.ms=5`):
    // a tenth of the events, at most 2,000.
    let one_by_one = (events / 10).clamp(1, 2_000);
    let mut rows = Vec::new();

    // Publishing: one at a time, awaited.
    rows.push(
        measure("publish, awaited one by one", "raw", || async {
            let started = Instant::now();
            for seq in 0..one_by_one {
                raw_send(&raw, &raw_topic, &reading(seq)).await;
            }
            (one_by_one, started.elapsed().as_secs_f64())
        })
        .await,
    );
    rows.push(
        measure("publish, awaited one by one", "herald", || async {
            let started = Instant::now();
            for seq in 0..one_by_one {
                bus.publish(reading(seq)).await.expect("herald publish");
            }
            (one_by_one, started.elapsed().as_secs_f64())
        })
        .await,
    );
    // Publishing: all concurrently. `BENCH_HERALD_ALONE=1` skips the raw client's run, so that
    // herald's peak RSS with every publish in flight does not sit on what the raw run left.
    let herald_alone = std::env::var("BENCH_HERALD_ALONE").is_ok_and(|v| v == "1");
    if !herald_alone {
        rows.push(
            measure("publish, all concurrent", "raw", || async {
                let started = Instant::now();
                let sends = (0..events).map(|seq| {
                    let (raw, raw_topic) = (&raw, &raw_topic);
                    async move { raw_send(raw, raw_topic, &reading(seq)).await }
                });
                futures::future::join_all(sends).await;
                (events, started.elapsed().as_secs_f64())
            })
            .await,
        );
    }
    rows.push(
        measure("publish, all concurrent", "herald", || async {
            let started = Instant::now();
            let sends = (0..events).map(|seq| bus.publish(reading(seq)));
            for result in futures::future::join_all(sends).await {
                result.expect("herald publish");
            }
            (events, started.elapsed().as_secs_f64())
        })
        .await,
    );
    rows.push(
        measure("publish, batches of 5,000", "herald", || async {
            let started = Instant::now();
            for chunk in (0..events).collect::<Vec<_>>().chunks(5_000) {
                bus.publish_batch(chunk.iter().map(|&seq| reading(seq)))
                    .await
                    .expect("herald batch");
            }
            (events, started.elapsed().as_secs_f64())
        })
        .await,
    );
    let in_topic = one_by_one + events + events; // raw: one_by_one + events; typed: one_by_one + 2 × events
    let raw_total = one_by_one + if herald_alone { 0 } else { events };

    // Consuming: the whole backlog, from the first message on.
    rows.push(
        measure("consume backlog", "raw", || {
            raw_consume(&bootstrap, embedded, &raw_topic, raw_total)
        })
        .await,
    );
    rows.push(
        measure("consume backlog", "herald", || async {
            bus.start().await.expect("start");
            let deadline = Instant::now() + Duration::from_secs(120);
            while HANDLED.load(Ordering::Relaxed) < in_topic && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let first = FIRST_HANDLED_US.load(Ordering::Relaxed);
            let last = LAST_HANDLED_US.load(Ordering::Relaxed);
            (
                HANDLED.load(Ordering::Relaxed),
                last.saturating_sub(first) as f64 / 1e6,
            )
        })
        .await,
    );
    bus.shutdown().await?;

    // Latency at a fixed rate.
    let rate = 10_000;
    let mut latency: HashMap<&str, Vec<u64>> = HashMap::new();
    {
        let raw_consumer_task = {
            let bootstrap = bootstrap.clone();
            let topic = raw_latency_topic.clone();
            tokio::spawn(async move {
                let consumer: StreamConsumer = client_config(&bootstrap, embedded)
                    .set("group.id", format!("raw-{topic}"))
                    .set("enable.auto.offset.store", "false")
                    .set("auto.offset.reset", "earliest")
                    .create()
                    .unwrap();
                consumer.subscribe(&[topic.as_str()]).unwrap();
                let mut stream = consumer.stream();
                while let Some(Ok(message)) = stream.next().await {
                    let ping: Ping = serde_json::from_slice(message.payload().unwrap()).unwrap();
                    LATENCIES
                        .lock()
                        .unwrap()
                        .push(now_us().saturating_sub(ping.sent_us));
                    let _ = consumer.store_offset_from_message(&message);
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await; // the group's first join
        LATENCIES.lock().unwrap().clear();
        let producer = raw.clone();
        latency.insert(
            "raw",
            latency_run(rate, 3, move |ping| {
                let (producer, topic) = (producer.clone(), raw_latency_topic.clone());
                async move { raw_send(&producer, &topic, &ping).await }
            })
            .await,
        );
        raw_consumer_task.abort();
    }
    {
        let mut builder = Bus::builder(
            herald_config("bench-latency")
                .commit_interval(Duration::from_secs(5))
                .auto_offset_reset(herald::OffsetReset::Earliest),
        )
        .only_groups(["bench-typed-latency"]);
        builder = match &broker {
            Some(broker) => builder.embedded_broker(broker.clone()),
            None => builder,
        };
        let latency_bus = builder.build().await?;
        latency_bus.start().await?;
        latency_bus
            .wait_for_assignment(Duration::from_secs(30))
            .await?;
        // As for the raw client: a warm producer (connected, topic metadata, producer id) and a
        // consumer whose first fetches started, before measuring.
        latency_bus
            .publish(Ping {
                sensor: 0,
                sent_us: now_us(),
            })
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let publisher = latency_bus.clone();
        latency.insert(
            "herald",
            latency_run(rate, 3, move |ping| {
                let publisher = publisher.clone();
                async move {
                    publisher.publish(ping).await.expect("herald publish");
                }
            })
            .await,
        );
        latency_bus.shutdown().await?;
    }

    println!(
        "\nherald vs raw rdkafka — {} broker, {events} events, {PARTITIONS} partitions, {} cores\n",
        if in_process {
            "embedded (mock cluster, in this process)"
        } else if mock {
            "embedded (mock cluster, `herald broker` in its own process)"
        } else {
            "real"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| phase | client | events | events/s | ratio to raw | CPU µs/event | CPU ratio | peak RSS MB | RSS growth MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let raw_row = rows.iter().find(|r| {
            r.client == "raw"
                && (r.phase == row.phase
                    || (row.phase.starts_with("publish, batches")
                        && r.phase == "publish, all concurrent"))
        });
        let (ratio, cpu_ratio) = raw_row.map_or((String::new(), String::new()), |r| {
            (
                format!("{:.2}", row.rate() / r.rate()),
                format!("{:.2}", row.cpu_us() / r.cpu_us()),
            )
        });
        println!(
            "| {} | {} | {} | {:.0} | {ratio} | {:.2} | {cpu_ratio} | {:.0} | {:.0} |",
            row.phase,
            row.client,
            row.events,
            row.rate(),
            row.cpu_us(),
            row.rss_mb,
            row.rss_mb - row.start_rss_mb
        );
    }
    if rows_wanted() {
        for row in &rows {
            println!(
                "ROW\t{}\t{}\t{}\t{:.3}\t{:.3}\t{:.1}\t{:.1}",
                row.phase,
                row.client,
                row.events,
                row.secs,
                row.cpu_us(),
                row.rss_mb,
                row.rss_mb - row.start_rss_mb
            );
        }
    }
    println!("\nend-to-end latency at {rate} events/s for 3 s (ms):\n");
    println!("| client | events | p50 | p99 | p99.9 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for client in ["raw", "herald"] {
        let l = &latency[client];
        println!(
            "| {client} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            l.len(),
            percentile(l, 0.5),
            percentile(l, 0.99),
            percentile(l, 0.999),
            l.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)
        );
        if rows_wanted() {
            println!(
                "LAT\t{client}\t{}\t{:.2}\t{:.2}\t{:.2}\t{:.2}",
                l.len(),
                percentile(l, 0.5),
                percentile(l, 0.99),
                percentile(l, 0.999),
                l.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)
            );
        }
    }
    Ok(())
}
