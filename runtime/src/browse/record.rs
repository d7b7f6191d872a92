//! One record of a topic as [`TopicReader`](super::TopicReader) hands it out: where it is, its key
//! and headers, and what it holds, decoded with the codec the consumers use.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rdkafka::message::{Headers, Message};

use crate::dlq::Header;
use crate::event::envelope::Metadata;
use crate::wire::codec::{binary_metadata_any_data, Incoming};
use crate::wire::received::Received;

/// What a record's value or an event's data holds, for people and JSON output.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// No value, or an empty one.
    None,
    /// JSON.
    Json(serde_json::Value),
    /// UTF-8 text that is not JSON.
    Text(String),
    /// Bytes that are not UTF-8, base64-encoded (standard alphabet, padded).
    Base64(String),
}

impl Data {
    /// Reads `bytes` as JSON, else as text, else as base64.
    pub fn of(bytes: Option<&[u8]>) -> Self {
        let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
            return Self::None;
        };
        if let Ok(json) = serde_json::from_slice(bytes) {
            return Self::Json(json);
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::Text(text.to_owned()),
            Err(_) => Self::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }

    /// As JSON: the JSON itself, a string for text, `{"base64": "..."}` for bytes, `null` for
    /// nothing.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::None => serde_json::Value::Null,
            Self::Json(json) => json.clone(),
            Self::Text(text) => serde_json::Value::String(text.clone()),
            Self::Base64(encoded) => serde_json::json!({ "base64": encoded }),
        }
    }

    /// On one line: compact JSON, the text with line breaks as spaces, `base64:...`, or `-`.
    pub fn to_line(&self) -> String {
        match self {
            Self::None => "-".into(),
            Self::Json(json) => json.to_string(),
            Self::Text(text) => text.replace(['\r', '\n'], " "),
            Self::Base64(encoded) => format!("base64:{encoded}"),
        }
    }
}

/// Whether a record is a CloudEvent herald reads.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordKind {
    /// A CloudEvent (binary or structured content mode): its attributes. Its `key` and
    /// `position` are filled in too. A binary-mode event whose data is not JSON is one as well,
    /// its data then text or base64.
    Event(Box<Metadata>),
    /// Any other record.
    NotEvent {
        /// Why it is not a CloudEvent herald reads (no `ce_*` headers, a missing required
        /// attribute, a structured event whose data is not JSON, ...).
        reason: String,
    },
}

