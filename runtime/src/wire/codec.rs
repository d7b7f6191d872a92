//! The wire format: CloudEvents 1.0 over Kafka (binary content mode for what herald produces; binary
//! and structured mode for what it consumes). `docs/wire-format.md` is the human-readable version.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use crate::error::DispatchError;
use crate::event::envelope::{Metadata, Position};
use crate::event::{Event, HeraldEvent};
use crate::headers::{self, JSON, SPEC_VERSION_VALUE, STRUCTURED_JSON};
use crate::wire::received::{MessageBytes, Received};

mod structured;
use structured::{decode_structured, Members};

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
    // Set by `Bus::request` only: a command's reply topic and its caller's timeout.
    "replyto",
    "timeoutms",
];

/// Every attribute of `meta` that is set, in order, as its binary-mode header name and value:
/// the CloudEvents attributes, herald's, then the extensions.
fn each_attribute(meta: &Metadata, mut emit: impl FnMut(&str, &str)) {
    let time = meta.time.map(format_time);
    let schema_version = meta.schema_version.map(|v| v.to_string());
    let aggregate_version = meta.aggregate_version.map(|v| v.to_string());
    let fields: [(&str, Option<&str>); 13] = [
        (headers::SPEC_VERSION, Some(SPEC_VERSION_VALUE)),
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
    for (name, value) in fields {
        if let Some(value) = value {
            emit(name, value);
        }
    }
    for (name, value) in &meta.extensions {
        emit(&format!("{}{name}", headers::PREFIX), value);
    }
}

/// Encodes metadata as Kafka headers (binary content mode).
pub fn encode_headers(meta: &Metadata) -> OwnedHeaders {
    let mut headers = Some(OwnedHeaders::new_with_capacity(16));
    each_attribute(meta, |key, value| {
        let written = headers.take().map(|h| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        headers = written;
    });
    headers.expect("put back after every header")
}

/// The headers of a structured-mode event: its event format as `content-type`.
pub fn structured_headers() -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(1).insert(Header {
        key: headers::CONTENT_TYPE,
        value: Some(STRUCTURED_JSON),
    })
}

/// Encodes metadata and the event's JSON `data` as one structured-mode value: a JSON object of
/// the attributes (`content-type` as `datacontenttype`, every string as a JSON string) and
/// `data`, the JSON as it is.
pub fn encode_structured(meta: &Metadata, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 320);
    out.push(b'{');
    each_attribute(meta, |header, value| {
        let name = match header {
            headers::CONTENT_TYPE => "datacontenttype",
            header => header.strip_prefix(headers::PREFIX).unwrap_or(header),
        };
        if out.len() > 1 {
            out.push(b',');
        }
        write_json_string(&mut out, name);
        out.push(b':');
        write_json_string(&mut out, value);
    });
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data);
    out.push(b'}');
    out
}

fn write_json_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("a string is written to memory without fail");
}

fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A consumed message turned into metadata and JSON data, shared by every handler of the message.
#[derive(Debug, Clone)]
pub struct Incoming(Arc<IncomingParts>);

#[derive(Debug)]
struct IncomingParts {
    /// The metadata: built at decode time, or (a consumed binary-mode event) from `lazy` the first
    /// time it is asked for — a handler that takes the event alone never needs it.
    /// Boxed: a consumed event's parts are moved into their `Arc` with the metadata not yet built,
    /// and an unbuilt `Metadata` in place would be hundreds of bytes copied for nothing.
    meta: OnceLock<Box<Metadata>>,
    lazy: Option<LazyMeta>,
    data: Data,
}

/// Where an event's data is.
#[derive(Debug)]
enum Data {
    /// A buffer of its own (structured mode, an event built in process).
    Own(Arc<[u8]>),
    /// The consumed binary-mode value itself, in the message's buffer that `lazy` shares, not
    /// copied.
    Value,
}

/// The metadata of a consumed binary-mode event, already checked, not yet copied into `String`s:
/// where each attribute sits in the message's shared key-and-headers buffer.
#[derive(Debug)]
struct LazyMeta {
    raw: Arc<MessageBytes>,
    attributes: Attributes<(u32, u32)>,
    topic: Arc<str>,
    partition: i32,
    offset: i64,
}

