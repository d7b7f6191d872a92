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
//! The wire format is the CloudEvents 1.0 Kafka binding (`docs/wire-format.md`).

#![warn(missing_docs)]

mod bus;
pub mod codec;
pub mod config;
mod consume;
mod context;
pub mod dlq;
pub mod embedded;
pub mod envelope;
mod error;
mod event;
mod publish;
pub mod registry;
pub mod schemas;
mod stats;
mod topics;

pub use bus::{Bus, BusBuilder};
pub use config::{Brokers, Config, OffsetReset, Secret, Security};
pub use consume::breaker::{BreakerState, BreakerStatus, CircuitBreaker};
pub use consume::retry::{RetryMode, RetryPolicy};
pub use context::Context;
pub use embedded::EmbeddedBroker;
pub use envelope::{Metadata, Position, PublishOptions};
pub use error::{DispatchError, Error, HandlerError, RegistryConflicts, Result, ResultExt};
pub use event::{Event, HeraldEvent, PartitionKey};
pub use herald_macros::{handler, IntegrationEvent};
pub use publish::{Delivery, EncodedEvent, PublishRetry};
pub use stats::Stats;

/// What a herald service usually needs, plus serde and schemars derives.
pub mod prelude {
    pub use crate::{
        handler, Bus, Config, Context, Event, HandlerError, HeraldEvent, IntegrationEvent,
        Metadata, PublishOptions,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// What herald's macros generate code against. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::{decode_data, decode_event, Incoming};
    pub use crate::context::Context;
    pub use crate::error::{DispatchError, HandlerError};
    pub use crate::event::{HeraldEvent, PartitionKey};
    pub use crate::registry::{
        Compat, EventDescriptor, HandlerDescriptor, HandlerFuture, HandlerRetry,
    };
    pub use inventory;
    pub use serde_json;

    /// The JSON Schema of an event type. Bounded by `HeraldEvent` (which implies `JsonSchema`) so a
    /// missing `JsonSchema` derive is reported once, at the `HeraldEvent` impl.
    pub fn schema_of<T: HeraldEvent>() -> serde_json::Value {
        schemars::schema_for!(T).to_value()
    }

    /// What a handler needs to know about its event type. `#[handler]` builds it once, with
    /// [`event_info`], so an event type that is not a herald event is reported once.
    pub struct EventInfo<T> {
        /// `T::EVENT_TYPE`.
        pub event_type: &'static str,
        /// `T::TOPIC`.
        pub topic: &'static str,
        /// `T::VERSION`.
        pub version: u32,
        /// Decodes the payload, for handlers taking `T`.
        pub decode_data: fn(&Incoming) -> Result<T, DispatchError>,
        /// Decodes payload and metadata, for handlers taking `Event<T>`.
        pub decode_event: fn(&Incoming) -> Result<crate::Event<T>, DispatchError>,
    }

    /// The [`EventInfo`] of a handler's event type: the one place generated code requires
    /// `T: HeraldEvent`.
    pub const fn event_info<T: HeraldEvent>() -> EventInfo<T> {
        EventInfo {
            event_type: T::EVENT_TYPE,
            topic: T::TOPIC,
            version: T::VERSION,
            decode_data: decode_data::<T>,
            decode_event: decode_event::<T>,
        }
    }

    /// What a handler may return: `Result<(), E>`; its error type `E` must be a [`HandlerFailure`].
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a handler result",
        label = "a handler returns `Result<(), E>`",
        note = "write `-> Result<(), HandlerError>`, or `Result<(), E>` where `E: std::error::Error + Send + Sync + 'static`"
    )]
    pub trait HandlerOutput<E> {
        /// The result as a `Result`.
        fn into_result(self) -> Result<(), E>;
    }

    impl<E> HandlerOutput<E> for Result<(), E> {
        fn into_result(self) -> Result<(), E> {
            self
        }
    }

    /// What a handler's error type must be: convertible into [`HandlerError`].
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the error type of a handler",
        label = "the error type of a handler must convert into `HandlerError`",
        note = "return `Result<(), HandlerError>` and build the error with `HandlerError::msg(...)`, or use an error type that implements `std::error::Error + Send + Sync + 'static`"
    )]
    pub trait HandlerFailure {
        /// Converts into herald's handler error.
        fn into_handler_error(self) -> HandlerError;
    }

    impl<E: Into<HandlerError>> HandlerFailure for E {
        fn into_handler_error(self) -> HandlerError {
            self.into()
        }
    }

    /// The conversion of what a handler of return type `O` returned into herald's handler result;
    /// the one place generated code checks the return type. It takes no value, so rustc points at
    /// the type arguments when a check fails: at `O`, or at `E` when the macro could name it.
    pub fn handler_result<O, E>() -> fn(O) -> Result<(), HandlerError>
    where
        O: HandlerOutput<E>,
        E: HandlerFailure,
    {
        |output| {
            output
                .into_result()
                .map_err(HandlerFailure::into_handler_error)
        }
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
}
