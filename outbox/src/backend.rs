//! One source for both backends: `backend!()` expands, in the module that invokes it, the
//! `Outbox` and `Relay` of that module's `Db`, `Pool`, `Connection`, `DIALECT` and `begin`.

macro_rules! backend {
    () => {
        use std::sync::Arc;

        use chrono::{DateTime, Utc};
        use herald::{Bus, HeraldEvent, PublishOptions};

        use crate::relay::{self, Step};
        use crate::sql::{self, ClaimedRow, Sql};
        use crate::{OutboxStats, RelayConfig, RelayHandle, Result};

        /// The outbox tables of one database: write events in transactions, read stats, revive
        /// dead rows, record processed events. Cloning is cheap.
        #[derive(Clone)]
        pub struct Outbox {
            pool: Pool,
            sql: Arc<Sql>,
        }

        impl std::fmt::Debug for Outbox {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Outbox").finish_non_exhaustive()
            }
        }

        impl Outbox {
            /// The outbox in tables `herald_outbox` and `herald_processed`.
            pub fn new(pool: Pool) -> Self {
                Self::with_prefix(pool, "").expect("the empty prefix is legal")
            }

            /// The outbox in tables `{prefix}herald_outbox` and `{prefix}herald_processed`.
            ///
            /// # Errors
            /// [`Error::Prefix`](crate::Error::Prefix) unless the prefix is lower-case letters,
            /// digits and `_`.
            pub fn with_prefix(pool: Pool, prefix: &str) -> Result<Self> {
                Ok(Self {
                    pool,
                    sql: Arc::new(Sql::new(prefix, &DIALECT)?),
                })
            }

            /// The database pool.
            pub fn pool(&self) -> &Pool {
                &self.pool
            }

            /// Creates the tables and indexes unless they exist.
            ///
            /// # Errors
            /// [`Error::Database`](crate::Error::Database).
            pub async fn migrate(&self) -> Result<()> {
                for statement in &self.sql.migrate {
                    sqlx::query(statement).execute(&self.pool).await?;
                }
                for statement in &self.sql.upgrade {
                    match sqlx::query(statement).execute(&self.pool).await {
                        Ok(_) => {}
                        // SQLite has no `ADD COLUMN IF NOT EXISTS`: the column is there already.
                        Err(sqlx::Error::Database(e)) if e.message().contains("duplicate column") => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }

            /// Writes `event` into the caller's transaction (pass `&mut tx`): it is published
            /// once the transaction commits, and never if it rolls back, with its integration
            /// counterparts (`#[event(from = ...)]`) in the same transaction. Returns its `ce_id`.
            ///
            /// # Errors
            /// [`Error::Herald`](crate::Error::Herald) when the event does not encode,
            /// [`Error::Database`](crate::Error::Database).
            pub async fn publish_transactional<E: HeraldEvent>(
                &self,
                conn: &mut Connection,
                bus: &Bus,
                event: &E,
            ) -> Result<String> {
                self.publish_transactional_with(conn, bus, event, PublishOptions::default())
                    .await
            }

            /// As [`Outbox::publish_transactional`], with metadata (correlation, key, ...).
            ///
            /// # Errors
            /// As [`Outbox::publish_transactional`].
            pub async fn publish_transactional_with<E: HeraldEvent>(
                &self,
                conn: &mut Connection,
                bus: &Bus,
                event: &E,
                options: PublishOptions,
            ) -> Result<String> {
                self.insert_all(conn, bus.encode_with_mapped(event, options)?, None)
                    .await
            }

            /// Writes a run-time event ([`herald::DynamicEvent`]: topic and type chosen at the
            /// call) into the caller's transaction, as [`Outbox::publish_transactional`] does a
            /// typed one. Returns its `ce_id`.
            ///
            /// # Errors
            /// [`Error::Herald`](crate::Error::Herald) when the event is refused (an illegal topic,
            /// an empty type), [`Error::Database`](crate::Error::Database).
            pub async fn publish_dynamic_transactional(
                &self,
                conn: &mut Connection,
                bus: &Bus,
                event: &herald::DynamicEvent,
                options: PublishOptions,
            ) -> Result<String> {
                self.insert_all(conn, vec![bus.encode_dynamic(event, options)?], None)
                    .await
            }

            /// Writes several events into the caller's transaction, published in this order
            /// once it commits. Returns their `ce_id`s.
            ///
            /// # Errors
            /// As [`Outbox::publish_transactional`]; nothing is written if one does not encode.
            pub async fn publish_batch_transactional<'e, E: HeraldEvent + 'e>(
                &self,
                conn: &mut Connection,
                bus: &Bus,
                events: impl IntoIterator<Item = &'e E>,
            ) -> Result<Vec<String>> {
                let encoded = events
                    .into_iter()
                    .map(|event| bus.encode_with_mapped(event, PublishOptions::default()))
                    .collect::<herald::Result<Vec<_>>>()?;
                let mut ids = Vec::with_capacity(encoded.len());
                for records in encoded {
                    ids.push(self.insert_all(&mut *conn, records, None).await?);
                }
                Ok(ids)
            }

            /// Writes `event` into the caller's transaction to be published at `at` (not
            /// before); it lives in the outbox, so it survives restarts. Returns its `ce_id`.
            ///
            /// # Errors
            /// As [`Outbox::publish_transactional`].
            pub async fn publish_scheduled<E: HeraldEvent>(
                &self,
                conn: &mut Connection,
                bus: &Bus,
                event: &E,
                at: DateTime<Utc>,
            ) -> Result<String> {
                let encoded = bus.encode_with_mapped(event, PublishOptions::default())?;
                self.insert_all(conn, encoded, Some(at.timestamp_millis()))
                    .await
            }

            /// Inserts an event and its integration counterparts (`#[event(from = ...)]`), in
            /// order, due at `available_at` (milliseconds since the epoch) or, when `None`, now by
            /// the database's clock; returns the event's id.
            async fn insert_all(
                &self,
                conn: &mut Connection,
                records: Vec<herald::EncodedEvent>,
                available_at: Option<i64>,
            ) -> Result<String> {
                let mut ids = Vec::with_capacity(records.len());
                for record in records {
                    ids.push(self.insert(&mut *conn, record, available_at).await?);
                }
                Ok(ids.swap_remove(0))
            }

            async fn insert(
                &self,
                conn: &mut Connection,
                event: herald::EncodedEvent,
                available_at: Option<i64>,
            ) -> Result<String> {
                let headers = sql::headers_json(&event.headers)?;
                sqlx::query(&self.sql.insert)
                    .bind(&event.id)
                    .bind(event.topic)
                    .bind(event.key)
                    .bind(event.event_type)
                    .bind(event.payload)
                    .bind(headers)
                    .bind(available_at)
                    .execute(conn)
                    .await?;
                Ok(event.id)
            }

            /// Records that consumer `group` processed `event_id`, in the caller's transaction:
            /// `true` the first time, `false` when it was recorded before (skip the event). Do
            /// the handler's own writes in the same transaction for effectively-once handling.
            ///
            /// # Errors
            /// [`Error::Database`](crate::Error::Database).
            pub async fn processed_once(
                &self,
                conn: &mut Connection,
                group: &str,
                event_id: &str,
            ) -> Result<bool> {
                let done = sqlx::query(&self.sql.processed)
                    .bind(group)
                    .bind(event_id)
                    .execute(conn)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Rows by state and the age of the oldest due pending row (by the database's clock).
            ///
            /// # Errors
            /// [`Error::Database`](crate::Error::Database).
            pub async fn stats(&self) -> Result<OutboxStats> {
                let (now, pending, scheduled, published, dead, oldest): (i64, i64, i64, i64, i64, Option<i64>) =
                    sqlx::query_as(&self.sql.stats)
                        .fetch_one(&self.pool)
                        .await?;
                let count = |n: i64| u64::try_from(n).unwrap_or_default();
                Ok(OutboxStats {
                    pending: count(pending),
                    scheduled: count(scheduled),
                    published: count(published),
                    dead: count(dead),
                    oldest_pending_age: std::time::Duration::from_millis(
                        oldest.map_or(0, |t| count(now - t)),
                    ),
                })
            }

            /// Makes the dead row `id` pending again with a fresh retry budget; `false` when no
            /// dead row has that id.
            ///
            /// # Errors
            /// [`Error::Database`](crate::Error::Database).
            pub async fn revive(&self, id: &str) -> Result<bool> {
                let done = sqlx::query(&self.sql.revive)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Makes every dead row pending again; returns how many.
            ///
            /// # Errors
            /// [`Error::Database`](crate::Error::Database).
            pub async fn revive_all(&self) -> Result<u64> {
                let done = sqlx::query(&self.sql.revive_all)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            /// Deletes the published rows and the processed-event ids older than `older_than` by
            /// the database's clock (pending and dead rows stay); the relay runs it every
            /// [`RelayConfig::purge_interval`] with [`RelayConfig::retain`].
            ///
            /// # Errors
            /// [`Error::Database`](crate::Error::Database).
            pub async fn purge(&self, older_than: std::time::Duration) -> Result<crate::Purged> {
                let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX / 2);
                let rows = sqlx::query(&self.sql.purge_published)
                    .bind(age)
                    .execute(&self.pool)
                    .await?;
                let ids = sqlx::query(&self.sql.purge_processed)
                    .bind(age)
                    .execute(&self.pool)
                    .await?;
                Ok(crate::Purged {
                    published_rows: rows.rows_affected(),
                    processed_ids: ids.rows_affected(),
                })
            }

            /// Claims due rows and leases them (one short transaction), publishes them with no
            /// transaction open, then marks them (another short one): writers never wait for
            /// Kafka. The lease outlasts the longest publish, so no other relay takes the rows
            /// (or later rows of their keys) meanwhile; a relay that dies leaves it to run out.
            /// "Due" and the lease are measured by the database's clock. A row that fails holds
            /// back the later rows of its key in the batch (they keep their retry budget), so no
            /// row of a key is published ahead of an earlier one.
            async fn relay_batch(&self, bus: &Bus, config: &RelayConfig) -> Result<Step> {
                let batch_size = config.batch_size.max(1);
                let lease = bus.config().delivery_timeout.saturating_mul(2) + std::time::Duration::from_secs(5);
                let mut tx = begin(&self.pool).await?;
                let rows = sqlx::query(&self.sql.claim)
                    .bind(i64::try_from(batch_size).unwrap_or(i64::MAX))
                    .fetch_all(&mut *tx)
                    .await?;
                let full = rows.len() == batch_size;
                let (mut seqs, mut events) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
                for row in &rows {
                    // The ordering column is the row's name: without it nothing can be marked.
                    let seq: i64 = sqlx::Row::try_get(row, "seq")?;
                    match claimed(row).map_err(|e| e.to_string()).and_then(|r| sql::row_event(r).map_err(|e| e.to_string())) {
                        Ok((seq, event)) => {
                            seqs.push(seq);
                            events.push(event);
                        }
                        // One unreadable row dies alone (it would head every batch); a dead row
                        // does not hold its key back, so the rows after it go on.
                        Err(reason) => {
                            // Its id for the log, unless that column is what does not decode.
                            let id: Option<String> = sqlx::Row::try_get(row, "id").ok();
                            tracing::error!(seq, id = id.as_deref().unwrap_or("(unreadable)"), %reason,
                                "an outbox row cannot be read; it is marked dead (fix it, then revive it)");
                            sqlx::query(&self.sql.unreadable)
                                .bind(&reason)
                                .bind(seq)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                }
                // Nothing due, or nothing readable.
                if events.is_empty() {
                    tx.commit().await?;
                    return Ok(Step::Batch {
                        published: 0,
                        failed: 0,
                        full,
                    });
                }
                sqlx::query(&self.sql.lease_in(&seqs))
                    .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                let result = bus.publish_encoded_batch(&events).await;
                if config.crash_after_publish {
                    return Ok(Step::Crashed);
                }
                let mut outcome = vec![RowOutcome::Published; seqs.len()];
                match result {
                    Ok(_) => {}
                    Err(herald::Error::Batch { failures, .. }) => {
                        for (index, error) in failures {
                            outcome[index] = match error {
                                herald::Error::HeldBack { .. } => RowOutcome::HeldBack,
                                error => RowOutcome::Failed(error.to_string()),
                            };
                        }
                    }
                    Err(error) => outcome.fill(RowOutcome::Failed(error.to_string())),
                }
                let mut tx = begin(&self.pool).await?;
                let of = |wanted: fn(&RowOutcome) -> bool| -> Vec<i64> {
                    seqs.iter().zip(&outcome).filter(|(_, o)| wanted(o)).map(|(seq, _)| *seq).collect()
                };
                let published = of(|o| matches!(o, RowOutcome::Published));
                if !published.is_empty() {
                    sqlx::query(&self.sql.published_in(&published))
                        .execute(&mut *tx)
                        .await?;
                }
                let held = of(|o| matches!(o, RowOutcome::HeldBack));
                if !held.is_empty() {
                    sqlx::query(&self.sql.release_in(&held))
                        .execute(&mut *tx)
                        .await?;
                }
                let mut failed = 0;
                for (seq, error) in seqs.iter().zip(&outcome) {
                    if let RowOutcome::Failed(error) = error {
                        if failed == 0 {
                            tracing::warn!(%error, rows = seqs.len() - published.len(), held = held.len(),
                                "the outbox relay could not publish rows; they stay pending and are retried");
                        }
                        sqlx::query(&self.sql.failed)
                            .bind(error)
                            .bind(i64::from(config.max_retries))
                            .bind(seq)
                            .execute(&mut *tx)
                            .await?;
                        failed += 1;
                    }
                }
                tx.commit().await?;
                Ok(Step::Batch {
                    published: published.len() as u64,
                    failed,
                    full,
                })
            }
        }

        /// What became of one row of a relayed batch.
        #[derive(Clone)]
        enum RowOutcome {
            Published,
            /// Not sent: an earlier row of its key in the batch failed.
            HeldBack,
            /// Not published, with its own error.
            Failed(String),
        }

        /// The columns of a claimed row; a column that does not decode is an error naming it.
        fn claimed(row: &<Db as sqlx::Database>::Row) -> std::result::Result<ClaimedRow, sqlx::Error> {
            use sqlx::Row;
            // By name, so that an error says which column.
            Ok((
                row.try_get("seq")?,
                row.try_get("id")?,
                row.try_get("topic")?,
                row.try_get("key")?,
                row.try_get("event_type")?,
                row.try_get("payload")?,
                row.try_get("headers")?,
            ))
        }

        /// Moves due outbox rows to Kafka: a tokio task polling in batches, in order per key.
        #[derive(Debug)]
        pub struct Relay;

        impl Relay {
            /// Starts a relay publishing `outbox`'s rows through `bus`; stop it with
            /// [`RelayHandle::stop`]. Several relays may run over one outbox.
            pub fn start(bus: Bus, outbox: Outbox, config: RelayConfig) -> RelayHandle {
                let batch_config = config.clone();
                // When the relay last purged: never, so the first batch purges.
                let purged = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
                relay::spawn(config, move || {
                    let (bus, outbox, config) = (bus.clone(), outbox.clone(), batch_config.clone());
                    let purged = purged.clone();
                    async move {
                        let due = {
                            let mut last = purged.lock().unwrap_or_else(|e| e.into_inner());
                            let due = last.is_none_or(|t| t.elapsed() >= config.purge_interval);
                            if due {
                                *last = Some(std::time::Instant::now());
                            }
                            due
                        };
                        if let (true, Some(retain)) = (due, config.retain) {
                            match outbox.purge(retain).await {
                                Ok(purged) => tracing::debug!(?purged, "outbox purged"),
                                Err(error) => tracing::warn!(%error, "purging the outbox failed; the next purge tries again"),
                            }
                        }
                        outbox.relay_batch(&bus, &config).await
                    }
                })
            }
        }
    };
}

pub(crate) use backend;
