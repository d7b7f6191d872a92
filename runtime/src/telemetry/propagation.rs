//! W3C trace context through Kafka headers, as the CloudEvents distributed-tracing extension: the
//! `traceparent` and `tracestate` extension attributes, i.e. the `ce_traceparent` and
//! `ce_tracestate` headers in binary mode.
//!
//! With the `otel` feature, a publish writes its span's OpenTelemetry context there, and a handler
//! span takes the context it finds there as its parent, so one trace crosses services. Without the
//! feature nothing is written, and incoming values stay plain extensions in
//! [`Metadata::extensions`](crate::Metadata::extensions).

use std::collections::BTreeMap;

use tracing::Span;

use crate::event::envelope::Metadata;

#[cfg(feature = "otel")]
use crate::headers::extensions::{TRACEPARENT, TRACESTATE};

/// Writes `span`'s trace context into an event's extensions (with the `otel` feature, when the
/// span is recorded by a `tracing-opentelemetry` layer).
#[cfg(feature = "otel")]
pub(crate) fn inject(span: &Span, extensions: &mut BTreeMap<String, String>) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if !span_context.is_valid() {
        return;
    }
    extensions.insert(
        TRACEPARENT.into(),
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        ),
    );
    let state = span_context.trace_state().header();
    if state.is_empty() {
        extensions.remove(TRACESTATE);
    } else {
        extensions.insert(TRACESTATE.into(), state);
    }
}

/// Without the `otel` feature, no trace headers are written.
#[cfg(not(feature = "otel"))]
#[inline(always)]
pub(crate) fn inject(_span: &Span, _extensions: &mut BTreeMap<String, String>) {}

/// Makes the trace context an event carries the parent of `span` (with the `otel` feature, when
/// the span is recorded by a `tracing-opentelemetry` layer and the context is valid).
#[cfg(feature = "otel")]
pub(crate) fn continue_trace(span: &Span, meta: &Metadata) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if span.is_disabled() {
        return;
    }
    let Some(parent) = meta
        .extensions
        .get(TRACEPARENT)
        .and_then(|value| parse(value, meta.extensions.get(TRACESTATE)))
    else {
        return;
    };
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}

/// Without the `otel` feature, handler spans start their own traces.
#[cfg(not(feature = "otel"))]
#[inline(always)]
pub(crate) fn continue_trace(_span: &Span, _meta: &Metadata) {}

/// A W3C `traceparent` (version 00, or a later one read as 00) and `tracestate`; `None` when
/// malformed or all zero.
#[cfg(feature = "otel")]
fn parse(
    traceparent: &str,
    tracestate: Option<&String>,
) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let mut parts = traceparent.trim().split('-');
    let version = parts.next()?;
    let (trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(version, 2)
        || version == "ff"
        || (version == "00" && parts.next().is_some())
        || !lower_hex(trace_id, 32)
        || !lower_hex(span_id, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let context = SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & 1),
        true,
        state,
    );
    context.is_valid().then_some(context)
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_and_malformed_ones_are_refused() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = parse(good, Some(&"vendor=a,other=b".to_owned())).expect("valid");
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled() && context.is_remote());
        assert_eq!(context.trace_state().header(), "vendor=a,other=b");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(parse(bad, None).is_none(), "{bad} was accepted");
        }
    }
}
