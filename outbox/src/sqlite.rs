//! The outbox on SQLite (a file, no server): a relay takes the database's write lock for a batch
//! (`BEGIN IMMEDIATE`), so relays take turns and writers wait (busy timeout) while a batch is
//! published.

use sqlx::{Sqlite as Db, SqliteConnection as Connection, SqlitePool as Pool};

use crate::sql::Dialect;

const DIALECT: Dialect = Dialect {
    serial: "INTEGER PRIMARY KEY AUTOINCREMENT",
    blob: "BLOB",
    lock: "",
    now: "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    if_not_exists: "",
};

async fn begin(pool: &Pool) -> sqlx::Result<sqlx::Transaction<'static, Db>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

crate::backend::backend!();
