//! The registry: every event and handler the macros registered with `inventory`, validated as a
//! whole at start-up.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::context::Context;
use crate::error::{DispatchError, Error, Result};
use crate::wire::codec::Incoming;

/// What a handler's dispatch shim returns when the handler succeeded: the JSON of a command's
/// reply, `None` for an event.
pub type HandlerReply = Option<Vec<u8>>;

/// The future a handler's dispatch shim returns.
pub type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<HandlerReply, DispatchError>> + Send + 'static>>;

/// What `#[derive(IntegrationEvent)]` registers about an event type.
#[derive(Debug)]
pub struct EventDescriptor {
    /// The Rust path of the type, e.g. `my_service::events::UserCreated`.
    pub rust_type: &'static str,
    /// The CloudEvents type, e.g. `user.created`.
    pub event_type: &'static str,
    /// The topic.
    pub topic: &'static str,
    /// The schema version.
    pub version: u32,
    /// The event's JSON Schema.
    pub schema: fn() -> serde_json::Value,
    /// Which schema changes the build-time check lets through at this version
    /// (`#[event(compat = "...")]`, default backward).
    pub compat: Compat,
}

/// A compatibility policy: which changes of an event's schema keep its version
/// (`#[event(compat = "backward" | "forward" | "full" | "none")]`). See `docs/schemas.md`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Compat {
    /// New code reads events written with the committed schema, and no field other services read
    /// disappears: no new required field, no type change, no removed field or enum variant.
    #[default]
    Backward,
    /// Code built on the committed schema reads events written with the new one: no removed or
    /// renamed required field, no type change, no new enum variant, no field turned optional.
    Forward,
    /// Both backward and forward.
    Full,
    /// No check: every change keeps the version.
    None,
}

impl Compat {
    /// The policy's name as written in `#[event(compat = "...")]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backward => "backward",
            Self::Forward => "forward",
            Self::Full => "full",
            Self::None => "none",
        }
    }

    /// The Confluent Schema Registry compatibility level closest to the policy.
    pub fn confluent_level(self) -> &'static str {
        match self {
            Self::Backward => "BACKWARD",
            Self::Forward => "FORWARD",
            Self::Full => "FULL",
            Self::None => "NONE",
        }
    }
}

inventory::collect!(EventDescriptor);

/// What `#[handler]` registers about a handler function.
#[derive(Debug)]
pub struct HandlerDescriptor {
    /// The handler's name (default: the function's name).
    pub name: &'static str,
    /// The Rust path of the function.
    pub rust_path: &'static str,
    /// The consumer group, when the handler names one.
    pub group: Option<&'static str>,
    /// The event type it handles.
    pub event_type: &'static str,
    /// The schema version it reads.
    pub event_version: u32,
    /// The topic it consumes.
    pub topic: &'static str,
    /// The Rust event type as written in the signature.
    pub event_rust_type: &'static str,
    /// Whether it handles a command (`#[derive(Command)]`): its reply goes to the command's
    /// `ce_replyto`, and it is the only handler of that command in its group.
    pub command: bool,
    /// The retry settings given in `#[handler(...)]`; unset ones fall back to the policy and `Config`.
    pub retry: HandlerRetry,
    /// `concurrency = N`: how many events of different keys of one partition may run at once
    /// (1, the default: one at a time, in partition order). A partition runs with the smallest
    /// value among its group's handlers of its topic; see `docs/concurrency.md`.
    pub concurrency: u16,
    /// Decodes the message and calls the function.
    pub call: fn(Incoming, Context) -> HandlerFuture,
}

/// Retry settings a handler declares with `#[handler(...)]`. Each `None` falls back to the named
/// policy, then to the bus-wide settings in `Config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerRetry {
    /// `policy = "name"`: a retry policy registered on the bus builder under this name.
    pub policy: Option<&'static str>,
    /// `retries = N`: tries after the first attempt before the message is dead-lettered (0: none).
    pub max_retries: Option<u32>,
    /// `backoff = "100ms..30s"`: the first delay between tries.
    pub base_delay: Option<std::time::Duration>,
    /// `backoff = "100ms..30s"`: the longest delay between tries.
    pub max_delay: Option<std::time::Duration>,
    /// `timeout = "5s"`: how long one attempt may run before it counts as failed.
    pub timeout: Option<std::time::Duration>,
}

inventory::collect!(HandlerDescriptor);

/// The largest `concurrency` a handler may declare (`#[handler(concurrency = N)]` checks it too).
pub const MAX_CONCURRENCY: u16 = 1024;

/// The validated set of events and handlers.
#[derive(Debug, Clone)]
pub struct Registry {
    events: Vec<&'static EventDescriptor>,
    handlers: Vec<&'static HandlerDescriptor>,
}

impl Registry {
    /// Everything registered in this binary, validated.
    ///
    /// # Errors
    /// [`Error::Registry`] naming both Rust items of any conflict.
    pub fn collect() -> Result<Self> {
        Self::from_parts(
            inventory::iter::<EventDescriptor>.into_iter().collect(),
            inventory::iter::<HandlerDescriptor>.into_iter().collect(),
        )
    }

