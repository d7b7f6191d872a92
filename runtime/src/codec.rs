//! The wire format: CloudEvents 1.0 over Kafka (binary content mode for what herald produces; binary
//! and structured mode for what it consumes). `docs/wire-format.md` is the human-readable version.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::envelope::{Metadata, Position};
use crate::error::DispatchError;
use crate::event::{Event, HeraldEvent};

/// Header names of the CloudEvents Kafka binding and herald's extensions.
pub mod headers {
    /// `ce_specversion`: always `1.0`.
    pub const SPEC_VERSION: &str = "ce_specversion";
    /// `ce_id`.
    pub const ID: &str = "ce_id";
    /// `ce_type`.
    pub const TYPE: &str = "ce_type";
    /// `ce_source`.
    pub const SOURCE: &str = "ce_source";
    /// `ce_time`, RFC 3339.
    pub const TIME: &str = "ce_time";
    /// `ce_subject`.
    pub const SUBJECT: &str = "ce_subject";
    /// `content-type`, the data's media type.
    pub const CONTENT_TYPE: &str = "content-type";
    /// `ce_schemaversion`: the event's schema version.
    pub const SCHEMA_VERSION: &str = "ce_schemaversion";
    /// `ce_correlationid`.
    pub const CORRELATION_ID: &str = "ce_correlationid";
    /// `ce_causationid`.
    pub const CAUSATION_ID: &str = "ce_causationid";
    /// `ce_aggregateid`.
    pub const AGGREGATE_ID: &str = "ce_aggregateid";
    /// `ce_aggregatetype`.
    pub const AGGREGATE_TYPE: &str = "ce_aggregatetype";
    /// `ce_aggregateversion`.
    pub const AGGREGATE_VERSION: &str = "ce_aggregateversion";
    /// The prefix of every CloudEvents attribute header.
    pub const PREFIX: &str = "ce_";
}

/// The only CloudEvents version herald speaks.
pub const SPEC_VERSION: &str = "1.0";
/// The media type of herald's event data.
pub const JSON: &str = "application/json";
/// The media type of a CloudEvent in structured content mode.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";

/// Whether `name` is a legal CloudEvents extension attribute name: lower-case ASCII letters and
/// digits, 1 to 20 characters, not one of herald's own.
pub fn valid_extension_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !RESERVED.contains(&name)
}

const RESERVED: &[&str] = &[
    "specversion",
    "id",
    "type",
    "source",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
    "schemaversion",
    "correlationid",
    "causationid",
    "aggregateid",
    "aggregatetype",
    "aggregateversion",
];

/// Encodes metadata as Kafka headers (binary content mode).
pub fn encode_headers(meta: &Metadata) -> OwnedHeaders {
    let time = meta.time.map(format_time);
    let schema_version = meta.schema_version.map(|v| v.to_string());
    let aggregate_version = meta.aggregate_version.map(|v| v.to_string());
    let mut fields: Vec<(&str, Option<&str>)> = vec![
        (headers::SPEC_VERSION, Some(SPEC_VERSION)),
        (headers::ID, Some(&meta.id)),
        (headers::TYPE, Some(&meta.event_type)),
        (headers::SOURCE, Some(&meta.source)),
        (headers::TIME, time.as_deref()),
        (
            headers::CONTENT_TYPE,
            Some(meta.content_type.as_deref().unwrap_or(JSON)),
        ),
        (headers::SCHEMA_VERSION, schema_version.as_deref()),
        (headers::SUBJECT, meta.subject.as_deref()),
        (headers::CORRELATION_ID, meta.correlation_id.as_deref()),
        (headers::CAUSATION_ID, meta.causation_id.as_deref()),
        (headers::AGGREGATE_ID, meta.aggregate_id.as_deref()),
        (headers::AGGREGATE_TYPE, meta.aggregate_type.as_deref()),
        (headers::AGGREGATE_VERSION, aggregate_version.as_deref()),
    ];
    let extensions: Vec<(String, &str)> = meta
        .extensions
        .iter()
        .map(|(k, v)| (format!("{}{k}", headers::PREFIX), v.as_str()))
        .collect();
    fields.extend(extensions.iter().map(|(k, v)| (k.as_str(), Some(*v))));
    fields
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key, value)))
        .fold(
            OwnedHeaders::new_with_capacity(16),
            |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value),
                })
            },
        )
}

fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A consumed message turned into metadata and JSON data, shared by every handler of the message.
#[derive(Debug, Clone)]
pub struct Incoming(Arc<IncomingParts>);

#[derive(Debug)]
struct IncomingParts {
    meta: Metadata,
    data: Vec<u8>,
}

impl Incoming {
    /// The event's metadata.
    pub fn meta(&self) -> &Metadata {
        &self.0.meta
    }

    /// The event's data, JSON.
    pub fn data(&self) -> &[u8] {
        &self.0.data
    }

