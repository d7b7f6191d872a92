//! `herald groups` as a process against the test's broker (embedded, or the real Kafka of
//! `HERALD_TEST_KAFKA`): a dry run of a reset changes nothing, a reset moves the committed
//! offsets, `describe` and `list` show the group. The embedded broker describes no groups: there
//! a checked reset is refused with the reason, and `--force` skips the check.
//!
//! `herald groups replay`: a dry run prints the plan (records per partition up to the current
//! ends) and commits nothing; without it the new group's offsets start there; a start from a time
//! (on a real Kafka: the embedded broker answers offsets-by-time with -1) begins at the first
//! record at or after it.

use std::process::Command;
use std::time::Duration;

#[path = "../../runtime/tests/support/mod.rs"]
mod support;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::{committed_and_high, TestKafka};

/// Runs `herald` with `args`, without the caller's Kafka environment.
fn herald(args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KAFKA_") {
            command.env_remove(name);
        }
    }
    let out = command.args(args).output().expect("the herald binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reset_moves_a_groups_offsets_after_a_dry_run_that_does_not() {
    let kafka = TestKafka::start();
    let topic = kafka.topic("replays");
    kafka.create_topic(&topic, 1);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .create()
        .unwrap();
    for n in 0..6 {
        producer
            .send(BaseRecord::<(), _>::to(&topic).payload(&format!("{n}")))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let group = kafka.group("replayers");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(6))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
    let committed = || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, 0);
        let tpl = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        tpl.find_partition(&topic, 0).unwrap().offset()
    };
    let servers = kafka.bootstrap();
    let reset = |extra: &[&str]| {
        let mut args = vec![
            "--bootstrap-servers",
            servers,
            "groups",
            "reset",
            &group,
            "--topic",
            &topic,
            "--to-offset",
            "2",
        ];
        args.extend_from_slice(extra);
        herald(&args)
    };

    let (ok, out, err) = reset(&["--dry-run"]);
    assert!(ok, "{err}");
    let row = out.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("(dry run)") && row.trim_end().ends_with("+4"),
        "{out}"
    );
    assert_eq!(
        committed(),
        Offset::Offset(6),
        "the dry run committed nothing"
    );

    if TestKafka::is_real() {
        let (ok, out, err) = reset(&[]);
        assert!(ok, "{err}");
        assert!(
            out.lines()
                .nth(1)
                .unwrap_or_default()
                .trim_end()
                .ends_with("+4"),
            "{out}"
        );
        assert_eq!(committed(), Offset::Offset(2));
        let (ok, out, err) =
            herald(&["--bootstrap-servers", servers, "groups", "describe", &group]);
        assert!(ok, "{err}");
        assert!(out.starts_with(&format!("group {group}: Empty")), "{out}");
        let (ok, out, err) = herald(&["--bootstrap-servers", servers, "groups", "list"]);
        assert!(ok, "{err}");
        assert!(out.lines().any(|l| l == group), "{out}");
    } else {
        let (ok, _, err) = reset(&[]);
        assert!(!ok);
        assert!(err.contains("cannot describe consumer groups"), "{err}");
        assert_eq!(committed(), Offset::Offset(6));
        // This group never had a member: the broker takes the commit.
        let (ok, out, err) = reset(&["--force"]);
        assert!(ok, "{err}");
        assert!(
            out.lines()
                .nth(1)
                .unwrap_or_default()
                .trim_end()
                .ends_with("+4"),
            "{out}"
        );
        assert_eq!(committed(), Offset::Offset(2));
    }
}

