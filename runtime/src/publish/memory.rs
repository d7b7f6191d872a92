//! Topics kept in memory instead of on a broker: what an in-process test bus
//! (`herald::testing`) publishes into. Every record a publisher in memory mode sends, its own
//! events and the dead-letter and retry copies of its consumer groups alike, is appended here
//! with its key, value and headers exactly as Kafka would have received them, one partition per
//! topic, offsets counting from 0.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rdkafka::message::Headers;

/// One record as a broker would have stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its place in the order of every record of the log, across topics (from 0).
    pub sequence: u64,
    /// The topic.
    pub topic: String,
    /// Always 0: a topic in memory has one partition, so every record keeps its publish order.
    pub partition: i32,
    /// Its offset in the topic (from 0).
    pub offset: i64,
    /// When it was appended (its Kafka timestamp).
    pub timestamp: DateTime<Utc>,
    /// The Kafka key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl StoredRecord {
    /// The value of the last header named `name` as text, if it has one that is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| std::str::from_utf8(value.as_deref()?).ok())
    }
}

/// The in-memory topics: an append-only log per topic.
#[derive(Debug, Default)]
pub(crate) struct MemoryLog {
    records: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    /// Every record, in the order appended.
    all: Vec<StoredRecord>,
    /// Per topic, the indices of its records in `all`.
    by_topic: BTreeMap<String, Vec<usize>>,
}

impl MemoryLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record to `topic`; returns its partition and offset.
    pub fn append<H: Headers>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &H,
    ) -> (i32, i64) {
        let headers = headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect();
        let mut log = self.lock();
        let index = log.all.len();
        let offsets = log.by_topic.entry(topic.to_owned()).or_default();
        let offset = offsets.len() as i64;
        offsets.push(index);
        log.all.push(StoredRecord {
            sequence: index as u64,
            topic: topic.to_owned(),
            partition: 0,
            offset,
            timestamp: Utc::now(),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers,
        });
        (0, offset)
    }

    /// The records of `topic`, oldest first.
    pub fn topic(&self, topic: &str) -> Vec<StoredRecord> {
        let log = self.lock();
        log.by_topic
            .get(topic)
            .map(|indices| indices.iter().map(|&i| log.all[i].clone()).collect())
            .unwrap_or_default()
    }

    /// The record appended as the `sequence`th, if there is one yet.
    pub fn at(&self, sequence: u64) -> Option<StoredRecord> {
        self.lock().all.get(sequence as usize).cloned()
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::{Header, OwnedHeaders};

    use super::*;

    #[test]
    fn offsets_count_per_topic_and_sequences_across_topics() {
        let log = MemoryLog::default();
        let headers = OwnedHeaders::new().insert(Header {
            key: "ce_type",
            value: Some("a"),
        });
        assert_eq!(log.append("a", Some(b"k"), Some(b"1"), &headers), (0, 0));
        assert_eq!(log.append("b", None, Some(b"2"), &headers), (0, 0));
        assert_eq!(log.append("a", None, None, &headers), (0, 1));
        let a = log.topic("a");
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].sequence, 2);
        assert_eq!(a[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(a[0].header("ce_type"), Some("a"));
        assert_eq!(log.at(1).unwrap().topic, "b");
    }
}
