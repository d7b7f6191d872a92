//! The outbox's errors.

/// What went wrong in the outbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed a statement.
    #[error("outbox database error: {0}; check that the database is reachable and that Outbox::migrate() ran")]
    Database(#[from] sqlx::Error),
    /// herald could not encode or publish an event.
    #[error(transparent)]
    Herald(#[from] herald::Error),
    /// The table prefix is not a plain SQL identifier.
    #[error("invalid outbox table prefix `{0}`: use lower-case ASCII letters, digits and `_`, starting with a letter or `_`")]
    Prefix(String),
    /// A header value is not UTF-8 (the outbox keeps headers as JSON text).
    #[error("header `{0}` of the event is not UTF-8: the outbox keeps headers as text; send binary data in the payload")]
    Header(String),
    /// A stored row cannot be turned back into an event.
    #[error("outbox row `{id}` cannot be read: {reason}; fix or delete the row, then revive it")]
    Row {
        /// The row's event id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// The outbox's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