    /// A registry of the given descriptors, validated.
    ///
    /// # Errors
    /// [`Error::Registry`] naming both Rust items of any conflict.
    pub fn from_parts(
        mut events: Vec<&'static EventDescriptor>,
        mut handlers: Vec<&'static HandlerDescriptor>,
    ) -> Result<Self> {
        events.sort_by_key(|e| (e.event_type, e.version, e.rust_type));
        // One type registered from several places (herald's audit event, by each audited function).
        events.dedup_by_key(|e| (e.event_type, e.version, e.rust_type));
        handlers.sort_by_key(|h| (h.topic, h.name, h.rust_path));
        let registry = Self { events, handlers };
        registry.validate()?;
        Ok(registry)
    }

    fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut by_type: BTreeMap<&str, &EventDescriptor> = BTreeMap::new();
        for event in &self.events {
            if let Some(first) = by_type.get(event.event_type) {
                if first.version == event.version {
                    problems.push(format!(
                        "event type `{}` version {} is declared twice, by `{}` and `{}`: give one of them \
                         another `name` or `version`",
                        event.event_type, event.version, first.rust_type, event.rust_type
                    ));
                } else if first.topic != event.topic {
                    problems.push(format!(
                        "event type `{}` is published to two topics, `{}` by `{}` (v{}) and `{}` by `{}` (v{}): \
                         every version of one event type belongs on one topic",
                        event.event_type,
                        first.topic,
                        first.rust_type,
                        first.version,
                        event.topic,
                        event.rust_type,
                        event.version
                    ));
                }
            } else {
                by_type.insert(event.event_type, event);
            }
        }
        let mut names: BTreeMap<(Option<&str>, &str), &HandlerDescriptor> = BTreeMap::new();
        for handler in &self.handlers {
            if !(1..=MAX_CONCURRENCY).contains(&handler.concurrency) {
                problems.push(format!(
                    "handler `{}` (`{}`) has concurrency {}: it is 1 to {MAX_CONCURRENCY}",
                    handler.name, handler.rust_path, handler.concurrency
                ));
            }
            if let Some(first) = names.insert((handler.group, handler.name), handler) {
                problems.push(format!(
                    "two handlers are named `{}`{}: `{}` and `{}`; give one a different `name = \"...\"`",
                    handler.name,
                    handler
                        .group
                        .map(|g| format!(" in group `{g}`"))
                        .unwrap_or_default(),
                    first.rust_path,
                    handler.rust_path
                ));
            }
        }
        // One reply per request: a command has at most one handler per group (and version; handlers
        // of several versions of one type are alternatives, see `dispatch::for_version`).
        let mut commands: BTreeMap<(Option<&str>, &str, u32), &HandlerDescriptor> = BTreeMap::new();
        for handler in self.handlers.iter().filter(|h| h.command) {
            let key = (handler.group, handler.event_type, handler.event_version);
            if let Some(first) = commands.insert(key, handler) {
                problems.push(format!(
                    "command `{}` has two handlers{}, `{}` and `{}`: a command gets one reply, so \
                     one handler per consumer group; remove one, or put it in another `group`",
                    handler.event_type,
                    handler
                        .group
                        .map(|g| format!(" in group `{g}`"))
                        .unwrap_or_default(),
                    first.rust_path,
                    handler.rust_path
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Registry(problems.into()))
        }
    }

    /// The registry with `extra` handlers added (the bus builder's dynamic handlers, their
    /// topics prefixed already), validated again.
    ///
    /// # Errors
    /// [`Error::Registry`] naming both items of any conflict.
    pub(crate) fn with_handlers(self, extra: Vec<&'static HandlerDescriptor>) -> Result<Self> {
        if extra.is_empty() {
            return Ok(self);
        }
        let mut handlers = self.handlers;
        handlers.extend(extra);
        Self::from_parts(self.events, handlers)
    }

    /// The registry with `prefix` (`Config::topic_prefix`) before every topic: the one place the
    /// prefix is applied for consuming, so the topics handlers subscribe to, the topics herald
    /// creates and the dead-letter and retry topics named after them all carry it. `None` changes
    /// nothing.
    pub fn with_topic_prefix(self, prefix: Option<&str>) -> Self {
        let Some(prefix) = prefix else {
            return self;
        };
        Self {
            events: self
                .events
                .into_iter()
                .map(|e| prefixed_descriptor(prefix, e, |e, topic| EventDescriptor { topic, ..*e }))
                .collect(),
            handlers: self
                .handlers
                .into_iter()
                .map(|h| {
                    prefixed_descriptor(prefix, h, |h, topic| HandlerDescriptor { topic, ..*h })
                })
                .collect(),
        }
    }

    /// The registered events.
    pub fn events(&self) -> &[&'static EventDescriptor] {
        &self.events
    }

    /// The registered handlers.
    pub fn handlers(&self) -> &[&'static HandlerDescriptor] {
        &self.handlers
    }

    /// Every topic an event is published to or a handler consumes, sorted, without duplicates.
    pub fn topics(&self) -> Vec<&'static str> {
        let mut topics: Vec<&str> = self
            .events
            .iter()
            .map(|e| e.topic)
            .chain(self.handlers.iter().map(|h| h.topic))
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// The handlers grouped by consumer group; handlers without a group go to `default_group`.
    pub fn handlers_by_group(
        &self,
        default_group: &str,
    ) -> BTreeMap<String, Vec<&'static HandlerDescriptor>> {
        let mut groups: BTreeMap<String, Vec<&'static HandlerDescriptor>> = BTreeMap::new();
        for descriptor in &self.handlers {
            let group = descriptor.group.unwrap_or(default_group);
            groups.entry(group.to_owned()).or_default().push(descriptor);
        }
        groups
    }
}

