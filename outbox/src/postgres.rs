//! The outbox on PostgreSQL: relays lock the rows they publish (`FOR UPDATE SKIP LOCKED`), so
//! several relays never publish a row twice nor overtake one another on a key.

use sqlx::{PgConnection as Connection, PgPool as Pool, Postgres as Db};

use crate::sql::Dialect;

const DIALECT: Dialect = Dialect {
    serial: "BIGSERIAL PRIMARY KEY",
    blob: "BYTEA",
    lock: " FOR UPDATE SKIP LOCKED",
    now: "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000)::BIGINT",
    if_not_exists: "IF NOT EXISTS ",
};

async fn begin(pool: &Pool) -> sqlx::Result<sqlx::Transaction<'static, Db>> {
    pool.begin().await
}

crate::backend::backend!();
