//! Unit tests of the wire format. The `sdk_*` tests hold the exact Kafka records the official CloudEvents
//! SDKs write (see `docs/wire-format.md`, "What the official SDKs write").

use std::collections::BTreeMap;

use super::*;

/// [`Incoming::decode`], checked against the consumer's way ([`Incoming::decode_received`], whose
/// metadata is built lazily from the message's buffer): both give the same event or the same error.
fn decode<H: Headers>(
    headers: Option<&H>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    position: Position,
) -> Result<Incoming, String> {
    let received = Received::for_test(&position, key, value, headers);
    let eager = Incoming::decode(headers, key, value, position);
    let lazy = Incoming::decode_received(&received);
    match (&eager, &lazy) {
        (Ok(eager), Ok(lazy)) => {
            assert_eq!(lazy.event_type(), eager.meta().event_type);
            assert_eq!(lazy.schema_version(), eager.meta().schema_version);
            let (topic, partition, offset) = lazy.position();
            let position = eager.meta().position.clone().unwrap();
            assert_eq!(
                (topic, partition, offset),
                (position.topic.as_str(), position.partition, position.offset)
            );
            assert_eq!(lazy.meta(), eager.meta());
            assert_eq!(lazy.data(), eager.data());
        }
        (Err(eager), Err(lazy)) => assert_eq!(lazy, eager),
        _ => panic!("the two decodings differ: {eager:?} and {lazy:?}"),
    }
    eager
}

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
        spec_version: SPEC_VERSION_VALUE.into(),
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
    let incoming = decode(Some(&headers), Some(b"42"), Some(b"{}"), position()).unwrap();
    assert_eq!(incoming.meta(), &meta);
    assert_eq!(incoming.data(), b"{}");
}

#[test]
fn structured_mode_round_trips_every_attribute() {
    let mut meta = sample();
    meta.extensions
        .insert("quote".into(), "say \"hi\"\n".into());
    let data = br#"{"name":"Ada","tags":["x"]}"#;
    let value = encode_structured(&meta, data);
    let headers = structured_headers();
    let names: Vec<&str> = headers.iter().map(|h| h.key).collect();
    assert_eq!(names, ["content-type"]);
    let object: serde_json::Value = serde_json::from_slice(&value).unwrap();
    assert_eq!(object["specversion"], "1.0");
    assert_eq!(object["datacontenttype"], JSON);
    assert_eq!(object["schemaversion"], "2");
    assert_eq!(object["quote"], "say \"hi\"\n");
    assert_eq!(object["data"]["tags"][0], "x");
    let incoming = decode(Some(&headers), Some(b"42"), Some(&value), position()).unwrap();
    assert_eq!(incoming.meta(), &meta);
    assert_eq!(incoming.data(), data);
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
    let err = decode(Some(&headers), None, Some(b"{}"), position()).unwrap_err();
    assert!(err.contains("`source`"), "{err}");
}

#[test]
fn plain_messages_are_not_cloudevents() {
    let err = decode(None::<&OwnedHeaders>, None, Some(b"{}"), position()).unwrap_err();
    assert!(err.contains("no CloudEvents headers"), "{err}");
}

#[test]
fn malformed_attributes_are_rejected() {
    let headers = encode_headers(&sample()).insert(Header {
        key: "ce_time",
        value: Some("yesterday"),
    });
    let err = decode(Some(&headers), None, Some(b"{}"), position()).unwrap_err();
    assert!(err.contains("RFC 3339"), "{err}");
}

#[test]
fn non_json_content_is_rejected() {
    let mut meta = sample();
    meta.content_type = Some("application/avro".into());
    let headers = encode_headers(&meta);
    let err = decode(Some(&headers), None, Some(b"{}"), position()).unwrap_err();
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
    let incoming = decode(Some(&headers), None, Some(value), position()).unwrap();
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

// ---- Records as other producers write them ----

/// A record's headers, in order; `None` is a header with a null value.
type RawHeaders<'a> = &'a [(&'a str, Option<&'a [u8]>)];

fn headers_of(list: RawHeaders<'_>) -> OwnedHeaders {
    list.iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header { key, value: *value })
        })
}

fn decode_raw(
    headers: RawHeaders<'_>,
    key: Option<&[u8]>,
    value: &[u8],
) -> Result<Incoming, String> {
    decode(Some(&headers_of(headers)), key, Some(value), position())
}

