//! Procedural macros of [herald](https://docs.rs/herald). Use them through the `herald` crate, which
//! re-exports them; the code they generate reaches the runtime only through
//! `::herald::__private_v0_1`, named with the version so mismatched crates fail to compile.
//!
//! Each macro goes parse → model → validate → expand, and reports every mistake it finds as a
//! `syn::Error` pointing at the offending token.

use proc_macro::TokenStream;

mod attr;
mod audit;
mod command;
mod domain;
mod domain_fn;
mod duration;
mod event;
mod handler;
mod naming;

/// Derives `herald::HeraldEvent` for a struct or enum: event type, topic, schema version, partition key
/// and JSON schema, and registers the event with herald's registry.
///
/// Container options, all optional: `#[event(name = "user.created", topic = "users", version = 2,
/// crate = "my_herald")]`. Field option: `#[event(key)]` marks the partition key; without it a field
/// named `aggregate_id` is the key, else the event has none.
#[proc_macro_derive(IntegrationEvent, attributes(event))]
pub fn derive_integration_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::expand(input).into()
}

/// Derives a herald command (seed 001's `CommandEvent`): `herald::HeraldEvent` (published,
/// consumed and schema-exported like an event, registered) and `herald::Command` (its reply type
/// and default request timeout). Send it with `bus.request(cmd).await`, which returns the reply;
/// answer it with a `#[handler]` returning `Result<ReplyType, E>`.
///
/// Required: `#[command(reply = ReplyType)]`, a type that derives `Serialize`, `Deserialize` and
/// `JsonSchema` (`()` for a bare acknowledgement). Optional: `name = "user.create"` (default: the
/// type's name in dot case), `topic = "..."` (default `{domain}.commands`, the domain being the
/// name's first segment), `timeout = "5s"` (default 30 s), `version = N`, `crate = "..."`. Field
/// option: `#[command(key)]` marks the partition key; without it a field named `aggregate_id` is
/// the key.
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    command::expand(input).into()
}

/// Registers an `async fn` as a herald event handler.
///
/// The function takes the event (`T` or `Event<T>` for the event and its metadata), optionally followed
/// by `&Context`, and returns `Result<(), E>` — for a command (`#[derive(Command)]`),
/// `Result<Reply, E>` with the command's reply type, which herald sends back to the caller: `E` is `HandlerError` (which can be permanent) or
/// anything that converts into `Box<dyn std::error::Error + Send + Sync>` (`anyhow::Error`,
/// `eyre::Report`, `String`, every `std::error::Error + Send + Sync + 'static`), cause chain kept.
/// The function's future must be `Send`; a non-`Send` one is an error at the function's name.
/// Options: `group = "..."` (consumer group; default: the service's group), `name = "..."`
/// (default: the function's name), `crate = "..."`, and the retry settings `retries = 5` (tries
/// after the first attempt), `backoff = "100ms..30s"` (exponential from the first to the second
/// delay; `"2s"` for a fixed delay), `timeout = "5s"` (per attempt) and `policy = "name"` (a retry
/// policy registered on the bus builder), and `concurrency = 8` (1 to 1024, default 1: how many
/// events of different keys of one partition run at once; events of one key stay in order, one at
/// a time). Durations are a whole number followed by `ms`, `s`, `m`
/// or `h`. Retry settings left out come from the policy, then from the bus-wide `Config`.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(args.into(), item.into()).into()
}

/// Makes a struct a domain event of an aggregate (seed 000/004):
/// `#[domain_event(aggregate = "user", aggregate_id = user_id)]`.
///
/// The event is published to `domain.{aggregate}.events`, keyed by the `aggregate_id` field (so one
/// aggregate's events stay in order), with `ce_aggregatetype` = the aggregate and `ce_aggregateid`
/// = the field's value. Optional: `aggregate_version = field` (an integer field, copied into
/// `ce_aggregateversion`), `name = "..."` (event type, default from the struct's name),
/// `version = N`, `crate = "..."`. The struct derives `Serialize`, `Deserialize` and `JsonSchema`
/// itself; handlers take it like any event.
///
/// On an `async fn` returning `Result<T, E>` (seed 004's decorator), it publishes a domain event
/// after the body returns `Ok`: the value itself (`#[domain_event]`, `T` being the event), or the
/// event built from a reference to it (`#[domain_event(emit = |user| UserRegistered { .. })]` or
/// `emit = path::to_fn`; the closure may use the arguments the body only borrowed). The bus is the
/// bus scope's (`herald::scope`: a `#[handler]` sets it, `herald::scope(&bus, fut)` elsewhere); a
/// failed publish is returned as `E::from(herald::Error)`; an `Err` publishes nothing.
#[proc_macro_attribute]
pub fn domain_event(args: TokenStream, item: TokenStream) -> TokenStream {
    domain::expand(args.into(), item.into()).into()
}

/// Publishes an audit event after every call of an `async fn`, failure included (seed 004):
/// `#[audit_event(action = "create_user", resource_type = "user", resource_id = user_id,
/// include_args)]`.
///
/// The event (`herald::audit::AuditEvent` on `audit.events`) holds the action, resource type and
/// id (`resource_id = param`), the actor (`actor = param`), success or failure with the error's
/// text, the duration, the arguments as JSON with `include_args` (`#[audit(skip)]` on a parameter
/// leaves it out, `#[audit(redact)]` records `"[redacted]"`) and the handled event's correlation
/// id. The function returns `Result<T, E>` with `E: Display`. The bus is the one of the bus
/// scope: a `#[handler]` sets it, `herald::scope(&bus, fut)` sets it elsewhere; see
/// `herald::audit`.
#[proc_macro_attribute]
pub fn audit_event(args: TokenStream, item: TokenStream) -> TokenStream {
    audit::expand(args.into(), item.into()).into()
}