    /// Decodes a Kafka message. Binary content mode: attributes in `ce_*` headers, data in the
    /// value; structured mode (`content-type: application/cloudevents+json`): the whole event in the
    /// value.
    ///
    /// # Errors
    /// The reason the message is not a CloudEvent herald can read.
    pub fn decode<H: Headers + ?Sized>(
        headers: Option<&H>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        position: Position,
    ) -> Result<Self, String> {
        let mut meta = Metadata {
            key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
            position: Some(position),
            ..Metadata::default()
        };
        let mut seen_ce = false;
        if let Some(headers) = headers {
            for header in (0..headers.count()).filter_map(|i| headers.try_get(i)) {
                let Some(raw) = header.value else { continue };
                let value = std::str::from_utf8(raw)
                    .map_err(|_| format!("header `{}` is not UTF-8", header.key))?;
                if header.key.eq_ignore_ascii_case(headers::CONTENT_TYPE) {
                    meta.content_type = Some(value.to_owned());
                } else if let Some(name) = header.key.strip_prefix(headers::PREFIX) {
                    seen_ce = true;
                    set_attribute(&mut meta, name, value.to_owned())?;
                }
            }
        }
        let value = value.unwrap_or_default();
        let structured = meta
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with(STRUCTURED_JSON));
        let data = if structured {
            decode_structured(&mut meta, value)?
        } else {
            if !seen_ce {
                return Err(
                    "no CloudEvents headers (`ce_specversion`, `ce_id`, `ce_type`, `ce_source`): not a CloudEvent"
                        .into(),
                );
            }
            if let Some(ct) = meta.content_type.as_deref() {
                if !is_json(ct) {
                    return Err(format!(
                        "content-type `{ct}` is not JSON; herald events carry `application/json`"
                    ));
                }
            }
            value.to_vec()
        };
        check_required(&meta)?;
        if data.is_empty() {
            return Err("the message has no data (empty value)".into());
        }
        Ok(Self(Arc::new(IncomingParts { meta, data })))
    }
}

fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media == JSON || media.ends_with("+json") || media == "text/json"
}

fn set_attribute(meta: &mut Metadata, name: &str, value: String) -> Result<(), String> {
    let parse_err = |what: &str| format!("attribute `{name}` = `{value}` is not {what}");
    match name {
        "specversion" => meta.spec_version = value,
        "id" => meta.id = value,
        "type" => meta.event_type = value,
        "source" => meta.source = value,
        "time" => {
            meta.time = Some(
                DateTime::parse_from_rfc3339(&value)
                    .map_err(|_| parse_err("an RFC 3339 time"))?
                    .with_timezone(&Utc),
            )
        }
        "subject" => meta.subject = Some(value),
        "datacontenttype" => meta.content_type = Some(value),
        "schemaversion" => {
            meta.schema_version = Some(value.parse().map_err(|_| parse_err("a whole number"))?)
        }
        "correlationid" => meta.correlation_id = Some(value),
        "causationid" => meta.causation_id = Some(value),
        "aggregateid" => meta.aggregate_id = Some(value),
        "aggregatetype" => meta.aggregate_type = Some(value),
        "aggregateversion" => {
            meta.aggregate_version = Some(value.parse().map_err(|_| parse_err("a whole number"))?)
        }
        other => {
            meta.extensions.insert(other.to_owned(), value);
        }
    }
    Ok(())
}

fn check_required(meta: &Metadata) -> Result<(), String> {
    for (name, value) in [
        ("specversion", &meta.spec_version),
        ("id", &meta.id),
        ("type", &meta.event_type),
        ("source", &meta.source),
    ] {
        if value.is_empty() {
            return Err(format!(
                "required CloudEvents attribute `{name}` is missing"
            ));
        }
    }
    if meta.spec_version != SPEC_VERSION {
        return Err(format!(
            "CloudEvents spec version `{}` is not supported (herald reads `{SPEC_VERSION}`)",
            meta.spec_version
        ));
    }
    Ok(())
}

/// Reads a structured-mode CloudEvent from the value; returns its `data` as JSON bytes.
fn decode_structured(meta: &mut Metadata, value: &[u8]) -> Result<Vec<u8>, String> {
    let serde_json::Value::Object(object) = serde_json::from_slice(value)
        .map_err(|e| format!("structured CloudEvent is not valid JSON: {e}"))?
    else {
        return Err("structured CloudEvent is not a JSON object".into());
    };
    meta.content_type = None;
    let mut data = None;
    for (name, value) in object {
        match (name.as_str(), value) {
            ("data", value) => data = Some(value),
            ("data_base64", _) => {
                return Err(
                    "`data_base64` (binary data) is not supported: herald events are JSON".into(),
                )
            }
            (name, serde_json::Value::String(s)) => set_attribute(meta, name, s)?,
            (name, serde_json::Value::Null) => {
                let _ = name;
            }
            (name, other) => set_attribute(meta, name, other.to_string())?,
        }
    }
    if let Some(ct) = meta.content_type.as_deref() {
        if !is_json(ct) {
            return Err(format!("datacontenttype `{ct}` is not JSON"));
        }
    }
    let data = data.ok_or("structured CloudEvent has no `data`")?;
    serde_json::to_vec(&data).map_err(|e| e.to_string())
}

