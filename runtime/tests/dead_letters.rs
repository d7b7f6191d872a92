//! Inspecting and replaying dead letters over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): a bus whose
//! handler fails for good fills the dead-letter topic; `DeadLetters` lists, counts and fetches the
//! letters with their parsed fields, replays them to the fixed handler, sends a letter that fails
//! again back with both histories, and replays just what a filter selects.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use herald::dlq::{DeadLetter, ReplayAudience, ReplayFilter};
use herald::headers::dlq;
use herald::prelude::*;
use herald::Error;
use rdkafka::message::Message;
use support::*;

/// The handlers' switch and what they handled.
#[derive(Default)]
struct Parcels {
    failing: AtomicBool,
    handled: Mutex<Vec<u64>>,
    /// What the second group (`dl-tracking`) handled.
    tracked: Mutex<Vec<u64>>,
}

impl Parcels {
    fn failing() -> Arc<Self> {
        let parcels = Self::default();
        parcels.failing.store(true, Ordering::SeqCst);
        Arc::new(parcels)
    }

    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn handled(&self) -> BTreeSet<u64> {
        self.handled.lock().unwrap().iter().copied().collect()
    }
}

fn parcels(ctx: &Context) -> &Arc<Parcels> {
    ctx.state::<Arc<Parcels>>().expect("test state registered")
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "dl.parcels")]
pub struct ParcelShipped {
    #[event(key)]
    pub parcel: String,
    pub seq: u64,
    /// Fail with a permanent error (no retry) instead of a transient one.
    pub permanent: bool,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "dl.parcels")]
pub struct ParcelReturned {
    #[event(key)]
    pub parcel: String,
    pub seq: u64,
}

#[handler(group = "dl-parcels")]
async fn ship_parcel(event: ParcelShipped, ctx: &Context) -> Result<(), HandlerError> {
    let parcels = parcels(ctx);
    if parcels.failing.load(Ordering::SeqCst) {
        let error = HandlerError::msg(format!("carrier down for parcel {}", event.seq));
        return Err(if event.permanent {
            HandlerError::permanent(error)
        } else {
            error
        });
    }
    parcels.handled.lock().unwrap().push(event.seq);
    Ok(())
}

#[handler(group = "dl-parcels")]
async fn take_parcel_back(event: ParcelReturned, ctx: &Context) -> Result<(), HandlerError> {
    let parcels = parcels(ctx);
    if parcels.failing.load(Ordering::SeqCst) {
        return Err(HandlerError::permanent(HandlerError::msg(
            "the warehouse is closed",
        )));
    }
    parcels.handled.lock().unwrap().push(event.seq);
    Ok(())
}

/// A second group on the same topic, which never fails.
#[handler(group = "dl-tracking")]
async fn track_parcel(event: ParcelShipped, ctx: &Context) -> Result<(), HandlerError> {
    parcels(ctx).tracked.lock().unwrap().push(event.seq);
    Ok(())
}

fn config() -> Config {
    Config {
        max_retries: 2,
        retry_jitter: 0.0,
        ..Config::new("parcels")
            .commit_interval(Duration::from_millis(100))
            .retry_delays(Duration::from_millis(10), Duration::from_millis(40))
            .shutdown_timeout(Duration::from_secs(20))
    }
}

async fn started_bus(kafka: &TestKafka, parcels: &Arc<Parcels>) -> Bus {
    let bus = kafka
        .builder(config())
        .only_groups(["dl-parcels"])
        .state(parcels.clone())
        .build()
        .await
        .expect("bus builds");
    bus.start().await.unwrap();
    bus.wait_for_assignment(WAIT).await.unwrap();
    bus
}

fn shipped(seq: u64, permanent: bool) -> ParcelShipped {
    ParcelShipped {
        parcel: "parcel-A".into(),
        seq,
        permanent,
    }
}

fn returned(seq: u64) -> ParcelReturned {
    ParcelReturned {
        parcel: "parcel-A".into(),
        seq,
    }
}

async fn wait_dead_lettered(bus: &Bus, n: u64) {
    wait_until(&format!("{n} events were dead-lettered"), || {
        bus.stats().dead_lettered >= n
    })
    .await;
    assert_eq!(bus.stats().dead_lettered, n);
}

