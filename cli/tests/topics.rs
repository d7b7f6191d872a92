//! `herald topics` as a process against the test's broker (embedded, or the real Kafka of
//! `HERALD_TEST_KAFKA`): watermarks, and the committed offsets and lag of the groups the broker
//! lists. Kafka answers ListGroups; the embedded broker does not, and `herald topics` says so and
//! still shows a group named with `--group`.

use std::process::Command;
use std::time::Duration;

#[path = "../../runtime/tests/support/mod.rs"]
mod support;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use support::TestKafka;

/// Runs `herald topics --json` with `args` against `kafka`, without the caller's Kafka
/// environment; returns the parsed report and stderr.
fn topics_json(kafka: &TestKafka, args: &[&str]) -> (Value, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KAFKA_") {
            command.env_remove(name);
        }
    }
    let out = command
        .args(["--bootstrap-servers", kafka.bootstrap(), "--json", "topics"])
        .args(args)
        .output()
        .expect("the herald binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "herald topics failed: {stderr}");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: not JSON: {}", String::from_utf8_lossy(&out.stdout)));
    (report, stderr)
}

/// The (partition, committed, lag) rows of `group` in a one-topic report.
fn group_rows(report: &Value, group: &str) -> Vec<(i64, Option<i64>, i64)> {
    let topic = &report["topics"][0];
    let Some(found) = topic["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group)
    else {
        return Vec::new();
    };
    let mut rows: Vec<_> = found["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["committed"].as_i64(),
                p["lag"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort_unstable();
    rows
}

#[test]
fn topics_shows_watermarks_and_the_lag_of_listed_groups() {
    let kafka = TestKafka::start();
    let topic = kafka.topic("ledger");
    kafka.create_topic(&topic, 2);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .create()
        .unwrap();
    for (partition, count) in [(0, 5), (1, 3)] {
        for n in 0..count {
            producer
                .send(
                    BaseRecord::<(), _>::to(&topic)
                        .partition(partition)
                        .payload(&format!("{n}")),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    // A group that committed 3 of partition 0 and all 3 of partition 1, without joining.
    let group = kafka.group("auditors");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(3))
        .unwrap();
    offsets
        .add_partition_offset(&topic, 1, Offset::Offset(3))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();

    let expected = vec![(0, Some(3), 2), (1, Some(3), 0)];
    let (named, _) = topics_json(&kafka, &["--topic", &topic, "--group", &group]);
    let highs: Vec<(i64, i64)> = named["topics"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["high"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(highs, [(0, 5), (1, 3)]);
    assert_eq!(group_rows(&named, &group), expected);

    let (listed, stderr) = topics_json(&kafka, &["--topic", &topic]);
    if TestKafka::is_real() {
        assert_eq!(
            group_rows(&listed, &group),
            expected,
            "Kafka lists the group that committed on the topic: {listed}"
        );
    } else {
        assert!(
            stderr.contains("do not list consumer groups"),
            "the embedded broker cannot list groups, and herald topics says so: {stderr}"
        );
        assert_eq!(group_rows(&listed, &group), []);
    }
}
