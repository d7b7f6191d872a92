//! One dead letter as read back from a dead-letter topic: the record, and what its `dlq_*`
//! headers say about each time it failed.

use chrono::{DateTime, Utc};
use rdkafka::message::{BorrowedMessage, Message};

use crate::headers::dlq;
use crate::wire::received::header_pairs;

/// One header of a record: its name and its bytes (`None` for a null value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub name: String,
    /// Its value, byte for byte.
    pub value: Option<Vec<u8>>,
}

impl Header {
    /// The value as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// One failure of a message, read from one set of `dlq_*` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    /// Where it was consumed from (`dlq_original_topic`).
    pub original_topic: String,
    /// Its partition there, when the header holds a number.
    pub original_partition: Option<i32>,
    /// Its offset there, when the header holds a number.
    pub original_offset: Option<i64>,
    /// The consumer group that gave up.
    pub consumer_group: String,
    /// The handlers that failed (none when no handler ran).
    pub handlers: Vec<String>,
    /// `undecodable`, `incompatible`, `unknown-type`, `oversized`, `permanent`, `retries-exhausted`,
    /// `reply-undeliverable`, `retry-undeliverable`.
    pub error_kind: String,
    /// The error.
    pub error_message: String,
    /// How many times the failing handler ran, when the header holds a number.
    pub retry_count: Option<u32>,
    /// When it was dead-lettered, when the header holds an RFC 3339 time.
    pub failed_at: Option<DateTime<Utc>>,
}

/// A record of a dead-letter topic: the original message byte for byte, its position in the
/// dead-letter topic, and the failures its headers record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead-letter topic.
    pub topic: String,
    /// Its partition in the dead-letter topic.
    pub partition: i32,
    /// Its offset in the dead-letter topic.
    pub offset: i64,
    /// The record's timestamp (milliseconds since the epoch), when it has one.
    pub timestamp_ms: Option<i64>,
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original value.
    pub value: Option<Vec<u8>>,
    /// Every header in order: the original ones, then the `dlq_*` headers of each failure and
    /// replay.
    pub headers: Vec<Header>,
    /// Every failure recorded, oldest first (a replayed message that failed again has two).
    pub failures: Vec<Failure>,
    /// The CloudEvents type (`ce_type`, or `type` of a structured event), when present.
    pub ce_type: Option<String>,
    /// The CloudEvents id (`ce_id`, or `id` of a structured event), when present.
    pub ce_id: Option<String>,
    /// How many times it was replayed before (the last `dlq_replay_count`, else 0).
    pub replay_count: u32,
}

impl DeadLetter {
    /// The latest failure: the one that put it where it is now. `None` for a record without
    /// `dlq_original_topic` header (not written by herald).
    pub fn failure(&self) -> Option<&Failure> {
        self.failures.last()
    }