/// Descriptors with a topic carry it in `topic`.
trait HasTopic: Sync + 'static {
    fn topic(&self) -> &'static str;
}

impl HasTopic for EventDescriptor {
    fn topic(&self) -> &'static str {
        self.topic
    }
}

impl HasTopic for HandlerDescriptor {
    fn topic(&self) -> &'static str {
        self.topic
    }
}

/// The copy of `descriptor` with `prefix` before its topic, made once per (prefix, descriptor) for
/// the life of the process, like the descriptors `inventory` holds: building many buses with the
/// same prefix (tests do) allocates nothing more.
fn prefixed_descriptor<D: HasTopic>(
    prefix: &str,
    descriptor: &'static D,
    with_topic: impl FnOnce(&D, &'static str) -> D,
) -> &'static D {
    use std::any::Any;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Cache = HashMap<(String, usize), &'static (dyn Any + Sync)>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (prefix.to_owned(), descriptor as *const D as usize);
    let entry = *cache.entry(key).or_insert_with(|| {
        let topic = crate::event::naming::prefixed(Some(prefix), descriptor.topic());
        let leaked: &'static D = Box::leak(Box::new(with_topic(descriptor, topic)));
        leaked
    });
    (entry as &dyn Any)
        .downcast_ref::<D>()
        .expect("the cache holds descriptors of the type they were made from")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> serde_json::Value {
        serde_json::json!({})
    }

    fn event(
        rust_type: &'static str,
        event_type: &'static str,
        topic: &'static str,
        version: u32,
    ) -> &'static EventDescriptor {
        Box::leak(Box::new(EventDescriptor {
            rust_type,
            event_type,
            topic,
            version,
            schema,
            compat: Compat::Backward,
        }))
    }

    #[test]
    fn duplicate_event_type_names_both_rust_types() {
        let err = Registry::from_parts(
            vec![
                event("a::UserCreated", "user.created", "t", 1),
                event("b::UserCreated", "user.created", "t", 1),
            ],
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("a::UserCreated") && err.contains("b::UserCreated"),
            "{err}"
        );
    }

    #[test]
    fn versions_of_one_type_must_share_a_topic() {
        let err = Registry::from_parts(
            vec![
                event("a::V1", "user.created", "t1", 1),
                event("a::V2", "user.created", "t2", 2),
            ],
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("a::V1") && err.contains("a::V2") && err.contains("two topics"),
            "{err}"
        );
        assert!(Registry::from_parts(
            vec![
                event("a::V1", "user.created", "t", 1),
                event("a::V2", "user.created", "t", 2)
            ],
            vec![],
        )
        .is_ok());
    }

    fn command_handler(
        name: &'static str,
        group: Option<&'static str>,
        command: bool,
    ) -> &'static HandlerDescriptor {
        fn call(_: Incoming, _: Context) -> HandlerFuture {
            Box::pin(async { Ok(None) })
        }
        Box::leak(Box::new(HandlerDescriptor {
            name,
            rust_path: name,
            group,
            event_type: "user.create",
            event_version: 1,
            topic: "user.commands",
            event_rust_type: "CreateUser",
            command,
            retry: HandlerRetry::default(),
            concurrency: 1,
            call,
        }))
    }

    #[test]
    fn a_command_has_one_handler_per_group() {
        let err = Registry::from_parts(
            vec![],
            vec![
                command_handler("create_a", None, true),
                command_handler("create_b", None, true),
            ],
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("command `user.create` has two handlers")
                && message.contains("create_a")
                && message.contains("create_b"),
            "{message}"
        );
        // Handlers in two groups both reply: the caller keeps the first, the other is dropped as
        // unknown (see docs/commands.md). Events may have many handlers per group.
        assert!(Registry::from_parts(
            vec![],
            vec![
                command_handler("create_a", None, true),
                command_handler("create_b", Some("audit"), true),
            ],
        )
        .is_ok());
        assert!(Registry::from_parts(
            vec![],
            vec![
                command_handler("on_a", None, false),
                command_handler("on_b", None, false),
            ],
        )
        .is_ok());
    }
}
