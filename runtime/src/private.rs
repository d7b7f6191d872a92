//! What herald's macros generate code against. Not public API: it changes without notice.
//!
//! The module is named with the crate's version (`__private_v0_1`) and generated code names it by
//! that name, so a `herald-macros` that does not match the `herald` runtime is a compile error
//! ("could not find `__private_v0_1` in `herald`") instead of code built against another layout.
pub use crate::command::Command;
pub use crate::context::Context;
pub use crate::error::{DispatchError, HandlerError};
pub use crate::event::Reply;
pub use crate::event::{HeraldEvent, PartitionKey};
pub use crate::publish::mapped::{encode_mapped, MappingDescriptor};
pub use crate::registry::{
    Compat, EventDescriptor, HandlerDescriptor, HandlerFuture, HandlerReply, HandlerRetry,
};
pub use crate::wire::codec::Incoming;
use crate::wire::codec::{decode_data, decode_event};
pub use inventory;
pub use schemars::JsonSchema;
pub use serde;
pub use serde_json;
use std::time::Duration;

/// The JSON Schema of an event type. Bounded by `HeraldEvent` (which implies `JsonSchema`) so a
/// missing `JsonSchema` derive is reported once, at the `HeraldEvent` impl.
pub fn schema_of<T: HeraldEvent>() -> serde_json::Value {
    schemars::schema_for!(T).to_value()
}

/// What a handler's first parameter may be: a herald event `T`, or `Event<T>` for the event and
/// its metadata. Resolved through the type system, so a user type that happens to be named `Event`
/// is just another event type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a herald event",
    label = "not a herald event",
    note = "derive `IntegrationEvent` (or put `#[domain_event]`) on the event type; a handler takes that type, or `Event<ThatType>` for its metadata too"
)]
pub trait HandlerEvent: Sized + Send + 'static {
    /// The herald event inside.
    type Payload: HeraldEvent;
    /// Decodes the parameter from a delivered message.
    fn decode(incoming: &Incoming) -> Result<Self, DispatchError>;
}

impl<T: HeraldEvent> HandlerEvent for T {
    type Payload = T;
    fn decode(incoming: &Incoming) -> Result<Self, DispatchError> {
        decode_data::<T>(incoming)
    }
}

impl<T: HeraldEvent> HandlerEvent for crate::event::Event<T> {
    type Payload = T;
    fn decode(incoming: &Incoming) -> Result<Self, DispatchError> {
        decode_event::<T>(incoming)
    }
}

/// What a handler needs to know about its event type `P` and its return type `O`. `#[handler]`
/// builds it once, with [`event_info`], so each mistake in the signature is reported once.
pub struct EventInfo<P, O> {
    /// The event's `EVENT_TYPE`.
    pub event_type: &'static str,
    /// The event's `TOPIC`.
    pub topic: &'static str,
    /// The event's `VERSION`.
    pub version: u32,
    /// Whether it is a command (`IS_COMMAND`), answered with a reply.
    pub command: bool,
    /// Decodes the handler's first parameter.
    pub decode: fn(&Incoming) -> Result<P, DispatchError>,
    /// Turns what the handler returned into herald's handler result.
    pub finish: fn(O) -> Result<HandlerReply, HandlerError>,
}

/// The [`EventInfo`] of a handler taking `P` and returning `O` (`E` being the error type the
/// macro could name, else inferred): the one place generated code requires `P: HandlerEvent` and
/// checks the return type against the message (`Result<(), E>` for an event, `Result<Reply, E>`
/// for a command). It takes no value, so rustc points at the type argument whose check failed: at
/// `P`, at `O`, or at `E`.
pub const fn event_info<P, O, E>() -> EventInfo<P, O>
where
    P: HandlerEvent,
    O: HandlerOutput<<P::Payload as HeraldEvent>::Reply, E>,
    E: HandlerFailure,
{
    EventInfo {
        event_type: <P::Payload as HeraldEvent>::EVENT_TYPE,
        topic: <P::Payload as HeraldEvent>::TOPIC,
        version: <P::Payload as HeraldEvent>::VERSION,
        command: <P::Payload as HeraldEvent>::IS_COMMAND,
        decode: P::decode,
        finish: finish::<P, O, E>,
    }
}

