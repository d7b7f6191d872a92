//! Handlers registered at run time on the bus builder, by topic and event type or for everything
//! on a topic (`subscribe`, `subscribe_all` in the libraries herald replaces). They join the
//! registry as handlers like the `#[handler]` fns, so the same consumer, dispatch, retries,
//! dead letters, breakers, commits and start-up checks apply; only the call differs: a closure
//! that receives the envelope with the data as JSON.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::error::{DispatchError, Error, HandlerError, Result};
use crate::event::{topic_problem, Event};
use crate::registry::{HandlerDescriptor, HandlerFuture, HandlerRetry};
use crate::wire::codec::Incoming;

/// The event type of a handler that takes every event of its topic.
pub(crate) const EVERY_TYPE: &str = "*";

/// A handler's call: the `#[handler]` shim's function pointer, or a dynamic handler's closure.
pub(crate) type Caller = Arc<dyn Fn(Incoming, Context) -> HandlerFuture + Send + Sync>;

/// The closures of the dynamic handlers, by the address of their (leaked, `'static`) descriptor.
#[derive(Clone, Default)]
pub(crate) struct Callers(HashMap<usize, Caller>);

impl Callers {
    /// The call of `handler`: its closure when it is a dynamic handler, its shim otherwise.
    pub(crate) fn of(&self, handler: &'static HandlerDescriptor) -> Caller {
        match self.0.get(&address(handler)) {
            Some(caller) => caller.clone(),
            None => {
                let shim = handler.call;
                Arc::new(move |incoming, ctx| shim(incoming, ctx))
            }
        }
    }
}

fn address(handler: &'static HandlerDescriptor) -> usize {
    std::ptr::from_ref(handler) as usize
}

/// A handler registered at run time ([`BusBuilder::handler`](crate::BusBuilder::handler)): a
/// closure that receives each event of `event_type` on `topic` (or every event of the topic) as
/// an [`Event`] whose data is JSON, with the [`Context`] a `#[handler]` gets. It runs in its
/// consumer group like a `#[handler]` of that group: the same retries, dead-letter topic, circuit
/// breaker, commit after success and order.
pub struct DynamicHandler {
    name: Option<String>,
    group: String,
    topic: String,
    event_type: Option<String>,
    retry: HandlerRetry,
    policy: Option<String>,
    concurrency: u16,
    call: Caller,
}

impl std::fmt::Debug for DynamicHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicHandler")
            .field("name", &self.handler_name())
            .field("group", &self.group)
            .field("topic", &self.topic)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

impl DynamicHandler {
    /// A handler in consumer group `group` of the events of type `event_type` on `topic` (before
    /// the configured prefix).
    pub fn new<F, Fut>(
        group: impl Into<String>,
        topic: impl Into<String>,
        event_type: impl Into<String>,
        handler: F,
    ) -> Self
    where
        F: Fn(Event<serde_json::Value>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        Self::build(group.into(), topic.into(), Some(event_type.into()), handler)
    }

    /// A handler in consumer group `group` of every event on `topic`, whatever its type (an audit
    /// sink, a bridge, a projection of the whole stream).
    pub fn all<F, Fut>(group: impl Into<String>, topic: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Event<serde_json::Value>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        Self::build(group.into(), topic.into(), None, handler)
    }

    fn build<F, Fut>(group: String, topic: String, event_type: Option<String>, handler: F) -> Self
    where
        F: Fn(Event<serde_json::Value>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        let call: Caller = Arc::new(move |incoming: Incoming, ctx: Context| -> HandlerFuture {
            let event = match decode(&incoming) {
                Ok(event) => event,
                Err(error) => return Box::pin(std::future::ready(Err(error))),
            };
            let running = handler(event, ctx);
            Box::pin(async move { running.await.map(|()| None).map_err(DispatchError::Handler) })
        });
        Self {
            name: None,
            group,
            topic,
            event_type,
            retry: HandlerRetry::default(),
            policy: None,
            concurrency: 1,
            call,
        }
    }

