//! The spans herald opens, named and attributed per the OpenTelemetry messaging semantic
//! conventions: `herald.publish` (span kind producer, `publish {topic}` in OpenTelemetry) around a
//! publish until the broker's acknowledgement, and `herald.handle` (kind consumer, `process
//! {topic}`) around each handler attempt. Both are `INFO` spans: without a subscriber that listens
//! at that level, a span costs one check of the callsite's interest and its fields are not
//! evaluated.

use tracing::field::Empty;
use tracing::Span;

use crate::event::envelope::Metadata;
use crate::wire::codec::Incoming;

/// `messaging.system`.
const SYSTEM: &str = "kafka";

/// The span of a publish of one event (`count` = 1) or of a batch, before the broker answered:
/// [`delivered`] and [`failed`] complete it.
pub(crate) fn publish(topic: &str, count: usize, meta: Option<&Metadata>) -> Span {
    let span = tracing::info_span!(
        "herald.publish",
        otel.name = %format_args!("publish {topic}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = SYSTEM,
        messaging.operation.type = "publish",
        messaging.operation.name = "publish",
        messaging.destination.name = topic,
        messaging.batch.message_count = Empty,
        messaging.message.id = Empty,
        messaging.message.conversation_id = Empty,
        messaging.kafka.message.key = Empty,
        messaging.destination.partition.id = Empty,
        messaging.kafka.offset = Empty,
        cloudevents.event_id = Empty,
        cloudevents.event_type = Empty,
        aggregate.id = Empty,
        error.type = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if count != 1 {
        span.record("messaging.batch.message_count", count);
    }
    if let Some(meta) = meta {
        span.record("messaging.message.id", meta.id.as_str());
        span.record("cloudevents.event_id", meta.id.as_str());
        span.record("cloudevents.event_type", meta.event_type.as_str());
        if let Some(correlation) = &meta.correlation_id {
            span.record("messaging.message.conversation_id", correlation.as_str());
        }
        if let Some(key) = &meta.key {
            span.record("messaging.kafka.message.key", key.as_str());
        }
        if let Some(aggregate) = &meta.aggregate_id {
            span.record("aggregate.id", aggregate.as_str());
        }
    }
    span
}

/// Completes a publish span with where the event landed.
pub(crate) fn delivered(span: &Span, partition: i32, offset: i64) {
    if !span.is_disabled() {
        span.record("messaging.destination.partition.id", partition.to_string());
        span.record("messaging.kafka.offset", offset);
    }
}

/// Marks a publish (or handler) span as failed.
pub(crate) fn failed(span: &Span, error: &dyn std::fmt::Display) {
    if !span.is_disabled() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", tracing::field::display(error));
    }
}

/// The span of one handler attempt on a consumed event, in consumer group `group`. The event's
/// metadata is built only when the span is enabled.
pub(crate) fn process(incoming: &Incoming, handler: &'static str, group: &str) -> Span {
    let (topic, partition, offset) = incoming.position();
    let meta = || incoming.meta();
    tracing::info_span!(
        "herald.handle",
        otel.name = %format_args!("process {topic}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = SYSTEM,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = topic,
        messaging.destination.partition.id = %partition,
        messaging.kafka.offset = offset,
        messaging.consumer.group.name = group,
        messaging.kafka.message.key = meta().key.as_deref().unwrap_or(""),
        messaging.message.id = meta().id.as_str(),
        messaging.message.conversation_id = meta().correlation_id.as_deref().unwrap_or(""),
        cloudevents.event_id = meta().id.as_str(),
        cloudevents.event_type = incoming.event_type(),
        aggregate.id = meta().aggregate_id.as_deref().unwrap_or(""),
        herald.handler = handler,
        error.type = Empty,
    )
}
