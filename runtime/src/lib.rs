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
//! [`command`] and `docs/commands.md`.
//!
//! The wire format is the CloudEvents 1.0 Kafka binding (`docs/wire-format.md`).

#![warn(missing_docs)]

// `#[derive(IntegrationEvent)]` on herald's own events names the runtime as `::herald`.
extern crate self as herald;

pub mod audit;
mod bus;
pub mod codec;
pub mod command;
pub mod config;
mod connect;
mod consume;
mod context;
pub mod dlq;
pub mod embedded;
pub mod envelope;
mod error;
mod event;
pub mod mapping;
pub mod naming;
mod publish;
pub mod registry;
pub mod saga;
pub mod schemas;
mod scope;
mod stats;
pub mod telemetry;
mod topics;

pub use bus::{shutdown_signal, Bus, BusBuilder};
pub use command::{Command, RequestOptions};
pub use config::{Brokers, Config, OffsetReset, Secret, Security};
pub use consume::breaker::{BreakerState, BreakerStatus, CircuitBreaker};
pub use consume::retry::{RetryMode, RetryPolicy};
pub use context::Context;
pub use embedded::EmbeddedBroker;
pub use envelope::{Metadata, Position, PublishOptions};
pub use error::{DispatchError, Error, HandlerError, RegistryConflicts, Result, ResultExt};
pub use event::{Event, HeraldEvent, PartitionKey};
pub use herald_macros::{audit_event, domain_event, handler, Command, IntegrationEvent};
pub use publish::{Delivery, EncodedEvent, PublishRetry};
pub use saga::Saga;
pub use scope::scope;
pub use stats::Stats;
pub use telemetry::{Health, HealthOptions, TopicInfo};

/// What a herald service usually needs, plus serde and schemars derives.
pub mod prelude {
    pub use crate::{
        audit_event, domain_event, handler, Bus, Command, Config, Context, Event, HandlerError,
        HeraldEvent, IntegrationEvent, Metadata, PublishOptions, RequestOptions,
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
