//! What the end-to-end test binaries share: the broker they run on (herald's embedded broker, or
//! the real Kafka named by `HERALD_TEST_KAFKA`), waiting with a deadline, raw producers and
//! readers, and proof that a group committed everything (committed offsets against high
//! watermarks).

#![allow(dead_code)] // each test binary uses its own part of this

pub mod cluster;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald::{BusBuilder, Config, EmbeddedBroker};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The variable that points the end-to-end tests at a real Kafka (`host:port,...`) instead of
/// herald's embedded broker.
pub const REAL_KAFKA: &str = "HERALD_TEST_KAFKA";

/// The Kafka one test runs on. On the embedded broker every test has a broker of its own; on a
/// real Kafka the tests share the cluster, so each [`TestKafka`] puts a prefix of its own before
/// every topic and consumer group herald derives (`Config::topic_prefix`, `Config::group_prefix`),
/// and the test names raw topics through [`TestKafka::topic`].
pub struct TestKafka {
    embedded: Option<Arc<EmbeddedBroker>>,
    servers: String,
    prefix: Option<String>,
}

impl TestKafka {
    /// The broker of one test: a new embedded broker, or the real Kafka of `HERALD_TEST_KAFKA`
    /// with a fresh prefix.
    pub fn start() -> Self {
        match std::env::var(REAL_KAFKA)
            .ok()
            .filter(|s| !s.trim().is_empty())
        {
            Some(servers) => {
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos();
                let prefix = format!(
                    "t{}-{nanos:x}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                Self {
                    embedded: None,
                    servers: servers.trim().to_owned(),
                    prefix: Some(prefix),
                }
            }
            None => {
                let broker = Arc::new(EmbeddedBroker::start(1).expect("embedded broker starts"));
                Self {
                    servers: broker.bootstrap_servers().to_owned(),
                    embedded: Some(broker),
                    prefix: None,
                }
            }
        }
    }

    /// Whether the tests run on a real Kafka (`HERALD_TEST_KAFKA` is set).
    pub fn is_real() -> bool {
        std::env::var(REAL_KAFKA).is_ok_and(|s| !s.trim().is_empty())
    }

    /// The bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.servers
    }

    /// The embedded broker, for the tests that inject its faults (run only on it).
    pub fn embedded(&self) -> &Arc<EmbeddedBroker> {
        self.embedded
            .as_ref()
            .expect("this test injects faults of the embedded broker and runs only on it")
    }

    /// A configuration for `service` on this broker.
    pub fn config(&self, service: &str) -> Config {
        self.apply(Config::new(service))
    }

    /// `config` pointed at this broker: the embedded one, or the real Kafka with this test's
    /// prefix on topics and groups, topics created at start-up, and a short session timeout so a
    /// member that a test drops without leaving is replaced in seconds.
    pub fn apply(&self, config: Config) -> Config {
        if consumer_protocol() {
            return self.apply_classic(config.group_protocol(herald::GroupProtocol::Consumer));
        }
        self.apply_classic(config)
    }

    fn apply_classic(&self, config: Config) -> Config {
        match &self.prefix {
            None => config.embedded(),
            // A prefix the test sets itself goes after the test's own.
            Some(prefix) => {
                let nested = |own: &Option<String>| match own {
                    Some(own) => format!("{prefix}.{own}"),
                    None => prefix.clone(),
                };
                let (topics, groups) = (nested(&config.topic_prefix), nested(&config.group_prefix));
                let consumer_protocol = config.group_protocol == herald::GroupProtocol::Consumer;
                let config = config
                    .bootstrap_servers(self.servers.clone())
                    .topic_prefix(topics)
                    .group_prefix(groups)
                    .auto_create_topics(true);
                if consumer_protocol {
                    // The broker's group.consumer.* settings decide these under KIP-848.
                    return config;
                }
                config
                    .property("session.timeout.ms", "6000")
                    .property("heartbeat.interval.ms", "1000")
            }
        }
    }

    /// A bus builder for `config` on this broker (see [`TestKafka::apply`]).
    pub fn builder(&self, config: Config) -> BusBuilder {
        let builder = herald::Bus::builder(self.apply(config));
        match &self.embedded {
            Some(broker) => builder.embedded_broker(broker.clone()),
            None => builder,
        }
    }

    /// The name herald gives `topic` on this broker (with the test's prefix on a real Kafka).
    pub fn topic(&self, topic: &str) -> String {
        herald::naming::with_prefix(self.prefix.as_deref(), topic)
    }

    /// The consumer group id `group` joins on this broker (with the test's prefix on a real Kafka).
    pub fn group(&self, group: &str) -> String {
        herald::naming::with_prefix(self.prefix.as_deref(), group)
    }

    /// Creates `topic` (taken as given: prefix it with [`TestKafka::topic`]) with `partitions`.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        if let Some(broker) = &self.embedded {
            broker.create_topic(topic, partitions).unwrap();
            return;
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.servers)
            .create()
            .unwrap();
        let topics = [NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(-1),
        )];
        let results = futures::executor::block_on(admin.create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
        for result in results {
            result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code}"));
        }
    }
}