impl LazyMeta {
    fn text(&self, (start, end): (u32, u32)) -> &str {
        let bytes = &self.raw.bytes()[start as usize..end as usize];
        // SAFETY: every range was taken from a `&str` into this very buffer when the message was
        // decoded (`Incoming::decode_received`), and the buffer never changes.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    fn build(&self) -> Metadata {
        let attributes = self.attributes.map(|&range| self.text(range));
        attributes.into_metadata(
            self.raw.key(),
            Some(Position {
                topic: self.topic.to_string(),
                partition: self.partition,
                offset: self.offset,
            }),
        )
    }
}

impl Incoming {
    /// The event's metadata.
    pub fn meta(&self) -> &Metadata {
        let parts = &*self.0;
        parts.meta.get_or_init(|| {
            Box::new(match &parts.lazy {
                Some(lazy) => lazy.build(),
                None => Metadata::default(),
            })
        })
    }

    /// The event's data, JSON.
    pub fn data(&self) -> &[u8] {
        match &self.0.data {
            Data::Own(data) => data,
            Data::Value => self
                .0
                .lazy
                .as_ref()
                .and_then(|lazy| lazy.raw.payload())
                .unwrap_or_default(),
        }
    }

    /// The event type (`ce_type`), without building the metadata.
    pub(crate) fn event_type(&self) -> &str {
        match &self.0.lazy {
            Some(lazy) => lazy.attributes.text[Text::Type as usize].map_or("", |r| lazy.text(r)),
            None => &self.meta().event_type,
        }
    }

    /// An extension attribute (`ce_{name}`), without building the metadata.
    pub(crate) fn extension(&self, name: &str) -> Option<&str> {
        let extensions = match &self.0.lazy {
            Some(lazy) => &lazy.attributes.extensions,
            None => &self.meta().extensions,
        };
        extensions.get(name).map(String::as_str)
    }

    /// The event's schema version (`ce_schemaversion`), without building the metadata.
    pub(crate) fn schema_version(&self) -> Option<u32> {
        match &self.0.lazy {
            Some(lazy) => lazy.attributes.schema_version,
            None => self.meta().schema_version,
        }
    }

    /// Where the event was read: topic, partition and offset (`""`, -1, -1 when not consumed),
    /// without building the metadata.
    pub(crate) fn position(&self) -> (&str, i32, i64) {
        match &self.0.lazy {
            Some(lazy) => (&lazy.topic, lazy.partition, lazy.offset),
            None => self
                .meta()
                .position
                .as_ref()
                .map_or(("", -1, -1), |p| (p.topic.as_str(), p.partition, p.offset)),
        }
    }

    /// Decodes a Kafka message in either content mode (see `docs/wire-format.md`, "What herald
    /// reads"):
    /// - structured mode when `content-type` is `application/cloudevents+json`, or when there is
    ///   no `ce_specversion` header and the value is a JSON object with `specversion` (the Python
    ///   SDK's Kafka binding labels structured events with the data's content type, or not at all);
    /// - binary mode otherwise: attributes in `ce_*` headers, the data in the value.
    ///
    /// Headers other than `content-type` and `ce_*` are not read, whatever their bytes.
    ///
    /// # Errors
    /// The reason the message is not a CloudEvent herald can read.
    #[cfg(test)]
    pub(crate) fn decode<H: Headers + ?Sized>(
        headers: Option<&H>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        position: Position,
    ) -> Result<Self, String> {
        let found = HeaderFields::read(headers)?;
        let value = value.unwrap_or_default();
        let (meta, data): (Metadata, Arc<[u8]>) = match content_mode(&found, value)? {
            Mode::Structured(members) => structured(members, found.content_type, key, position)?,
            Mode::Binary => {
                let attributes = decode_binary(found)?;
                check_required(&attributes)?;
                (attributes.into_metadata(key, Some(position)), value.into())
            }
        };
        Self::new(OnceLock::from(Box::new(meta)), None, Data::Own(data))
    }

