//! Moving a consumer group's offsets (`herald::offsets::GroupAdmin`): a dry run changes nothing,
//! a reset to the beginning replays everything into the group, to an offset replays from there,
//! to the end skips the rest; a reset is refused while the group has live members; a reset to a
//! time starts at the first record at or after it (on a real Kafka: the embedded broker answers
//! offsets-by-time with -1).

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald::offsets::{GroupAdmin, OffsetTarget};
use herald::prelude::*;
use support::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "groups.tick", topic = "groups.ticks")]
pub struct Tick {
    pub n: u64,
}

#[derive(Default)]
struct Handled(AtomicU64);

#[handler(group = "groups-replay")]
async fn count(_event: Tick, ctx: &Context) -> Result<(), HandlerError> {
    ctx.state::<Arc<Handled>>()
        .expect("state")
        .0
        .fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn run_until(bus: &Bus, handled: &Handled, total: u64) {
    bus.start().await.unwrap();
    wait_until(&format!("{total} events were handled"), || {
        handled.0.load(Ordering::SeqCst) >= total
    })
    .await;
    bus.shutdown().await.unwrap();
}

/// A broker, a bus of the `groups-replay` group on a one-partition `groups.ticks`, and its count.
async fn setup() -> (TestKafka, Bus, Arc<Handled>) {
    let kafka = TestKafka::start();
    kafka.create_topic(&kafka.topic("groups.ticks"), 1);
    let handled = Arc::new(Handled::default());
    let bus = kafka
        .builder(Config::new("groups-test").commit_interval(Duration::from_millis(100)))
        .only_groups(["groups-replay"])
        .state(handled.clone())
        .build()
        .await
        .unwrap();
    (kafka, bus, handled)
}

fn admin(bus: &Bus) -> GroupAdmin {
    let config = Config::new("groups-admin").bootstrap_servers(bus.bootstrap_servers());
    GroupAdmin::new(&config, Duration::from_secs(10)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_replays_into_the_group_and_a_dry_run_changes_nothing() {
    if !runs_on_real_kafka_only("a_reset_replays_into_the_group_and_a_dry_run_changes_nothing") {
        return;
    }
    let (kafka, bus, handled) = setup().await;
    for n in 0..10 {
        bus.publish(Tick { n }).await.unwrap();
    }
    run_until(&bus, &handled, 10).await;
    let (group, topic) = (kafka.group("groups-replay"), kafka.topic("groups.ticks"));
    let admin = admin(&bus);
    let (g, t) = (group.clone(), topic.clone());
    let (plan, committed_after_plan) = tokio::task::spawn_blocking(move || {
        let plan = admin.plan_reset(&g, &t, OffsetTarget::Earliest).unwrap();
        let admin2 = admin;
        (
            plan,
            admin2.plan_reset(&g, &t, OffsetTarget::Latest).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!((plan[0].from, plan[0].to, plan[0].high), (Some(10), 0, 10));
    assert_eq!(
        committed_after_plan[0].from,
        Some(10),
        "the dry run committed nothing"
    );

    let reset = |target| {
        let (admin, g, t) = (admin_of(&bus), group.clone(), topic.clone());
        async move {
            tokio::task::spawn_blocking(move || admin.reset(&g, &t, target))
                .await
                .unwrap()
        }
    };
    let moved = reset(OffsetTarget::Earliest).await.unwrap();
    assert_eq!((moved[0].from, moved[0].to), (Some(10), 0));
    run_until(&bus, &handled, 20).await;
    assert_eq!(
        handled.0.load(Ordering::SeqCst),
        20,
        "all ten replayed once"
    );

    let moved = reset(OffsetTarget::Offset(7)).await.unwrap();
    assert_eq!((moved[0].from, moved[0].to), (Some(10), 7));
    run_until(&bus, &handled, 23).await;
    assert_eq!(
        handled.0.load(Ordering::SeqCst),
        23,
        "offsets 7, 8 and 9 again"
    );

    // A live member: the reset is refused and names it.
    bus.start().await.unwrap();
    bus.wait_for_assignment(WAIT).await.unwrap();
    let (admin, g, t) = (admin_of(&bus), group.clone(), topic.clone());
    let refused = tokio::task::spawn_blocking(move || admin.reset(&g, &t, OffsetTarget::Earliest))
        .await
        .unwrap()
        .unwrap_err();
    bus.shutdown().await.unwrap();
    // A classic group's members are described and named; a consumer-protocol group (KIP-848)
    // is not described by the classic call, and the broker refuses the commit of its offsets.
    let refused = refused.to_string();
    assert!(
        refused.contains("live member") || refused.contains("still has members"),
        "{refused}"
    );
    assert_all_committed(bus.bootstrap_servers(), &group, &topic);
}

fn admin_of(bus: &Bus) -> GroupAdmin {
    admin(bus)
}

/// The embedded broker can plan a reset but not make one (it describes no groups and refuses a
/// commit from outside the group): each says so, and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_broker_a_reset_is_planned_and_refused_with_the_reason() {
    if !runs_on_embedded_only(
        "on_the_embedded_broker_a_reset_is_planned_and_refused_with_the_reason",
        "it shows the embedded broker's limits",
    ) {
        return;
    }
    let (_kafka, bus, handled) = setup().await;
    for n in 0..4 {
        bus.publish(Tick { n }).await.unwrap();
    }
    run_until(&bus, &handled, 4).await;
    let admin = admin(&bus);
    let (plan, checked, unchecked) = tokio::task::spawn_blocking(move || {
        (
            admin.plan_reset("groups-replay", "groups.ticks", OffsetTarget::Offset(1)),
            admin.reset("groups-replay", "groups.ticks", OffsetTarget::Earliest),
            admin.reset_unchecked("groups-replay", "groups.ticks", OffsetTarget::Earliest),
        )
    })
    .await
    .unwrap();
    let plan = plan.unwrap();
    assert_eq!((plan[0].from, plan[0].to, plan[0].high), (Some(4), 1, 4));
    let checked = checked.unwrap_err().to_string();
    assert!(
        checked.contains("cannot describe consumer groups"),
        "{checked}"
    );
    let unchecked = unchecked.unwrap_err().to_string();
    assert!(unchecked.contains("still has members"), "{unchecked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_to_a_time_starts_at_the_first_record_at_or_after_it() {
    if !runs_on_real_kafka_only("a_reset_to_a_time_starts_at_the_first_record_at_or_after_it") {
        return;
    }
    let (kafka, bus, handled) = setup().await;
    for n in 0..5 {
        bus.publish(Tick { n }).await.unwrap();
    }
    // Kafka timestamps are milliseconds: step past the last early record's.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for n in 5..8 {
        bus.publish(Tick { n }).await.unwrap();
    }
    run_until(&bus, &handled, 8).await;
    let (group, topic) = (kafka.group("groups-replay"), kafka.topic("groups.ticks"));
    let admin = admin(&bus);
    let moved = tokio::task::spawn_blocking(move || {
        admin.reset(&group, &topic, OffsetTarget::Time(between))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!((moved[0].from, moved[0].to), (Some(8), 5));
    run_until(&bus, &handled, 11).await;
    assert_eq!(
        handled.0.load(Ordering::SeqCst),
        11,
        "the three later ones again"
    );
}
