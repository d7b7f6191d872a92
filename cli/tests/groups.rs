//! `herald groups` as a process against the test's broker (embedded, or the real Kafka of
//! `HERALD_TEST_KAFKA`): a dry run of a reset changes nothing, a reset moves the committed
//! offsets, `describe` and `list` show the group. The embedded broker describes no groups: there
//! a checked reset is refused with the reason, and `--force` skips the check.

use std::process::Command;
use std::time::Duration;

#[path = "../../runtime/tests/support/mod.rs"]
mod support;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::TestKafka;

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
