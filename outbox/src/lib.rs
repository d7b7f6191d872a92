//! A transactional outbox for herald on PostgreSQL and SQLite (sqlx): an event is published if and
//! only if the database transaction that wrote it commits.
//!
//! - [`postgres::Outbox`] / [`sqlite::Outbox`] write encoded events into the caller's own
//!   transaction (`publish_transactional`, `publish_batch_transactional`, `publish_scheduled`).
//! - [`postgres::Relay`] / [`sqlite::Relay`] move due rows to Kafka, in order per key, in batches;
//!   several relays may run at once (`FOR UPDATE SKIP LOCKED` on PostgreSQL, one writer on
//!   SQLite). A republish after a crash carries the same `ce_id` (the row's id).
//! - `processed_once` records an event id per consumer group in the same database, so a handler
//!   doing its work in that transaction handles each event once although Kafka delivers at least
//!   once.
//!
//! See `docs/outbox.md`.

#![warn(missing_docs)]

mod backend;
mod config;
mod error;
mod relay;
mod sql;
mod stats;

pub mod postgres;
pub mod sqlite;

pub use config::RelayConfig;
pub use error::{Error, Result};
pub use relay::{RelayHandle, RelayTotals};
pub use stats::{OutboxStats, Purged};