/// Writes records 0..6 on partition 0 of `topic`, one second apart in time, ten minutes ago;
/// returns the first one's timestamp (ms).
fn produce(kafka: &TestKafka, topic: &str) -> i64 {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .create()
        .unwrap();
    let first = chrono::Utc::now().timestamp_millis() - 600_000;
    for n in 0..6i64 {
        producer
            .send(
                BaseRecord::<(), _>::to(topic)
                    .partition(0)
                    .timestamp(first + n * 1000)
                    .payload(&format!("{n}")),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    first
}

#[test]
fn a_replay_plan_counts_the_records_and_starts_a_new_group_there() {
    let kafka = TestKafka::start();
    let topic = kafka.topic("replay-plans");
    kafka.create_topic(&topic, 2);
    produce(&kafka, &topic);
    let (group, new) = (kafka.group("billing"), kafka.group("billing.replay-1"));
    let servers = kafka.bootstrap();
    let replay_with = |options: &[&str], extra: &[&str]| {
        let mut args = vec!["--bootstrap-servers", servers];
        args.extend_from_slice(options);
        args.extend([
            "groups",
            "replay",
            "--group",
            &group,
            "--topic",
            &topic,
            "--as-group",
            &new,
            "--from-offset",
            "2",
        ]);
        args.extend_from_slice(extra);
        herald(&args)
    };
    let replay = |extra: &[&str]| replay_with(&[], extra);

    let (ok, out, err) = replay(&["--dry-run", "--partition", "0"]);
    assert!(ok, "{err}");
    assert!(out.contains("4 record(s) to replay"), "{out}");
    assert!(out.contains("dry run"), "{out}");
    let (ok, out, err) = replay(&["--dry-run"]);
    assert!(ok, "{err}");
    let plan: serde_json::Value = {
        let (ok, json, err) = replay_with(&["--json"], &["--dry-run"]);
        assert!(ok, "{err}");
        serde_json::from_str(&json).unwrap()
    };
    assert_eq!(plan[0]["partition"], 0);
    assert_eq!(
        (&plan[0]["from"], &plan[0]["to"], &plan[0]["records"]),
        (&2.into(), &6.into(), &4.into()),
        "{out}"
    );
    assert_eq!(
        (&plan[1]["from"], &plan[1]["records"]),
        (&0.into(), &0.into()),
        "the empty partition"
    );
    let committed = || committed_and_high(servers, &new, &topic)[0].1;
    assert_eq!(committed(), 0, "the dry run committed nothing");

    let force: &[&str] = if TestKafka::is_real() {
        &[]
    } else {
        // The embedded broker describes no groups; this one never had a member.
        &["--force"]
    };
    let (ok, out, err) = replay(force);
    assert!(ok, "{err}");
    assert!(!out.contains("dry run"), "{out}");
    assert_eq!(committed(), 2, "the new group starts at offset 2");
    assert_eq!(committed_and_high(servers, &group, &topic)[0].1, 0);

    // The same group as --group and --as-group is a mistake.
    let (ok, _, err) = herald(&[
        "--bootstrap-servers",
        servers,
        "groups",
        "replay",
        "--group",
        &group,
        "--topic",
        &topic,
        "--as-group",
        &group,
        "--from-earliest",
    ]);
    assert!(!ok && err.contains("leave it out"), "{err}");
}

#[test]
fn a_replay_from_a_time_starts_at_the_first_record_at_or_after_it() {
    if !support::runs_on_real_kafka_only(
        "a_replay_from_a_time_starts_at_the_first_record_at_or_after_it",
    ) {
        return;
    }
    let kafka = TestKafka::start();
    let topic = kafka.topic("replay-times");
    kafka.create_topic(&topic, 1);
    let first = produce(&kafka, &topic);
    // Half a second after the third record: the fourth is the first at or after it.
    let time = chrono::DateTime::from_timestamp_millis(first + 2_500)
        .unwrap()
        .to_rfc3339();
    let new = kafka.group("billing.from-time");
    let (ok, out, err) = herald(&[
        "--bootstrap-servers",
        kafka.bootstrap(),
        "groups",
        "replay",
        "--group",
        &kafka.group("billing"),
        "--topic",
        &topic,
        "--as-group",
        &new,
        "--from-time",
        &time,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("3 record(s) to replay"), "{out}");
    assert_eq!(committed_and_high(kafka.bootstrap(), &new, &topic)[0].1, 3);
}
