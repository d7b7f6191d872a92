//! Domain → integration mapping (seed 002's `EventMapper`): an integration event declared with
//! `#[event(from = UserRegistered)]` (through `From<UserRegistered>`) or
//! `#[event(from = UserRegistered, with = path::to_fn)]` (a `fn(&UserRegistered) -> Self`) is
//! published whenever a `UserRegistered` is, caused by it.
//!
//! Publishing an event with mappings encodes the event and each of its integration counterparts
//! first (a mapping that fails to encode sends nothing), then sends them as one ordered batch: the
//! event, then its counterparts in the order of their event types. Each counterpart carries
//! `ce_causationid` = the event's id and the event's correlation id. The call succeeds when every
//! record was acknowledged; otherwise its [`Error::Batch`](crate::Error::Batch) lists what was.
//! Mapping is one level deep: a counterpart's own mappings are not followed, so mappings cannot
//! loop. The transactional outbox stores the counterparts in the same transaction
//! ([`Bus::encode_with_mapped`](crate::Bus::encode_with_mapped)).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;

use futures::future::Either;

use super::Publisher;
use super::{EncodedEvent, PublishRetry};
use crate::error::Result;
use crate::event::envelope::{Delivery, PublishOptions};
use crate::event::HeraldEvent;

/// One `#[event(from = Source)]` of an integration event, registered by the derive.
pub struct MappingDescriptor {
    /// The source event's `TypeId`.
    pub source: fn() -> TypeId,
    /// The source event's Rust type, for messages.
    pub source_rust_type: &'static str,
    /// The integration event's Rust type, for messages.
    pub target_rust_type: &'static str,
    /// The integration event's `EVENT_TYPE`; counterparts are sent in this order.
    pub target_event_type: &'static str,
    /// Builds the integration event (boxed) from the source event; `None` when the source is not
    /// of the `source` type (never, as mappings are looked up by it).
    pub map: fn(&dyn Any) -> Option<Box<dyn Any + Send>>,
    /// Encodes what `map` built.
    pub encode: EncodeMapped,
}

inventory::collect!(MappingDescriptor);

/// How a mapped event is encoded: made by [`encode_mapped`] for the integration event's type.
pub struct EncodeMapped(fn(&dyn Any, &Publisher, PublishOptions) -> Option<Result<EncodedEvent>>);

/// The encoder of mapped events of type `T`.
pub const fn encode_mapped<T: HeraldEvent>() -> EncodeMapped {
    EncodeMapped(|mapped, publisher, options| {
        mapped
            .downcast_ref::<T>()
            .map(|event| publisher.encode_event(event, options))
    })
}

/// Every registered mapping, by source type, each list in the order of the targets' event types.
fn mappings() -> &'static HashMap<TypeId, Vec<&'static MappingDescriptor>> {
    static MAPPINGS: OnceLock<HashMap<TypeId, Vec<&'static MappingDescriptor>>> = OnceLock::new();
    MAPPINGS.get_or_init(|| {
        let mut by_source: HashMap<TypeId, Vec<&'static MappingDescriptor>> = HashMap::new();
        for mapping in inventory::iter::<MappingDescriptor> {
            by_source
                .entry((mapping.source)())
                .or_default()
                .push(mapping);
        }
        for list in by_source.values_mut() {
            list.sort_by_key(|m| (m.target_event_type, m.target_rust_type));
            // One registration per pair, however many times a crate graph links it.
            list.dedup_by_key(|m| m.target_rust_type);
        }
        by_source
    })
}

/// The mappings whose source is `E` (empty for most events).
pub(crate) fn of<E: HeraldEvent>() -> &'static [&'static MappingDescriptor] {
    mappings()
        .get(&TypeId::of::<E>())
        .map_or(&[], Vec::as_slice)
}