/// [`EventInfo::finish`]: the handler's error as a [`HandlerError`], a command's reply as JSON.
fn finish<P, O, E>(output: O) -> Result<HandlerReply, HandlerError>
where
    P: HandlerEvent,
    O: HandlerOutput<<P::Payload as HeraldEvent>::Reply, E>,
    E: HandlerFailure,
{
    let reply = output
        .into_result()
        .map_err(HandlerFailure::into_handler_error)?;
    if !<P::Payload as HeraldEvent>::IS_COMMAND {
        return Ok(None);
    }
    Reply::to_json(&reply).map(Some).map_err(|e| {
        HandlerError::permanent(HandlerError::msg(format!(
            "the reply does not serialize: {e}"
        )))
    })
}

/// Returns a handler's future after checking it is `Send` (as axum's `debug_handler` does): herald
/// runs handlers on a multi-threaded runtime. Generated code calls it at the handler's name, so a
/// non-`Send` future is one error there, naming the value held across an `.await`, rather than one
/// about herald's boxed future type.
pub fn send_future<F: std::future::Future + Send>(
    future: F,
) -> impl std::future::Future<Output = F::Output> + Send {
    future
}

/// What a handler may return: `Result<R, E>`, where `R` is what its first parameter's message
/// answers with ([`HeraldEvent::Reply`]): `()` for an event, the reply type for a command. Its
/// error type `E` must be a [`HandlerFailure`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not the result of a handler of this message: it returns `Result<{R}, E>`",
    label = "expected `Result<{R}, E>`",
    note = "an event's handler returns `Result<(), E>`; a command's handler returns `Result<Reply, E>` with the command's `#[command(reply = Reply)]` type, which herald sends back to the caller"
)]
pub trait HandlerOutput<R, E> {
    /// The result as a `Result`.
    fn into_result(self) -> Result<R, E>;
}

impl<R, E> HandlerOutput<R, E> for Result<R, E> {
    fn into_result(self) -> Result<R, E> {
        self
    }
}

/// What a handler's error type must be: [`HandlerError`] (which may be permanent), or anything
/// that converts into `Box<dyn std::error::Error + Send + Sync>`: every `std::error::Error + Send +
/// Sync + 'static`, `anyhow::Error`, `eyre::Report`, `Box<dyn Error + Send + Sync>`, `String` and
/// `&str`. The boxed error keeps its cause chain (`source()`), which dead-letter headers and logs
/// print.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the error type of a handler",
    label = "the error type of a handler must convert into `Box<dyn std::error::Error + Send + Sync>`",
    note = "return `Result<(), HandlerError>`, `anyhow::Result<()>`, `Result<(), String>`, or `Result<(), E>` where `E: std::error::Error + Send + Sync + 'static`"
)]
pub trait HandlerFailure {
    /// Converts into herald's handler error.
    fn into_handler_error(self) -> HandlerError;
}

impl HandlerFailure for HandlerError {
    fn into_handler_error(self) -> HandlerError {
        self
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>> HandlerFailure for E {
    fn into_handler_error(self) -> HandlerError {
        HandlerError::from_boxed(self.into())
    }
}

/// A command's default request timeout given in milliseconds (`#[command(timeout = "...")]`).
pub const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Implemented by herald's [`Context`] only: what a handler's second parameter refers to.
#[diagnostic::on_unimplemented(
    message = "the second parameter of a handler must be `&herald::Context`, not `&{Self}`",
    label = "expected `&Context`",
    note = "write `ctx: &Context`; reach shared state with `ctx.state::<T>()`"
)]
pub trait HandlerContext {
    /// The handler's view of the context.
    fn from_context(ctx: &Context) -> &Self;
}

impl HandlerContext for Context {
    fn from_context(ctx: &Context) -> &Self {
        ctx
    }
}

/// Implemented by every `Display` type: the bound of the implicit partition key, a field named
/// `aggregate_id`, worded for that case.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a partition key",
    label = "a field named `aggregate_id` is the event's partition key, so it must implement `Display`",
    note = "implement `std::fmt::Display` for `{Self}`, or mark a field that implements it with `#[event(key)]`"
)]
pub trait AggregateIdKey {
    /// The key as a string.
    fn partition_key(&self) -> String;
}

impl<T: std::fmt::Display + ?Sized> AggregateIdKey for T {
    fn partition_key(&self) -> String {
        self.to_string()
    }
}

