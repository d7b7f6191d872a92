//! Structured content mode: the event's attributes and data in one JSON object, the message's
//! value. The object is read once into its members, each member's value left as the JSON text it
//! is (borrowed from the message), so the data is never parsed into a tree nor written out again.

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{is_json, media_type, set_attribute, FORMAT_PREFIX};
use crate::event::envelope::Metadata;

/// The members of a structured event's JSON object, in their order, read in one pass: strings
/// borrowed from the message unless they hold escapes, the `data` member as its JSON text.
pub(super) struct Members<'a>(Vec<(Cow<'a, str>, Member<'a>)>);

/// The value of one member.
enum Member<'a> {
    /// JSON `null`: as if the member were absent.
    Null,
    /// A string.
    Text(Cow<'a, str>),
    /// A number, a boolean, an object or an array, as serde_json writes it.
    Other(String),
    /// The `data` member, whatever it holds, as written.
    Data(&'a RawValue),
}

impl<'a> Members<'a> {
    /// The value's members; `None` when the value is JSON but not an object.
    ///
    /// # Errors
    /// The reason the value is not JSON.
    pub(super) fn parse(value: &'a [u8]) -> Result<Option<Self>, String> {
        let starts_an_object = value.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !starts_an_object {
            return match serde_json::from_slice::<serde::de::IgnoredAny>(value) {
                Ok(_) => Ok(None),
                Err(e) => Err(format!("structured CloudEvent is not valid JSON: {e}")),
            };
        }
        // Checked as UTF-8 once, so that the parser does not check each string again.
        let text = std::str::from_utf8(value)
            .map_err(|e| format!("structured CloudEvent is not valid JSON: {e}"))?;
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| format!("structured CloudEvent is not valid JSON: {e}"))
    }

    /// Whether the object has a member `name`.
    pub(super) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(member, _)| member == name)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(Text(name)) = map.next_key()? {
                    let value = if name == "data" {
                        let data: &RawValue = map.next_value()?;
                        match data.get() {
                            "null" => Member::Null,
                            _ => Member::Data(data),
                        }
                    } else {
                        map.next_value()?
                    };
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// A string: borrowed from the message unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(text)))
    }
    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(text.to_owned())))
    }
    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde::de::{Error, SeqAccess};
        use serde_json::Value;
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Member::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Member::Null)
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Member::Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Member::Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Member::Text(Cow::Owned(text)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Member::Other(Value::from(v).to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Member::Other(Value::from(v).to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Member::Other(Value::from(v).to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Member::Other(Value::from(v).to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let value = Value::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Member::Other(value.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let value = Value::deserialize(SeqAccessDeserializer::new(seq))
                    .map_err(A::Error::custom)?;
                Ok(Member::Other(value.to_string()))
            }
        }
        deserializer.deserialize_any(Any)
    }
}

/// The `data` member as a string, when it is one: borrowed unless it holds escapes.
fn as_string(data: &RawValue) -> Option<Cow<'_, str>> {
    let text = data.get();
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str::<Text>(text)
        .ok()
        .map(|Text(text)| text)
}

/// Decodes `data_base64` whatever its padding.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Structured mode: the attributes and the data from the object's members. The data's type is the
/// event's `datacontenttype`, else a `content-type` header that is not an event format (the Python
/// SDK moves `datacontenttype` there). Returns the data as JSON bytes: the `data` member's own
/// text, copied once (a JSON string holding a JSON object or array is that JSON).
pub(super) fn decode_structured(
    meta: &mut Metadata,
    members: Members<'_>,
    header_content_type: Option<&str>,
) -> Result<Arc<[u8]>, String> {
    let mut data = None;
    let mut data_base64 = None;
    for (name, value) in members.0 {
        match (&*name, value) {
            (_, Member::Null) => {}
            ("data", Member::Data(raw)) => data = Some(raw),
            ("data_base64", Member::Text(encoded)) => data_base64 = Some(encoded),
            ("data_base64", _) => {
                return Err("`data_base64` is not a string; it must hold base64 text".into())
            }
            (name, Member::Text(text)) => set_attribute(meta, name, &text)?,
            (name, Member::Other(text)) => set_attribute(meta, name, &text)?,
            (_, Member::Data(_)) => unreachable!("only `data` is read as its text"),
        }
    }
    if meta.content_type.is_none() {
        meta.content_type = header_content_type
            .filter(|ct| !media_type(ct).starts_with(FORMAT_PREFIX))
            .map(str::to_owned);
    }
    if let Some(ct) = meta.content_type.as_deref() {
        if !is_json(ct) {
            return Err(format!(
                "datacontenttype `{ct}` is not JSON; herald events carry `application/json`"
            ));
        }
    }
    match (data, data_base64) {
        (Some(_), Some(_)) => Err(
            "structured CloudEvent has both `data` and `data_base64`; a CloudEvent carries one"
                .into(),
        ),
        (None, None) => Err("structured CloudEvent has no `data` (nor `data_base64`)".into()),
        (Some(data), None) => Ok(match as_string(data) {
            Some(text) => json_text_or_string(text, data.get()).into(),
            None => data.get().as_bytes().into(),
        }),
        (None, Some(encoded)) => {
            let bytes = base64::Engine::decode(&BASE64, encoded.trim())
                .map_err(|e| format!("`data_base64` is not valid base64: {e}"))?;
            serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(|e| {
                format!("`data_base64` does not hold JSON ({e}); herald events carry JSON data")
            })?;
            Ok(bytes.into())
        }
    }
}

/// JSON `data` that is a string: JSON text of an object or array (how SDKs carry data the
/// application serialised itself) is read as that JSON; any other string is the data itself, the
/// JSON string `quoted` as it was written.
fn json_text_or_string(text: Cow<'_, str>, quoted: &str) -> Vec<u8> {
    let holds_json = matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
        && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
    if holds_json {
        text.into_owned().into_bytes()
    } else {
        quoted.as_bytes().to_vec()
    }
}
