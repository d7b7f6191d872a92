//! Publishing against the test broker (embedded, or the real Kafka of `HERALD_TEST_KAFKA`): batch
//! order under back-pressure, and waiting on a full queue.

mod support;

use herald::prelude::*;
use herald::Error;
use support::TestKafka;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct SeatReserved {
    #[event(key)]
    pub flight: String,
    pub seq: u64,
}

/// A bus on a broker of its own (a prefix of its own on a real Kafka) whose producer queue holds
/// only 10 records, so that a batch of 1,000 hits `QueueFull` over and over.
async fn small_queue_bus(service: &str) -> Bus {
    let kafka = TestKafka::start();
    let config = Config::new(service).property("queue.buffering.max.messages", "10");
    kafka.builder(config).build().await.expect("bus builds")
}

fn seats(n: u64) -> Vec<SeatReserved> {
    (0..n)
        .map(|seq| SeatReserved {
            flight: "LH-400".into(),
            seq,
        })
        .collect()
}

#[tokio::test]
async fn a_batch_keeps_its_order_when_the_producer_queue_is_full() {
    let bus = small_queue_bus("publishing-order").await;
    let deliveries = bus
        .publish_batch(seats(1_000))
        .await
        .expect("batch published");
    assert_eq!(deliveries.len(), 1_000);
    let partition = deliveries[0].partition;
    assert!(
        deliveries.iter().all(|d| d.partition == partition),
        "one key, one partition"
    );
    let inversions = deliveries
        .windows(2)
        .filter(|pair| pair[1].offset <= pair[0].offset)
        .count();
    assert_eq!(
        inversions, 0,
        "offsets must increase in batch order; {inversions} of 1,000 did not"
    );
    assert_eq!(bus.stats().events_published, 1_000);
}

#[tokio::test]
async fn single_publishes_wait_for_room_in_a_full_queue() {
    let bus = small_queue_bus("publishing-wait").await;
    // 200 concurrent single publishes into a queue of 10: each one that finds the queue full waits
    // for room instead of failing.
    let publishes = seats(200).into_iter().map(|seat| {
        let bus = bus.clone();
        async move { bus.publish(seat).await }
    });
    let results = futures::future::join_all(publishes).await;
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "some publishes failed: {failures:?}");
    assert_eq!(bus.stats().events_published, 200);
}

/// A seat with a note too large for the producer (its `message.max.bytes` is 2,000 here).
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct SeatNoted {
    #[event(key)]
    pub flight: String,
    pub note: String,
}

/// An event of a batch that cannot be sent holds back the batch's later events of its key (with
/// [`Error::HeldBack`] naming it) and each failure carries its own error; other keys go on.
/// Before, the later event of the key was published ahead of the failed one.
#[tokio::test]
async fn a_failed_event_holds_back_the_later_events_of_its_key() {
    let kafka = TestKafka::start();
    let config = Config::new("publishing-held").property("message.max.bytes", "2000");
    let bus = kafka.builder(config).build().await.expect("bus builds");
    let note = |flight: &str, size: usize| SeatNoted {
        flight: flight.into(),
        note: "x".repeat(size),
    };
    let batch = [
        note("A", 10),
        note("B", 5_000),
        note("B", 10),
        note("C", 10),
        note("B", 10),
    ];
    let Err(Error::Batch {
        total,
        delivered,
        failures,
    }) = bus.publish_batch(batch).await
    else {
        panic!("the oversized event fails the batch");
    };
    assert_eq!(total, 5);
    let sent: Vec<usize> = delivered.iter().map(|(index, _)| *index).collect();
    assert_eq!(
        sent,
        [0, 3],
        "the other keys are published, B's later events are not"
    );
    let failed: Vec<(usize, String)> = failures
        .iter()
        .map(|(index, error)| (*index, format!("{error:?}")))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed[0].1.contains("MessageSizeTooLarge"), "{failed:?}");
    for (index, error) in &failures[1..] {
        assert!(
            matches!(error, Error::HeldBack { behind: 1, .. }),
            "#{index}: {error:?}"
        );
        assert!(error.is_retriable());
    }
}