    /// As [`Incoming::decode`], for a consumed message: binary-mode data is the message's value
    /// buffer and the metadata stays in its headers buffer until asked for, not copied.
    pub(crate) fn decode_received(message: &Received) -> Result<Self, String> {
        let raw = message.shared_raw();
        if let Some(name) = raw.bad_name() {
            return Err(format!(
                "header name `{name}` is not UTF-8; Kafka header names are strings, so the producer wrote an invalid one"
            ));
        }
        let found = HeaderFields::read_received(message)?;
        let value = message.payload().unwrap_or_default();
        match content_mode(&found, value)? {
            Mode::Structured(members) => {
                let position = Position {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                };
                let (meta, data) =
                    structured(members, found.content_type, message.key(), position)?;
                Self::new(OnceLock::from(Box::new(meta)), None, Data::Own(data))
            }
            Mode::Binary => {
                let attributes = decode_binary(found)?;
                check_required(&attributes)?;
                let base = raw.bytes().as_ptr() as usize;
                let range = |text: &&str| {
                    let start = text.as_ptr() as usize - base;
                    debug_assert!(start + text.len() <= raw.bytes().len());
                    (start as u32, (start + text.len()) as u32)
                };
                let lazy = LazyMeta {
                    raw: raw.clone(),
                    attributes: attributes.map(range),
                    topic: message.shared_topic().clone(),
                    partition: message.partition(),
                    offset: message.offset(),
                };
                Self::new(OnceLock::new(), Some(lazy), Data::Value)
            }
        }
    }

    /// The event of a handler called directly, not consumed (a test's [`Context`](crate::Context)):
    /// `meta` and JSON `null` as its data.
    pub(crate) fn of_metadata(meta: Metadata) -> Self {
        Self(Arc::new(IncomingParts {
            meta: OnceLock::from(Box::new(meta)),
            lazy: None,
            data: Data::Own(Arc::from(&b"null"[..])),
        }))
    }

    fn new(
        meta: OnceLock<Box<Metadata>>,
        lazy: Option<LazyMeta>,
        data: Data,
    ) -> Result<Self, String> {
        let incoming = Self(Arc::new(IncomingParts { meta, lazy, data }));
        if incoming.data().is_empty() {
            return Err("the message has no data (empty value)".into());
        }
        Ok(incoming)
    }
}

/// Structured mode: the metadata and the data of a parsed structured event.
fn structured(
    members: Members<'_>,
    content_type: Option<&str>,
    key: Option<&[u8]>,
    position: Position,
) -> Result<(Metadata, Arc<[u8]>), String> {
    let mut meta = Metadata {
        key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
        position: Some(position),
        ..Metadata::default()
    };
    let data = decode_structured(&mut meta, members, content_type)?;
    check_required(&Attributes::of(&meta))?;
    Ok((meta, data))
}

/// The text attributes of [`Attributes`], in the order of its `text` array.
#[derive(Debug, Clone, Copy)]
enum Text {
    SpecVersion,
    Id,
    Type,
    Source,
    Subject,
    ContentType,
    CorrelationId,
    CausationId,
    AggregateId,
    AggregateType,
}

const TEXTS: usize = 10;

/// The CloudEvents attributes of one event, each text attribute as a `T`: borrowed from the
/// message while decoding, a range of its buffer while waiting to be asked for.
#[derive(Debug, Clone, Default)]
struct Attributes<T> {
    text: [Option<T>; TEXTS],
    time: Option<DateTime<Utc>>,
    schema_version: Option<u32>,
    aggregate_version: Option<i64>,
    extensions: BTreeMap<String, String>,
}

impl<T> Attributes<T> {
    fn map<U>(&self, f: impl Fn(&T) -> U) -> Attributes<U> {
        Attributes {
            text: std::array::from_fn(|i| self.text[i].as_ref().map(&f)),
            time: self.time,
            schema_version: self.schema_version,
            aggregate_version: self.aggregate_version,
            extensions: self.extensions.clone(),
        }
    }
}

