//! The outbox relay while a node of a three-node Kafka is lost: part of the fault suite
//! (`cli/tests/faults.rs`), on the cluster `.ci/kafka/cluster.sh start DIR --nodes 3` started. The
//! relay goes on through the leader elections: every row is published, none is lost, each key stays
//! in order. SQLite (the relay's logic is the backends' shared code; PostgreSQL runs the same relay
//! in `outbox.rs`). Without a three-node cluster the test says so in one line and passes.

mod support;

use std::time::{Duration, Instant};

use herald_outbox::sqlite::{Outbox, Relay};
use herald_outbox::RelayConfig;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_every_row_in_key_order_while_a_node_is_lost() {
    let Some(cluster) = cluster::FaultCluster::from_env(
        "the_relay_publishes_every_row_in_key_order_while_a_node_is_lost",
    ) else {
        return;
    };
    const ROWS: u64 = 6_000;
    let kafka = TestKafka::start();
    let topic = kafka.topic("outbox-notes");
    cluster.create_topics(&[(&topic, 6)]);
    let bus = kafka
        .builder(herald::Config::new("outbox-node-loss").delivery_timeout(Duration::from_secs(5)))
        .build()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("outbox.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let outbox = Outbox::new(pool);
    outbox.migrate().await.unwrap();
    let mut written = Vec::new();
    for first in (0..ROWS).step_by(500) {
        let notes: Vec<Note> = (first..first + 500)
            .map(|n| Note {
                key: format!("k{}", n % 30),
                n,
            })
            .collect();
        let mut tx = outbox.pool().begin().await.unwrap();
        let ids = outbox
            .publish_batch_transactional(&mut tx, &bus, &notes)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        written.extend(
            ids.into_iter()
                .zip(&notes)
                .map(|(id, note)| (id, note.key.clone(), note.n)),
        );
    }
    let started = Instant::now();
    // Small batches, so that the relay is mid-way when the node goes.
    let relay = Relay::start(
        bus.clone(),
        outbox.clone(),
        RelayConfig {
            batch_size: 100,
            poll_interval: Duration::from_millis(20),
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(2),
            max_retries: 1_000,
            ..Default::default()
        },
    );
    wait_until("1,000 rows are published", || async {
        outbox.stats().await.unwrap().published >= 1_000
    })
    .await;
    let leader = tokio::task::block_in_place(|| cluster.leader_of(&topic, 0));
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(leader));
    let published_at_kill = outbox.stats().await.unwrap().published;
    wait_until("every row is published", || async {
        outbox.stats().await.unwrap().published >= ROWS
    })
    .await;
    let after_kill = killed_at.elapsed();
    let totals = relay.stop().await;
    tokio::task::block_in_place(|| {
        cluster.restart(leader);
        cluster.wait_in_sync(&topic, Duration::from_secs(120));
    });
    let seen = read_all(kafka.bootstrap(), &topic);
    let (duplicates, lost) = check(&written, &seen);
    let stats = outbox.stats().await.unwrap();
    println!(
        "outbox-node-loss: rows {ROWS}, killed node {leader} (leader of partition 0) after \
         {published_at_kill} published, the rest published {:.1} s after the kill, relay failures \
         {}, records {}, duplicates {duplicates}, lost {lost}, dead rows {}, wall {:.1} s",
        after_kill.as_secs_f64(),
        totals.failed,
        seen.len(),
        stats.dead,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0);
    assert_eq!(stats.dead, 0, "a row died during the node loss");
}