    /// The value of the last header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.name == name)
            .and_then(Header::text)
    }

    /// Every value of the headers named `name`, in order, as text (non-UTF-8 values skipped).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|h| h.name == name)
            .filter_map(Header::text)
            .collect()
    }

    /// When it was dead-lettered last: the latest failure's time, else the record's timestamp.
    pub fn failed_at(&self) -> Option<DateTime<Utc>> {
        self.failure()
            .and_then(|f| f.failed_at)
            .or_else(|| self.timestamp_ms.and_then(DateTime::from_timestamp_millis))
    }

    pub(crate) fn from_message(message: &BorrowedMessage<'_>) -> Self {
        // Names as bytes: rdkafka's reader panics on one that is not UTF-8; such a name is kept
        // with U+FFFD in place of its invalid bytes.
        let headers: Vec<Header> = message
            .headers()
            .map(|hs| {
                header_pairs(hs)
                    .into_iter()
                    .map(|(name, value)| Header {
                        name: String::from_utf8_lossy(name).into_owned(),
                        value: value.map(<[u8]>::to_vec),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self::from_parts(
            message.topic().to_owned(),
            message.partition(),
            message.offset(),
            message.timestamp().to_millis(),
            message.key().map(<[u8]>::to_vec),
            message.payload().map(<[u8]>::to_vec),
            headers,
        )
    }

    /// Parses the `dlq_*` and CloudEvents headers of a record.
    pub(crate) fn from_parts(
        topic: String,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<Header>,
    ) -> Self {
        let failures = failures(&headers);
        let mut letter = Self {
            topic,
            partition,
            offset,
            timestamp_ms,
            key,
            value,
            headers,
            failures,
            ce_type: None,
            ce_id: None,
            replay_count: 0,
        };
        letter.replay_count = letter
            .header(dlq::REPLAY_COUNT)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        letter.ce_type = letter.header("ce_type").map(str::to_owned);
        letter.ce_id = letter.header("ce_id").map(str::to_owned);
        if letter.ce_type.is_none() || letter.ce_id.is_none() {
            let (ce_type, ce_id) = structured_type_and_id(letter.value.as_deref());
            letter.ce_type = letter.ce_type.or(ce_type);
            letter.ce_id = letter.ce_id.or(ce_id);
        }
        letter
    }
}

/// One [`Failure`] per `dlq_original_topic` header, filled in by the `dlq_*` headers after it.
fn failures(all: &[Header]) -> Vec<Failure> {
    let mut out: Vec<Failure> = Vec::new();
    for header in all {
        let text = header.text().unwrap_or_default();
        if header.name == dlq::ORIGINAL_TOPIC {
            out.push(Failure {
                original_topic: text.to_owned(),
                ..Failure::default()
            });
            continue;
        }
        let Some(failure) = out.last_mut() else {
            continue;
        };
        match header.name.as_str() {
            dlq::ORIGINAL_PARTITION => failure.original_partition = text.trim().parse().ok(),
            dlq::ORIGINAL_OFFSET => failure.original_offset = text.trim().parse().ok(),
            dlq::CONSUMER_GROUP => failure.consumer_group = text.to_owned(),
            dlq::HANDLER => {
                failure.handlers = text
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            dlq::ERROR_KIND => failure.error_kind = text.to_owned(),
            dlq::ERROR_MESSAGE => failure.error_message = text.to_owned(),
            dlq::RETRY_COUNT => failure.retry_count = text.trim().parse().ok(),
            dlq::TIMESTAMP => {
                failure.failed_at = DateTime::parse_from_rfc3339(text.trim())
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
            _ => {}
        }
    }
    out
}

/// `type` and `id` of a structured-mode CloudEvent held in `value`.
fn structured_type_and_id(value: Option<&[u8]>) -> (Option<String>, Option<String>) {
    let Some(object) = value
        .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .filter(|v| v.get("specversion").is_some())
    else {
        return (None, None);
    };
    let text = |name: &str| object.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    (text("type"), text("id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: Some(value.as_bytes().to_vec()),
        }
    }

    fn failure_headers(kind: &str, at: &str) -> Vec<Header> {
        vec![
            header(dlq::ORIGINAL_TOPIC, "orders"),
            header(dlq::ORIGINAL_PARTITION, "2"),
            header(dlq::ORIGINAL_OFFSET, "41"),
            header(dlq::CONSUMER_GROUP, "billing"),
            header(dlq::HANDLER, "charge,notify"),
            header(dlq::ERROR_KIND, kind),
            header(dlq::ERROR_MESSAGE, "card declined"),
            header(dlq::RETRY_COUNT, "4"),
            header(dlq::TIMESTAMP, at),
        ]
    }

    #[test]
    fn every_failure_and_the_last_replay_count_are_parsed() {
        let mut all = vec![header("ce_type", "order.placed"), header("ce_id", "e-1")];
        all.extend(failure_headers(
            "retries-exhausted",
            "2026-01-02T03:04:05.000006Z",
        ));
        all.push(header(dlq::REPLAY_COUNT, "1"));
        all.extend(failure_headers("permanent", "2026-01-03T00:00:00Z"));
        let letter = DeadLetter::from_parts("orders.dlq".into(), 0, 7, None, None, None, all);
        assert_eq!(letter.failures.len(), 2);
        assert_eq!(letter.failures[0].error_kind, "retries-exhausted");
        let last = letter.failure().unwrap();
        assert_eq!(last.error_kind, "permanent");
        assert_eq!(
            (
                last.original_partition,
                last.original_offset,
                last.retry_count
            ),
            (Some(2), Some(41), Some(4))
        );
        assert_eq!(last.handlers, ["charge", "notify"]);
        assert_eq!(
            last.failed_at.unwrap().to_rfc3339(),
            "2026-01-03T00:00:00+00:00"
        );
        assert_eq!(letter.replay_count, 1);
        assert_eq!(letter.ce_type.as_deref(), Some("order.placed"));
        assert_eq!(letter.ce_id.as_deref(), Some("e-1"));
    }

    #[test]
    fn a_structured_event_gives_type_and_id_and_a_record_without_dlq_headers_has_no_failure() {
        let value = br#"{"specversion":"1.0","type":"a.b","id":"x","source":"s","data":{}}"#;
        let letter = DeadLetter::from_parts(
            "t.dlq".into(),
            0,
            0,
            Some(5),
            None,
            Some(value.to_vec()),
            vec![],
        );
        assert_eq!(
            (letter.ce_type.as_deref(), letter.ce_id.as_deref()),
            (Some("a.b"), Some("x"))
        );
        assert!(letter.failure().is_none());
        assert_eq!(letter.replay_count, 0);
        assert_eq!(letter.failed_at().unwrap().timestamp_millis(), 5);
    }
}
