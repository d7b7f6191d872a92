//! Web integration (the `tower` feature): [`BusScopeLayer`], a tower layer (axum, tonic, hyper)
//! that runs each request in the bus scope, so `#[audit_event]` and `#[domain_event]` functions
//! called from a route publish through the bus instead of panicking, with the request's
//! correlation id: its `x-correlation-id` header, else the trace id of its `traceparent`, else
//! none (each event then starts its own correlation).
//!
//! ```ignore
//! let app = axum::Router::new()
//!     .route("/users", axum::routing::post(register))
//!     .layer(herald::web::BusScopeLayer::new(bus.clone()));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::bus::Bus;
use crate::event::envelope::PublishOptions;
use crate::scope::scope_with;

/// The request header whose value becomes the correlation id of what the request publishes.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The W3C trace context header; its trace id is the correlation id when
/// [`CORRELATION_HEADER`] is absent.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The longest correlation id taken from a header; a longer one is ignored.
const MAX_CORRELATION: usize = 128;

/// A tower layer that runs each request in the bus scope of `bus` (see the module).
#[derive(Clone, Debug)]
pub struct BusScopeLayer {
    bus: Bus,
}

impl BusScopeLayer {
    /// The layer for `bus`.
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }
}

impl<S> tower_layer::Layer<S> for BusScopeLayer {
    type Service = BusScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BusScope {
            inner,
            bus: self.bus.clone(),
        }
    }
}

/// The service [`BusScopeLayer`] wraps around the inner one.
#[derive(Clone, Debug)]
pub struct BusScope<S> {
    inner: S,
    bus: Bus,
}

impl<S, B> tower_service::Service<http::Request<B>> for BusScope<S>
where
    S: tower_service::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let options = PublishOptions {
            correlation_id: correlation_of(request.headers()),
            ..PublishOptions::default()
        };
        let bus = self.bus.clone();
        let response = self.inner.call(request);
        Box::pin(async move { scope_with(&bus, options, response).await })
    }
}

/// The correlation id the headers carry: `x-correlation-id`, else the trace id of a valid
/// `traceparent` (`00-{32 hex}-{16 hex}-{2 hex}`, not all zeros).
pub fn correlation_of(headers: &http::HeaderMap) -> Option<String> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= MAX_CORRELATION)
    };
    if let Some(id) = text(CORRELATION_HEADER) {
        return Some(id.to_owned());
    }
    let parent = text(TRACEPARENT_HEADER)?;
    let parts: Vec<&str> = parent.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [version, trace, span, flags]
            if hex(version, 2)
                && hex(trace, 32)
                && hex(span, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0') =>
        {
            Some(trace.to_ascii_lowercase())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_correlation_comes_from_the_header_else_the_trace_id() {
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            correlation_of(&headers(&[
                ("x-correlation-id", "req-1"),
                ("traceparent", trace)
            ])),
            Some("req-1".into())
        );
        assert_eq!(
            correlation_of(&headers(&[("traceparent", trace)])),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".into())
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f35-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(
                correlation_of(&headers(&[("traceparent", bad)])),
                None,
                "{bad}"
            );
        }
        assert_eq!(correlation_of(&headers(&[("x-correlation-id", " ")])), None);
        assert_eq!(correlation_of(&http::HeaderMap::new()), None);
    }
}