fn check_version<T: HeraldEvent>(incoming: &Incoming) -> Result<(), DispatchError> {
    match incoming.meta().schema_version {
        Some(version) if version != T::VERSION => Err(DispatchError::Decode(format!(
            "`{}` has schema version {version}, this handler reads version {}",
            T::EVENT_TYPE,
            T::VERSION
        ))),
        _ => Ok(()),
    }
}

/// Decodes the event's data as `T`.
///
/// # Errors
/// [`DispatchError::Decode`] when the schema version differs or the JSON does not fit `T`.
pub fn decode_data<T: HeraldEvent>(incoming: &Incoming) -> Result<T, DispatchError> {
    check_version::<T>(incoming)?;
    serde_json::from_slice(incoming.data()).map_err(|e| {
        DispatchError::Decode(format!(
            "data of `{}` does not match the Rust type: {e}",
            T::EVENT_TYPE
        ))
    })
}

/// Decodes the event's data as `T`, with its metadata.
///
/// # Errors
/// As [`decode_data`].
pub fn decode_event<T: HeraldEvent>(incoming: &Incoming) -> Result<Event<T>, DispatchError> {
    Ok(Event {
        data: decode_data(incoming)?,
        meta: incoming.meta().clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> Position {
        Position {
            topic: "t".into(),
            partition: 2,
            offset: 7,
        }
    }

    fn sample() -> Metadata {
        Metadata {
            id: "4f6c".into(),
            event_type: "user.created".into(),
            source: "user-service".into(),
            spec_version: SPEC_VERSION.into(),
            time: Some("2026-11-23T10:00:00.123456Z".parse().unwrap()),
            schema_version: Some(2),
            correlation_id: Some("corr".into()),
            causation_id: Some("cause".into()),
            aggregate_id: Some("42".into()),
            aggregate_type: Some("user".into()),
            aggregate_version: Some(3),
            subject: None,
            content_type: Some(JSON.into()),
            extensions: [("tenant".to_string(), "acme".to_string())].into(),
            key: Some("42".into()),
            position: Some(position()),
        }
    }

    #[test]
    fn binary_mode_round_trips_every_attribute() {
        let meta = sample();
        let headers = encode_headers(&meta);
        let names: Vec<&str> = headers.iter().map(|h| h.key).collect();
        assert!(names.contains(&"ce_specversion") && names.contains(&"ce_tenant"));
        assert!(names.contains(&"content-type"));
        let incoming =
            Incoming::decode(Some(&headers), Some(b"42"), Some(b"{}"), position()).unwrap();
        assert_eq!(incoming.meta(), &meta);
        assert_eq!(incoming.data(), b"{}");
    }

    #[test]
    fn time_is_rfc3339_utc() {
        let headers = encode_headers(&sample());
        let time = headers.iter().find(|h| h.key == "ce_time").unwrap();
        assert_eq!(time.value.unwrap(), b"2026-11-23T10:00:00.123456Z");
    }

    #[test]
    fn missing_required_attribute_is_reported_by_name() {
        let mut meta = sample();
        meta.source.clear();
        let headers = encode_headers(&meta).insert(Header {
            key: "ce_source",
            value: Some(""),
        });
        let err = Incoming::decode(Some(&headers), None, Some(b"{}"), position()).unwrap_err();
        assert!(err.contains("`source`"), "{err}");
    }

    #[test]
    fn plain_messages_are_not_cloudevents() {
        let err =
            Incoming::decode(None::<&OwnedHeaders>, None, Some(b"{}"), position()).unwrap_err();
        assert!(err.contains("no CloudEvents headers"), "{err}");
    }

    #[test]
    fn malformed_attributes_are_rejected() {
        let headers = encode_headers(&sample()).insert(Header {
            key: "ce_time",
            value: Some("yesterday"),
        });
        let err = Incoming::decode(Some(&headers), None, Some(b"{}"), position()).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn non_json_content_is_rejected() {
        let mut meta = sample();
        meta.content_type = Some("application/avro".into());
        let headers = encode_headers(&meta);
        let err = Incoming::decode(Some(&headers), None, Some(b"{}"), position()).unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn structured_mode_is_read() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/cloudevents+json; charset=utf-8"),
        });
        let value = br#"{"specversion":"1.0","id":"x1","type":"user.created","source":"/crm",
            "time":"2026-01-01T00:00:00Z","correlationid":"c9","tenant":"acme","data":{"a":1}}"#;
        let incoming = Incoming::decode(Some(&headers), None, Some(value), position()).unwrap();
        let meta = incoming.meta();
        assert_eq!((meta.id.as_str(), meta.source.as_str()), ("x1", "/crm"));
        assert_eq!(meta.correlation_id.as_deref(), Some("c9"));
        assert_eq!(meta.extensions["tenant"], "acme");
        assert_eq!(incoming.data(), br#"{"a":1}"#);
    }

    #[test]
    fn extension_names_follow_cloudevents_rules() {
        assert!(valid_extension_name("tenant"));
        assert!(valid_extension_name("traceparent"));
        assert!(!valid_extension_name("Tenant"));
        assert!(!valid_extension_name("tenant_id"));
        assert!(!valid_extension_name("correlationid"));
        assert!(!valid_extension_name(""));
    }
}
