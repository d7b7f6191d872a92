//! # herald
//!
//! Event-driven microservices on Apache Kafka, declared with macros. Annotate a struct with
//! `#[derive(IntegrationEvent)]` and an `async fn` with `#[handler]`; the runtime finds both through
//! `inventory`, creates the topics, publishes CloudEvents and runs the handlers in consumer groups,
//! committing an event only after its handlers succeeded.
//!
//! ```no_run
//! use herald::prelude::*;
//!
//! #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
//! #[event(version = 1)] // topic `integration-events.user_created`, type `user.created`
//! pub struct UserCreated {
//!     #[event(key)]
//!     pub user_id: u64,
//!     pub email: String,
//! }
//!
//! #[handler(group = "notification-service")]
//! async fn send_welcome(event: Event<UserCreated>, ctx: &Context) -> Result<(), HandlerError> {
//!     println!("welcome {} (correlation {:?})", event.data.email, event.meta.correlation_id);
//!     Ok(())
//! }
//!
//! # async fn run() -> herald::Result<()> {
//! // KAFKA_BOOTSTRAP_SERVERS names the brokers; `embedded_if_unset` (development only) falls back
//! // to herald's in-memory broker when it is unset, with a warning. Without it, an unset variable
//! // is an error, so production never publishes into memory by accident.
//! let bus = Bus::new(Config::from_env("user-service")?.embedded_if_unset()).await?;
//! bus.publish(UserCreated { user_id: 7, email: "a@b.c".into() }).await?;
//! bus.run_until_shutdown().await
//! # }
//! ```
//!
//! Commands (`#[derive(Command)]` with `#[command(reply = ReplyType)]`) are messages with a typed
//! reply: `bus.request(cmd).await` publishes one and returns the reply of its `#[handler]` (which
//! returns `Result<ReplyType, E>`), or [`Error::RequestTimeout`] / [`Error::CommandFailed`]; see
//! [`Command`] and `docs/commands.md`.
//!
//! The wire format is the CloudEvents 1.0 Kafka binding (`docs/wire-format.md`).

#![warn(missing_docs)]

// `#[derive(IntegrationEvent)]` on herald's own events names the runtime as `::herald`.
extern crate self as herald;

// The model: the wire's names, events and their envelope. They import nothing of herald above.
mod event;
pub mod headers;
// What everything else reports and is configured with.
mod config;
mod error;
// The machinery: the codec, telemetry, the brokers, publishing, the handler registry.
mod broker;
mod context;
mod publish;
pub mod registry;
mod wire;
// Features built on it.
pub mod audit;
/// Reading any topic without a consumer group, each record decoded (`herald tail`, `herald trace`).
pub mod browse;
mod bus;
mod command;
mod consume;
pub mod dlq;
pub mod offsets;
pub mod replay;
pub mod schemas;
mod scope;
pub mod telemetry;
pub mod testing;
#[cfg(feature = "tower")]
pub mod web;

pub use broker::embedded::{BrokerFault, EmbeddedBroker, KafkaRequest};
pub use bus::{shutdown_signal, Bus, BusBuilder};
pub use command::{Command, RequestOptions};
pub use config::policy::{CircuitBreaker, RetryMode, RetryPolicy};
pub use config::{Brokers, Config, ContentMode, GroupProtocol, OffsetReset, Secret, Security};
pub use consume::breaker::{BreakerState, BreakerStatus};
pub use consume::dynamic::DynamicHandler;
pub use context::Context;
pub use error::{
    DispatchError, Error, HandlerError, KafkaCause, KafkaCode, RegistryConflicts, Result, ResultExt,
};
pub use event::envelope::{Delivery, Metadata, Position, PublishOptions};
pub use event::naming;
pub use event::saga::Saga;
pub use event::{DynamicEvent, Event, HeraldEvent, PartitionKey, Reply};
pub use herald_macros::{audit_event, domain_event, handler, Command, IntegrationEvent};
pub use publish::{EncodedEvent, PublishRetry};
pub use scope::{scope, scope_with};
pub use telemetry::stats::Stats;

/// What a herald service usually needs, plus serde and schemars derives.
pub mod prelude {
    pub use crate::{
        audit_event, domain_event, handler, Bus, Command, Config, Context, DynamicEvent, Event,
        HandlerError, HeraldEvent, IntegrationEvent, Metadata, PublishOptions, RequestOptions,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// The README's code blocks, compiled as doc-tests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What herald's macros generate code against; see `private.rs`. Not public API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private_v0_1;