/// One record of a topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The Kafka timestamp (create or log-append time), when it has one.
    pub timestamp: Option<DateTime<Utc>>,
    /// The key, byte for byte.
    pub key: Option<Vec<u8>>,
    /// Every header in order.
    pub headers: Vec<Header>,
    /// A CloudEvent's attributes, or why it is not one.
    pub kind: RecordKind,
    /// A CloudEvent's data (structured mode: its `data` or decoded `data_base64`); any other
    /// record's value.
    pub data: Data,
    /// The value, byte for byte.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// The CloudEvent's attributes, when it is one.
    pub fn event(&self) -> Option<&Metadata> {
        match &self.kind {
            RecordKind::Event(meta) => Some(meta),
            RecordKind::NotEvent { .. } => None,
        }
    }

    /// The key as text (non-UTF-8 bytes replaced by U+FFFD).
    pub fn key_text(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }

    /// The event's time (`ce_time`) when it has one, else the Kafka timestamp.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.event().and_then(|m| m.time).or(self.timestamp)
    }

    /// Decodes a consumed record; a record that is not a CloudEvent is kept with the reason.
    pub(crate) fn decode(message: &Received) -> Self {
        let headers = message
            .headers()
            .map(|hs| {
                (0..hs.count())
                    .filter_map(|i| hs.try_get(i))
                    .map(|h| Header {
                        name: h.key.to_owned(),
                        value: h.value.map(<[u8]>::to_vec),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (kind, data) = match Incoming::decode_received(message) {
            Ok(incoming) => (
                RecordKind::Event(Box::new(incoming.meta().clone())),
                Data::of(Some(incoming.data())),
            ),
            // A CloudEvent whose data is not JSON: its attributes, its data as text or base64.
            Err(reason) => match binary_metadata_any_data(message) {
                Some(meta) => (
                    RecordKind::Event(Box::new(meta)),
                    Data::of(message.payload()),
                ),
                None => (RecordKind::NotEvent { reason }, Data::of(message.payload())),
            },
        };
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message
                .timestamp()
                .to_millis()
                .and_then(DateTime::from_timestamp_millis),
            key: message.key().map(<[u8]>::to_vec),
            headers,
            kind,
            data,
            value: message.payload().map(<[u8]>::to_vec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::envelope::Position;
    use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};

    fn received(key: &str, value: &[u8], headers: &[(&str, &str)]) -> Received {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(KafkaHeader {
                key: k,
                value: Some(*v),
            })
        });
        let position = Position {
            topic: "orders".into(),
            partition: 1,
            offset: 7,
        };
        Received::for_test(&position, Some(key.as_bytes()), Some(value), Some(&headers))
    }

    #[test]
    fn a_binary_event_gives_its_attributes_and_json_data() {
        let record = Record::decode(&received(
            "k1",
            br#"{"n":1}"#,
            &[
                ("ce_specversion", "1.0"),
                ("ce_id", "e1"),
                ("ce_type", "order.placed"),
                ("ce_source", "shop"),
                ("ce_time", "2026-01-02T03:04:05Z"),
                ("ce_correlationid", "c1"),
                ("ce_causationid", "e0"),
                ("ce_schemaversion", "2"),
                ("ce_tenant", "acme"),
                ("content-type", "application/json"),
            ],
        ));
        let meta = record.event().expect("a CloudEvent");
        assert_eq!(
            (
                meta.id.as_str(),
                meta.event_type.as_str(),
                meta.source.as_str()
            ),
            ("e1", "order.placed", "shop")
        );
        assert_eq!(meta.correlation_id.as_deref(), Some("c1"));
        assert_eq!(meta.causation_id.as_deref(), Some("e0"));
        assert_eq!(meta.schema_version, Some(2));
        assert_eq!(
            meta.extensions.get("tenant").map(String::as_str),
            Some("acme")
        );
        assert_eq!(record.data, Data::Json(serde_json::json!({ "n": 1 })));
        assert_eq!(record.key_text().as_deref(), Some("k1"));
        assert_eq!((record.partition, record.offset), (1, 7));
        assert_eq!(record.headers.len(), 10);
        assert_eq!(
            record.time().unwrap().to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn a_structured_event_gives_its_data_and_any_other_record_is_kept_with_the_reason() {
        let structured = Record::decode(&received(
            "k",
            br#"{"specversion":"1.0","id":"s1","type":"a.b","source":"py","correlationid":"c","data":{"x":[1]}}"#,
            &[],
        ));
        assert_eq!(structured.event().unwrap().id, "s1");
        assert_eq!(structured.data, Data::Json(serde_json::json!({ "x": [1] })));

        let plain = Record::decode(&received("k", b"hello there", &[("trace", "t")]));
        let RecordKind::NotEvent { reason } = &plain.kind else {
            panic!("not a CloudEvent: {plain:?}");
        };
        assert!(reason.contains("not a CloudEvent"), "{reason}");
        assert_eq!(plain.data, Data::Text("hello there".into()));
        assert_eq!(Data::of(Some(b"\xff\x00")), Data::Base64("/wA=".into()));

        let text = Record::decode(&received(
            "k",
            b"plain words",
            &[
                ("ce_specversion", "1.0"),
                ("ce_id", "t1"),
                ("ce_type", "note.written"),
                ("ce_source", "s"),
                ("content-type", "text/plain"),
            ],
        ));
        assert_eq!(text.event().map(|m| m.id.as_str()), Some("t1"));
        assert_eq!(text.data, Data::Text("plain words".into()));
        assert_eq!(Data::of(Some(b"")), Data::None);
    }
}
