//! The retry options of `#[handler(...)]` reach the runtime as the handler's `HandlerRetry`.

use std::time::Duration;

use herald::prelude::*;
use herald::registry::{HandlerDescriptor, HandlerRetry, Registry};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct PaymentCaptured {
    pub aggregate_id: String,
}

#[handler(
    group = "payments",
    retries = 5,
    backoff = "100ms..30s",
    timeout = "5s",
    policy = "payments"
)]
async fn every_option(_event: PaymentCaptured) -> Result<(), HandlerError> {
    Ok(())
}

#[handler(backoff = "2s")]
async fn fixed_backoff(_event: PaymentCaptured) -> Result<(), HandlerError> {
    Ok(())
}

#[handler(timeout = "2m", backoff = "1s..1h")]
async fn minutes_and_hours(_event: PaymentCaptured) -> Result<(), HandlerError> {
    Ok(())
}

#[handler(retries = 0)]
async fn no_retries(_event: PaymentCaptured) -> Result<(), HandlerError> {
    Ok(())
}

#[handler(policy = "reports")]
async fn policy_only(_event: PaymentCaptured) -> Result<(), HandlerError> {
    Ok(())
}

#[handler]
async fn no_options(_event: PaymentCaptured) -> Result<(), HandlerError> {
    Ok(())
}

fn retry_of(name: &str) -> HandlerRetry {
    let registry = Registry::collect().expect("a valid registry");
    let handler: &HandlerDescriptor = registry
        .handlers()
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("handler `{name}` is registered"));
    handler.retry
}

#[test]
fn every_option_is_carried() {
    assert_eq!(
        retry_of("every_option"),
        HandlerRetry {
            policy: Some("payments"),
            max_retries: Some(5),
            base_delay: Some(Duration::from_millis(100)),
            max_delay: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(5)),
        }
    );
}

#[test]
fn one_backoff_duration_is_a_fixed_delay() {
    assert_eq!(
        retry_of("fixed_backoff"),
        HandlerRetry {
            base_delay: Some(Duration::from_secs(2)),
            max_delay: Some(Duration::from_secs(2)),
            ..HandlerRetry::default()
        }
    );
}

#[test]
fn minutes_and_hours_are_converted() {
    assert_eq!(
        retry_of("minutes_and_hours"),
        HandlerRetry {
            base_delay: Some(Duration::from_secs(1)),
            max_delay: Some(Duration::from_secs(3600)),
            timeout: Some(Duration::from_secs(120)),
            ..HandlerRetry::default()
        }
    );
}

#[test]
fn zero_retries_is_kept_apart_from_unset() {
    assert_eq!(
        retry_of("no_retries"),
        HandlerRetry {
            max_retries: Some(0),
            ..HandlerRetry::default()
        }
    );
    assert_eq!(retry_of("no_options").max_retries, None);
}

#[test]
fn a_policy_alone_leaves_the_rest_unset() {
    assert_eq!(
        retry_of("policy_only"),
        HandlerRetry {
            policy: Some("reports"),
            ..HandlerRetry::default()
        }
    );
}

#[test]
fn no_options_means_every_setting_falls_back() {
    assert_eq!(retry_of("no_options"), HandlerRetry::default());
}
