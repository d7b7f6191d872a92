//! What the outbox tests share: databases of their own (a table prefix on PostgreSQL, a temp
//! file for SQLite), a bus on a broker of its own (the runtime tests' `TestKafka`: the embedded
//! broker, or a prefix of its own on the real Kafka of `HERALD_TEST_KAFKA`), and a reader of
//! everything a topic holds.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use herald::prelude::*;
use herald::{Bus, Config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The longest a test waits for something.
pub const WAIT: Duration = Duration::from_secs(60);

/// The event the tests publish: `n` counts up per test, `key` picks the partition.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "outbox.note", topic = "outbox-notes")]
pub struct Note {
    /// Partition key.
    #[event(key)]
    pub key: String,
    /// Position in the order written.
    pub n: u64,
}

/// A note too large for the producer (over librdkafka's default `message.max.bytes`, 1 MB): it
/// reads as a [`Note`] but can never be published.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "outbox.bulky", topic = "outbox-notes")]
pub struct Bulky {
    /// Partition key.
    #[event(key)]
    pub key: String,
    /// Position in the order written.
    pub n: u64,
    /// 1.2 MB of text.
    pub body: String,
}

/// A domain-side event with an integration counterpart: each `Memo` written also writes a
/// `MemoAnnounced` (`#[event(from = Memo)]`), in the same transaction.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Clone)]
#[event(name = "outbox.memo", topic = "outbox-memos")]
pub struct Memo {
    /// Partition key.
    #[event(key)]
    pub key: String,
    /// Position in the order written.
    pub n: u64,
}

/// The integration counterpart of [`Memo`].
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "outbox.memo.announced", topic = "outbox-memo-announcements", from = Memo)]
pub struct MemoAnnounced {
    /// Partition key.
    #[event(key)]
    pub key: String,
    /// The memo's `n`.
    pub n: u64,
}

impl From<Memo> for MemoAnnounced {
    fn from(memo: Memo) -> Self {
        Self {
            key: memo.key,
            n: memo.n,
        }
    }
}

/// Waits until `done` holds, failing after [`WAIT`].
pub async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[path = "../../runtime/tests/support/mod.rs"]
mod kafka;
#[allow(unused_imports)] // each test binary uses its own part
pub use kafka::{cluster, runs_on_embedded_only, say, TestKafka};

/// A bus on a broker of its own, with `delivery_timeout`.
pub async fn bus(delivery_timeout: Duration) -> (Bus, TestKafka) {
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(Config::new("outbox-test").delivery_timeout(delivery_timeout))
        .build()
        .await
        .unwrap();
    (bus, kafka)
}

/// One record as the tests look at it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub key: String,
    pub n: u64,
    pub partition: i32,
    pub timestamp_ms: i64,
}

/// Every record `topic` holds (exactly the sum of its high watermarks), in partition order.
pub fn read_all(bootstrap: &str, topic: &str) -> Vec<Seen> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "outbox-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut expected = 0;
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .unwrap();
        assert_eq!(low, 0, "the broker dropped records of {topic}[{p}]");
        expected += high as usize;
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "read only {} of {expected}",
            out.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let id = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "ce_id"))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .expect("every record has a ce_id");
            let note: Note = serde_json::from_slice(message.payload().unwrap()).unwrap();
            out.push(Seen {
                id,
                key: note.key,
                n: note.n,
                partition: message.partition(),
                timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
            });
        }
    }
    out
}

/// Duplicates and losses of `written` (ids in order of writing, with key and n) in `seen`, and
/// asserts that each key's events arrived (first copies) in the order written.
pub fn check(written: &[(String, String, u64)], seen: &[Seen]) -> (usize, usize) {
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for s in seen {
        *copies.entry(&s.id).or_default() += 1;
    }
    let duplicates = copies.values().map(|c| c - 1).sum();
    let lost = written
        .iter()
        .filter(|(id, _, _)| !copies.contains_key(id.as_str()))
        .count();
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut first = std::collections::HashSet::new();
    for s in seen {
        if !first.insert(&s.id) {
            continue;
        }
        if let Some(previous) = last.insert(&s.key, s.n) {
            assert!(previous < s.n, "key {} went {previous} then {}", s.key, s.n);
        }
    }
    (duplicates, lost)
}

/// A unique lower-case name part.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}