    /// Names the handler (its name in logs, metrics, dead letters and retry headers; unique in
    /// its group). Default: `{topic}:{event_type}`, or `{topic}:*` for every event of the topic.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Tries after the first attempt before the event is dead-lettered (`#[handler(retries = N)]`).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retry.max_retries = Some(retries);
        self
    }

    /// The first and the longest delay between tries (`#[handler(backoff = "100ms..30s")]`).
    pub fn backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.retry.base_delay = Some(first);
        self.retry.max_delay = Some(longest);
        self
    }

    /// How long one attempt may run before it counts as failed (`#[handler(timeout = "5s")]`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.retry.timeout = Some(timeout);
        self
    }

    /// Runs under the retry policy registered on the builder under `name`
    /// (`#[handler(policy = "...")]`).
    pub fn policy(mut self, name: impl Into<String>) -> Self {
        self.policy = Some(name.into());
        self
    }

    /// How many events of different keys of one partition may run at once
    /// (`#[handler(concurrency = N)]`, see `docs/concurrency.md`).
    pub fn concurrency(mut self, concurrency: u16) -> Self {
        self.concurrency = concurrency;
        self
    }

    fn handler_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!(
                "{}:{}",
                self.topic,
                self.event_type.as_deref().unwrap_or(EVERY_TYPE)
            )
        })
    }

    /// Why the handler cannot run, if it cannot.
    fn problem(&self) -> Option<String> {
        if self.group.trim().is_empty() {
            return Some("its consumer group is empty".into());
        }
        if let Some(problem) = topic_problem(&self.topic) {
            return Some(format!("its topic `{}` {problem}", self.topic));
        }
        match self.event_type.as_deref() {
            Some(t) if t.trim().is_empty() => Some(
                "its event type is empty: name one, or use `DynamicHandler::all` for every event \
                 of the topic"
                    .into(),
            ),
            Some(EVERY_TYPE) => Some(
                "its event type is `*`: use `DynamicHandler::all` for every event of the topic"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl Event<serde_json::Value> {
    /// The data decoded as `T`, for a dynamic handler that wants a typed view on demand. A
    /// mismatch is a permanent error: returned with `?`, the event is dead-lettered without
    /// retries, naming what did not fit.
    ///
    /// # Errors
    /// A permanent [`HandlerError`](crate::HandlerError) with serde's reason.
    pub fn data_as<T: for<'de> serde::Deserialize<'de>>(&self) -> Result<T, HandlerError> {
        T::deserialize(&self.data).map_err(|e| {
            HandlerError::permanent(HandlerError::msg(format!(
                "the data of `{}` does not fit `{}`: {e}",
                self.meta.event_type,
                std::any::type_name::<T>()
            )))
        })
    }
}

/// The data of `incoming` as JSON, in its envelope.
fn decode(incoming: &Incoming) -> std::result::Result<Event<serde_json::Value>, DispatchError> {
    let data = serde_json::from_slice(incoming.data())
        .map_err(|e| DispatchError::Decode(format!("the data is not JSON: {e}")))?;
    Ok(Event {
        meta: incoming.meta().clone(),
        data,
    })
}

/// Turns the builder's dynamic handlers into registry descriptors (topics with `prefix` before
/// them) and their calls. The descriptors, and the names in them, are leaked: each lives as long
/// as the process, as the `#[handler]` statics do; a bus builds them once.
///
/// # Errors
/// [`Error::Config`] naming the handler and what is wrong with it.
pub(crate) fn register(
    handlers: Vec<DynamicHandler>,
    prefix: Option<&str>,
) -> Result<(Vec<&'static HandlerDescriptor>, Callers)> {
    let mut descriptors = Vec::with_capacity(handlers.len());
    let mut callers = Callers::default();
    for handler in handlers {
        let name = handler.handler_name();
        if let Some(problem) = handler.problem() {
            return Err(Error::Config(format!(
                "dynamic handler `{name}` cannot run: {problem}"
            )));
        }
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let descriptor: &'static HandlerDescriptor = Box::leak(Box::new(HandlerDescriptor {
            name: leak(name),
            rust_path: "(a dynamic handler)",
            group: Some(leak(handler.group)),
            event_type: leak(handler.event_type.unwrap_or_else(|| EVERY_TYPE.into())),
            // Version 0: every version of the type (see `dispatch::for_version`).
            event_version: 0,
            topic: leak(crate::event::naming::with_prefix(prefix, &handler.topic)),
            event_rust_type: "serde_json::Value",
            command: false,
            retry: HandlerRetry {
                policy: handler.policy.map(leak),
                ..handler.retry
            },
            concurrency: handler.concurrency,
            call: unreachable_shim,
        }));
        callers.0.insert(address(descriptor), handler.call);
        descriptors.push(descriptor);
    }
    Ok((descriptors, callers))
}

/// A dynamic handler's descriptor points here; its closure is called instead (see
/// [`Callers::of`]).
fn unreachable_shim(_: Incoming, _: Context) -> HandlerFuture {
    Box::pin(std::future::ready(Err(DispatchError::Handler(
        HandlerError::msg("a dynamic handler was called without its closure"),
    ))))
}
