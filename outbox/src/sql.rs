//! The outbox's SQL, one text for both backends; only a few words differ ([`Dialect`]).

use crate::{Error, Result};

/// What differs between PostgreSQL and SQLite.
pub(crate) struct Dialect {
    /// The ordering column's type.
    pub serial: &'static str,
    /// The payload's type.
    pub blob: &'static str,
    /// Appended to the claim: rows other relays hold are skipped, not waited for.
    pub lock: &'static str,
    /// Put after `ADD COLUMN` where the database has it (else the migration ignores the error
    /// of a column that is already there).
    pub if_not_exists: &'static str,
    /// The database's clock in milliseconds since the Unix epoch, one value per statement: every
    /// time the outbox stores or compares is the database's, so hosts with skewed clocks agree on
    /// what is due.
    pub now: &'static str,
}

/// The statements, with the table names filled in.
pub(crate) struct Sql {
    pub migrate: Vec<String>,
    /// Columns added since the first version; "duplicate column" errors are ignored.
    pub upgrade: Vec<String>,
    pub lease: String,
    pub release: String,
    pub insert: String,
    pub claim: String,
    pub published: String,
    pub failed: String,
    pub unreadable: String,
    pub processed: String,
    pub stats: String,
    pub revive: String,
    pub revive_all: String,
    pub purge_published: String,
    pub purge_processed: String,
}

/// The columns a claim returns.
pub(crate) type ClaimedRow = (i64, String, String, Option<String>, String, Vec<u8>, String);

