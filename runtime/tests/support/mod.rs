//! What the end-to-end test binaries share: waiting with a deadline, raw producers and readers, and
//! proof that a group committed everything (committed offsets against high watermarks).

#![allow(dead_code)] // each test binary uses its own part of this

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

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

/// Reads every message of `topic` from the beginning (no consumer group), waiting until there
/// are at least `expected`.
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
    let mut tpl = TopicPartitionList::new();
    for id in ids {
        tpl.add_partition_offset(topic, id, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    while out.len() < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} holds only {} of {expected} messages",
            out.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            out.push(message.unwrap().detach());
        }
    }
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
            let (low, high) = consumer
                .fetch_watermarks(topic, id, Duration::from_secs(10))
                .unwrap();
            high - low
        })
        .sum()
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
            let (_, high) = consumer
                .fetch_watermarks(topic, *id, Duration::from_secs(10))
                .unwrap();
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
