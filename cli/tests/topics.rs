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
    let mut all = vec!["--bootstrap-servers", kafka.bootstrap(), "--json", "topics"];
    all.extend_from_slice(args);
    let out = herald(&all, &[]);
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

/// Runs `herald` with `args` and `env`, without the caller's Kafka environment.
fn herald(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KAFKA_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the herald binary runs")
}

#[test]
fn topics_and_dlq_reach_a_secured_broker_with_flags_or_variables() {
    let (Ok(servers), Ok(tls)) = (
        std::env::var("HERALD_TEST_KAFKA_SASL_SSL"),
        std::env::var("HERALD_TEST_KAFKA_TLS_DIR"),
    ) else {
        support::say("skipped topics_and_dlq_reach_a_secured_broker_with_flags_or_variables: it needs HERALD_TEST_KAFKA_SASL_SSL and HERALD_TEST_KAFKA_TLS_DIR (bash .ci/kafka/cluster.sh start DIR; source DIR/env)");
        return;
    };
    // As the admin on the plaintext listener: a topic under `sec.`, where alice may read.
    let kafka = TestKafka::start();
    let topic = format!("sec.{}", kafka.topic("cli"));
    kafka.create_topic(&topic, 2);
    kafka.create_topic(&format!("{topic}.dlq"), 1);
    let ca = format!("{tls}/ca.pem");
    let dir = std::env::temp_dir().join(format!("herald-cli-secured-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (right, wrong) = (dir.join("right"), dir.join("wrong"));
    std::fs::write(&right, "alice-secret\n").unwrap();
    std::fs::write(&wrong, "not-alices-password-7\n").unwrap();

    let flags = |password: &std::path::Path| {
        vec![
            "--bootstrap-servers".to_owned(),
            servers.clone(),
            "--security-protocol".into(),
            "SASL_SSL".into(),
            "--sasl-mechanism".into(),
            "SCRAM-SHA-512".into(),
            "--sasl-username".into(),
            "alice".into(),
            "--sasl-password-file".into(),
            password.display().to_string(),
            "--ssl-ca".into(),
            ca.clone(),
            "--json".into(),
            "topics".into(),
            "--topic".into(),
            topic.clone(),
        ]
    };
    let args = flags(&right);
    let listed = herald(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(listed.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(report["topics"][0]["topic"], topic.as_str());
    assert_eq!(
        report["topics"][0]["partitions"].as_array().unwrap().len(),
        2
    );

    let args = flags(&wrong);
    let started = std::time::Instant::now();
    let refused = herald(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("KAFKA_SASL_PASSWORD"), "{stderr}");
    assert!(
        !stderr.contains("not-alices-password"),
        "the password leaked: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // herald dlq, configured by the KAFKA_* variables alone.
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("KAFKA_SASL_USERNAME", "alice"),
        ("KAFKA_SASL_PASSWORD", "alice-secret"),
        ("KAFKA_SSL_CAFILE", ca.as_str()),
    ];
    let counted = herald(&["dlq", "count", &topic], &env);
    let stdout = String::from_utf8_lossy(&counted.stdout);
    assert!(
        counted.status.success(),
        "{}",
        String::from_utf8_lossy(&counted.stderr)
    );
    assert_eq!(stdout.trim(), format!("0 dead letters in {topic}.dlq"));
    let _ = std::fs::remove_dir_all(&dir);
}
