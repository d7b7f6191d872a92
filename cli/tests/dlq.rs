//! `herald dlq` run as a process against the test's broker (embedded, or the real Kafka of
//! `HERALD_TEST_KAFKA` with a topic prefix of the test's own): dead letters are
//! written by a plain producer with the headers herald writes; the commands list, count, show and
//! replay them, in tables and as JSON, and fail with their exit codes when the broker or the
//! topic is not there.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../runtime/tests/support/mod.rs"]
mod support;

use herald::headers::dlq;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::Value;
use support::TestKafka;

/// The longest a command or a read may take.
const WAIT: Duration = Duration::from_secs(60);

/// Kills the child process if the test ends before it does.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `herald` with `args`, without the caller's Kafka environment.
fn herald(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KAFKA_") {
            command.env_remove(name);
        }
    }
    let child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the herald binary runs");
    let mut guard = Guard(child);
    let mut stdout_pipe = guard.0.stdout.take().unwrap();
    let mut stderr_pipe = guard.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "herald {args:?} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code().expect("exited, not killed"),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn succeeded(args: &[&str]) -> String {
    let output = herald(args);
    assert_eq!(
        output.code, 0,
        "herald {args:?} failed: {}\n{}",
        output.stderr, output.stdout
    );
    output.stdout
}

