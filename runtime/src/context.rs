//! The context a handler receives: the incoming event's metadata, publishing that carries the
//! correlation on, and the service's shared state.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::event::envelope::Delivery;
use crate::event::envelope::{Metadata, PublishOptions};
use crate::event::{DynamicEvent, HeraldEvent};
use crate::publish::Publisher;
use crate::wire::codec::Incoming;

/// Shared state handed to handlers by type (`ctx.state::<T>()`): a database pool, a client.
#[derive(Default, Clone)]
pub(crate) struct StateMap(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl StateMap {
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }

    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

/// What a handler gets besides its event.
#[derive(Clone)]
pub struct Context {
    incoming: Incoming,
    handler: &'static str,
    publisher: Publisher,
    state: Arc<StateMap>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("handler", &self.handler)
            .field("meta", self.incoming.meta())
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(
        incoming: Incoming,
        handler: &'static str,
        publisher: Publisher,
        state: Arc<StateMap>,
    ) -> Self {
        Self {
            incoming,
            handler,
            publisher,
            state,
        }
    }

    /// The metadata of the event being handled.
    pub fn metadata(&self) -> &Metadata {
        self.incoming.meta()
    }

    /// The name of the running handler.
    pub fn handler_name(&self) -> &'static str {
        self.handler
    }

    /// Shared state registered with `BusBuilder::state`, by type.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.state.get::<T>()
    }

    /// Publishes an event caused by the one being handled: the correlation id is carried over and
    /// the causation id is the handled event's id.
    ///
    /// # Errors
    /// As `Bus::publish`.
    pub async fn publish<E: HeraldEvent>(&self, event: E) -> Result<Delivery> {
        self.publish_with(event, PublishOptions::default()).await
    }

    /// Like [`Context::publish`], with more metadata; correlation and causation given in `options`
    /// win over the carried-over ones. The handled event's saga (`herald::saga`) is carried over
    /// too unless `options` names another.
    ///
    /// # Errors
    /// As `Bus::publish`.
    pub async fn publish_with<E: HeraldEvent>(
        &self,
        event: E,
        options: PublishOptions,
    ) -> Result<Delivery> {
        let sending = self.publish_ref(&event, options);
        drop(event);
        sending.await
    }

    /// Publishes a run-time event (see [`Bus::publish_dynamic`](crate::Bus::publish_dynamic))
    /// caused by the one being handled, as [`Context::publish`] does a typed one.
    ///
    /// # Errors
    /// As `Bus::publish_dynamic`.
    pub async fn publish_dynamic(&self, event: &DynamicEvent) -> Result<Delivery> {
        let options =
            PublishOptions::caused_by(self.incoming.meta()).continue_saga_of(self.incoming.meta());
        let encoded = self.publisher.encode_dynamic(event, options)?;
        self.publisher.publish_encoded(&encoded).await
    }

    /// [`Context::publish_with`] of a borrowed event; encoded before the future is returned.
    pub(crate) fn publish_ref<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> impl std::future::Future<Output = Result<Delivery>> + Send + '_ {
        let inherited = PublishOptions::caused_by(self.incoming.meta());
        let options = PublishOptions {
            correlation_id: options.correlation_id.or(inherited.correlation_id),
            causation_id: options.causation_id.or(inherited.causation_id),
            ..options
        }
        .continue_saga_of(self.incoming.meta());
        crate::publish::mapped::publish(&self.publisher, event, options)
    }
}