impl<'a> Attributes<&'a str> {
    fn get(&self, text: Text) -> Option<&'a str> {
        self.text[text as usize]
    }

    /// The required attributes of `meta`, for [`check_required`].
    fn of(meta: &'a Metadata) -> Self {
        let mut attributes = Self::default();
        attributes.text[Text::SpecVersion as usize] = Some(&meta.spec_version);
        attributes.text[Text::Id as usize] = Some(&meta.id);
        attributes.text[Text::Type as usize] = Some(&meta.event_type);
        attributes.text[Text::Source as usize] = Some(&meta.source);
        attributes
    }

    fn into_metadata(self, key: Option<&[u8]>, position: Option<Position>) -> Metadata {
        let text = |t| self.get(t).map(str::to_owned);
        Metadata {
            id: text(Text::Id).unwrap_or_default(),
            event_type: text(Text::Type).unwrap_or_default(),
            source: text(Text::Source).unwrap_or_default(),
            spec_version: text(Text::SpecVersion).unwrap_or_default(),
            time: self.time,
            schema_version: self.schema_version,
            correlation_id: text(Text::CorrelationId),
            causation_id: text(Text::CausationId),
            aggregate_id: text(Text::AggregateId),
            aggregate_type: text(Text::AggregateType),
            aggregate_version: self.aggregate_version,
            subject: text(Text::Subject),
            content_type: text(Text::ContentType),
            extensions: self.extensions,
            key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
            position,
        }
    }
}

/// The headers herald reads, taken before the content mode is known so that neither mode's
/// attributes reach the other's metadata.
#[derive(Debug, Default)]
struct HeaderFields<'h> {
    /// The `content-type` header.
    content_type: Option<&'h str>,
    /// Every `ce_*` header in order: the attribute name (without `ce_`) and its value.
    attributes: Vec<(&'h str, &'h str)>,
}

impl<'h> HeaderFields<'h> {
    /// Reads `content-type` and the `ce_*` headers, which must be UTF-8; skips every other header
    /// (tracing and broker headers may be binary) and null-valued ones.
    fn read<H: Headers + ?Sized>(headers: Option<&'h H>) -> Result<Self, String> {
        let Some(headers) = headers else {
            return Ok(Self::default());
        };
        let mut found = Self {
            content_type: None,
            attributes: Vec::with_capacity(headers.count()),
        };
        for header in (0..headers.count()).filter_map(|i| headers.try_get(i)) {
            let Some(raw) = header.value else { continue };
            let text = || {
                std::str::from_utf8(raw).map_err(|_| {
                    format!(
                        "header `{}` is not UTF-8; CloudEvents headers must be text, so the producer must write the attribute as a UTF-8 string",
                        header.key
                    )
                })
            };
            if header.key.eq_ignore_ascii_case(headers::CONTENT_TYPE) {
                found.content_type = Some(text()?);
            } else if let Some(name) = header.key.strip_prefix(headers::PREFIX) {
                found.attributes.push((name, text()?));
            }
        }
        Ok(found)
    }

    /// [`HeaderFields::read`] for a consumed message: when every header is text (checked once
    /// when the message was copied), without checking each name and value again.
    fn read_received(message: &'h Received) -> Result<Self, String> {
        let Some(raw) = message.headers() else {
            return Ok(Self::default());
        };
        let Some(text) = raw.text_headers() else {
            return Self::read(Some(raw));
        };
        let mut found = Self {
            content_type: None,
            attributes: Vec::with_capacity(raw.count()),
        };
        for (name, value) in text {
            let Some(value) = value else { continue };
            if name.eq_ignore_ascii_case(headers::CONTENT_TYPE) {
                found.content_type = Some(value);
            } else if let Some(name) = name.strip_prefix(headers::PREFIX) {
                found.attributes.push((name, value));
            }
        }
        Ok(found)
    }

    fn has(&self, attribute: &str) -> bool {
        self.attributes.iter().any(|(name, _)| *name == attribute)
    }
}

/// How the message carries its event.
enum Mode<'a> {
    /// Attributes in `ce_*` headers, data in the value.
    Binary,
    /// The whole event in the value, already parsed (the value is parsed once).
    Structured(Members<'a>),
}

/// The media type prefix of every CloudEvents event format.
const FORMAT_PREFIX: &str = "application/cloudevents";
/// The media type of a batch of CloudEvents.
const BATCH_JSON: &str = "application/cloudevents-batch+json";