fn json(args: &[&str]) -> Value {
    let stdout = succeeded(args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: not JSON: {stdout}"))
}

/// A broker holding `orders` and `orders.dlq` (after the test's prefix on a real Kafka) with three
/// dead letters as herald writes them.
struct Fixture {
    kafka: TestKafka,
    /// The `orders` topic's name on this broker.
    orders: String,
}

fn letter_headers(orders: &str, seq: u32, kind: &str, at: &str) -> Vec<(String, String)> {
    [
        ("ce_specversion", "1.0".to_owned()),
        ("ce_id", format!("id-{seq}")),
        (
            "ce_type",
            if seq == 3 {
                "order.cancelled"
            } else {
                "order.placed"
            }
            .to_owned(),
        ),
        ("ce_source", "shop".to_owned()),
        ("content-type", "application/json".to_owned()),
        (dlq::ORIGINAL_TOPIC, orders.to_owned()),
        (dlq::ORIGINAL_PARTITION, "0".to_owned()),
        (dlq::ORIGINAL_OFFSET, (10 + seq).to_string()),
        (dlq::CONSUMER_GROUP, "billing".to_owned()),
        (dlq::HANDLER, "charge_card".to_owned()),
        (dlq::ERROR_KIND, kind.to_owned()),
        (dlq::ERROR_MESSAGE, format!("card {seq} declined")),
        (dlq::RETRY_COUNT, "4".to_owned()),
        (dlq::TIMESTAMP, at.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn value(seq: u32) -> String {
    format!(r#"{{"order":{seq},"total":12.5}}"#)
}

impl Fixture {
    fn new() -> Self {
        let kafka = TestKafka::start();
        let orders = kafka.topic("orders");
        let dead_letters = format!("{orders}.dlq");
        kafka.create_topic(&orders, 1);
        kafka.create_topic(&dead_letters, 1);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", kafka.bootstrap())
            .create()
            .unwrap();
        let letters = [
            (1, "retries-exhausted", "2026-01-01T10:00:00.000001Z"),
            (2, "permanent", "2026-01-01T11:00:00Z"),
            (3, "retries-exhausted", "2026-01-01T12:00:00Z"),
        ];
        for (seq, kind, at) in letters {
            let headers = letter_headers(&orders, seq, kind, at).iter().fold(
                OwnedHeaders::new(),
                |h, (k, v)| {
                    h.insert(Header {
                        key: k,
                        value: Some(v.as_str()),
                    })
                },
            );
            let key = format!("customer-{seq}");
            let payload = value(seq);
            producer
                .send(
                    BaseRecord::to(&dead_letters)
                        .key(&key)
                        .payload(&payload)
                        .headers(headers),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        Self { kafka, orders }
    }

    fn servers(&self) -> &str {
        self.kafka.bootstrap()
    }

    /// Runs `herald --bootstrap-servers <broker> dlq <args>`.
    fn args<'a>(&'a self, json: bool, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--bootstrap-servers", self.servers()];
        if json {
            all.push("--json");
        }
        all.push("dlq");
        all.extend_from_slice(args);
        all
    }

    /// Reads `expected` records of `topic` from its beginning.
    fn read(&self, topic: &str, expected: usize) -> Vec<OwnedMessage> {
        support::read_topic(self.servers(), topic, expected)
    }
}

#[test]
fn list_count_and_show_in_tables_and_json() {
    let fx = Fixture::new();
    let o = fx.orders.as_str();
    assert_eq!(
        succeeded(&fx.args(false, &["count", o])).trim(),
        format!("3 dead letters in {o}.dlq")
    );
    assert_eq!(
        json(&fx.args(true, &["count", o])),
        serde_json::json!({ "topic": format!("{o}.dlq"), "count": 3 })
    );

    let table = succeeded(&fx.args(false, &["list", o]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[0].starts_with("PARTITION  OFFSET  FAILED AT"),
        "{table}"
    );
    assert!(lines[1].contains("retries-exhausted") && lines[1].contains("card 1 declined"));
    assert!(lines[2].contains("permanent") && lines[2].contains("order.placed"));
    assert!(lines[3].contains("order.cancelled"), "{table}");

    let listed = json(&fx.args(true, &["list", o, "--limit", "2"]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["offset"], 0);
    assert_eq!(listed[0]["key"], "customer-1");
    assert_eq!(listed[0]["value"], value(1));
    assert_eq!(listed[0]["ce_id"], "id-1");
    let failure = &listed[0]["failure"];
    assert_eq!(failure["original_topic"], o);
    assert_eq!(failure["original_offset"], 11);
    assert_eq!(failure["consumer_group"], "billing");
    assert_eq!(failure["handlers"], serde_json::json!(["charge_card"]));
    assert_eq!(failure["retry_count"], 4);
    assert_eq!(failure["failed_at"], "2026-01-01T10:00:00.000001Z");
    assert_eq!(listed[1]["failure"]["error_kind"], "permanent");

    let shown = succeeded(&fx.args(false, &["show", o, "0", "2"]));
    assert!(shown.contains(&format!("{o}.dlq[0]@2")), "{shown}");
    assert!(shown.contains("order.cancelled (id id-3)"), "{shown}");
    assert!(shown.contains("card 3 declined"), "{shown}");
    assert!(shown.contains("dlq_original_offset: 13"), "{shown}");
    let shown = json(&fx.args(true, &["show", o, "0", "1"]));
    assert_eq!(shown["failure"]["error_message"], "card 2 declined");
    assert_eq!(shown["headers"].as_array().unwrap().len(), 14);
}

#[test]
fn replay_one_then_all_matching_into_the_original_topic() {
    let fx = Fixture::new();
    let o = fx.orders.as_str();
    let one = succeeded(&fx.args(false, &["replay", o, "--partition", "0", "--offset", "1"]));
    assert_eq!(one.trim(), format!("replayed {o}.dlq[0]@1 to {o}[0]@0"));
    let replayed = &fx.read(o, 1)[0];
    assert_eq!(replayed.key(), Some(&b"customer-2"[..]));
    assert_eq!(replayed.payload(), Some(value(2).as_bytes()));
    assert_eq!(support::header_values(replayed, dlq::REPLAY_COUNT), ["1"]);
    assert_eq!(
        support::header_values(replayed, dlq::ERROR_KIND),
        ["permanent"]
    );
    assert_eq!(support::header_values(replayed, "ce_id"), ["id-2"]);

    let report = json(&fx.args(
        true,
        &[
            "replay",
            o,
            "--all",
            "--error-kind",
            "retries-exhausted",
            "--since",
            "2026-01-01T11:30:00Z",
        ],
    ));
    assert_eq!(report["scanned"], 3);
    assert_eq!(report["matched"], 1);
    assert_eq!(report["stopped"], Value::Null);
    assert_eq!(report["replayed"][0]["offset"], 2);
    assert_eq!(report["replayed"][0]["replayed_to"]["offset"], 1);
    let both = fx.read(o, 2);
    assert_eq!(support::header_values(&both[1], "ce_id"), ["id-3"]);

    // A dry run says what would go where and writes nothing (the topic still holds 2).
    let dry = succeeded(&fx.args(false, &["replay", o, "--all", "--dry-run"]));
    assert!(
        dry.starts_with(&format!(
            "read 3 dead letters of {o}.dlq: 3 matched, 3 would be replayed, 0 skipped"
        )),
        "{dry}"
    );
    assert_eq!(fx.read(o, 2).len(), 2);

    // Meant for the group that failed: the copies name it.
    let all = succeeded(&fx.args(false, &["replay", o, "--all", "--failed-group"]));
    assert!(
        all.starts_with(&format!(
            "read 3 dead letters of {o}.dlq: 3 matched, 3 replayed, 0 skipped"
        )),
        "{all}"
    );
    let five = fx.read(o, 5);
    assert!(!support::header_values(&five[4], dlq::REPLAY_GROUP).is_empty());
    assert_eq!(
        support::header_values(&five[4], dlq::REPLAY_GROUP),
        support::header_values(&five[4], dlq::CONSUMER_GROUP)
    );
}

#[test]
fn errors_exit_non_zero_and_say_what_to_do() {
    // A loopback port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let unreachable = herald(&[
        "--bootstrap-servers",
        &closed,
        "dlq",
        "count",
        "orders",
        "--timeout",
        "2",
    ]);
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
    assert!(
        unreachable
            .stderr
            .contains(&format!("no Kafka broker at `{closed}`")),
        "{}",
        unreachable.stderr
    );

    let fx = Fixture::new();
    let o = fx.orders.as_str();
    let absent = herald(&fx.args(false, &["list", &fx.kafka.topic("payments")]));
    assert_eq!(absent.code, 4, "{}", absent.stderr);
    assert!(
        absent.stderr.contains(&format!(
            "topic `{}.dlq` does not exist",
            fx.kafka.topic("payments")
        )),
        "{}",
        absent.stderr
    );
    let suffixed = herald(&fx.args(false, &["count", o, "--suffix", ".failed"]));
    assert_eq!(suffixed.code, 4, "{}", suffixed.stderr);
    assert!(
        suffixed.stderr.contains(&format!("{o}.failed")),
        "{}",
        suffixed.stderr
    );

    let no_letter = herald(&fx.args(false, &["replay", o, "--partition", "0", "--offset", "9"]));
    assert_eq!(no_letter.code, 4, "{}", no_letter.stderr);
    assert!(
        no_letter
            .stderr
            .contains("partition 0 holds offsets 0 to 2"),
        "{}",
        no_letter.stderr
    );

    let no_servers = herald(&["dlq", "count", "orders"]);
    assert_eq!(no_servers.code, 2, "{}", no_servers.stderr);
    assert!(
        no_servers.stderr.contains("--bootstrap-servers"),
        "{}",
        no_servers.stderr
    );

    let no_target = herald(&fx.args(false, &["replay", o]));
    assert_eq!(no_target.code, 2, "{}", no_target.stderr);
    let filter_without_all = herald(&fx.args(
        false,
        &[
            "replay",
            o,
            "--partition",
            "0",
            "--offset",
            "0",
            "--error-kind",
            "permanent",
        ],
    ));
    assert_eq!(filter_without_all.code, 2, "{}", filter_without_all.stderr);
}
