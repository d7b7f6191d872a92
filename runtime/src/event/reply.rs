//! What a command's handler answers with: any serializable type, sent as JSON.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a command's reply must be: serializable, deserializable, with a JSON Schema, sendable —
/// every `Serialize + Deserialize + JsonSchema + Send + 'static` type is one. `()` is one (an
/// event's "reply", and a command that only acknowledges).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the reply of a command",
    label = "a reply is sent as JSON and decoded by the caller",
    note = "derive them on `{Self}`: `#[derive(Serialize, Deserialize, JsonSchema)]`"
)]
pub trait Reply: Send + Sized + 'static {
    /// The reply as JSON.
    ///
    /// # Errors
    /// When it does not serialize (a map with non-string keys, a failing `Serialize` impl).
    fn to_json(&self) -> serde_json::Result<Vec<u8>>;

    /// The reply from JSON.
    ///
    /// # Errors
    /// When the JSON does not fit the type.
    fn from_json(json: &[u8]) -> serde_json::Result<Self>;

    /// The reply's JSON Schema.
    fn json_schema() -> serde_json::Value;
}

impl<T: Serialize + for<'de> Deserialize<'de> + JsonSchema + Send + 'static> Reply for T {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    fn from_json(json: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(json)
    }

    fn json_schema() -> serde_json::Value {
        schemars::schema_for!(T).to_value()
    }
}

/// No reply: a type without values that does not serialize. Its impl of [`Reply`] sits next to the
/// blanket one, so rustc reports a type that is not a reply with [`Reply`]'s message, once,
/// instead of one error per missing derive.
#[doc(hidden)]
#[allow(dead_code)] // never named: its impl alone shapes rustc's message
pub enum NotAReply {}

impl Reply for NotAReply {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        match *self {}
    }

    fn from_json(_: &[u8]) -> serde_json::Result<Self> {
        Err(serde::de::Error::custom("nothing decodes as `NotAReply`"))
    }

    fn json_schema() -> serde_json::Value {
        serde_json::Value::Bool(false)
    }
}