/// Implemented by every `Display` type: the bound of the field a `#[domain_event]` names as its
/// `aggregate_id`, which is its partition key and its `ce_aggregateid`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the aggregate id of a domain event",
    label = "`aggregate_id = ...` names the event's key and `ce_aggregateid`, so it must implement `Display`",
    note = "implement `std::fmt::Display` for `{Self}`, or name a field that implements it"
)]
pub trait DomainAggregateId {
    /// The id as a string.
    fn partition_key(&self) -> String;
}

impl<T: std::fmt::Display + ?Sized> DomainAggregateId for T {
    fn partition_key(&self) -> String {
        self.to_string()
    }
}

/// A handler's future run in its bus scope (see `herald::scope`).
pub async fn handler_scope<F: std::future::Future>(ctx: Context, future: F) -> F::Output {
    crate::scope::handler_scope(ctx, future).await
}

pub use crate::audit::{AuditEvent, AuditedResult, Outcome as AuditOutcome};

/// The registration of herald's audit event, submitted by every `#[audit_event]` function; the
/// registry keeps one of identical registrations.
pub const AUDIT_EVENT: EventDescriptor = EventDescriptor {
    rust_type: "herald::audit::AuditEvent",
    event_type: <AuditEvent as HeraldEvent>::EVENT_TYPE,
    topic: <AuditEvent as HeraldEvent>::TOPIC,
    version: <AuditEvent as HeraldEvent>::VERSION,
    schema: schema_of::<AuditEvent>,
    compat: Compat::Backward,
};

/// Publishes the audit event of one call of an `#[audit_event]` function.
pub async fn audit_record(
    function: &'static str,
    event: AuditEvent,
    failure: Option<String>,
    started: std::time::Instant,
) {
    crate::audit::record(function, event, failure, started).await
}

/// An argument recorded with `include_args`: anything `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded in an audit event",
    label = "`include_args` records this parameter as JSON, so it must implement `Serialize`",
    note = "derive `Serialize` for `{Self}`, or mark the parameter `#[audit(skip)]` or `#[audit(redact)]`"
)]
pub trait AuditArg {
    /// The argument as JSON (`null` if it does not serialize).
    fn audit_json(&self) -> serde_json::Value;
}

impl<T: serde::Serialize + ?Sized> AuditArg for T {
    fn audit_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The `resource_id` or `actor` of an audit event: anything that displays.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an audit event's resource id or actor",
    label = "`resource_id = ...` and `actor = ...` name a parameter that implements `Display`",
    note = "implement `std::fmt::Display` for `{Self}`, or name another parameter"
)]
pub trait AuditId {
    /// The id as text.
    fn audit_id(&self) -> String;
}

impl<T: std::fmt::Display + ?Sized> AuditId for T {
    fn audit_id(&self) -> String {
        self.to_string()
    }
}

/// `HeraldEvent::upcast` of a type declared `#[event(upcast_from = Old)]`: data of `Old`'s version
/// decodes as `Old` and converts with `From`; data of an even older version goes through `Old`'s
/// own upcaster first.
pub fn upcast_via<Old, New>(version: u32, data: &[u8]) -> Option<Result<New, String>>
where
    Old: HeraldEvent,
    New: From<Old>,
{
    if version == Old::VERSION {
        return Some(
            serde_json::from_slice::<Old>(data)
                .map(New::from)
                .map_err(|e| format!("data of version {version} does not fit its Rust type: {e}")),
        );
    }
    Old::upcast(version, data).map(|old| old.map(New::from))
}

/// Checked at compile time for `upcast_from`: the older type is the same event, of an older version.
pub const fn check_upcast<Old: HeraldEvent, New: HeraldEvent>() {
    let (a, b) = (Old::EVENT_TYPE.as_bytes(), New::EVENT_TYPE.as_bytes());
    let mut same = a.len() == b.len();
    let mut i = 0;
    while same && i < a.len() {
        same = a[i] == b[i];
        i += 1;
    }
    assert!(
        same,
        "`upcast_from` names a type of another event type: it must be an older version of this event (same `name`)"
    );
    assert!(
        Old::VERSION < New::VERSION,
        "`upcast_from` names a type whose version is not older than this one's"
    );
}

