//! `herald::browse` against the test's broker (embedded, or the real Kafka of `HERALD_TEST_KAFKA`):
//! a bounded read stops exactly at the high watermarks taken at its start, a followed read picks
//! up a record written after it started, and (real Kafka only: the mock cluster finds no offset
//! for a time) a read from a time returns exactly the records written at or after it.

mod support;

use std::time::Duration;

use herald::browse::{Filter, Record, StartAt, TopicReader};
use herald::Config;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{TestKafka, WAIT};

/// Writes to `partition` of `topic` a record with `key` and the Kafka timestamp `at_ms`; a
/// binary-mode CloudEvent of type `seen` with id `id` when `event`, else plain text.
async fn write(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    id: &str,
    at_ms: i64,
    event: bool,
) {
    let mut headers = OwnedHeaders::new();
    if event {
        for (key, value) in [
            ("ce_specversion", "1.0"),
            ("ce_id", id),
            ("ce_type", "seen"),
            ("ce_source", "browse-test"),
            ("ce_correlationid", "flow"),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    let value = if event {
        format!(r#"{{"id":"{id}"}}"#)
    } else {
        format!("plain {id}")
    };
    producer
        .send(
            FutureRecord::to(topic)
                .partition(partition)
                .key(id)
                .payload(&value)
                .timestamp(at_ms)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

fn config(kafka: &TestKafka) -> Config {
    Config::new("browse-test").bootstrap_servers(kafka.bootstrap())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ids(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.key_text().unwrap()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_bounded_read_stops_exactly_at_the_high_watermarks_taken_at_its_start() {
    let kafka = TestKafka::start();
    let topic = kafka.topic("browse.bounded");
    kafka.create_topic(&topic, 3);
    let producer = support::plain_producer(kafka.bootstrap());
    for n in 0..30 {
        write(
            &producer,
            &topic,
            n % 3,
            &format!("r{n:02}"),
            now_ms(),
            n % 5 != 0,
        )
        .await;
    }
    let reader = TopicReader::open(&config(&kafka), &topic).await.unwrap();
    let marks = reader.watermarks().await.unwrap();
    let held: i64 = marks.iter().map(|p| p.high - p.low).sum();
    assert_eq!(held, 30);

    let records = reader
        .read(StartAt::Beginning, Filter::default())
        .await
        .unwrap();
    assert_eq!(records.expected(), 30);
    // Written after the read started: past its ends, so never read.
    for n in 30..36 {
        write(
            &producer,
            &topic,
            n % 3,
            &format!("r{n:02}"),
            now_ms(),
            true,
        )
        .await;
    }
    let read = tokio::time::timeout(WAIT, records.collect())
        .await
        .expect("a bounded read ends")
        .unwrap();
    assert_eq!(
        read.len() as i64,
        held,
        "read count == sum of the watermarks"
    );
    let expected: Vec<String> = (0..30).map(|n| format!("r{n:02}")).collect();
    assert_eq!(ids(&read), expected);
    for record in &read {
        let mark = marks
            .iter()
            .find(|p| p.partition == record.partition)
            .unwrap();
        assert!(record.offset < mark.high, "{record:?} is past {mark:?}");
    }
    // The plain records (every fifth) come out marked, not as errors.
    assert_eq!(read.iter().filter(|r| r.event().is_none()).count(), 6);

    // Filters, and the last records of each partition.
    let key = Filter {
        key: Some("r07".into()),
        ..Filter::default()
    };
    let found = reader.read(StartAt::Beginning, key).await.unwrap();
    assert_eq!(ids(&found.collect().await.unwrap()), ["r07"]);
    let typed = Filter {
        event_type: Some("seen".into()),
        correlation_id: Some("flow".into()),
        ..Filter::default()
    };
    let events = reader.read(StartAt::Beginning, typed).await.unwrap();
    assert_eq!(events.collect().await.unwrap().len(), 30);
    let last = reader
        .read(StartAt::Last(1), Filter::default())
        .await
        .unwrap();
    assert_eq!(ids(&last.collect().await.unwrap()), ["r33", "r34", "r35"]);
}

#[tokio::test]
async fn a_followed_read_picks_up_a_record_written_after_it_started() {
    let kafka = TestKafka::start();
    let topic = kafka.topic("browse.follow");
    kafka.create_topic(&topic, 2);
    let producer = support::plain_producer(kafka.bootstrap());
    write(&producer, &topic, 0, "old", now_ms(), true).await;
    let reader = TopicReader::open(&config(&kafka), &topic).await.unwrap();
    let mut records = reader
        .follow(StartAt::End, Filter::default())
        .await
        .unwrap();
    assert_eq!(records.expected(), 0);
    write(&producer, &topic, 1, "new", now_ms(), true).await;
    let first = tokio::time::timeout(WAIT, records.next())
        .await
        .expect("the followed read hands out the new record")
        .expect("a followed read does not end")
        .unwrap();
    assert_eq!(first.key_text().as_deref(), Some("new"));
    assert_eq!((first.partition, first.offset), (1, 0));
    assert_eq!(first.event().unwrap().id, "new");
}

#[tokio::test]
async fn a_read_from_a_time_returns_exactly_the_records_written_at_or_after_it() {
    let kafka = TestKafka::start();
    let topic = kafka.topic("browse.time");
    kafka.create_topic(&topic, 2);
    let producer = support::plain_producer(kafka.bootstrap());
    // Explicit timestamps an hour ago, ten seconds apart: earlier ones, the cut, later ones.
    let base = now_ms() - 3_600_000;
    for (n, id) in ["a0", "a1", "a2", "a3"].iter().enumerate() {
        write(&producer, &topic, n as i32 % 2, id, base + n as i64, true).await;
    }
    for (n, id) in ["b0", "b1", "b2"].iter().enumerate() {
        write(
            &producer,
            &topic,
            n as i32 % 2,
            id,
            base + 10_000 + n as i64,
            true,
        )
        .await;
    }
    let cut = chrono::DateTime::from_timestamp_millis(base + 5_000).unwrap();
    let reader = TopicReader::open(&config(&kafka), &topic).await.unwrap();
    let read = reader
        .read(StartAt::Time(cut), Filter::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();

    if !TestKafka::is_real() {
        // The mock cluster answers ListOffsets by time with -1: every partition starts at its end.
        assert!(read.is_empty(), "{read:?}");
        support::runs_on_real_kafka_only(
            "a_read_from_a_time_returns_exactly_the_records_written_at_or_after_it (its Kafka half)",
        );
        return;
    }
    assert_eq!(ids(&read), ["b0", "b1", "b2"]);
    // A time after every record: nothing, the read starts at the ends.
    let later = chrono::DateTime::from_timestamp_millis(base + 20_000).unwrap();
    let none = reader
        .read(StartAt::Time(later), Filter::default())
        .await
        .unwrap();
    assert_eq!(none.expected(), 0);
    assert!(none.collect().await.unwrap().is_empty());
}