/// Whether the suite runs its groups under the consumer protocol (KIP-848):
/// `HERALD_TEST_GROUP_PROTOCOL=consumer` (`.ci/run` runs the real-Kafka suites once with each).
pub fn consumer_protocol() -> bool {
    std::env::var("HERALD_TEST_GROUP_PROTOCOL")
        .is_ok_and(|p| p.trim().eq_ignore_ascii_case("consumer"))
}

/// Prints the one line that says a test needs what this run does not have, and whether to go on.
pub fn runs_on_real_kafka_only(test: &str) -> bool {
    if TestKafka::is_real() {
        return true;
    }
    say(&format!(
        "skipped {test}: it needs a real Kafka; set {REAL_KAFKA}=host:port to run it"
    ));
    false
}

/// Prints the one line that says a test uses the embedded broker's fault injection and is skipped
/// on a real Kafka, and whether to go on.
pub fn runs_on_embedded_only(test: &str, why: &str) -> bool {
    if !TestKafka::is_real() {
        return true;
    }
    say(&format!(
        "skipped {test} on the real Kafka of {REAL_KAFKA}: {why}"
    ));
    false
}

/// Writes one line to the terminal past the test harness's capture (which only takes `print!`), so
/// that a skip is seen in a plain `cargo test`.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The longest any test waits for something to happen.
pub const WAIT: Duration = Duration::from_secs(30);

/// Waits until `done` holds, failing the test after [`WAIT`].
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A retry policy through retry topics: 3 retries, 100 ms doubling to 200 ms, no jitter.
pub fn through_topics() -> herald::RetryPolicy {
    herald::RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(200),
        jitter: 0.0,
        timeout: None,
        breaker: None,
        mode: herald::RetryMode::Topics,
    }
}

/// A plain producer, not herald's.
pub fn plain_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// Sends a record with raw header bytes.
pub async fn send_raw(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
    headers: &[(&str, &[u8])],
) -> (i32, i64) {
    let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(*v),
        })
    });
    let mut record = FutureRecord::to(topic).payload(value).headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    producer
        .send(record, Duration::from_secs(5))
        .await
        .map_err(|(e, _)| e)
        .unwrap()
}

/// Sends a record whose headers are `headers` plus one header whose name is the raw bytes `name`
/// (Kafka header names are strings, but nothing stops a producer from writing any bytes; rdkafka's
/// API takes `&str`, so the name goes through librdkafka's C API).
pub async fn send_with_raw_header_name(
    producer: &FutureProducer,
    topic: &str,
    key: &[u8],
    value: &[u8],
    headers: &[(&str, &[u8])],
    name: &[u8],
) -> (i32, i64) {
    let owned = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(*v),
        })
    });
    let native = owned.as_borrowed() as *const rdkafka::message::BorrowedHeaders
        as *mut rdkafka::bindings::rd_kafka_headers_t;
    // SAFETY: `native` is the live header list `owned` wraps; librdkafka copies name and value.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_header_add(
            native,
            name.as_ptr().cast(),
            name.len() as isize,
            b"v".as_ptr().cast(),
            1,
        )
    };
    assert_eq!(
        error,
        rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    );
    producer
        .send(
            FutureRecord::to(topic)
                .payload(value)
                .key(key)
                .headers(owned),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap()
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect()
}

