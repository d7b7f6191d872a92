//! The outbox end to end, on PostgreSQL and on SQLite, with Kafka = herald's embedded broker or the
//! real Kafka of `HERALD_TEST_KAFKA`: publish if and only if the transaction commits, outages
//! waited out in order, racing relays, a crash between publish and mark, scheduled events across a
//! restart, dead rows revived.
//!
//! The PostgreSQL scenarios run when `DATABASE_URL` is set (`.ci/run` sets it); without it each
//! prints one line saying it was skipped. On a real Kafka, the two scenarios that take the broker
//! down (`rows_wait_out_a_broker_outage_then_all_go_in_order`, `rows_die_after_max_retries_and_revive`)
//! are skipped: they need the embedded broker's fault injection.

mod support;

use std::time::{Duration, Instant};

use herald_outbox::RelayConfig;
use support::*;

/// A relay that polls often (tests wait for it).
fn fast(config: RelayConfig) -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(20),
        retry_base_delay: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(500),
        ..config
    }
}

macro_rules! scenarios {
    ($backend:ident, $name:literal) => {
        mod $backend {
            use super::*;
            use herald_outbox::$backend::{Outbox, Relay};

            /// Writes `count` notes over `keys` keys in transactions of up to 500; returns
            /// (id, key, n) in the order written.
            async fn write(
                outbox: &Outbox,
                bus: &herald::Bus,
                count: u64,
                keys: u64,
            ) -> Vec<(String, String, u64)> {
                let mut written = Vec::new();
                let mut n = 0;
                while n < count {
                    let notes: Vec<Note> = (n..count.min(n + 500))
                        .map(|n| Note { key: format!("k{}", n % keys), n })
                        .collect();
                    let mut tx = outbox.pool().begin().await.unwrap();
                    let ids = outbox
                        .publish_batch_transactional(&mut tx, bus, &notes)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    for (id, note) in ids.into_iter().zip(&notes) {
                        written.push((id, note.key.clone(), note.n));
                    }
                    n += notes.len() as u64;
                }
                written
            }

            async fn published(outbox: &Outbox, count: u64) {
                wait_until(&format!("{count} rows are published"), || async {
                    outbox.stats().await.unwrap().published >= count
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rollback_publishes_nothing_and_commit_publishes_once() {
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(5)).await;
                let outbox = &db.outbox;

                let mut tx = outbox.pool().begin().await.unwrap();
                let rolled_back = outbox
                    .publish_transactional(&mut tx, &bus, &Note { key: "a".into(), n: 0 })
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                let mut tx = outbox.pool().begin().await.unwrap();
                let committed = outbox
                    .publish_transactional(&mut tx, &bus, &Note { key: "a".into(), n: 1 })
                    .await
                    .unwrap();
                tx.commit().await.unwrap();

                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                published(outbox, 1).await;
                relay.stop().await;
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                let ids: Vec<&str> = seen.iter().map(|s| s.id.as_str()).collect();
                assert_eq!(ids, [committed.as_str()], "rolled back: {rolled_back}");
                let stats = outbox.stats().await.unwrap();
                assert_eq!((stats.pending, stats.published, stats.dead), (0, 1, 0));
            }

            /// A run-time event (topic and type chosen at the call) goes through the outbox like
            /// a typed one: it reads as a `Note` on the notes topic, with its own id.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_dynamic_event_is_published_once_its_transaction_commits() {
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(5)).await;
                let outbox = &db.outbox;
                let event = herald::DynamicEvent::new(
                    "outbox-notes",
                    "outbox.note",
                    serde_json::json!({ "key": "d", "n": 7 }),
                )
                .key("d");
                let mut tx = outbox.pool().begin().await.unwrap();
                let id = outbox
                    .publish_dynamic_transactional(&mut tx, &bus, &event, Default::default())
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                published(outbox, 1).await;
                relay.stop().await;
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                assert_eq!(seen.len(), 1);
                assert_eq!((seen[0].id.as_str(), seen[0].key.as_str(), seen[0].n), (id.as_str(), "d", 7));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn integration_counterparts_are_written_in_the_same_transaction() {
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(5)).await;
                let outbox = &db.outbox;

                let mut tx = outbox.pool().begin().await.unwrap();
                outbox
                    .publish_transactional(&mut tx, &bus, &Memo { key: "a".into(), n: 0 })
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                let mut tx = outbox.pool().begin().await.unwrap();
                let memos = [Memo { key: "a".into(), n: 1 }, Memo { key: "b".into(), n: 2 }];
                let ids = outbox
                    .publish_batch_transactional(&mut tx, &bus, &memos)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                assert_eq!(outbox.stats().await.unwrap().pending, 4, "two memos, two counterparts");

                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                published(outbox, 4).await;
                relay.stop().await;
                let bootstrap = kafka.bootstrap();
                let mut seen: Vec<(String, u64)> = read_all(bootstrap, &kafka.topic("outbox-memos"))
                    .into_iter()
                    .map(|s| (s.id, s.n))
                    .collect();
                seen.sort_by_key(|(_, n)| *n);
                assert_eq!(seen, [(ids[0].clone(), 1), (ids[1].clone(), 2)]);
                let mut announced: Vec<u64> = read_all(bootstrap, &kafka.topic("outbox-memo-announcements"))
                    .into_iter()
                    .map(|s| s.n)
                    .collect();
                announced.sort_unstable();
                assert_eq!(announced, [1, 2], "the rolled-back memo's counterpart was not written");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rows_wait_out_a_broker_outage_then_all_go_in_order() {
                if !runs_on_embedded_only("rows_wait_out_a_broker_outage_then_all_go_in_order", "it takes the broker down with the embedded broker's fault injection") { return; }
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_millis(500)).await;
                let outbox = &db.outbox;
                kafka.embedded().broker_down().unwrap();
                let written = write(outbox, &bus, 300, 7).await;
                let relay = Relay::start(
                    bus.clone(),
                    outbox.clone(),
                    fast(RelayConfig { batch_size: 50, max_retries: 1_000, ..Default::default() }),
                );
                wait_until("the relay failed to publish", || async {
                    relay.totals().failed > 0
                })
                .await;
                let stats = outbox.stats().await.unwrap();
                assert_eq!((stats.pending, stats.published, stats.dead), (300, 0, 0));
                kafka.embedded().broker_up().unwrap();
                published(outbox, 300).await;
                let totals = relay.stop().await;
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                let (duplicates, lost) = check(&written, &seen);
                println!(
                    "{}: outage: rows 300, relay failures {}, records {}, duplicates {duplicates}, lost {lost}",
                    $name, totals.failed, seen.len()
                );
                assert_eq!(lost, 0);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_relays_racing_over_5000_rows_publish_each_once_in_key_order() {
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(10)).await;
                let outbox = &db.outbox;
                let written = write(outbox, &bus, 5_000, 50).await;
                let config = fast(RelayConfig { batch_size: 250, ..Default::default() });
                let started = Instant::now();
                let a = Relay::start(bus.clone(), outbox.clone(), config.clone());
                let b = Relay::start(bus.clone(), outbox.clone(), config);
                published(outbox, 5_000).await;
                let elapsed = started.elapsed();
                let (a, b) = (a.stop().await, b.stop().await);
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                let (duplicates, lost) = check(&written, &seen);
                println!(
                    "{}: race: rows 5000, relays 2 (published {} + {}), records {}, duplicates {duplicates}, lost {lost}, {:.0} rows/s",
                    $name, a.published, b.published, seen.len(), 5_000.0 / elapsed.as_secs_f64()
                );
                assert_eq!((duplicates, lost, seen.len()), (0, 0, 5_000));
                assert_eq!(a.published + b.published, 5_000);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_crash_between_publish_and_mark_republishes_the_same_ids_handled_once() {
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(5)).await;
                let outbox = &db.outbox;
                let written = write(outbox, &bus, 3, 3).await;
                let crashing = Relay::start(
                    bus.clone(),
                    outbox.clone(),
                    fast(RelayConfig { crash_after_publish: true, ..Default::default() }),
                );
                wait_until("the relay crashed", || async { crashing.is_finished() }).await;
                crashing.stop().await;
                assert_eq!(outbox.stats().await.unwrap().pending, 3, "nothing was marked");
                assert_eq!(read_all(kafka.bootstrap(), &kafka.topic("outbox-notes")).len(), 3);

                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                published(outbox, 3).await;
                relay.stop().await;
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                let (duplicates, lost) = check(&written, &seen);
                assert_eq!((seen.len(), duplicates, lost), (6, 3, 0));

                // The consumer: each delivery in a transaction guarded by processed_once.
                let mut handled = 0;
                for record in &seen {
                    let mut tx = outbox.pool().begin().await.unwrap();
                    if outbox.processed_once(&mut tx, "billing", &record.id).await.unwrap() {
                        handled += 1;
                    }
                    tx.commit().await.unwrap();
                }
                println!("{}: crash: records 6, handled {handled}", $name);
                assert_eq!(handled, 3);
                let mut tx = outbox.pool().begin().await.unwrap();
                assert!(outbox.processed_once(&mut tx, "audit", &seen[0].id).await.unwrap(),
                    "another group handles it on its own");
                tx.rollback().await.unwrap();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_scheduled_event_waits_for_its_time_and_survives_a_restart() {
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(5)).await;
                let outbox = &db.outbox;
                let at = chrono::Utc::now() + chrono::Duration::milliseconds(1_500);
                let mut tx = outbox.pool().begin().await.unwrap();
                let scheduled = outbox
                    .publish_scheduled(&mut tx, &bus, &Note { key: "s".into(), n: 1 }, at)
                    .await
                    .unwrap();
                let now = outbox
                    .publish_transactional(&mut tx, &bus, &Note { key: "s".into(), n: 2 })
                    .await
                    .unwrap();
                tx.commit().await.unwrap();

                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                published(outbox, 1).await;
                let stats = outbox.stats().await.unwrap();
                let before_time = chrono::Utc::now() < at;
                relay.stop().await;
                assert!(before_time, "the test machine was too slow to look before the time");
                assert_eq!((stats.pending, stats.scheduled), (1, 1));
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                assert_eq!(seen.iter().map(|s| &s.id).collect::<Vec<_>>(), [&now]);

                let restarted = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                published(outbox, 2).await;
                restarted.stop().await;
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                assert_eq!(seen.len(), 2);
                assert_eq!(seen[1].id, scheduled);
                assert!(seen[1].timestamp_ms >= at.timestamp_millis(),
                    "published at {} before its time {}", seen[1].timestamp_ms, at.timestamp_millis());
            }

            /// A row the relay cannot turn back into an event (its headers are not JSON; on
            /// SQLite also one whose headers column holds bytes, which does not even decode) dies
            /// alone, with the reason, and the relay publishes every other row, in order per key.
            /// Before, the relay's batch failed on it again and again and published nothing.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_unreadable_row_dies_alone_and_the_relay_goes_on() {
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(5)).await;
                let outbox = &db.outbox;
                let written = write(outbox, &bus, 6, 2).await;
                let mut bad = vec![written[0].0.clone()];
                sqlx::query(&format!("UPDATE {} SET headers = 'not json' WHERE id = $1", db.table()))
                    .bind(&written[0].0)
                    .execute(outbox.pool())
                    .await
                    .unwrap();
                if $name == "sqlite" {
                    sqlx::query(&format!("UPDATE {} SET headers = X'00FF' WHERE id = $1", db.table()))
                        .bind(&written[1].0)
                        .execute(outbox.pool())
                        .await
                        .unwrap();
                    bad.push(written[1].0.clone());
                }
                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                let good = (written.len() - bad.len()) as u64;
                published(outbox, good).await;
                relay.stop().await;
                let stats = outbox.stats().await.unwrap();
                assert_eq!((stats.published, stats.dead, stats.pending), (good, bad.len() as u64, 0));
                for id in &bad {
                    let (state, error): (String, Option<String>) = sqlx::query_as(&format!(
                        "SELECT state, last_error FROM {} WHERE id = $1",
                        db.table()
                    ))
                    .bind(id)
                    .fetch_one(outbox.pool())
                    .await
                    .unwrap();
                    assert_eq!(state, "dead");
                    assert!(error.as_deref().is_some_and(|e| e.contains("headers")), "{error:?}");
                }
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                let rest: Vec<_> = written.iter().filter(|(id, _, _)| !bad.contains(id)).cloned().collect();
                let (duplicates, lost) = check(&rest, &seen);
                assert_eq!((seen.len() as u64, duplicates, lost), (good, 0, 0));
            }

            /// A row that cannot be published holds back the later rows of its key, which keep
            /// their retry budget, and gets its own error; other keys go on. Before, the later
            /// row of the key was published in the same batch, ahead of the failed one.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_failed_row_holds_back_the_later_rows_of_its_key() {
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(5)).await;
                let outbox = &db.outbox;
                let mut tx = outbox.pool().begin().await.unwrap();
                let bulky = Bulky { key: "k".into(), n: 0, body: "x".repeat(1_200_000) };
                let first = outbox.publish_transactional(&mut tx, &bus, &bulky).await.unwrap();
                let held = outbox.publish_transactional(&mut tx, &bus, &Note { key: "k".into(), n: 1 }).await.unwrap();
                let other = outbox.publish_transactional(&mut tx, &bus, &Note { key: "j".into(), n: 2 }).await.unwrap();
                tx.commit().await.unwrap();
                let row = |id: String| {
                    let query = format!("SELECT state, attempts, last_error FROM {} WHERE id = $1", db.table());
                    async move {
                        let row: (String, i64, Option<String>) =
                            sqlx::query_as(&query).bind(id).fetch_one(outbox.pool()).await.unwrap();
                        row
                    }
                };
                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig { max_retries: 100, ..Default::default() }));
                wait_until("the other key's row is published and the large one failed twice", || async {
                    relay.totals().published >= 1 && row(first.clone()).await.1 >= 2
                })
                .await;
                relay.stop().await;
                let (state, _, error) = row(first.clone()).await;
                assert_eq!(state, "pending");
                assert!(error.as_deref().is_some_and(|e| e.contains("too large")), "{error:?}");
                assert_eq!(row(held.clone()).await, ("pending".to_owned(), 0, None), "held back, budget kept");
                assert_eq!(row(other.clone()).await.0, "published");
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                let ids: Vec<&str> = seen.iter().map(|s| s.id.as_str()).collect();
                assert_eq!(ids, [other.as_str()], "only the other key's row is on the topic");

                // Once the large row is dead, the held one goes.
                sqlx::query(&format!("UPDATE {} SET state = 'dead' WHERE id = $1", db.table()))
                    .bind(&first)
                    .execute(outbox.pool())
                    .await
                    .unwrap();
                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                published(outbox, 2).await;
                relay.stop().await;
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                let ids: Vec<&str> = seen.iter().map(|s| s.id.as_str()).collect();
                assert_eq!(ids.len(), 2, "{ids:?}");
                assert!(ids.contains(&held.as_str()), "{ids:?}");
            }

            /// A relay waiting for Kafka holds no database transaction: a writer commits at once
            /// while the relay's publish waits out the broker. Before, the relay held its
            /// transaction (on SQLite the write lock) across the publish, and every writer waited
            /// for up to the delivery timeout.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn writers_do_not_wait_for_a_relay_waiting_for_kafka() {
                if !runs_on_embedded_only("writers_do_not_wait_for_a_relay_waiting_for_kafka", "it takes the broker down with the embedded broker's fault injection") { return; }
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_secs(4)).await;
                let outbox = &db.outbox;
                write(outbox, &bus, 1, 1).await;
                kafka.embedded().broker_down().unwrap();
                let relay = Relay::start(bus.clone(), outbox.clone(), fast(RelayConfig::default()));
                // The relay polls every 20 ms: by now it is inside its first publish.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let started = Instant::now();
                write(outbox, &bus, 1, 1).await;
                let took = started.elapsed();
                kafka.embedded().broker_up().unwrap();
                published(outbox, 2).await;
                relay.stop().await;
                // A stall bound, not a speed target: the relay's publish waits up to 4 s.
                assert!(took < Duration::from_secs(2), "the writer waited {took:?} for the relay");
            }

            /// The relay deletes published rows and processed-event ids past their retention,
            /// and keeps pending ones. Before, both tables grew for good (and the claim scanned the
            /// published rows of a busy key).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_relay_purges_what_is_past_its_retention() {
                let Some(db) = database().await else { return };
                let (bus, _kafka) = bus(Duration::from_secs(5)).await;
                let outbox = &db.outbox;
                write(outbox, &bus, 3, 3).await;
                let mut tx = outbox.pool().begin().await.unwrap();
                assert!(outbox.processed_once(&mut tx, "billing", "id-1").await.unwrap());
                tx.commit().await.unwrap();
                let later = chrono::Utc::now() + chrono::Duration::hours(1);
                let mut conn = outbox.pool().acquire().await.unwrap();
                outbox
                    .publish_scheduled(&mut *conn, &bus, &Note { key: "later".into(), n: 9 }, later)
                    .await
                    .unwrap();
                drop(conn);
                let relay = Relay::start(
                    bus.clone(),
                    outbox.clone(),
                    fast(RelayConfig {
                        retain: Some(Duration::ZERO),
                        purge_interval: Duration::from_millis(50),
                        ..Default::default()
                    }),
                );
                wait_until("the relay published the three rows", || async { relay.totals().published == 3 }).await;
                wait_until("the published rows were purged", || async {
                    outbox.stats().await.unwrap().published == 0
                })
                .await;
                relay.stop().await;
                let stats = outbox.stats().await.unwrap();
                assert_eq!((stats.pending, stats.scheduled), (1, 1), "the scheduled row was purged");
                let mut tx = outbox.pool().begin().await.unwrap();
                assert!(
                    outbox.processed_once(&mut tx, "billing", "id-1").await.unwrap(),
                    "the processed id was kept"
                );
                tx.rollback().await.unwrap();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rows_die_after_max_retries_and_revive() {
                if !runs_on_embedded_only("rows_die_after_max_retries_and_revive", "it takes the broker down with the embedded broker's fault injection") { return; }
                let Some(db) = database().await else { return };
                let (bus, kafka) = bus(Duration::from_millis(300)).await;
                let outbox = &db.outbox;
                kafka.embedded().broker_down().unwrap();
                let written = write(outbox, &bus, 4, 2).await;
                let relay = Relay::start(
                    bus.clone(),
                    outbox.clone(),
                    fast(RelayConfig { max_retries: 1, ..Default::default() }),
                );
                wait_until("the rows are dead", || async {
                    outbox.stats().await.unwrap().dead == 4
                })
                .await;
                let stats = outbox.stats().await.unwrap();
                assert_eq!((stats.pending, stats.published), (0, 0));
                kafka.embedded().broker_up().unwrap();
                assert!(outbox.revive(&written[0].0).await.unwrap());
                assert!(!outbox.revive("no-such-id").await.unwrap());
                assert_eq!(outbox.revive_all().await.unwrap(), 3);
                published(outbox, 4).await;
                relay.stop().await;
                let seen = read_all(kafka.bootstrap(), &kafka.topic("outbox-notes"));
                let (_, lost) = check(&written, &seen);
                assert_eq!(lost, 0);
            }
        }
    };
}

