//! The README's service, tested with `herald::testing`: the same test in process (no broker, no
//! group join) and, FastStream's `with_real`, on the embedded broker.

use herald::prelude::*;
use herald::testing::TestBus;
use herald_examples::{UserCreated, WelcomeSent};
use uuid::Uuid;

// The README's handler, as it stands there.
#[handler(group = "notification-service")]
async fn send_welcome(event: Event<UserCreated>, ctx: &Context) -> Result<(), HandlerError> {
    tracing::info!(user = %event.data.user_id, correlation = ?event.meta.correlation_id, "welcome");
    ctx.publish(WelcomeSent {
        user_id: event.data.user_id,
    })
    .await?; // carries the correlation id on
    Ok(())
}

/// A signup is welcomed once, in the signup's correlation, and nothing is dead-lettered.
async fn a_signup_is_welcomed(bus: TestBus) {
    let user_id = Uuid::new_v4();
    let report = bus
        .dispatch(UserCreated {
            user_id,
            email: "a@b.c".into(),
        })
        .await
        .unwrap();
    assert!(report.all_handled(), "{report:#?}");
    assert_eq!(report.outcomes.len(), 1);
    let signups = bus.published::<UserCreated>().await.unwrap();
    let welcomes = bus.published::<WelcomeSent>().await.unwrap();
    assert_eq!((signups.len(), welcomes.len()), (1, 1));
    assert_eq!(welcomes[0].data.user_id, user_id);
    assert_eq!(
        welcomes[0].meta.correlation_id,
        signups[0].meta.correlation_id
    );
    assert!(bus
        .dead_letters(UserCreated::TOPIC)
        .await
        .unwrap()
        .is_empty());
    bus.shutdown().await.unwrap();
}

fn service() -> herald::BusBuilder {
    Bus::builder(Config::new("user-service").embedded()).only_groups(["notification-service"])
}

#[tokio::test]
async fn in_process() {
    a_signup_is_welcomed(TestBus::build(service()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_broker() {
    a_signup_is_welcomed(TestBus::with_real(service()).await.unwrap()).await;
}