/// Reads every message of `topic` from the beginning (no consumer group): waits until the topic
/// holds at least `expected`, reads it to its high watermarks, and asserts that it holds exactly
/// `expected`, so a duplicate or a stray record fails the test.
pub fn read_topic(bootstrap: &str, topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "herald-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut ids = partitions(&consumer, topic);
    while ids.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        ids = partitions(&consumer, topic);
    }
    let highs = |consumer: &BaseConsumer| -> Vec<(i32, i64, i64)> {
        ids.iter()
            .map(|id| {
                let (low, high) = watermarks(consumer, topic, *id);
                (*id, low, high)
            })
            .collect()
    };
    let mut ends = highs(&consumer);
    while ends.iter().map(|(_, low, high)| high - low).sum::<i64>() < expected as i64 {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} holds only {} of {expected} messages",
            ends.iter().map(|(_, low, high)| high - low).sum::<i64>()
        );
        std::thread::sleep(Duration::from_millis(20));
        ends = highs(&consumer);
    }
    let mut tpl = TopicPartitionList::new();
    for (id, _, _) in &ends {
        tpl.add_partition_offset(topic, *id, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let total: i64 = ends.iter().map(|(_, low, high)| high - low).sum();
    // Per partition: the offset read next, and the high watermark to read up to.
    let mut next: std::collections::HashMap<i32, (i64, i64)> = ends
        .iter()
        .map(|(id, low, high)| (*id, (*low, *high)))
        .collect();
    let mut out = Vec::new();
    while next.values().any(|(at, high)| at < high) {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of the {total} messages {topic} holds",
            out.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap().detach();
            let (at, high) = next.get_mut(&message.partition()).unwrap();
            if message.offset() < *high {
                *at = message.offset() + 1;
                out.push(message);
            }
        }
    }
    assert_eq!(
        out.len(),
        expected,
        "{topic} holds {} messages, not the {expected} expected",
        out.len()
    );
    out
}

/// The value of the last header named `name`, as text.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The values of every header named `name`, in order, as text.
pub fn header_values(message: &OwnedMessage, name: &str) -> Vec<String> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .filter(|h| h.key == name)
                .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every header as (name, bytes), in order.
pub fn all_headers(message: &OwnedMessage) -> Vec<(String, Vec<u8>)> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// How many messages `topic` holds now, over all its partitions (high less low watermarks).
pub fn message_count(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    partitions(&consumer, topic)
        .into_iter()
        .map(|id| {
            let (low, high) = watermarks(&consumer, topic, id);
            high - low
        })
        .sum()
}

/// A partition's low and high watermarks, asked again while its leader is not ready to say (just
/// elected: its high watermark not caught up, or no leader yet), for up to [`WAIT`].
fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> (i64, i64) {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode as Code;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok(marks) => return marks,
            Err(KafkaError::MetadataFetch(
                Code::OffsetNotAvailable | Code::LeaderNotAvailable | Code::NotLeaderForPartition,
            )) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => panic!("the watermarks of {topic}[{partition}]: {error}"),
        }
    }
}

/// For every partition of `topic`: (partition, committed offset of `group`, high watermark).
pub fn committed_and_high(bootstrap: &str, group: &str, topic: &str) -> Vec<(i32, i64, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let ids = partitions(&consumer, topic);
    for id in &ids {
        tpl.add_partition(topic, *id);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    ids.iter()
        .map(|id| {
            let (_, high) = watermarks(&consumer, topic, *id);
            let offset = match committed.find_partition(topic, *id).map(|e| e.offset()) {
                Some(Offset::Offset(n)) => n,
                _ => 0,
            };
            (*id, offset, high)
        })
        .collect()
}

/// Asserts that `group` committed everything `topic` holds: nothing is left to redeliver.
pub fn assert_all_committed(bootstrap: &str, group: &str, topic: &str) {
    let offsets = committed_and_high(bootstrap, group, topic);
    assert!(
        offsets.iter().any(|(_, _, high)| *high > 0),
        "{topic} is empty: nothing to prove"
    );
    for (partition, committed, high) in offsets {
        assert_eq!(
            committed, high,
            "{group} on {topic}[{partition}] committed {committed}, the partition ends at {high}"
        );
    }
}
