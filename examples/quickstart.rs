//! herald in one file: two handlers, publish a few events, watch them being handled, and exit. The
//! events, `UserCreated` and `WelcomeSent`, are declared in `lib.rs`, where the schema test
//! (`tests/schemas.rs`) links them.
//!
//! Run it with `cargo run --example quickstart`. With no `KAFKA_BOOTSTRAP_SERVERS` set it asks for
//! herald's embedded development broker (`embedded_if_unset`); set the variable to run it against a
//! real Kafka.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald::prelude::*;
use herald_examples::{UserCreated, WelcomeSent};
use uuid::Uuid;

static WELCOMED: AtomicUsize = AtomicUsize::new(0);
static AUDITED: AtomicUsize = AtomicUsize::new(0);

/// Sends the welcome mail and announces it.
#[handler(group = "notification-service")]
async fn send_welcome(event: Event<UserCreated>, ctx: &Context) -> Result<(), HandlerError> {
    let (meta, user) = event.into_parts();
    let delivery = ctx
        .publish(WelcomeSent {
            user_id: user.user_id,
        })
        .await?;
    println!(
        "[notification-service] welcome mail to {:<22} (partition {}, offset {}, correlation {}) -> published {} at offset {}",
        user.email,
        meta.position.as_ref().map_or(-1, |p| p.partition),
        meta.position.as_ref().map_or(-1, |p| p.offset),
        meta.correlation_id.as_deref().unwrap_or("-"),
        <WelcomeSent as HeraldEvent>::EVENT_TYPE,
        delivery.offset,
    );
    WELCOMED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Another group gets every event too.
#[handler(group = "audit-service")]
async fn audit_welcome(event: Event<WelcomeSent>) -> Result<(), HandlerError> {
    println!(
        "[audit-service] welcome sent to user {} (caused by event {})",
        event.data.user_id,
        event.meta.causation_id.as_deref().unwrap_or("-"),
    );
    AUDITED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::main]
async fn main() -> herald::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "herald=info".into()),
        )
        .init();

    // Development only: without KAFKA_BOOTSTRAP_SERVERS, use the in-memory broker (herald logs a
    // warning). A production service leaves this out, so a missing variable fails at start-up.
    let config = Config::from_env("user-service")?.embedded_if_unset();
    let bus = Bus::new(config).await?;
    let users = ["ada@example.com", "grace@example.com", "edsger@example.com"];
    for email in users {
        let delivery = bus
            .publish(UserCreated {
                user_id: Uuid::new_v4(),
                email: email.into(),
            })
            .await?;
        println!(
            "[user-service] published user.created for {email:<20} to {} partition {} offset {}",
            delivery.topic, delivery.partition, delivery.offset
        );
    }

    bus.start().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while WELCOMED.load(Ordering::SeqCst) < users.len()
        || AUDITED.load(Ordering::SeqCst) < users.len()
    {
        if tokio::time::Instant::now() > deadline {
            bus.shutdown().await?;
            eprintln!("timed out waiting for the handlers: {:?}", bus.stats());
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.shutdown().await?;
    let stats = bus.stats();
    println!(
        "done: {} published, {} consumed, {} handled, {} handler failures",
        stats.events_published, stats.events_consumed, stats.events_handled, stats.handler_failures
    );
    Ok(())
}
