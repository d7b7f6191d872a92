//! Saga metadata (seed 004's `publish_saga_event`): the events of one saga carry its id, its type
//! and the step each event records, as CloudEvents extensions (`ce_sagaid`, `ce_sagatype`,
//! `ce_sagastep`). herald does not run sagas — there is no orchestrator or saga store here —; it
//! makes a saga's events findable and lets handlers tell which saga and step an event belongs to.
//!
//! A saga starts with [`Saga::start`] and its first event published with [`Bus::publish_saga_event`]
//! (or `PublishOptions::saga`). A handler reads the saga of the event it handles with
//! [`Metadata::saga`](crate::Metadata::saga); what it publishes through its `Context` stays in the
//! saga automatically (id and type are carried like the correlation id), and names its own step
//! with `ctx.publish_with(event, PublishOptions::new().saga_step("payment-charged"))`. A
//! compensating event is an ordinary step (`"inventory-released"`) — see `examples/saga.rs` for a
//! two-step saga with compensation.
//!
//! [`Bus::publish_saga_event`]: crate::Bus::publish_saga_event

use crate::event::envelope::{Metadata, PublishOptions};

use crate::headers::extensions::{SAGA_ID, SAGA_STEP, SAGA_TYPE};

/// One saga: its id (unique per run) and its type (what kind of process, e.g. `order-processing`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Saga {
    /// The saga's id.
    pub id: String,
    /// The saga's type.
    pub saga_type: String,
}

impl Saga {
    /// A new saga of `saga_type` with a fresh UUID as its id.
    pub fn start(saga_type: impl Into<String>) -> Self {
        Self::new(uuid::Uuid::new_v4().to_string(), saga_type)
    }

    /// The saga `id` of `saga_type` (to continue a saga whose id is known).
    pub fn new(id: impl Into<String>, saga_type: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            saga_type: saga_type.into(),
        }
    }

    /// The saga an event belongs to, from its metadata; `None` outside any saga.
    pub fn of(meta: &Metadata) -> Option<Self> {
        let id = meta.extensions.get(SAGA_ID)?;
        Some(Self::new(
            id.clone(),
            meta.extensions.get(SAGA_TYPE).cloned().unwrap_or_default(),
        ))
    }

    /// Publish options for an event of this saga that records `step`.
    pub fn step(&self, step: impl Into<String>) -> PublishOptions {
        PublishOptions::new().saga(self, step)
    }
}

impl PublishOptions {
    /// Puts the event in `saga`, recording `step`.
    pub fn saga(self, saga: &Saga, step: impl Into<String>) -> Self {
        self.extension(SAGA_ID, saga.id.clone())
            .extension(SAGA_TYPE, saga.saga_type.clone())
            .saga_step(step)
    }

    /// Names the saga step the event records; the saga itself is carried over from the handled
    /// event when publishing through a handler's `Context`.
    pub fn saga_step(self, step: impl Into<String>) -> Self {
        self.extension(SAGA_STEP, step)
    }

    /// The saga id and type of `cause`, when it belongs to a saga (what `Context::publish` keeps).
    pub(crate) fn continue_saga_of(mut self, cause: &Metadata) -> Self {
        for name in [SAGA_ID, SAGA_TYPE] {
            if let Some(value) = cause.extensions.get(name) {
                self.extensions
                    .entry(name.to_owned())
                    .or_insert_with(|| value.clone());
            }
        }
        self
    }
}

impl Metadata {
    /// The saga this event belongs to (`ce_sagaid`, `ce_sagatype`), if any.
    pub fn saga(&self) -> Option<Saga> {
        Saga::of(self)
    }

    /// The saga step this event records (`ce_sagastep`), if any.
    pub fn saga_step(&self) -> Option<&str> {
        self.extensions.get(SAGA_STEP).map(String::as_str)
    }
}
