//! Static group membership (`Config::group_instance_id`, `KAFKA_GROUP_INSTANCE_ID`) on a real
//! Kafka: an instance that restarts within the session timeout takes its partitions back without
//! a rebalance, so the other members of its group go on undisturbed. The embedded broker's group
//! coordinator is not the real one, so this runs only with `HERALD_TEST_KAFKA`.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use herald::prelude::*;
use support::{runs_on_real_kafka_only, wait_until, TestKafka};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
#[event(topic = "static.readings")]
pub struct ReadingTaken {
    #[event(key)]
    pub sensor: u64,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);

#[handler(group = "static-members")]
async fn record(_event: ReadingTaken) -> Result<(), HandlerError> {
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// A started bus of `instance` in the group, with partitions assigned.
async fn member(kafka: &TestKafka, instance: &str) -> Bus {
    let config = Config::new("static-members")
        .topic_partitions(2)
        .group_instance_id(instance);
    let bus = kafka.builder(config).build().await.expect("bus builds");
    bus.start().await.expect("bus starts");
    bus.wait_for_assignment(Duration::from_secs(60))
        .await
        .expect("partitions assigned");
    bus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_that_restarts_within_the_session_timeout_causes_no_rebalance() {
    if !runs_on_real_kafka_only(
        "a_static_member_that_restarts_within_the_session_timeout_causes_no_rebalance",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let first = member(&kafka, "first").await;
    let second = member(&kafka, "second").await;
    // The group settles with one partition each.
    wait_until("each member holds one partition", || {
        let assigned = |bus: &Bus| {
            futures::executor::block_on(bus.health())
                .groups
                .iter()
                .map(|g| g.assigned_partitions)
                .sum::<usize>()
        };
        assigned(&first) == 1 && assigned(&second) == 1
    })
    .await;
    let settled = first.stats().rebalances;

    second.shutdown().await.expect("clean shutdown");
    drop(second);
    let second = member(&kafka, "second").await;

    for sensor in 0..20 {
        first.publish(ReadingTaken { sensor }).await.unwrap();
    }
    wait_until("both members handled the 20 readings", || {
        HANDLED.load(Ordering::SeqCst) >= 20
    })
    .await;
    assert_eq!(
        first.stats().rebalances,
        settled,
        "the other member saw a rebalance when the static member restarted"
    );
    second.shutdown().await.unwrap();
    first.shutdown().await.unwrap();
}