/// `#[event(from = S)]`: the integration event `T` built with `From` from a clone of the source.
pub fn map_from<S, T>(source: &dyn std::any::Any) -> Option<Box<dyn std::any::Any + Send>>
where
    S: HeraldEvent + Clone,
    T: HeraldEvent + From<S>,
{
    source
        .downcast_ref::<S>()
        .map(|source| Box::new(T::from(source.clone())) as Box<dyn std::any::Any + Send>)
}

/// `#[event(from = S, with = f)]`: the integration event `T` built by `f` from the source.
pub fn map_with<S: HeraldEvent, T: HeraldEvent>(
    source: &dyn std::any::Any,
    with: fn(&S) -> T,
) -> Option<Box<dyn std::any::Any + Send>> {
    source
        .downcast_ref::<S>()
        .map(|source| Box::new(with(source)) as Box<dyn std::any::Any + Send>)
}

/// What a `#[domain_event]` fn returns: a `Result` whose error can say that publishing failed.
#[diagnostic::on_unimplemented(
    message = "a `#[domain_event]` fn returns `Result<T, E>`, not `{Self}`",
    label = "the domain event is published after this returns `Ok`",
    note = "return a `Result` whose error implements `From<herald::Error>` (a failed publish is returned as that error)"
)]
pub trait DomainResult: Sized {
    /// `T` of `Result<T, E>`.
    type Value;
    /// The `Ok` value, if any.
    fn value(&self) -> Option<&Self::Value>;
    /// The result that says the domain event was not published.
    fn failed(error: crate::error::Error) -> Self;
}

impl<T, E: From<crate::error::Error>> DomainResult for Result<T, E> {
    type Value = T;
    fn value(&self) -> Option<&T> {
        self.as_ref().ok()
    }
    fn failed(error: crate::error::Error) -> Self {
        Err(E::from(error))
    }
}

/// The `Ok` value of a `#[domain_event]` fn without `emit`: the domain event itself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a herald event, so `#[domain_event]` cannot publish it",
    label = "without `emit`, the `Ok` value is the domain event that is published",
    note = "return the event, or say how to build it from the value: `#[domain_event(emit = |value| UserRegistered {{ .. }})]`"
)]
pub trait DomainEventValue: HeraldEvent {}

impl<T: HeraldEvent> DomainEventValue for T {}

/// After a `#[domain_event(emit = ...)]` fn's body: on `Ok`, publishes the event `emit` builds
/// from the value through the bus scope; returns the result, or the error of a failed publish.
///
/// # Panics
/// On `Ok` outside a bus scope (see `herald::scope`).
pub async fn domain_emit<R: DomainResult, E: HeraldEvent>(
    function: &'static str,
    result: R,
    emit: impl FnOnce(&R::Value) -> E,
) -> R {
    let Some(value) = result.value() else {
        return result;
    };
    let event = emit(value);
    match crate::scope::publish("`#[domain_event]` fn", function, &event).await {
        Ok(_) => result,
        Err(error) => R::failed(error),
    }
}

/// After a `#[domain_event]` fn's body: on `Ok`, publishes the value, which is the domain event.
///
/// # Panics
/// On `Ok` outside a bus scope (see `herald::scope`).
pub async fn domain_value<R>(function: &'static str, result: R) -> R
where
    R: DomainResult,
    R::Value: DomainEventValue,
{
    let Some(event) = result.value() else {
        return result;
    };
    match crate::scope::publish("`#[domain_event]` fn", function, event).await {
        Ok(_) => result,
        Err(error) => R::failed(error),
    }
}

/// A field named by `#[domain_event(aggregate_version = field)]`: an integer.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an aggregate version",
    label = "`aggregate_version` names a field holding the aggregate's version: an integer",
    note = "make the field an integer type (`u32`, `u64`, `i64`, ...)"
)]
pub trait AggregateVersion {
    /// The version as `ce_aggregateversion` carries it.
    fn aggregate_version(&self) -> i64;
}

macro_rules! aggregate_version_ints {
    ($($t:ty),*) => {$(
        impl AggregateVersion for $t {
            #[allow(clippy::cast_possible_wrap, clippy::cast_lossless)]
            fn aggregate_version(&self) -> i64 {
                *self as i64
            }
        }
    )*};
}
aggregate_version_ints!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
