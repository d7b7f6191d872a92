//! `herald broker` and `herald topics` as processes: the first line, the control channel, what the
//! mock cluster does with unknown topics, and the errors of `herald topics`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

fn topics(bootstrap: &str, args: &[&str]) -> std::process::Output {
    Command::new(HERALD)
        .arg("topics")
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .output()
        .unwrap()
}

#[test]
fn the_control_channel_answers_every_line_and_quit_stops_the_broker() {
    let dir = TempDir::new("control");
    let mut broker = Broker::start(&dir, &[("orders", 2)]);
    assert_eq!(
        broker.control("topic orders 2").split(':').next(),
        Some("error")
    );
    assert!(broker
        .control("restart")
        .starts_with("error: unknown command `restart`"));
    assert!(broker.control("topic x 0").starts_with("error:"));
    broker.control_ok("down");
    broker.control_ok("up");
    let json = broker.topics_json("orders", "nobody");
    assert_eq!(json["topics"][0]["partitions"].as_array().unwrap().len(), 2);
    assert!(json["topics"][0]["groups"][0]["partitions"][0]["committed"].is_null());
    broker.control_ok("quit");
    assert!(broker.proc.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn an_unknown_topic_is_created_with_four_partitions_when_a_producer_asks_for_it() {
    let dir = TempDir::new("autocreate");
    let broker = Broker::start(&dir, &[]);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    producer
        .send(BaseRecord::<(), _>::to("never.created").payload("x"))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let json = broker.topics_json("never.created", "g");
    let partitions = json["topics"][0]["partitions"].as_array().unwrap();
    println!("auto-created topic: {} partitions", partitions.len());
    assert_eq!(partitions.len(), 4);
}

#[test]
fn topics_fails_with_the_address_when_the_broker_is_unreachable_or_the_topic_absent() {
    let out = topics("127.0.0.1:1", &["--timeout", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot reach the Kafka brokers at 127.0.0.1:1"),
        "{stderr}"
    );

    let dir = TempDir::new("absent");
    let broker = Broker::start(&dir, &[("present", 1)]);
    let out = topics(&broker.bootstrap, &["--topic", "absent"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("topic `absent` does not exist"), "{stderr}");
    assert!(
        stderr.contains("present"),
        "the error lists the topics there are: {stderr}"
    );

    let out = Command::new(HERALD)
        .arg("topics")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bootstrap-servers"));
}