fn content_mode<'a>(found: &HeaderFields, value: &'a [u8]) -> Result<Mode<'a>, String> {
    if let Some(media) = found.content_type.map(media_type) {
        let media = media.as_ref();
        if media == STRUCTURED_JSON {
            return match Members::parse(value)? {
                Some(members) => Ok(Mode::Structured(members)),
                None => Err("structured CloudEvent is not a JSON object".into()),
            };
        }
        if media == BATCH_JSON {
            return Err(format!(
                "`{BATCH_JSON}` (a batch of CloudEvents) is not supported: publish one event per message"
            ));
        }
        if media.starts_with(FORMAT_PREFIX) {
            return Err(format!(
                "structured format `{media}` is not supported; herald reads `{STRUCTURED_JSON}`"
            ));
        }
    }
    if found.has("specversion") {
        return Ok(Mode::Binary);
    }
    let looks_like_object = value.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if looks_like_object {
        if let Ok(Some(members)) = Members::parse(value) {
            if members.has("specversion") {
                return Ok(Mode::Structured(members));
            }
        }
    }
    Ok(Mode::Binary)
}

/// The media type of a content type, without parameters, lower-case (copied only when it is not).
fn media_type(content_type: &str) -> std::borrow::Cow<'_, str> {
    if content_type == JSON {
        return JSON.into(); // what herald writes: nothing to split, trim or lower-case
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.bytes().any(|b| b.is_ascii_uppercase()) {
        media.to_ascii_lowercase().into()
    } else {
        media.into()
    }
}

fn is_json(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == JSON || media.ends_with("+json") || media == "text/json"
}

/// Binary mode: the attributes from the `ce_*` headers, the value as the data. `content-type` is
/// the data's type; `ce_datacontenttype` (the JavaScript SDK writes both) counts only without it.
fn decode_binary(found: HeaderFields<'_>) -> Result<Attributes<&str>, String> {
    let attributes = read_binary(found)?;
    if let Some(ct) = attributes.get(Text::ContentType) {
        if !is_json(ct) {
            return Err(format!(
                "content-type `{ct}` is not JSON; herald events carry `application/json`"
            ));
        }
    }
    Ok(attributes)
}

/// The attributes of a binary-mode CloudEvent whatever the type of its data, for reading a topic
/// (`browse`) rather than handling it: `None` when the message is not a valid binary-mode event.
pub(crate) fn binary_metadata_any_data(message: &Received) -> Option<Metadata> {
    let found = HeaderFields::read(message.headers()).ok()?;
    if !found.has("specversion") {
        return None;
    }
    let attributes = read_binary(found).ok()?;
    check_required(&attributes).ok()?;
    let position = Position {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    };
    Some(attributes.into_metadata(message.key(), Some(position)))
}

/// [`decode_binary`] without the check that the data is JSON.
fn read_binary(found: HeaderFields<'_>) -> Result<Attributes<&str>, String> {
    if found.attributes.is_empty() {
        return Err(
            "not a CloudEvent: no CloudEvents headers (`ce_specversion`, `ce_id`, `ce_type`, `ce_source`) and the value is not a JSON object with `specversion`"
                .into(),
        );
    }
    let mut attributes = Attributes::default();
    for (name, value) in found.attributes {
        match attribute(name, value)? {
            Attribute::Text(text, value) => attributes.text[text as usize] = Some(value),
            Attribute::Time(time) => attributes.time = Some(time),
            Attribute::SchemaVersion(v) => attributes.schema_version = Some(v),
            Attribute::AggregateVersion(v) => attributes.aggregate_version = Some(v),
            Attribute::Extension(name, value) => {
                attributes
                    .extensions
                    .insert(name.to_owned(), value.to_owned());
            }
        }
    }
    if let Some(content_type) = found.content_type {
        attributes.text[Text::ContentType as usize] = Some(content_type);
    }
    Ok(attributes)
}

/// One CloudEvents attribute, read.
enum Attribute<'v> {
    Text(Text, &'v str),
    Time(DateTime<Utc>),
    SchemaVersion(u32),
    AggregateVersion(i64),
    Extension(&'v str, &'v str),
}