const ID: &str = "5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11";
const TYPE: &str = "com.example.order.placed";
const SOURCE: &str = "/orders";

/// What every SDK test expects: the attributes, the extensions by name, the key and the data bytes.
fn assert_event(incoming: &Incoming, extensions: &[(&str, &str)], key: Option<&str>, data: &[u8]) {
    let meta = incoming.meta();
    assert_eq!(
        (
            meta.id.as_str(),
            meta.event_type.as_str(),
            meta.source.as_str()
        ),
        (ID, TYPE, SOURCE)
    );
    assert_eq!(meta.spec_version, SPEC_VERSION_VALUE);
    let expected: BTreeMap<String, String> = extensions
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(meta.extensions, expected);
    assert_eq!(meta.key.as_deref(), key);
    // The same JSON: a structured event's data is its `data` member's text as written.
    let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    assert_eq!(json(incoming.data()), json(data));
    assert_eq!(meta.position, Some(position()));
}

fn time_of(incoming: &Incoming) -> String {
    incoming
        .meta()
        .time
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

const COMPACT: &[u8] = br#"{"order":7,"total":12.5}"#;

/// Python `cloudevents.kafka.to_binary`: `content-type` first, then `ce_*` in the event's attribute
/// order (the caller's, then the defaults `specversion`, `id`, `time`); `partitionkey` becomes the
/// key and no header; the value is `json.dumps(data)`.
#[test]
fn sdk_python_binary() {
    let incoming = decode_raw(
        &[
            ("content-type", Some(b"application/json")),
            ("ce_type", Some(TYPE.as_bytes())),
            ("ce_source", Some(SOURCE.as_bytes())),
            ("ce_tenant", Some(b"acme")),
            ("ce_specversion", Some(b"1.0")),
            ("ce_id", Some(ID.as_bytes())),
            ("ce_time", Some(b"2026-11-23T10:00:00.123456+00:00")),
        ],
        Some(b"order-7"),
        br#"{"order": 7, "total": 12.5}"#,
    )
    .unwrap();
    assert_event(
        &incoming,
        &[("tenant", "acme")],
        Some("order-7"),
        br#"{"order": 7, "total": 12.5}"#,
    );
    assert_eq!(time_of(&incoming), "2026-11-23T10:00:00.123456Z");
    assert_eq!(incoming.meta().content_type.as_deref(), Some(JSON));
}

/// The Python structured value: `json.dumps` of the attributes (with `partitionkey`, also the key)
/// and `data`; `datacontenttype` is popped into the `content-type` header.
const PYTHON_STRUCTURED: &[u8] = br#"{"type": "com.example.order.placed", "source": "/orders", "partitionkey": "order-7", "tenant": "acme", "specversion": "1.0", "id": "5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11", "time": "2026-11-23T10:00:00.123456+00:00", "data": {"order": 7, "total": 12.5}}"#;

/// Python `cloudevents.kafka.to_structured` with JSON data: `content-type` is the event's
/// `datacontenttype`, not `application/cloudevents+json`.
#[test]
fn sdk_python_structured() {
    let incoming = decode_raw(
        &[("content-type", Some(b"application/json"))],
        Some(b"order-7"),
        PYTHON_STRUCTURED,
    )
    .unwrap();
    assert_event(
        &incoming,
        &[("partitionkey", "order-7"), ("tenant", "acme")],
        Some("order-7"),
        COMPACT,
    );
    assert_eq!(time_of(&incoming), "2026-11-23T10:00:00.123456Z");
    assert_eq!(incoming.meta().content_type.as_deref(), Some(JSON));
}

/// Python `to_structured` of an event without `datacontenttype`: no headers at all.
#[test]
fn sdk_python_structured_without_content_type() {
    let incoming = decode_raw(&[], Some(b"order-7"), PYTHON_STRUCTURED).unwrap();
    assert_event(
        &incoming,
        &[("partitionkey", "order-7"), ("tenant", "acme")],
        Some("order-7"),
        COMPACT,
    );
    assert_eq!(incoming.meta().content_type, None);
}

/// Python `to_structured` of bytes data: `data_base64`, `content-type: application/json`.
#[test]
fn sdk_python_structured_bytes_data() {
    let incoming = decode_raw(
        &[("content-type", Some(b"application/json"))],
        None,
        br#"{"type": "com.example.order.placed", "source": "/orders", "specversion": "1.0", "id": "5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11", "time": "2026-11-23T10:00:00+00:00", "data_base64": "eyJvcmRlciI6IDcsICJ0b3RhbCI6IDEyLjV9"}"#,
    )
    .unwrap();
    assert_event(&incoming, &[], None, br#"{"order": 7, "total": 12.5}"#);
    assert_eq!(time_of(&incoming), "2026-11-23T10:00:00Z");
}

/// The `ce_*` headers of Go sdk-go's Kafka bindings: the spec attributes in sdk-go's order (`id`,
/// `source`, `specversion`, `type`, `datacontenttype` as `content-type`, `time` as RFC 3339 with
/// nanoseconds), then the extensions, `partitionkey` included.
const GO_BINARY_HEADERS: RawHeaders<'static> = &[
    ("ce_id", Some(ID.as_bytes())),
    ("ce_source", Some(SOURCE.as_bytes())),
    ("ce_specversion", Some(b"1.0")),
    ("ce_type", Some(TYPE.as_bytes())),
    ("content-type", Some(b"application/json")),
    ("ce_time", Some(b"2026-11-23T10:00:00.123456789Z")),
    ("ce_partitionkey", Some(b"order-7")),
    ("ce_tenant", Some(b"acme")),
];

/// Go `kafka_sarama.WriteProducerMessage`, binary: the `partitionkey` extension is also the key.
#[test]
fn sdk_go_sarama_binary() {
    let incoming = decode_raw(GO_BINARY_HEADERS, Some(b"order-7"), COMPACT).unwrap();
    assert_event(
        &incoming,
        &[("partitionkey", "order-7"), ("tenant", "acme")],
        Some("order-7"),
        COMPACT,
    );
    assert_eq!(time_of(&incoming), "2026-11-23T10:00:00.123456789Z");
}

/// Go `kafka_confluent.WriteProducerMessage`, binary: the same headers, no key mapping (the key is
/// set only through `WithMessageKey`).
#[test]
fn sdk_go_confluent_binary() {
    let incoming = decode_raw(GO_BINARY_HEADERS, None, COMPACT).unwrap();
    assert_event(
        &incoming,
        &[("partitionkey", "order-7"), ("tenant", "acme")],
        None,
        COMPACT,
    );
}

/// Go sdk-go structured mode (both bindings): `content-type: application/cloudevents+json`; the
/// event's JSON writes the attributes, then `data` raw, then the extensions sorted by name.
#[test]
fn sdk_go_structured() {
    let incoming = decode_raw(
        &[("content-type", Some(b"application/cloudevents+json"))],
        Some(b"order-7"),
        br#"{"specversion":"1.0","id":"5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11","source":"/orders","type":"com.example.order.placed","datacontenttype":"application/json","time":"2026-11-23T10:00:00.123456789Z","data":{"order":7,"total":12.5},"partitionkey":"order-7","tenant":"acme"}"#,
    )
    .unwrap();
    assert_event(
        &incoming,
        &[("partitionkey", "order-7"), ("tenant", "acme")],
        Some("order-7"),
        COMPACT,
    );
    assert_eq!(time_of(&incoming), "2026-11-23T10:00:00.123456789Z");
}

/// Go `event.SetData("application/json", []byte(...))` marks the data binary: structured mode
/// writes it as `data_base64` although it is JSON.
#[test]
fn sdk_go_structured_bytes_data() {
    let incoming = decode_raw(
        &[("content-type", Some(b"application/cloudevents+json"))],
        None,
        br#"{"specversion":"1.0","id":"5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11","source":"/orders","type":"com.example.order.placed","datacontenttype":"application/json","time":"2026-11-23T10:00:00Z","data_base64":"eyJvcmRlciI6NywidG90YWwiOjEyLjV9"}"#,
    )
    .unwrap();
    assert_event(&incoming, &[], None, COMPACT);
}

/// Java `cloudevents-kafka` `CloudEventSerializer`, binary: `ce_specversion` first, then `id`,
/// `source`, `type`, `content-type`, `time` (ISO offset date-time), the extensions; the key comes
/// from `PartitionKeyExtensionInterceptor`, which leaves the extension in place.
#[test]
fn sdk_java_binary() {
    let incoming = decode_raw(
        &[
            ("ce_specversion", Some(b"1.0")),
            ("ce_id", Some(ID.as_bytes())),
            ("ce_source", Some(SOURCE.as_bytes())),
            ("ce_type", Some(TYPE.as_bytes())),
            ("content-type", Some(b"application/json")),
            ("ce_time", Some(b"2026-11-23T10:00:00.123Z")),
            ("ce_partitionkey", Some(b"order-7")),
            ("ce_tenant", Some(b"acme")),
        ],
        Some(b"order-7"),
        COMPACT,
    )
    .unwrap();
    assert_event(
        &incoming,
        &[("partitionkey", "order-7"), ("tenant", "acme")],
        Some("order-7"),
        COMPACT,
    );
    assert_eq!(time_of(&incoming), "2026-11-23T10:00:00.123Z");
}

/// Java structured (`cloudevents.serializer.encoding=STRUCTURED`, jackson `JsonFormat`): the
/// extensions come before `data`; an integer extension is a JSON number.
#[test]
fn sdk_java_structured() {
    let incoming = decode_raw(
        &[("content-type", Some(b"application/cloudevents+json"))],
        Some(b"order-7"),
        br#"{"specversion":"1.0","id":"5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11","source":"/orders","type":"com.example.order.placed","datacontenttype":"application/json","time":"2026-11-23T10:00:00.123Z","partitionkey":"order-7","retries":3,"tenant":"acme","data":{"order":7,"total":12.5}}"#,
    )
    .unwrap();
    assert_event(
        &incoming,
        &[
            ("partitionkey", "order-7"),
            ("retries", "3"),
            ("tenant", "acme"),
        ],
        Some("order-7"),
        COMPACT,
    );
}

/// Java `JsonFormat().withForceJsonDataToBase64()`: JSON data as `data_base64`.
#[test]
fn sdk_java_structured_forced_base64() {
    let incoming = decode_raw(
        &[("content-type", Some(b"application/cloudevents+json"))],
        None,
        br#"{"specversion":"1.0","id":"5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11","source":"/orders","type":"com.example.order.placed","datacontenttype":"application/json","data_base64":"eyJvcmRlciI6NywidG90YWwiOjEyLjV9"}"#,
    )
    .unwrap();
    assert_event(&incoming, &[], None, COMPACT);
    assert_eq!(incoming.meta().time, None);
}

/// JavaScript `Kafka.binary`: `content-type` and a `ce_` header for every own property of the event
/// (so `ce_datacontenttype` too, and null-valued headers for unset ones), `partitionkey` as key and
/// header; the value is `event.data`, here the JSON text the application gave.
#[test]
fn sdk_javascript_binary() {
    let incoming = decode_raw(
        &[
            ("content-type", Some(b"application/json")),
            ("ce_id", Some(ID.as_bytes())),
            ("ce_time", Some(b"2026-11-23T10:00:00.123Z")),
            ("ce_type", Some(TYPE.as_bytes())),
            ("ce_source", Some(SOURCE.as_bytes())),
            ("ce_specversion", Some(b"1.0")),
            ("ce_datacontenttype", Some(b"application/json")),
            ("ce_subject", None),
            ("ce_datacontentencoding", None),
            ("ce_dataschema", None),
            ("ce_schemaurl", None),
            ("ce_partitionkey", Some(b"order-7")),
            ("ce_tenant", Some(b"acme")),
        ],
        Some(b"order-7"),
        COMPACT,
    )
    .unwrap();
    assert_event(
        &incoming,
        &[("partitionkey", "order-7"), ("tenant", "acme")],
        Some("order-7"),
        COMPACT,
    );
    assert_eq!(incoming.meta().subject, None);
    assert_eq!(incoming.meta().content_type.as_deref(), Some(JSON));
}

/// JavaScript `Kafka.structured`: `content-type: application/cloudevents+json; charset=utf-8`; the
/// value is `JSON.stringify(event)`, properties in the constructor's order, extensions last.
#[test]
fn sdk_javascript_structured() {
    let incoming = decode_raw(
        &[(
            "content-type",
            Some(b"application/cloudevents+json; charset=utf-8"),
        )],
        Some(b"order-7"),
        br#"{"id":"5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11","time":"2026-11-23T10:00:00.123Z","type":"com.example.order.placed","source":"/orders","specversion":"1.0","datacontenttype":"application/json","data":{"order":7,"total":12.5},"partitionkey":"order-7","tenant":"acme"}"#,
    )
    .unwrap();
    assert_event(
        &incoming,
        &[("partitionkey", "order-7"), ("tenant", "acme")],
        Some("order-7"),
        COMPACT,
    );
}

/// JavaScript structured mode of an event whose data the application gave as JSON text (a string):
/// `data` is a JSON string holding the JSON; herald reads the text inside as the data.
#[test]
fn sdk_javascript_structured_data_as_json_text() {
    let incoming = decode_raw(
        &[(
            "content-type",
            Some(b"application/cloudevents+json; charset=utf-8"),
        )],
        None,
        br#"{"id":"5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11","time":"2026-11-23T10:00:00.123Z","type":"com.example.order.placed","source":"/orders","specversion":"1.0","datacontenttype":"application/json","data":"{\"order\":7,\"total\":12.5}"}"#,
    )
    .unwrap();
    assert_event(&incoming, &[], None, COMPACT);
}

// ---- Headers herald does not own ----

fn binary_with(extra: (&str, &[u8])) -> OwnedHeaders {
    encode_headers(&sample()).insert(Header {
        key: extra.0,
        value: Some(extra.1),
    })
}

#[test]
fn binary_headers_that_are_not_cloudevents_are_ignored_whatever_their_bytes() {
    let headers = binary_with(("trace-bin", &[0xff, 0xfe, 0x00, 0x80]));
    let incoming = decode(Some(&headers), Some(b"42"), Some(b"{}"), position()).unwrap();
    assert_eq!(incoming.meta(), &sample());
}

#[test]
fn a_non_utf8_cloudevents_header_is_an_error_naming_it() {
    let headers = binary_with(("ce_tenant", &[0xff, 0xfe]));
    let err = decode(Some(&headers), None, Some(b"{}"), position()).unwrap_err();
    assert!(
        err.contains("`ce_tenant`") && err.contains("UTF-8"),
        "{err}"
    );
    let headers = binary_with(("content-type", &[0xc3]));
    let err = decode(Some(&headers), None, Some(b"{}"), position()).unwrap_err();
    assert!(err.contains("`content-type`"), "{err}");
}

#[test]
fn structured_events_ignore_binary_tracing_headers() {
    let incoming = decode_raw(
        &[
            ("content-type", Some(b"application/json")),
            ("traceparent-bin", Some(&[0x00, 0xff, 0x10])),
        ],
        None,
        PYTHON_STRUCTURED,
    )
    .unwrap();
    assert_eq!(incoming.meta().id, ID);
}

// ---- Which mode, and nothing crossing between them ----

#[test]
fn ce_headers_do_not_leak_into_a_structured_event() {
    let incoming = decode_raw(
        &[
            ("content-type", Some(b"application/cloudevents+json")),
            ("ce_id", Some(b"from-a-header")),
            ("ce_subject", Some(b"from-a-header")),
            ("ce_tenant", Some(b"from-a-header")),
        ],
        None,
        br#"{"specversion":"1.0","id":"5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11","source":"/orders","type":"com.example.order.placed","data":{"order":7,"total":12.5}}"#,
    )
    .unwrap();
    assert_event(&incoming, &[], None, COMPACT);
    assert_eq!(incoming.meta().subject, None);
    assert_eq!(
        incoming.meta().content_type,
        None,
        "the format is not the data's type"
    );
}

#[test]
fn a_binary_value_that_looks_structured_stays_the_data() {
    let value = br#"{"specversion":"1.0","id":"inner","type":"x","source":"y","data":{}}"#;
    let headers = encode_headers(&sample());
    let incoming = decode(Some(&headers), None, Some(value), position()).unwrap();
    assert_eq!(incoming.meta().id, "4f6c");
    assert_eq!(incoming.data(), value);
}

#[test]
fn structured_datacontenttype_wins_over_a_content_type_header() {
    let incoming = decode_raw(
        &[("content-type", Some(b"text/plain"))],
        None,
        br#"{"specversion":"1.0","id":"5d2c7a0e-1b4f-4c1e-9a57-2f0b8d3e6c11","source":"/orders","type":"com.example.order.placed","datacontenttype":"application/json","data":{"order":7,"total":12.5}}"#,
    )
    .unwrap();
    assert_eq!(incoming.meta().content_type.as_deref(), Some(JSON));
}

#[test]
fn json_without_specversion_and_without_headers_is_not_a_cloudevent() {
    let err = decode_raw(
        &[],
        None,
        br#"{"id":"1","type":"t","source":"s","data":{}}"#,
    )
    .unwrap_err();
    assert!(err.contains("not a CloudEvent"), "{err}");
}

#[test]
fn unsupported_structured_formats_are_named() {
    let err = decode_raw(
        &[("content-type", Some(b"application/cloudevents-batch+json"))],
        None,
        b"[]",
    )
    .unwrap_err();
    assert!(err.contains("batch"), "{err}");
    let err = decode_raw(
        &[("content-type", Some(b"application/cloudevents+avro"))],
        None,
        b"\x00",
    )
    .unwrap_err();
    assert!(err.contains("application/cloudevents+avro"), "{err}");
}

// ---- Structured data ----

fn structured(data_members: &str) -> Result<Incoming, String> {
    let value = format!(
        r#"{{"specversion":"1.0","id":"{ID}","source":"{SOURCE}","type":"{TYPE}"{data_members}}}"#
    );
    decode_raw(
        &[("content-type", Some(b"application/cloudevents+json"))],
        None,
        value.as_bytes(),
    )
}

#[test]
fn a_json_string_that_is_not_json_text_is_the_data_itself() {
    let incoming = structured(r#","data":"hello""#).unwrap();
    assert_eq!(incoming.data(), br#""hello""#);
    let incoming = structured(r#","data":"{not json""#).unwrap();
    assert_eq!(incoming.data(), br#""{not json""#);
}

/// Members are read from the value's text as written: names and strings with escapes are
/// unescaped, a number attribute is its JSON text, the data is its member's text.
#[test]
fn structured_members_with_escapes_numbers_and_nested_data_are_read() {
    let value = br#"{"spec\u0076ersion":"1.0","id":"a\"b","source":"/s","type":"t",
        "tenant":"caf\u00e9","aggregateversion":7,"data":{"nested":{"x":[1,2]}, "s":"\n"}}"#;
    let incoming = decode_raw(
        &[("content-type", Some(b"application/cloudevents+json"))],
        None,
        value,
    )
    .unwrap();
    let meta = incoming.meta();
    assert_eq!(meta.id, "a\"b");
    assert_eq!(meta.extensions["tenant"], "café");
    assert_eq!(meta.aggregate_version, Some(7));
    assert_eq!(incoming.data(), br#"{"nested":{"x":[1,2]}, "s":"\n"}"#);
    let err = structured(r#","data":{"unclosed":1}"#.trim_end_matches('}')).unwrap_err();
    assert!(err.contains("not valid JSON"), "{err}");
    let err = decode_raw(
        &[("content-type", Some(b"application/cloudevents+json"))],
        None,
        b"[1]",
    )
    .unwrap_err();
    assert!(err.contains("not a JSON object"), "{err}");
}

#[test]
fn data_base64_must_hold_json() {
    let err = structured(r#","data_base64":"bm90IGpzb24=""#).unwrap_err();
    assert!(err.contains("data_base64") && err.contains("JSON"), "{err}");
    let err = structured(r#","data_base64":"%%%""#).unwrap_err();
    assert!(err.contains("base64"), "{err}");
}

#[test]
fn data_and_data_base64_together_are_refused() {
    let err = structured(r#","data":{},"data_base64":"e30=""#).unwrap_err();
    assert!(err.contains("both"), "{err}");
}

#[test]
fn non_json_structured_data_is_refused() {
    let err = structured(r#","datacontenttype":"text/plain","data":"hi""#).unwrap_err();
    assert!(err.contains("text/plain"), "{err}");
    let err = structured(r#","datacontenttype":"application/octet-stream","data_base64":"AAE=""#)
        .unwrap_err();
    assert!(err.contains("application/octet-stream"), "{err}");
}

#[test]
fn a_structured_event_without_data_is_refused() {
    let err = structured("").unwrap_err();
    assert!(err.contains("no `data`"), "{err}");
    let err = structured(r#","data":null"#).unwrap_err();
    assert!(err.contains("no `data`"), "{err}");
}
