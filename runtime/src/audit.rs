//! Audit events: what `#[audit_event(...)]` publishes after every call of an `async fn`, failure
//! included, to the `audit.events` topic (prefixed like every topic).
//!
//! # How the bus is found
//! An audited function does not take the bus as a parameter: it finds it in the *bus scope* of
//! the task it runs in ([`herald::scope`](crate::scope())): inside a `#[handler]` the handler's
//! context (audit events carry the handled event's correlation id and are caused by it),
//! elsewhere the bus given to `herald::scope(&bus, create_user(...))` (or its alias [`scope`]).
//! Calling an audited function outside any scope panics rather than lose the audit trail. Publishing an audit event that the broker refuses is
//! logged at ERROR with the whole event, and the function's own result is returned unchanged.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Implemented by hand rather than derived: a derive would register the audit event in every
/// service linking herald; `#[audit_event]` registers it (`__private::AUDIT_EVENT`) where it is used.
impl crate::event::HeraldEvent for AuditEvent {
    const EVENT_TYPE: &'static str = "herald.audit.recorded";
    const TOPIC: &'static str = "audit.events";
    const VERSION: u32 = 1;
    type Reply = ();

    fn partition_key(&self) -> Option<String> {
        None
    }
}

/// Whether the audited call succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The function returned `Ok`.
    Success,
    /// The function returned `Err`; [`AuditEvent::error`] holds its text.
    Failure,
}

/// One audited call, published to `audit.events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEvent {
    /// `action = "..."`, e.g. `create_user`.
    pub action: String,
    /// `resource_type = "..."`, e.g. `user`.
    pub resource_type: String,
    /// The value of the `resource_id = param` parameter, when given.
    pub resource_id: Option<String>,
    /// The value of the `actor = param` parameter, when given.
    pub actor: Option<String>,
    /// Success or failure.
    pub outcome: Outcome,
    /// The error's text (with its cause chain, as `Display` prints it) on failure.
    pub error: Option<String>,
    /// How long the call took, in milliseconds.
    pub duration_ms: u64,
    /// The arguments as JSON with `include_args`; `#[audit(skip)]` ones left out,
    /// `#[audit(redact)]` ones as `"[redacted]"`.
    pub args: Option<serde_json::Value>,
    /// The correlation id of the handled event, inside a handler.
    pub correlation_id: Option<String>,
}

/// Runs `future` with `bus` as its bus scope; the same as [`herald::scope`](crate::scope()).
pub use crate::scope::scope;

/// What an audited function returns: a `Result` whose error displays.
#[diagnostic::on_unimplemented(
    message = "an audited function returns `Result<T, E>` with `E: Display`, not `{Self}`",
    label = "the audit event records success or failure from this",
    note = "return a `Result`; its error text goes into the audit event"
)]
pub trait AuditedResult {
    /// The error's text, or `None` on success.
    fn failure(&self) -> Option<String>;
}

impl<T, E: std::fmt::Display> AuditedResult for Result<T, E> {
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}

/// Publishes the audit event of one call; see the module docs for where it goes.
///
/// # Panics
/// Outside a bus scope (no handler, no [`scope`]): the audit event would be lost.
pub(crate) async fn record(
    function: &'static str,
    mut event: AuditEvent,
    outcome: Option<String>,
    started: Instant,
) {
    event.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    event.outcome = if outcome.is_some() {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    event.error = outcome;
    let sink = crate::scope::current("`#[audit_event]` fn", function);
    if let crate::scope::Sink::Handler(ctx) = &sink {
        event.correlation_id = ctx.metadata().correlation_id.clone();
    }
    if let Err(error) = sink.publish(&event).await {
        tracing::error!(%error, ?event, "could not publish an audit event");
    }
}