/// `event` and its integration counterparts, encoded: the event first, then each counterpart
/// caused by it (correlation carried, causation = the event's id).
pub(crate) fn encode_with_mapped<E: HeraldEvent>(
    publisher: &Publisher,
    event: &E,
    options: PublishOptions,
    mapped: &[&'static MappingDescriptor],
) -> Result<Vec<EncodedEvent>> {
    let correlation = options.correlation_id.clone();
    let source = publisher.encode_event(event, options)?;
    let caused = PublishOptions {
        correlation_id: Some(correlation.unwrap_or_else(|| source.id.clone())),
        causation_id: Some(source.id.clone()),
        ..PublishOptions::default()
    };
    let mut encoded = Vec::with_capacity(1 + mapped.len());
    encoded.push(source);
    for mapping in mapped {
        let counterpart = (mapping.map)(event).unwrap_or_else(|| {
            unreachable!(
                "mapping {} -> {} looked up by its source type",
                mapping.source_rust_type, mapping.target_rust_type
            )
        });
        let record = (mapping.encode.0)(counterpart.as_ref(), publisher, caused.clone())
            .unwrap_or_else(|| {
                unreachable!(
                    "mapping {} -> {} builds the type it encodes",
                    mapping.source_rust_type, mapping.target_rust_type
                )
            })?;
        encoded.push(record);
    }
    Ok(encoded)
}

/// Publishes `event`, and its integration counterparts when it has mappings; returns the event's
/// own delivery. Everything is encoded before the future is returned, so the caller may drop the
/// event while the broker answers.
pub(crate) fn publish<'p, E: HeraldEvent>(
    publisher: &'p Publisher,
    event: &E,
    options: PublishOptions,
) -> impl Future<Output = Result<Delivery>> + Send + 'p {
    let mapped = of::<E>();
    if mapped.is_empty() {
        return Either::Left(publisher.publish(event, options));
    }
    let records = encode_with_mapped(publisher, event, options, mapped);
    // Boxed: the future of every publish is as large as its largest variant, and this rare one
    // holds a whole batch's state.
    Either::Right(Box::pin(async move {
        let records = records?;
        let mut deliveries = publisher.publish_encoded_batch(&records).await?;
        Ok(deliveries.swap_remove(0))
    }))
}

/// [`publish`] trying again with backoff while the error is retriable; every try sends the same
/// records (same ids), so a consumer deduplicating by id sees each once.
pub(crate) async fn publish_with_retry<E: HeraldEvent>(
    publisher: &Publisher,
    event: &E,
    options: PublishOptions,
    retry: PublishRetry,
) -> Result<Delivery> {
    let mapped = of::<E>();
    if mapped.is_empty() {
        return publisher.publish_with_retry(event, options, retry).await;
    }
    let records = encode_with_mapped(publisher, event, options, mapped)?;
    let mut deliveries = retry
        .run(E::EVENT_TYPE, &records[0].id, || {
            publisher.publish_encoded_batch(&records)
        })
        .await?;
    Ok(deliveries.swap_remove(0))
}

/// Publishes events, each followed by its integration counterparts, as one ordered batch; returns
/// the events' own deliveries in input order. In an [`Error::Batch`](crate::Error::Batch) the
/// indexes count the counterparts too.
pub(crate) async fn publish_batch<E: HeraldEvent>(
    publisher: &Publisher,
    events: impl IntoIterator<Item = E>,
    options: PublishOptions,
) -> Result<Vec<Delivery>> {
    let mapped = of::<E>();
    if mapped.is_empty() {
        return publisher.publish_batch(events, options).await;
    }
    let mut records = Vec::new();
    let mut sources = Vec::new();
    for event in events {
        sources.push(records.len());
        records.extend(encode_with_mapped(
            publisher,
            &event,
            options.clone(),
            mapped,
        )?);
    }
    let mut deliveries: Vec<Option<Delivery>> = publisher
        .publish_encoded_batch(&records)
        .await?
        .into_iter()
        .map(Some)
        .collect();
    Ok(sources
        .into_iter()
        .filter_map(|index| deliveries[index].take())
        .collect())
}