impl Sql {
    /// The statements for tables `{prefix}herald_outbox` and `{prefix}herald_processed`.
    pub fn new(prefix: &str, dialect: &Dialect) -> Result<Self> {
        let legal = prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !prefix.starts_with(|c: char| c.is_ascii_digit());
        if !legal {
            return Err(Error::Prefix(prefix.into()));
        }
        let o = format!("{prefix}herald_outbox");
        let p = format!("{prefix}herald_processed");
        let Dialect {
            serial,
            blob,
            lock,
            if_not_exists,
            now,
        } = dialect;
        Ok(Self {
            migrate: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {o} (
                        seq {serial},
                        id TEXT NOT NULL UNIQUE,
                        topic TEXT NOT NULL,
                        key TEXT,
                        event_type TEXT NOT NULL,
                        payload {blob} NOT NULL,
                        headers TEXT NOT NULL,
                        created_at BIGINT NOT NULL,
                        available_at BIGINT NOT NULL,
                        state TEXT NOT NULL DEFAULT 'pending',
                        attempts BIGINT NOT NULL DEFAULT 0,
                        last_error TEXT,
                        published_at BIGINT,
                        lease_until BIGINT)"
                ),
                format!("CREATE INDEX IF NOT EXISTS {o}_due ON {o} (state, available_at, seq)"),
                format!("CREATE INDEX IF NOT EXISTS {o}_key ON {o} (key, seq)"),
                // The claim looks for older pending rows of a key: this index holds only those,
                // not the published ones a busy key piles up.
                format!(
                    "CREATE INDEX IF NOT EXISTS {o}_pending_key ON {o} (key, seq) WHERE state = 'pending'"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {p} (
                        consumer_group TEXT NOT NULL,
                        event_id TEXT NOT NULL,
                        processed_at BIGINT NOT NULL,
                        PRIMARY KEY (consumer_group, event_id))"
                ),
            ],
            upgrade: vec![format!(
                "ALTER TABLE {o} ADD COLUMN {if_not_exists}lease_until BIGINT"
            )],
            // A claimed row is leased to its relay while the relay publishes it, outside any
            // transaction; a relay that dies leaves the lease to run out.
            lease: format!("UPDATE {o} SET lease_until = {now} + $1 WHERE seq IN "),
            // Rows held back behind an earlier failed row of their key: free again, budget kept.
            release: format!("UPDATE {o} SET lease_until = NULL WHERE seq IN "),
            // `$7`: when a scheduled row is due; NULL for now.
            insert: format!(
                "INSERT INTO {o} (id, topic, key, event_type, payload, headers, created_at, available_at)
                 VALUES ($1, $2, $3, $4, $5, $6, {now}, COALESCE($7, {now}))"
            ),
            // The first `$2` due rows nobody else holds; of those, a row goes only when no older
            // due row of its key is still pending outside this batch (held by another relay).
            claim: format!(
                "WITH c AS (SELECT seq FROM {o} WHERE state = 'pending' AND available_at <= {now}
                              AND (lease_until IS NULL OR lease_until <= {now})
                            ORDER BY seq LIMIT $1{lock})
                 SELECT o.seq, o.id, o.topic, o.key, o.event_type, o.payload, o.headers FROM {o} o
                 WHERE o.seq IN (SELECT seq FROM c)
                   AND NOT EXISTS (SELECT 1 FROM {o} b WHERE b.key = o.key AND b.seq < o.seq
                                   AND b.state = 'pending' AND b.available_at <= {now}
                                   AND b.seq NOT IN (SELECT seq FROM c))
                 ORDER BY o.seq"
            ),
            published: format!(
                "UPDATE {o} SET state = 'published', published_at = {now}, last_error = NULL, lease_until = NULL WHERE seq IN "
            ),
            failed: format!(
                "UPDATE {o} SET attempts = attempts + 1, last_error = $1, lease_until = NULL,
                        state = CASE WHEN attempts + 1 > $2 THEN 'dead' ELSE 'pending' END
                 WHERE seq = $3"
            ),
            unreadable: format!(
                "UPDATE {o} SET state = 'dead', attempts = attempts + 1, last_error = $1 WHERE seq = $2"
            ),
            processed: format!(
                "INSERT INTO {p} (consumer_group, event_id, processed_at) VALUES ($1, $2, {now})
                 ON CONFLICT DO NOTHING"
            ),
            // The database's clock comes first: the age of the oldest due row is measured by it.
            stats: format!(
                "SELECT {now}, COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0),
                        COALESCE(SUM(CASE WHEN state = 'pending' AND available_at > {now} THEN 1 ELSE 0 END), 0),
                        COALESCE(SUM(CASE WHEN state = 'published' THEN 1 ELSE 0 END), 0),
                        COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0),
                        MIN(CASE WHEN state = 'pending' AND available_at <= {now} THEN available_at END)
                 FROM {o}"
            ),
            revive: format!(
                "UPDATE {o} SET state = 'pending', attempts = 0 WHERE id = $1 AND state = 'dead'"
            ),
            revive_all: format!(
                "UPDATE {o} SET state = 'pending', attempts = 0 WHERE state = 'dead'"
            ),
            purge_published: format!(
                "DELETE FROM {o} WHERE state = 'published' AND published_at < {now} - $1"
            ),
            purge_processed: format!("DELETE FROM {p} WHERE processed_at < {now} - $1"),
        })
    }

    /// Marks the rows `seqs` published (the list is built from integers, not user text).
    pub fn published_in(&self, seqs: &[i64]) -> String {
        format!("{}({})", self.published, list(seqs))
    }

    /// Frees the rows `seqs` (held back behind a failed row of their key) without a failure.
    pub fn release_in(&self, seqs: &[i64]) -> String {
        format!("{}({})", self.release, list(seqs))
    }

    /// Leases the rows `seqs` to this relay for `$1` milliseconds.
    pub fn lease_in(&self, seqs: &[i64]) -> String {
        format!("{}({})", self.lease, list(seqs))
    }
}

/// `seqs` as an SQL list (integers, not user text).
fn list(seqs: &[i64]) -> String {
    seqs.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// An encoded event's headers as JSON text.
pub(crate) fn headers_json(headers: &[(String, Vec<u8>)]) -> Result<String> {
    let text = headers
        .iter()
        .map(|(name, value)| {
            std::str::from_utf8(value)
                .map(|v| (name.as_str(), v))
                .map_err(|_| Error::Header(name.clone()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::to_string(&text).expect("strings serialize"))
}

/// A claimed row as the event it stores.
pub(crate) fn row_event(row: ClaimedRow) -> Result<(i64, herald::EncodedEvent)> {
    let (seq, id, topic, key, event_type, payload, headers) = row;
    let headers: Vec<(String, String)> =
        serde_json::from_str(&headers).map_err(|e| Error::Row {
            id: id.clone(),
            reason: format!("its headers are not a JSON list of [name, value] pairs: {e}"),
        })?;
    Ok((
        seq,
        herald::EncodedEvent {
            id,
            event_type,
            topic,
            key,
            payload,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
        },
    ))
}
