//! The bus scope: how code that does not take the bus as a parameter — an `#[audit_event]` or a
//! `#[domain_event]` function — finds where to publish. It is a tokio task-local:
//! - inside a `#[handler]`, the handler's generated dispatch sets it to the handler's
//!   [`Context`], so what is published there carries the handled event's correlation id and is
//!   caused by it;
//! - anywhere else (an HTTP handler, a job, a test), wrap the call in [`scope`]:
//!   `herald::scope(&bus, register_user(...)).await`.
//!
//! Publishing from such a function outside any scope is a programming error that would lose the
//! event, so it panics with a message saying where to add the scope (as tokio does without a
//! runtime) rather than dropping it.

use std::future::Future;

use crate::bus::Bus;
use crate::context::Context;
use crate::error::Result;
use crate::event::envelope::{Delivery, PublishOptions};
use crate::event::HeraldEvent;

/// Where events published through the scope go: the bus, or a handler's context.
#[derive(Clone)]
pub(crate) enum Sink {
    /// A bus, and the metadata every event published in the scope gets (a request's correlation).
    Bus(Bus, Box<PublishOptions>),
    Handler(Context),
}

tokio::task_local! {
    static SINK: Sink;
}

/// Runs `future` with `bus` as its bus scope: `#[audit_event]` and `#[domain_event]` functions
/// called in it publish there.
pub async fn scope<F: Future>(bus: &Bus, future: F) -> F::Output {
    scope_with(bus, PublishOptions::default(), future).await
}

/// As [`scope`], with metadata every event published in the scope gets: an HTTP request's
/// correlation id, for one (see `herald::web::BusScopeLayer` with the `tower` feature).
pub async fn scope_with<F: Future>(bus: &Bus, options: PublishOptions, future: F) -> F::Output {
    SINK.scope(Sink::Bus(bus.clone(), Box::new(options)), future)
        .await
}

/// Runs a handler's future with its context as the bus scope (called by `#[handler]`'s code).
pub(crate) async fn handler_scope<F: Future>(ctx: Context, future: F) -> F::Output {
    SINK.scope(Sink::Handler(ctx), future).await
}

/// The sink of the current scope.
///
/// # Panics
/// Outside a scope: `function` (the `what` of it, e.g. "`#[audit_event]` fn") would lose its event.
pub(crate) fn current(what: &str, function: &str) -> Sink {
    match SINK.try_with(Clone::clone) {
        Ok(sink) => sink,
        Err(_) => panic!(
            "{what} `{function}` ran outside a bus scope, so its event would be lost: call it from \
             a `#[handler]`, or wrap the call in `herald::scope(&bus, ...)`"
        ),
    }
}

impl Sink {
    /// Publishes `event` here: through the bus, or caused by the handled event.
    pub(crate) async fn publish<E: HeraldEvent>(&self, event: &E) -> Result<Delivery> {
        match self {
            Sink::Bus(bus, options) => bus.publish_ref(event, (**options).clone()).await,
            Sink::Handler(ctx) => ctx.publish_ref(event, PublishOptions::default()).await,
        }
    }
}

/// Publishes `event` through the current scope (caused by the handled event inside a handler).
///
/// # Panics
/// Outside a scope, as [`current`].
pub(crate) async fn publish<E: HeraldEvent>(
    what: &str,
    function: &str,
    event: &E,
) -> Result<Delivery> {
    current(what, function).publish(event).await
}