fn attribute<'v>(name: &'v str, value: &'v str) -> Result<Attribute<'v>, String> {
    let parse_err = |what: &str| format!("attribute `{name}` = `{value}` is not {what}");
    let text = |text| Ok(Attribute::Text(text, value));
    match name {
        "specversion" => text(Text::SpecVersion),
        "id" => text(Text::Id),
        "type" => text(Text::Type),
        "source" => text(Text::Source),
        "time" => Ok(Attribute::Time(
            DateTime::parse_from_rfc3339(value)
                .map_err(|_| parse_err("an RFC 3339 time"))?
                .with_timezone(&Utc),
        )),
        "subject" => text(Text::Subject),
        "datacontenttype" => text(Text::ContentType),
        "schemaversion" => Ok(Attribute::SchemaVersion(
            value.parse().map_err(|_| parse_err("a whole number"))?,
        )),
        "correlationid" => text(Text::CorrelationId),
        "causationid" => text(Text::CausationId),
        "aggregateid" => text(Text::AggregateId),
        "aggregatetype" => text(Text::AggregateType),
        "aggregateversion" => Ok(Attribute::AggregateVersion(
            value.parse().map_err(|_| parse_err("a whole number"))?,
        )),
        other => Ok(Attribute::Extension(other, value)),
    }
}

fn set_attribute(meta: &mut Metadata, name: &str, value: &str) -> Result<(), String> {
    let text = || value.to_owned();
    match attribute(name, value)? {
        Attribute::Text(field, _) => {
            let owned = text();
            match field {
                Text::SpecVersion => meta.spec_version = owned,
                Text::Id => meta.id = owned,
                Text::Type => meta.event_type = owned,
                Text::Source => meta.source = owned,
                Text::Subject => meta.subject = Some(owned),
                Text::ContentType => meta.content_type = Some(owned),
                Text::CorrelationId => meta.correlation_id = Some(owned),
                Text::CausationId => meta.causation_id = Some(owned),
                Text::AggregateId => meta.aggregate_id = Some(owned),
                Text::AggregateType => meta.aggregate_type = Some(owned),
            }
        }
        Attribute::Time(time) => meta.time = Some(time),
        Attribute::SchemaVersion(v) => meta.schema_version = Some(v),
        Attribute::AggregateVersion(v) => meta.aggregate_version = Some(v),
        Attribute::Extension(name, value) => {
            meta.extensions.insert(name.to_owned(), value.to_owned());
        }
    }
    Ok(())
}

fn check_required(attributes: &Attributes<&str>) -> Result<(), String> {
    for (name, text) in [
        ("specversion", Text::SpecVersion),
        ("id", Text::Id),
        ("type", Text::Type),
        ("source", Text::Source),
    ] {
        if attributes.get(text).unwrap_or("").is_empty() {
            return Err(format!(
                "required CloudEvents attribute `{name}` is missing"
            ));
        }
    }
    let spec_version = attributes.get(Text::SpecVersion).unwrap_or("");
    if spec_version != SPEC_VERSION_VALUE {
        return Err(format!(
            "CloudEvents spec version `{spec_version}` is not supported (herald reads `{SPEC_VERSION_VALUE}`)"
        ));
    }
    Ok(())
}

/// Decodes the event's data as `T`. An event of an older schema version for which `T` declares an
/// upcaster (`#[event(upcast_from = ...)]`) is converted through it; any other version is decoded all
/// the same — a tolerant reader reads a newer version whose data still fits (new fields are
/// ignored) — and the error names both versions when it does not fit.
///
/// # Errors
/// [`DispatchError::Decode`] when the JSON does not fit `T`.
pub fn decode_data<T: HeraldEvent>(incoming: &Incoming) -> Result<T, DispatchError> {
    if let Some(version) = incoming.schema_version().filter(|v| *v != T::VERSION) {
        if let Some(upcast) = T::upcast(version, incoming.data()) {
            return upcast.map_err(|reason| {
                DispatchError::Decode(format!(
                    "`{}` version {version} could not be upcast to version {}: {reason}",
                    T::EVENT_TYPE,
                    T::VERSION
                ))
            });
        }
    }
    // UTF-8 checked once over the whole data, not again for every string in it; data that is
    // not UTF-8 gets serde_json's own error, with its position.
    let data = incoming.data();
    let parsed = match std::str::from_utf8(data) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(data),
    };
    parsed.map_err(|e| {
        DispatchError::Decode(match incoming.schema_version() {
            Some(version) if version != T::VERSION => format!(
                "`{}` version {version} is not compatible with version {} that this handler reads: {e}",
                T::EVENT_TYPE,
                T::VERSION
            ),
            _ => format!(
                "data of `{}` does not match the Rust type: {e}",
                T::EVENT_TYPE
            ),
        })
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
mod tests;
