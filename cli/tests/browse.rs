//! `herald tail` and `herald trace` as processes against `herald broker`: CloudEvents in binary
//! and structured mode and one record that is not a CloudEvent, written with explicit timestamps
//! by a plain producer, read back as exact lines and JSON objects.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Broker, Proc, TempDir, HERALD};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

/// 2026-01-02T03:04:05Z, the time of the first record; the others follow a second apart.
const T0: i64 = 1_767_323_045_000;

/// One record to write.
struct Rec<'a> {
    topic: &'a str,
    partition: i32,
    key: &'a str,
    value: &'a str,
    /// Seconds after [`T0`]: the Kafka timestamp, and `ce_time` of a binary event.
    at: i64,
    /// `(id, type, correlation id, causation id)` of a binary-mode CloudEvent; `None`: written
    /// as is (structured mode, or not a CloudEvent).
    event: Option<(&'a str, &'a str, &'a str, Option<&'a str>)>,
}

fn time(at: i64) -> String {
    chrono::DateTime::from_timestamp_millis(T0 + at * 1000)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn write(bootstrap: &str, records: &[Rec]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for rec in records {
        let mut headers = OwnedHeaders::new();
        if let Some((id, event_type, correlation, causation)) = rec.event {
            let ce_time = time(rec.at);
            let mut pairs = vec![
                ("ce_specversion", "1.0"),
                ("ce_id", id),
                ("ce_type", event_type),
                ("ce_source", "test"),
                ("ce_time", ce_time.as_str()),
                ("ce_correlationid", correlation),
                ("ce_schemaversion", "1"),
                ("content-type", "application/json"),
            ];
            if let Some(causation) = causation {
                pairs.push(("ce_causationid", causation));
            }
            for (key, value) in pairs {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
        }
        producer
            .send(
                BaseRecord::to(rec.topic)
                    .partition(rec.partition)
                    .key(rec.key)
                    .payload(rec.value)
                    .timestamp(T0 + rec.at * 1000)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// `orders` (2 partitions) and `payments` (1) on a `herald broker` of the test's own. Two flows:
/// c1 is e1 (order placed) → e2 (payment, in `payments`) → e4 (order shipped); c2 is e3 → e5 (a
/// structured-mode event). `orders` also holds a record that is not a CloudEvent.
fn fixture(name: &str) -> (TempDir, Broker) {
    let dir = TempDir::new(name);
    let broker = Broker::start(&dir, &[("orders", 2), ("payments", 1)]);
    let structured = json!({
        "specversion": "1.0", "id": "e5", "type": "payment.taken", "source": "py",
        "time": time(5), "correlationid": "c2", "causationid": "e3", "data": { "amount": 7 },
    })
    .to_string();
    let placed = Some(("e1", "order.placed", "c1", None));
    write(
        &broker.bootstrap,
        &[
            Rec {
                topic: "orders",
                partition: 0,
                key: "k1",
                value: r#"{"n":1}"#,
                at: 0,
                event: placed,
            },
            Rec {
                topic: "payments",
                partition: 0,
                key: "k1",
                value: r#"{"amount":5}"#,
                at: 1,
                event: Some(("e2", "payment.taken", "c1", Some("e1"))),
            },
            Rec {
                topic: "orders",
                partition: 0,
                key: "k2",
                value: r#"{"n":2}"#,
                at: 2,
                event: Some(("e3", "order.placed", "c2", None)),
            },
            Rec {
                topic: "orders",
                partition: 1,
                key: "k1",
                value: r#"{"n":3}"#,
                at: 3,
                event: Some(("e4", "order.shipped", "c1", Some("e2"))),
            },
            Rec {
                topic: "orders",
                partition: 1,
                key: "k3",
                value: "hello",
                at: 4,
                event: None,
            },
            Rec {
                topic: "payments",
                partition: 0,
                key: "k2",
                value: &structured,
                at: 5,
                event: None,
            },
        ],
    );
    (dir, broker)
}

fn herald(broker: &Broker, args: &[&str]) -> Output {
    let mut command = Command::new(HERALD);
    for (name, _) in std::env::vars() {
        if name.starts_with("KAFKA_") {
            command.env_remove(name);
        }
    }
    command
        .args(["--bootstrap-servers", &broker.bootstrap])
        .args(args)
        .output()
        .unwrap()
}

/// The stdout lines of a successful run.
fn lines(broker: &Broker, args: &[&str]) -> Vec<String> {
    let out = herald(broker, args);
    assert!(
        out.status.success(),
        "herald {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The stdout of a successful run, one JSON object a line.
fn objects(broker: &Broker, args: &[&str]) -> Vec<Value> {
    lines(broker, args)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect()
}

fn line_of(partition_offset: &str, at: i64, rest: &str) -> String {
    format!("{partition_offset}  {}  {rest}", time(at))
}

#[test]
fn tail_shows_each_record_decoded_in_time_order_and_filters_them() {
    let (_dir, broker) = fixture("tail-all");
    let all = vec![
        line_of(
            "0/0",
            0,
            r#"order.placed  e1  key=k1  correlation=c1  {"n":1}"#,
        ),
        line_of(
            "0/1",
            2,
            r#"order.placed  e3  key=k2  correlation=c2  {"n":2}"#,
        ),
        line_of(
            "1/0",
            3,
            r#"order.shipped  e4  key=k1  correlation=c1  {"n":3}"#,
        ),
        line_of(
            "1/1",
            4,
            "(not a CloudEvent)  -  key=k3  correlation=-  hello",
        ),
    ];
    assert_eq!(lines(&broker, &["tail", "orders", "--from-beginning"]), all);

    let json = objects(&broker, &["--json", "tail", "orders", "--from-beginning"]);
    assert_eq!(json.len(), 4);
    assert_eq!(
        json[2],
        json!({
            "topic": "orders", "partition": 1, "offset": 0, "timestamp": time(3), "key": "k1",
            "cloudevent": true, "id": "e4", "type": "order.shipped", "source": "test",
            "time": format!("{}000Z", time(3).trim_end_matches('Z')), "subject": null,
            "correlation_id": "c1", "causation_id": "e2", "schema_version": 1, "extensions": {},
            "data": { "n": 3 },
        })
    );
    assert_eq!(json[3]["cloudevent"], false);
    assert_eq!(json[3]["data"], "hello");
    assert!(
        json[3]["not_cloudevent_reason"]
            .as_str()
            .unwrap()
            .contains("not a CloudEvent"),
        "{}",
        json[3]
    );

    let only = |args: &[&str]| {
        let mut all = vec!["tail", "orders", "--from-beginning"];
        all.extend_from_slice(args);
        lines(&broker, &all)
    };
    assert_eq!(only(&["--type", "order.placed"]), all[..2]);
    assert_eq!(only(&["--key", "k1"]), [all[0].clone(), all[2].clone()]);
    assert_eq!(only(&["--correlation-id", "c2"]), all[1..2]);
    assert_eq!(only(&["--max", "2"]), all[..2]);
    assert_eq!(
        only(&["--width", "5", "--type", "order.shipped"]),
        [all[2].replace(r#"{"n":3}"#, r#"{"n"…"#)]
    );

    // A structured-mode event comes out with its attributes and data.
    let payments = objects(&broker, &["--json", "tail", "payments", "--from-beginning"]);
    assert_eq!(payments.len(), 2);
    assert_eq!(
        (
            &payments[1]["id"],
            &payments[1]["source"],
            &payments[1]["data"]
        ),
        (&json!("e5"), &json!("py"), &json!({ "amount": 7 }))
    );
}

#[test]
fn tail_shows_the_last_records_by_default_or_from_an_offset() {
    let (_dir, broker) = fixture("tail-last");
    let every = lines(&broker, &["tail", "orders", "--from-beginning"]);
    assert_eq!(
        lines(&broker, &["tail", "orders"]),
        every,
        "the last 10 of 4 are all 4"
    );
    assert_eq!(
        lines(&broker, &["tail", "orders", "--last", "2"]),
        every[2..]
    );
    assert_eq!(
        lines(&broker, &["tail", "orders", "--last", "1"]),
        every[3..]
    );
    // Offset 1 of each partition.
    assert_eq!(
        lines(&broker, &["tail", "orders", "--offset", "1"]),
        [every[1].clone(), every[3].clone()]
    );
    // An offset past the end of both partitions: nothing, and no error.
    assert!(lines(&broker, &["tail", "orders", "--offset", "99"]).is_empty());
}

#[test]
fn tail_follow_prints_a_record_written_after_it_started() {
    let (dir, broker) = fixture("tail-follow");
    let mut command = Command::new(HERALD);
    command.args([
        "--bootstrap-servers",
        &broker.bootstrap,
        "tail",
        "orders",
        "--follow",
        "--last",
        "0",
        "--max",
        "1",
    ]);
    let stderr = dir.path("tail.err");
    let mut tail = Proc::spawn("herald tail --follow", command, &stderr);
    common::wait_until("tail said it follows", Duration::from_secs(30), || {
        std::fs::read_to_string(&stderr).is_ok_and(|s| s.contains("following orders"))
    });
    write(
        &broker.bootstrap,
        &[Rec {
            topic: "orders",
            partition: 1,
            key: "k9",
            value: r#"{"n":9}"#,
            at: 9,
            event: Some(("e9", "order.placed", "c9", None)),
        }],
    );
    let first = tail.next_line(Duration::from_secs(30));
    assert_eq!(
        first,
        line_of(
            "1/2",
            9,
            r#"order.placed  e9  key=k9  correlation=c9  {"n":9}"#
        )
    );
    // --max 1: it stops by itself after the one record, none of the older ones printed.
    assert!(tail.wait_exit(Duration::from_secs(30)).success());
    assert_eq!(tail.stdout(), [first]);
}

#[test]
fn trace_orders_a_flow_across_topics_under_its_causes() {
    let (_dir, broker) = fixture("trace");
    let traced = lines(
        &broker,
        &["trace", "c1", "--topic", "orders", "--topic", "payments"],
    );
    assert_eq!(
        traced,
        [
            format!(r#"{}  orders/0@0  order.placed  e1  {{"n":1}}"#, time(0)),
            format!(
                r#"{}  payments/0@0    payment.taken  e2  caused by e1  {{"amount":5}}"#,
                time(1)
            ),
            format!(
                r#"{}  orders/1@0      order.shipped  e4  caused by e2  {{"n":3}}"#,
                time(3)
            ),
        ]
    );
    let json = objects(
        &broker,
        &[
            "--json", "trace", "c2", "--topic", "orders", "--topic", "payments",
        ],
    );
    let summary: Vec<(String, String, u64)> = json
        .iter()
        .map(|o| {
            (
                o["topic"].as_str().unwrap().to_owned(),
                o["id"].as_str().unwrap().to_owned(),
                o["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("orders".into(), "e3".into(), 0),
            ("payments".into(), "e5".into(), 1)
        ]
    );
    assert_eq!(json[1]["causation_id"], "e3");
    assert!(lines(&broker, &["trace", "nobody", "--topic", "orders"]).is_empty());
}

#[test]
fn a_missing_topic_or_a_bad_time_says_what_to_do() {
    let (_dir, broker) = fixture("tail-errors");
    let out = herald(&broker, &["tail", "nope"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("topic `nope` does not exist") && stderr.contains("herald topics"),
        "{stderr}"
    );
    let out = herald(&broker, &["tail", "orders", "--from-time", "yesterday"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("10m, 2h or 1d"), "{stderr}");
}
