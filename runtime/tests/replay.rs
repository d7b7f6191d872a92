//! Replaying a range of a topic through a group's handlers under a group of its own
//! (`Bus::replay`): exactly the records of the range, each once, not those published after it
//! started; the live group's offsets untouched; a poison record dead-lettered as by the live
//! group; an empty range at once; a missing topic named; a replay group with a live member
//! refused; a stopped replay going on from its last commit; a replay from a time (on a real
//! Kafka: the embedded broker answers offsets-by-time with -1); a replay whose last offset is a
//! transaction marker ending all the same (on a real Kafka).

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::offsets::OffsetTarget;
use herald::prelude::*;
use herald::replay::{Replay, ReplayProgress};
use herald::{Delivery, Error};
use support::*;
use tokio::sync::{watch, Semaphore};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "replay.tick", topic = "replay.ticks")]
pub struct Tick {
    #[event(key)]
    pub n: u64,
    /// The handler fails for good on it.
    pub poison: bool,
}

/// What the handler saw, and the gate it waits at for the records from `block_from` on.
struct Ledger {
    handled: Mutex<Vec<(i32, i64, u64)>>,
    block_from: AtomicU64,
    waiting: AtomicU64,
    gate: Semaphore,
}

impl Ledger {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            handled: Mutex::default(),
            block_from: AtomicU64::new(u64::MAX),
            waiting: AtomicU64::new(0),
            gate: Semaphore::new(0),
        })
    }

    fn count(&self) -> usize {
        self.handled.lock().unwrap().len()
    }

    fn take(&self) -> Vec<(i32, i64, u64)> {
        std::mem::take(&mut *self.handled.lock().unwrap())
    }

    fn open(&self) {
        self.block_from.store(u64::MAX, Ordering::SeqCst);
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[handler(group = "replay-billing")]
async fn bill(event: Event<Tick>, ctx: &Context) -> Result<(), HandlerError> {
    let ledger = ctx.state::<Arc<Ledger>>().expect("state");
    if event.data.n >= ledger.block_from.load(Ordering::SeqCst) {
        ledger.waiting.fetch_add(1, Ordering::SeqCst);
        ledger.gate.acquire().await.expect("open").forget();
    }
    if event.data.poison {
        return Err(HandlerError::permanent(HandlerError::msg(format!(
            "tick {} is poison",
            event.data.n
        ))));
    }
    let position = event
        .meta
        .position
        .clone()
        .expect("consumed events have one");
    ledger
        .handled
        .lock()
        .unwrap()
        .push((position.partition, position.offset, event.data.n));
    Ok(())
}

/// A broker, `replay.ticks` with `partitions`, and a bus of the `replay-billing` group.
async fn setup(partitions: i32) -> (TestKafka, Bus, Arc<Ledger>) {
    let kafka = TestKafka::start();
    kafka.create_topic(&kafka.topic("replay.ticks"), partitions);
    let ledger = Ledger::new();
    let bus = kafka
        .builder(
            Config::new("replay-test")
                .commit_interval(Duration::from_millis(100))
                .shutdown_timeout(Duration::from_secs(2)),
        )
        .only_groups(["replay-billing"])
        .state(ledger.clone())
        .build()
        .await
        .unwrap();
    (kafka, bus, ledger)
}

async fn publish(bus: &Bus, ticks: impl IntoIterator<Item = u64>) -> Vec<Delivery> {
    let mut deliveries = Vec::new();
    for n in ticks {
        deliveries.push(bus.publish(Tick { n, poison: false }).await.unwrap());
    }
    deliveries
}

fn committed(kafka: &TestKafka, group: &str) -> Vec<(i32, i64, i64)> {
    let (bootstrap, group, topic) = (
        kafka.bootstrap().to_owned(),
        kafka.group(group),
        kafka.topic("replay.ticks"),
    );
    committed_and_high(&bootstrap, &group, &topic)
}

/// Records the progress sent on a channel; returns the sender and everything seen.
fn watch_progress() -> (
    watch::Sender<ReplayProgress>,
    tokio::task::JoinHandle<Vec<ReplayProgress>>,
) {
    let (progress, mut seen) = watch::channel(ReplayProgress::default());
    let all = tokio::spawn(async move {
        let mut all = Vec::new();
        while seen.changed().await.is_ok() {
            let now = seen.borrow_and_update().clone();
            let done = now.done;
            all.push(now);
            if done {
                break;
            }
        }
        all
    });
    (progress, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_runs_exactly_its_range_once_and_leaves_the_live_group_alone() {
    let (kafka, bus, ledger) = setup(2).await;
    let first = publish(&bus, 0..20).await;
    bus.start().await.unwrap();
    wait_until("the live group handled all 20", || ledger.count() == 20).await;
    bus.shutdown().await.unwrap();
    ledger.take();
    let live_before = committed(&kafka, "replay-billing");
    assert!(
        live_before.iter().all(|(_, c, h)| c == h),
        "{live_before:?}"
    );

    // From offset 2 of partition 0 and offset 3 of partition 1; everything after them, up to the
    // ends taken at the start, and nothing published after it started.
    let expected: BTreeSet<(i32, i64, u64)> = first
        .iter()
        .zip(0..)
        .filter(|(d, _)| d.offset >= if d.partition == 0 { 2 } else { 3 })
        .map(|(d, n)| (d.partition, d.offset, n))
        .collect();
    ledger.block_from.store(0, Ordering::SeqCst);
    let (progress, seen) = watch_progress();
    let replay = {
        let bus = bus.clone();
        tokio::spawn(async move {
            bus.replay(
                Replay::topic("replay.ticks")
                    .group("replay-billing")
                    .from_offsets([(0, 2), (1, 3)])
                    .as_group("replay-billing.again")
                    .progress(progress),
            )
            .await
        })
    };
    wait_until("the replay's first record waits at the gate", || {
        ledger.waiting.load(Ordering::SeqCst) > 0
    })
    .await;
    let later = publish(&bus, 100..105).await;
    ledger.open();
    let report = replay.await.unwrap().unwrap();

    let handled = ledger.take();
    let unique: BTreeSet<(i32, i64, u64)> = handled.iter().copied().collect();
    assert_eq!(unique.len(), handled.len(), "each record once: {handled:?}");
    assert_eq!(unique, expected, "exactly the range");
    assert!(later.iter().all(|d| !handled
        .iter()
        .any(|(p, o, _)| (*p, *o) == (d.partition, d.offset))));
    assert_eq!(report.records() as usize, expected.len());
    assert_eq!(report.handled() as usize, expected.len());
    assert_eq!((report.dead_lettered(), report.skipped()), (0, 0));
    assert!(!report.resumed);
    assert_eq!(report.replay_group, kafka.group("replay-billing.again"));
    for partition in &report.partitions {
        let high = live_before
            .iter()
            .find(|(p, _, _)| *p == partition.partition)
            .unwrap()
            .2;
        assert_eq!(
            partition.end, high,
            "the end is the high watermark at the start"
        );
        assert_eq!(partition.position, partition.end);
    }

    // The live group's offsets are untouched; the replay group committed its ends.
    let live_after = committed(&kafka, "replay-billing");
    let offsets =
        |all: &[(i32, i64, i64)]| all.iter().map(|(p, c, _)| (*p, *c)).collect::<Vec<_>>();
    assert_eq!(offsets(&live_after), offsets(&live_before));
    let replayed = committed(&kafka, "replay-billing.again");
    for partition in &report.partitions {
        let (_, committed, _) = replayed
            .iter()
            .find(|(p, _, _)| *p == partition.partition)
            .unwrap();
        assert_eq!(*committed, partition.end, "{replayed:?}");
    }

    // The progress went to the end.
    let seen = seen.await.unwrap();
    let last = seen.last().expect("progress was sent");
    assert!(last.done);
    assert_eq!(last.remaining(), 0);
    assert_eq!(last.handled() as usize, expected.len());
    assert_eq!(last.records() as usize, expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_in_the_range_is_dead_lettered_as_by_the_live_group() {
    let (kafka, bus, ledger) = setup(1).await;
    publish(&bus, 0..3).await;
    bus.publish(Tick { n: 3, poison: true }).await.unwrap();
    publish(&bus, 4..6).await;
    let report = bus
        .replay(Replay::topic("replay.ticks").as_group("replay-billing.poison"))
        .await
        .unwrap();
    assert_eq!(report.group, "replay-billing");
    assert_eq!((report.records(), report.handled()), (6, 5));
    assert_eq!(report.dead_lettered(), 1);
    let handled: Vec<u64> = ledger.take().into_iter().map(|(_, _, n)| n).collect();
    assert_eq!(handled, [0, 1, 2, 4, 5]);
    let bootstrap = kafka.bootstrap().to_owned();
    let dlq = kafka.topic("replay.ticks.dlq");
    let letters = tokio::task::spawn_blocking(move || read_topic(&bootstrap, &dlq, 1))
        .await
        .unwrap();
    // The letter names the handlers' group, as the live group's would: replaying the letter
    // goes back to it.
    assert_eq!(
        header(&letters[0], herald::headers::dlq::CONSUMER_GROUP).as_deref(),
        Some("replay-billing")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_range_returns_at_once_and_a_missing_topic_is_named() {
    let (kafka, bus, ledger) = setup(2).await;
    publish(&bus, 0..4).await;
    let started = std::time::Instant::now();
    let report = bus
        .replay(Replay::topic("replay.ticks").from(OffsetTarget::Latest))
        .await
        .unwrap();
    assert_eq!((report.records(), report.handled()), (0, 0));
    assert_eq!(report.partitions.len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no consumer joined: {:?}",
        started.elapsed()
    );
    assert_eq!(ledger.count(), 0);

    // The live group itself, and a partition the topic does not have.
    let live = bus
        .replay(Replay::topic("replay.ticks").as_group("replay-billing"))
        .await
        .unwrap_err();
    assert!(live.to_string().contains("of its own"), "{live}");
    let nowhere = bus
        .replay(Replay::topic("replay.ticks").from_offsets([(0, 0), (7, 0)]))
        .await
        .unwrap_err();
    assert!(
        nowhere.to_string().contains("has no partition 7"),
        "{nowhere}"
    );

    // A topic no handler consumes, and a handled topic that does not exist.
    let unknown = bus
        .replay(Replay::topic("replay.nowhere"))
        .await
        .unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("no handler of this bus consumes"),
        "{unknown}"
    );
    // Not created at start-up (on a real Kafka too, where the tests otherwise create them).
    let config = kafka
        .apply(Config::new("replay-ghosts"))
        .auto_create_topics(false);
    let builder = match TestKafka::is_real() {
        true => Bus::builder(config),
        false => Bus::builder(config).embedded_broker(kafka.embedded().clone()),
    };
    let ghosts = builder
        .only_groups(["replay-ghosts"])
        .subscribe_all("replay-ghosts", "replay.ghosts", |_, _| async { Ok(()) })
        .build()
        .await
        .unwrap();
    let missing = ghosts
        .replay(Replay::topic("replay.ghosts"))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, Error::TopicNotFound { topic, .. } if topic.ends_with("replay.ghosts")),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replay_goes_on_from_its_last_commit_and_a_running_one_is_not_joined() {
    let (kafka, bus, ledger) = setup(1).await;
    publish(&bus, 0..10).await;
    ledger.block_from.store(5, Ordering::SeqCst);
    let replay = || Replay::topic("replay.ticks").as_group("replay-billing.resumed");
    let first = {
        let (bus, replay) = (bus.clone(), replay());
        tokio::spawn(async move { bus.replay(replay).await })
    };
    wait_until("five handled and the sixth waiting", || {
        ledger.count() == 5 && ledger.waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    if TestKafka::is_real() {
        // A second replay of the same group while the first runs is refused.
        let refused = bus.replay(replay()).await.unwrap_err().to_string();
        // A classic group's members are described; the broker refuses the commit of a
        // consumer-protocol group (KIP-848) with members.
        assert!(
            refused.contains("live member") || refused.contains("still has members"),
            "{refused}"
        );
    } else {
        say("the refusal of a replay group with a live member is checked on a real Kafka only (the embedded broker describes no groups)");
    }
    wait_until("the first five committed", || {
        committed(&kafka, "replay-billing.resumed")[0].1 == 5
    })
    .await;
    // Stopped half-way (a crash would leave the same commit).
    first.abort();
    let _ = first.await;
    if TestKafka::is_real() {
        let admin = herald::offsets::GroupAdmin::new(
            &Config::new("replay-admin").bootstrap_servers(kafka.bootstrap()),
            Duration::from_secs(10),
        )
        .unwrap();
        let group = kafka.group("replay-billing.resumed");
        wait_until("the stopped replay left its group", || {
            admin.describe(&group).unwrap().members.is_empty()
        })
        .await;
    }
    // The gate stays shut until the second run waits at it too: the first run's handler is
    // abandoned at its shutdown timeout, not let through, as a crash would leave it.
    // A consumer-protocol group's members are not described: until the stopped run's member
    // is gone, the broker refuses the second run's commit, and it is tried again.
    let second = loop {
        let second = {
            let (bus, replay) = (bus.clone(), replay());
            tokio::spawn(async move { bus.replay(replay).await })
        };
        wait_until(
            "the second run's first record waits at the gate, or the run is refused",
            || ledger.waiting.load(Ordering::SeqCst) == 2 || second.is_finished(),
        )
        .await;
        if ledger.waiting.load(Ordering::SeqCst) == 2 {
            break second;
        }
        let refused = second.await.unwrap().unwrap_err().to_string();
        assert!(
            consumer_protocol() && refused.contains("still has members"),
            "{refused}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ledger.open();
    let report = second.await.unwrap().unwrap();
    assert!(report.resumed);
    assert_eq!(
        (report.partitions[0].start, report.partitions[0].end),
        (5, 10)
    );
    assert_eq!(report.handled(), 5);
    let handled: Vec<u64> = ledger.take().into_iter().map(|(_, _, n)| n).collect();
    assert_eq!(
        handled,
        (0..10).collect::<Vec<_>>(),
        "each once over both runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_a_time_runs_the_records_at_or_after_it_up_to_until() {
    if !runs_on_real_kafka_only("a_replay_from_a_time_runs_the_records_at_or_after_it_up_to_until")
    {
        return;
    }
    let (_kafka, bus, ledger) = setup(3).await;
    publish(&bus, 0..5).await;
    // Kafka timestamps are milliseconds: step past the neighbours' on each side.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let from = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    publish(&bus, 5..9).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let until = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    publish(&bus, 9..12).await;

    let report = bus
        .replay(
            Replay::topic("replay.ticks")
                .from(OffsetTarget::Time(from))
                .until(OffsetTarget::Time(until)),
        )
        .await
        .unwrap();
    let handled: BTreeSet<u64> = ledger.take().into_iter().map(|(_, _, n)| n).collect();
    assert_eq!(handled, (5..9).collect());
    assert_eq!((report.records(), report.handled()), (4, 4));
    assert!(report
        .replay_group
        .contains("replay-billing.replay.replay.ticks."));

    // From the time to the end, on a few thousand records: how long it takes.
    let n = 3000u64;
    let events: Vec<Tick> = (1000..1000 + n)
        .map(|n| Tick { n, poison: false })
        .collect();
    bus.publish_batch(events).await.unwrap();
    let report = bus
        .replay(
            Replay::topic("replay.ticks")
                .from(OffsetTarget::Time(until))
                .as_group("replay-billing.timed"),
        )
        .await
        .unwrap();
    assert_eq!(report.records(), n + 3);
    assert_eq!(report.handled(), n + 3);
    assert_eq!(ledger.take().len() as u64, n + 3);
    say(&format!(
        "replayed {} records from a time over 3 partitions in {:?}",
        report.records(),
        report.elapsed
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_ends_at_the_high_watermark_when_a_transaction_marker_holds_the_last_offset() {
    if !runs_on_real_kafka_only(
        "a_replay_ends_at_the_high_watermark_when_a_transaction_marker_holds_the_last_offset",
    ) {
        return;
    }
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let (kafka, bus, ledger) = setup(1).await;
    // Four events in one transaction: offsets 0 to 3, its commit marker at 4, the end at 5.
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("transactional.id", kafka.group("replay-transactions"))
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer.begin_transaction().unwrap();
    for n in 0..4 {
        let event = bus
            .encode_event(&Tick { n, poison: false }, PublishOptions::default())
            .unwrap();
        let headers = event.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        producer
            .send(
                BaseRecord::to(&event.topic)
                    .partition(0)
                    .key(event.key.as_deref().unwrap_or_default())
                    .payload(&event.payload)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer
        .commit_transaction(Duration::from_secs(30))
        .unwrap();
    let (bootstrap, topic) = (kafka.bootstrap().to_owned(), kafka.topic("replay.ticks"));
    // The commit returns once the coordinator decided; the marker reaches the partition a moment
    // later, and until then the end a read-committed client sees (the last stable offset) is 0.
    wait_until("the transaction's marker reaches the partition", || {
        committed_and_high(&bootstrap, "unused", &topic)[0].2 == 5
    })
    .await;

    let report = tokio::time::timeout(
        WAIT,
        bus.replay(Replay::topic("replay.ticks").as_group("replay-billing.transactions")),
    )
    .await
    .expect("the replay ends although no record holds offset 4")
    .unwrap();
    assert_eq!((report.records(), report.handled()), (5, 4));
    assert_eq!(report.partitions[0].position, 5);
    assert_eq!(ledger.take().len(), 4);
}
