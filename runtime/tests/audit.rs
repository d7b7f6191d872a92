//! `#[audit_event]` over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): every call publishes an audit event
//! to `audit.events`, success and failure alike, with redacted and skipped arguments; inside a
//! handler the event carries the handled event's correlation id; outside any audit scope the call
//! panics instead of losing the event.

mod support;

use std::time::Duration;

use herald::audit::{AuditEvent, Outcome};
use herald::prelude::*;
use rdkafka::message::Message;
use support::*;

#[derive(Debug)]
struct Taken(String);

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "user {} exists", self.0)
    }
}

#[audit_event(action = "create_user", resource_type = "user", resource_id = user_id, actor = admin, include_args)]
async fn create_user(
    user_id: String,
    admin: String,
    #[audit(redact)] password: String,
    #[audit(skip)] session: Vec<u8>,
) -> Result<u32, Taken> {
    let _ = (password, session);
    if user_id == "taken" {
        return Err(Taken(user_id));
    }
    Ok(7)
}

fn audit_events(kafka: &TestKafka, expected: usize) -> Vec<(AuditEvent, Option<String>)> {
    read_topic(kafka.bootstrap(), &kafka.topic("audit.events"), expected)
        .iter()
        .map(|m| {
            (
                serde_json::from_slice(m.payload().unwrap()).unwrap(),
                header(m, "ce_correlationid"),
            )
        })
        .collect()
}

async fn bus(kafka: &TestKafka, groups: &[&str]) -> Bus {
    kafka
        .builder(
            Config::new("accounts")
                .commit_interval(Duration::from_millis(100))
                .shutdown_timeout(Duration::from_secs(20)),
        )
        .only_groups(groups.iter().copied())
        .build()
        .await
        .expect("bus builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_audited_success_and_failure_with_redacted_arguments() {
    let kafka = TestKafka::start();
    let bus = bus(&kafka, &["audit-signups"]).await;
    let ok = herald::audit::scope(
        &bus,
        create_user("u-1".into(), "root".into(), "hunter2".into(), vec![1, 2]),
    )
    .await;
    assert_eq!(ok.unwrap(), 7);
    let failed = herald::audit::scope(
        &bus,
        create_user("taken".into(), "root".into(), "hunter2".into(), vec![3]),
    )
    .await;
    assert_eq!(failed.unwrap_err().to_string(), "user taken exists");

    let mut events: Vec<AuditEvent> = audit_events(&kafka, 2)
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    events.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
    let (failure, success) = (&events[0], &events[1]);
    assert_eq!(success.action, "create_user");
    assert_eq!(success.resource_type, "user");
    assert_eq!(success.resource_id.as_deref(), Some("u-1"));
    assert_eq!(success.actor.as_deref(), Some("root"));
    assert_eq!(
        (success.outcome, success.error.as_deref()),
        (Outcome::Success, None)
    );
    assert_eq!(
        success.args,
        Some(serde_json::json!({"user_id": "u-1", "admin": "root", "password": "[redacted]"}))
    );
    assert_eq!(failure.outcome, Outcome::Failure);
    assert_eq!(failure.error.as_deref(), Some("user taken exists"));
    for event in &events {
        let json = serde_json::to_string(event).unwrap();
        assert!(
            !json.contains("hunter2"),
            "a password reached the audit topic: {json}"
        );
        println!("audited call took {} ms", event.duration_ms);
    }
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "audit-tests.signups")]
pub struct SignupRequested {
    #[event(key)]
    pub user_id: String,
}

#[handler(group = "audit-signups")]
async fn sign_up(event: SignupRequested) -> Result<(), HandlerError> {
    create_user(
        event.user_id,
        "signup-service".into(),
        "pw".into(),
        Vec::new(),
    )
    .await
    .map_err(|e| HandlerError::msg(e.to_string()))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_handler_the_audit_event_carries_the_handled_events_correlation() {
    let kafka = TestKafka::start();
    let bus = bus(&kafka, &["audit-signups"]).await;
    let delivery = bus
        .publish_with(
            SignupRequested {
                user_id: "u-9".into(),
            },
            PublishOptions {
                correlation_id: Some("req-123".into()),
                ..PublishOptions::default()
            },
        )
        .await
        .unwrap();
    let _ = delivery;
    bus.start().await.unwrap();
    let events = audit_events(&kafka, 1);
    bus.shutdown().await.unwrap();
    let (event, header_correlation) = &events[0];
    assert_eq!(event.resource_id.as_deref(), Some("u-9"));
    assert_eq!(event.correlation_id.as_deref(), Some("req-123"));
    assert_eq!(header_correlation.as_deref(), Some("req-123"));
}

#[tokio::test]
#[should_panic(expected = "ran outside a bus scope")]
async fn an_audited_call_outside_any_scope_panics_instead_of_losing_the_event() {
    let _ = create_user("u-1".into(), "root".into(), "pw".into(), Vec::new()).await;
}

#[test]
fn auditing_registers_the_audit_event_once() {
    let registry = herald::registry::Registry::collect().unwrap();
    let audit: Vec<_> = registry
        .events()
        .iter()
        .filter(|e| e.rust_type == "herald::audit::AuditEvent")
        .collect();
    assert_eq!(
        audit.len(),
        1,
        "several audited functions, one registration"
    );
    assert_eq!(audit[0].topic, "audit.events");
}