/// A PostgreSQL outbox in tables of its own, dropped afterwards.
mod pg_db {
    use herald_outbox::postgres::Outbox;

    pub struct Db {
        pub outbox: Outbox,
        prefix: String,
        url: String,
    }

    /// A database of the test's own, or `None` (with a line saying so) when `DATABASE_URL` is
    /// unset.
    pub async fn database() -> Option<Db> {
        let Some(url) = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                super::support::say("skipped the PostgreSQL outbox scenarios: set DATABASE_URL=postgres://... to run them (.ci/run does)");
            });
            return None;
        };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(6)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {url}: {e}; start it (.ci/run does) or set DATABASE_URL")
            });
        let prefix = format!("t{}_", super::support::unique());
        let outbox = Outbox::with_prefix(pool, &prefix).unwrap();
        outbox.migrate().await.unwrap();
        Some(Db {
            outbox,
            prefix,
            url,
        })
    }

    impl Db {
        /// The outbox table's name.
        pub fn table(&self) -> String {
            format!("{}herald_outbox", self.prefix)
        }
    }

    impl Drop for Db {
        fn drop(&mut self) {
            let (url, prefix) = (self.url.clone(), self.prefix.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                    for table in ["herald_outbox", "herald_processed"] {
                        sqlx::query(&format!("DROP TABLE IF EXISTS {prefix}{table}"))
                            .execute(&mut conn)
                            .await
                            .unwrap();
                    }
                });
            })
            .join()
            .unwrap();
        }
    }
}

/// A SQLite outbox in a file of its own, deleted afterwards.
mod sqlite_db {
    use herald_outbox::sqlite::Outbox;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    pub struct Db {
        pub outbox: Outbox,
        _dir: tempfile::TempDir,
    }

    impl Db {
        /// The outbox table's name.
        pub fn table(&self) -> String {
            "herald_outbox".into()
        }
    }

    pub async fn database() -> Option<Db> {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("outbox.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        let outbox = Outbox::new(pool);
        outbox.migrate().await.unwrap();
        Some(Db { outbox, _dir: dir })
    }
}

mod postgres_tests {
    use super::pg_db::database;
    use super::*;
    scenarios!(postgres, "postgres");
}

mod sqlite_tests {
    use super::sqlite_db::database;
    use super::*;
    scenarios!(sqlite, "sqlite");
}
