//! `Event<T>` gives the metadata too; `&Context` publishes and reaches shared state. Options and
//! paths to the types may be qualified. The handlers are registered with their event's type, topic
//! and version.
use herald::prelude::*;
use herald::registry::Registry;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(topic = "users", version = 2)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler(group = "mail-service", name = "send-welcome")]
async fn send_welcome(event: Event<UserCreated>, ctx: &Context) -> Result<(), HandlerError> {
    let _ = (
        event.meta.correlation_id.as_deref(),
        event.data.user_id,
        ctx.handler_name(),
    );
    Ok(())
}

#[handler]
async fn audit(
    event: herald::Event<UserCreated>,
    _ctx: &herald::Context,
) -> std::result::Result<(), herald::HandlerError> {
    let _ = event.into_parts();
    Ok(())
}

fn main() {
    let registry = Registry::collect().expect("a valid registry");
    let mut handlers: Vec<_> = registry
        .handlers()
        .iter()
        .map(|h| (h.name, h.group, h.event_type, h.topic, h.event_version))
        .collect();
    handlers.sort();
    assert_eq!(
        handlers,
        [
            ("audit", None, "user.created", "users", 2),
            ("send-welcome", Some("mail-service"), "user.created", "users", 2),
        ]
    );
    // herald registers its own audit event (`herald::audit::AuditEvent`) too.
    let events: Vec<_> = registry
        .events()
        .iter()
        .filter(|e| !e.rust_type.starts_with("herald::"))
        .collect();
    assert_eq!(events.len(), 1);
    assert!(events[0].rust_type.ends_with("::UserCreated"));
}