fn seq_of(letter: &DeadLetter) -> u64 {
    let value: serde_json::Value =
        serde_json::from_slice(letter.value.as_deref().unwrap()).unwrap();
    value["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_inspected_replayed_and_come_back_with_both_histories() {
    let kafka = TestKafka::start();
    let parcels = Parcels::failing();
    let bus = started_bus(&kafka, &parcels).await;
    let before = Utc::now();
    let first = bus.publish(shipped(1, false)).await.unwrap();
    let second = bus.publish(shipped(2, true)).await.unwrap();
    bus.publish(returned(3)).await.unwrap();
    wait_dead_lettered(&bus, 3).await;

    let letters = bus.dead_letters(&kafka.topic("dl.parcels")).await.unwrap();
    assert_eq!(letters.topic(), kafka.topic("dl.parcels.dlq"));
    assert_eq!(letters.count().await.unwrap(), 3);
    let all = letters.list(10).await.unwrap();
    assert_eq!(all.iter().map(seq_of).collect::<Vec<_>>(), [1, 2, 3]);
    let oldest = letters.list(2).await.unwrap();
    assert_eq!(oldest, all[..2]);

    let one = &all[0];
    let failure = one.failure().expect("herald's dlq headers");
    assert_eq!(failure.original_topic, kafka.topic("dl.parcels"));
    assert_eq!(failure.original_partition, Some(first.partition));
    assert_eq!(failure.original_offset, Some(first.offset));
    assert_eq!(failure.consumer_group, "dl-parcels");
    assert_eq!(failure.handlers, ["ship_parcel"]);
    assert_eq!(failure.error_kind, "retries-exhausted");
    assert_eq!(failure.error_message, "carrier down for parcel 1");
    assert_eq!(failure.retry_count, Some(3), "1 attempt + max_retries (2)");
    let failed_at = failure.failed_at.expect("dlq_timestamp parsed");
    assert!(
        before <= failed_at && failed_at <= Utc::now(),
        "{failed_at}"
    );
    assert_eq!(one.ce_type.as_deref(), Some("parcel.shipped"));
    assert_eq!(one.ce_id.as_deref(), Some(first.event_id.as_str()));
    assert_eq!(one.key.as_deref(), Some(&b"parcel-A"[..]));
    assert_eq!(one.replay_count, 0);
    assert_eq!(one.failures.len(), 1);
    let original = read_topic(bus.bootstrap_servers(), &kafka.topic("dl.parcels"), 3)
        .into_iter()
        .find(|m| m.offset() == first.offset && m.partition() == first.partition)
        .unwrap();
    assert_eq!(one.value.as_deref(), original.payload(), "byte for byte");
    assert_eq!(
        one.header("ce_source"),
        header(&original, "ce_source").as_deref()
    );
    let two = &all[1].failure().unwrap();
    assert_eq!(
        (two.error_kind.as_str(), two.retry_count),
        ("permanent", Some(1))
    );
    assert_eq!(all[2].ce_type.as_deref(), Some("parcel.returned"));
    assert_eq!(all[2].failure().unwrap().handlers, ["take_parcel_back"]);

    assert_eq!(letters.get(one.partition, one.offset).await.unwrap(), *one);
    let absent = letters.get(one.partition, 99).await.unwrap_err();
    assert!(
        matches!(&absent, Error::NoDeadLetter { partition, offset: 99, .. } if *partition == one.partition),
        "{absent:?}"
    );
    assert!(
        absent.to_string().contains("holds offsets 0 to 2"),
        "{absent}"
    );
    let no_partition = letters.replay(42, 0).await.unwrap_err();
    assert!(
        matches!(no_partition, Error::NoDeadLetter { partition: 42, .. }),
        "{no_partition:?}"
    );
    let no_topic = bus
        .dead_letters(&kafka.topic("dl.nowhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(&no_topic, Error::TopicNotFound { topic, .. } if *topic == kafka.topic("dl.nowhere.dlq")),
        "{no_topic:?}"
    );

    // The handler is fixed: a replay is handled, with the event's id unchanged.
    parcels.set_failing(false);
    let replayed = letters.replay(one.partition, one.offset).await.unwrap();
    assert_eq!(
        (replayed.topic.clone(), replayed.partition),
        (kafka.topic("dl.parcels"), first.partition)
    );
    assert_eq!(replayed.event_id, first.event_id);
    wait_until("the replayed event was handled", || {
        parcels.handled().contains(&1)
    })
    .await;

    // It breaks again: the replayed letter returns with both histories.
    parcels.set_failing(true);
    let again = letters
        .replay(all[1].partition, all[1].offset)
        .await
        .unwrap();
    wait_dead_lettered(&bus, 4).await;
    assert_eq!(letters.count().await.unwrap(), 4);
    let back = letters.list(10).await.unwrap().pop().unwrap();
    assert_eq!(seq_of(&back), 2);
    assert_eq!(back.header_all(dlq::ERROR_KIND), ["permanent", "permanent"]);
    assert_eq!(back.header_all(dlq::REPLAY_COUNT), ["1"]);
    assert_eq!(back.replay_count, 1);
    assert_eq!(back.failures.len(), 2);
    assert_eq!(back.failures[0].original_offset, Some(second.offset));
    assert_eq!(back.failures[1].original_offset, Some(again.offset));
    assert_eq!(back.ce_id.as_deref(), Some(second.event_id.as_str()));

    parcels.set_failing(false);
    bus.shutdown().await.unwrap();
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("dl-parcels"),
        &kafka.topic("dl.parcels"),
    );
    assert_eq!(parcels.handled(), BTreeSet::from([1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_all_replays_just_what_each_filter_selects() {
    let kafka = TestKafka::start();
    kafka.create_topic(&kafka.topic("dl.elsewhere"), 1);
    let parcels = Parcels::failing();
    let bus = started_bus(&kafka, &parcels).await;
    bus.publish(shipped(1, false)).await.unwrap();
    bus.publish(shipped(2, true)).await.unwrap();
    bus.publish(returned(3)).await.unwrap();
    wait_dead_lettered(&bus, 3).await;
    let middle = Utc::now();
    bus.publish(shipped(4, true)).await.unwrap();
    wait_dead_lettered(&bus, 4).await;
    // A dead letter of another topic, as herald writes them, copied into this dead-letter topic:
    // it matches filters but is never replayed (this topic belongs to dl.parcels).
    let producer = plain_producer(bus.bootstrap_servers());
    let raw_value = br#"{"parcel":"parcel-B","seq":5,"permanent":true}"#;
    let elsewhere_topic = kafka.topic("dl.elsewhere");
    send_raw(
        &producer,
        &kafka.topic("dl.parcels.dlq"),
        Some(b"parcel-B"),
        raw_value,
        &[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"raw-5"),
            ("ce_type", b"parcel.shipped"),
            ("ce_source", b"elsewhere"),
            (dlq::ORIGINAL_TOPIC, elsewhere_topic.as_bytes()),
            (dlq::ORIGINAL_PARTITION, b"0"),
            (dlq::ORIGINAL_OFFSET, b"17"),
            (dlq::CONSUMER_GROUP, b"elsewhere"),
            (dlq::HANDLER, b"elsewhere_handler"),
            (dlq::ERROR_KIND, b"permanent"),
            (dlq::ERROR_MESSAGE, b"no"),
            (dlq::RETRY_COUNT, b"1"),
            (dlq::TIMESTAMP, b"2020-01-01T00:00:00Z"),
        ],
    )
    .await;

    let letters = bus.dead_letters(&kafka.topic("dl.parcels")).await.unwrap();
    let all = letters.list(10).await.unwrap();
    assert_eq!(all.len(), 5);
    let position_of = |seq: u64| {
        let letter = all.iter().find(|l| seq_of(l) == seq).unwrap();
        (letter.partition, letter.offset)
    };
    parcels.set_failing(false);
    // (filter, the seqs replayed, how many matched)
    let cases = [
        (
            ReplayFilter::all().event_type("parcel.returned"),
            vec![3],
            1,
        ),
        (
            ReplayFilter::all().error_kind("retries-exhausted"),
            vec![1],
            1,
        ),
        (
            ReplayFilter::all().failed_between(Some(middle), None),
            vec![4],
            1,
        ),
        (
            ReplayFilter::all().original_topic(kafka.topic("dl.elsewhere")),
            vec![],
            1,
        ),
        (
            ReplayFilter::all()
                .original_topic(kafka.topic("dl.parcels"))
                .failed_between(None, Some(middle))
                .error_kind("permanent")
                .event_type("parcel.shipped"),
            vec![2],
            1,
        ),
    ];
    for (filter, seqs, matched) in cases {
        let mut calls = Vec::new();
        let report = letters
            .replay_all(&filter, |done, total| calls.push((done, total)))
            .await
            .unwrap();
        assert!(report.stopped.is_none(), "{filter:?}: {:?}", report.stopped);
        assert_eq!((report.scanned, report.matched), (5, matched));
        assert_eq!(report.skipped.len() as u64, matched - seqs.len() as u64);
        let replayed: Vec<(i32, i64)> = report
            .replayed
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect();
        let expected: Vec<(i32, i64)> = seqs.iter().map(|s| position_of(*s)).collect();
        assert_eq!(replayed, expected, "{filter:?}");
        assert_eq!(calls.first(), Some(&(0, 5)));
        assert_eq!(calls.last(), Some(&(5, 5)));
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0), "{calls:?}");
    }
    wait_until("the replayed parcels were handled", || {
        parcels.handled() == BTreeSet::from([1, 2, 3, 4])
    })
    .await;
    read_topic(bus.bootstrap_servers(), &kafka.topic("dl.elsewhere"), 0);
    bus.shutdown().await.unwrap();
    // Everything replayed into dl.parcels was handled: nothing else was replayed there.
    assert_all_committed(
        bus.bootstrap_servers(),
        &kafka.group("dl-parcels"),
        &kafka.topic("dl.parcels"),
    );
    assert_eq!(parcels.handled(), BTreeSet::from([1, 2, 3, 4]));
    assert_eq!(
        letters.count().await.unwrap(),
        5,
        "replays leave the letters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_all_reads_every_partition_in_chunks_and_reports_progress() {
    const LETTERS: usize = 2_000;
    let kafka = TestKafka::start();
    let (bulk, bulk_dlq) = (kafka.topic("bulk"), kafka.topic("bulk.dlq"));
    kafka.create_topic(&bulk, 3);
    kafka.create_topic(&bulk_dlq, 3);
    let producer = plain_producer(kafka.bootstrap());
    let started = std::time::Instant::now();
    futures::future::join_all((0..LETTERS).map(|n| {
        let (producer, bulk, bulk_dlq) = (&producer, &bulk, &bulk_dlq);
        async move {
            let key = format!("k{}", n % 17);
            let partition = (n % 3).to_string();
            let value = format!(r#"{{"n":{n}}}"#);
            send_raw(
                producer,
                bulk_dlq,
                Some(key.as_bytes()),
                value.as_bytes(),
                &[
                    ("ce_type", b"bulk.item"),
                    (dlq::ORIGINAL_TOPIC, bulk.as_bytes()),
                    (dlq::ORIGINAL_PARTITION, partition.as_bytes()),
                    (dlq::ERROR_KIND, b"permanent"),
                    (dlq::TIMESTAMP, b"2026-01-01T00:00:00Z"),
                ],
            )
            .await
        }
    }))
    .await;
    println!("wrote {LETTERS} dead letters in {:?}", started.elapsed());

    let config = Config::new("ops").bootstrap_servers(kafka.bootstrap());
    let letters = herald::dlq::DeadLetters::connect(&config, &bulk_dlq)
        .await
        .unwrap();
    assert_eq!(letters.count().await.unwrap(), LETTERS as u64);
    let started = std::time::Instant::now();
    let oldest = letters.list(100).await.unwrap();
    println!("listed the oldest 100 in {:?}", started.elapsed());
    assert_eq!(oldest.len(), 100);

    let started = std::time::Instant::now();
    let mut calls = 0u64;
    let mut last = (0, 0);
    let report = letters
        .replay_all(&ReplayFilter::all(), |done, total| {
            calls += 1;
            assert!(done >= last.0 && done <= total, "{done}/{total}");
            last = (done, total);
        })
        .await
        .unwrap();
    let elapsed = started.elapsed();
    println!(
        "replayed {} dead letters in {elapsed:?} ({:.0}/s), {calls} progress calls",
        report.replayed.len(),
        report.replayed.len() as f64 / elapsed.as_secs_f64()
    );
    assert!(report.stopped.is_none(), "{:?}", report.stopped);
    assert_eq!(report.replayed.len(), LETTERS);
    assert_eq!(last, (LETTERS as u64, LETTERS as u64));
    assert!(report.replayed.iter().all(|r| r.delivery.topic == *bulk));
    let mut positions: Vec<(i32, i64)> = report
        .replayed
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), LETTERS, "each dead letter replayed once");
    let copies = read_topic(kafka.bootstrap(), &bulk, LETTERS);
    for copy in &copies {
        let original: i32 = header(copy, dlq::ORIGINAL_PARTITION)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(copy.partition(), original, "back to its original partition");
        assert_eq!(header(copy, dlq::REPLAY_COUNT).as_deref(), Some("1"));
    }
}

/// A replay goes only where it belongs: a dry run writes nothing and says where each letter
/// would go; a letter that names another topic than the one its dead-letter topic belongs to is
/// skipped with the reason (before, it was written to whatever topic its header named); and a
/// replay for the failed group only (`ReplayAudience::FailedGroup`) is skipped by the other group
/// of the topic, which had handled the event already (before, every group handled it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_go_only_to_their_topic_and_the_group_that_failed() {
    let kafka = TestKafka::start();
    let parcels = Parcels::failing();
    let bus = kafka
        .builder(config())
        .only_groups(["dl-parcels", "dl-tracking"])
        .state(parcels.clone())
        .build()
        .await
        .unwrap();
    bus.start().await.unwrap();
    bus.wait_for_assignment(WAIT).await.unwrap();
    bus.publish(shipped(1, true)).await.unwrap();
    wait_dead_lettered(&bus, 1).await;
    wait_until("the tracking group handled it", || {
        *parcels.tracked.lock().unwrap() == [1]
    })
    .await;
    // A letter copied into this dead-letter topic from elsewhere.
    let (topic, elsewhere) = (kafka.topic("dl.parcels"), kafka.topic("dl.elsewhere"));
    send_raw(
        &plain_producer(bus.bootstrap_servers()),
        &kafka.topic("dl.parcels.dlq"),
        Some(b"k"),
        br#"{"parcel":"x","seq":9,"permanent":false}"#,
        &[
            (dlq::ORIGINAL_TOPIC, elsewhere.as_bytes()),
            (dlq::CONSUMER_GROUP, b"dl-parcels"),
        ],
    )
    .await;
    parcels.set_failing(false);

    let dry = bus.dead_letters(&topic).await.unwrap().dry_run(true);
    let report = dry
        .replay_all(&ReplayFilter::all(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.replayed.len(), 1, "{report:?}");
    assert_eq!(report.replayed[0].delivery.topic, topic);
    assert_eq!(report.replayed[0].delivery.offset, -1);
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(
        report.skipped[0].reason.contains(&elsewhere),
        "{}",
        report.skipped[0].reason
    );
    assert_eq!(
        message_count(bus.bootstrap_servers(), &topic),
        1,
        "the dry run wrote"
    );

    let letters = bus
        .dead_letters(&topic)
        .await
        .unwrap()
        .audience(ReplayAudience::FailedGroup);
    let report = letters
        .replay_all(&ReplayFilter::all(), |_, _| {})
        .await
        .unwrap();
    assert!(report.stopped.is_none(), "{report:?}");
    assert_eq!((report.replayed.len(), report.skipped.len()), (1, 1));
    wait_until("the failed group handled the replay", || {
        parcels.handled() == BTreeSet::from([1])
    })
    .await;
    for group in ["dl-parcels", "dl-tracking"] {
        wait_until(&format!("{group} committed the replay"), || {
            committed_and_high(bus.bootstrap_servers(), &kafka.group(group), &topic)
                .iter()
                .all(|(_, committed, high)| committed == high)
        })
        .await;
    }
    bus.shutdown().await.unwrap();
    assert_eq!(
        *parcels.tracked.lock().unwrap(),
        [1],
        "the other group handled the replay"
    );
    assert_eq!(bus.stats().replays_skipped, 1);
}
