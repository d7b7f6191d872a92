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
//! // With no KAFKA_BOOTSTRAP_SERVERS set, this starts an embedded in-process broker.
//! let bus = Bus::from_env("user-service").await?;
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
pub mod embedded;
pub mod envelope;
mod error;
mod event;
mod publish;
pub mod registry;
mod stats;
mod topics;

pub use bus::{Bus, BusBuilder};
pub use config::{Config, OffsetReset, Secret, Security};
pub use context::Context;
pub use embedded::EmbeddedBroker;
pub use envelope::{Metadata, Position, PublishOptions};
pub use error::{DispatchError, Error, HandlerError, Result};
pub use event::{Event, HeraldEvent, PartitionKey};
pub use herald_macros::{handler, IntegrationEvent};
pub use publish::Delivery;
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
    pub use crate::registry::{EventDescriptor, HandlerDescriptor, HandlerFuture};
    pub use inventory;
    pub use serde_json;

    /// The JSON Schema of an event type.
    pub fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
        schemars::schema_for!(T).to_value()
    }

    /// What a handler may return: `Result<(), E>` with `E: Into<HandlerError>`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a handler result",
        label = "a handler returns `Result<(), E>`",
        note = "write `-> Result<(), HandlerError>`, or `Result<(), E>` where `E: std::error::Error + Send + Sync + 'static`"
    )]
    pub trait HandlerOutput {
        /// Converts into herald's handler result.
        fn into_handler_result(self) -> Result<(), HandlerError>;
    }

    impl<E: Into<HandlerError>> HandlerOutput for Result<(), E> {
        fn into_handler_result(self) -> Result<(), HandlerError> {
            self.map_err(Into::into)
        }
    }

    /// Implemented by herald's [`Context`] only.
    #[diagnostic::on_unimplemented(
        message = "the second parameter of a handler must be `&herald::Context`, not `&{Self}`",
        label = "expected `&Context`",
        note = "write `ctx: &Context`; reach shared state with `ctx.state::<T>()`"
    )]
    pub trait HandlerContext {}

    impl HandlerContext for Context {}

    /// Compile-time check of a handler's context parameter.
    pub fn assert_context<T: HandlerContext + ?Sized>() {}

    /// Compile-time check of a handler's return type.
    pub fn assert_output<T: HandlerOutput>() {}
}
