//! herald's error type, and the error a handler returns.

use std::fmt;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The result type of herald's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in herald, with variants a caller can match on. Each message says
/// what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing or invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The registered events and handlers contradict each other (found at start-up); every
    /// conflict is listed.
    #[error("invalid event registry: {0}")]
    Registry(RegistryConflicts),

    /// An event could not be serialized to JSON.
    #[error(
        "could not serialize event `{event_type}` to JSON: {source}; check its `Serialize` impl"
    )]
    Encode {
        /// The event type that failed.
        event_type: &'static str,
        /// What serde_json reported.
        source: serde_json::Error,
    },

    /// The broker did not acknowledge a published event. [`Error::is_retriable`] tells whether
    /// publishing it again can succeed; the message says what to change when it cannot.
    #[error("publishing `{event_type}` to topic `{topic}` failed: {source}; the event was not published, {}", publish_advice(&source.0))]
    Publish {
        /// The event type that was being published.
        event_type: &'static str,
        /// The topic it was sent to.
        topic: &'static str,
        /// What librdkafka reported.
        source: KafkaCause,
    },

    /// Some events of a batch were not acknowledged; those that were, and why each other one
    /// failed, are listed.
    #[error("{} of {total} events of the batch were not published (first error: {}); the {} acknowledged ones are in `delivered`, each failure in `failures`", failures.len(), first_failure(failures), delivered.len())]
    Batch {
        /// How many events the batch had.
        total: usize,
        /// The acknowledged events, in batch order, with their index in the batch.
        delivered: Vec<(usize, crate::event::envelope::Delivery)>,
        /// The events that were not, in batch order, with their index in the batch and their
        /// own error.
        failures: Vec<(usize, Error)>,
    },

    /// An event of a batch was not sent because an earlier event of the batch with the same
    /// topic and key failed: sending it would have put it ahead of that one.
    #[error("publishing `{event_type}` to topic `{topic}` was held back: the earlier event at index {behind} of the batch has the same key and was not published, and this one must not overtake it; publish both again, in order")]
    HeldBack {
        /// The event type that was held back.
        event_type: &'static str,
        /// Its topic.
        topic: &'static str,
        /// The index in the batch of the earlier event of the same key that failed.
        behind: usize,
    },

    /// The producer hit a fatal error (for an idempotent producer: its delivery guarantees could
    /// no longer be kept). herald replaced it with a new producer; publishing again is safe.
    #[error("publishing `{event_type}` to topic `{topic}` failed: the producer hit a fatal error ({code}: {reason}); the event was not published, and herald replaced the producer with a new one, so publish it again")]
    ProducerFatal {
        /// The event type that was being published.
        event_type: &'static str,
        /// The topic it was sent to.
        topic: &'static str,
        /// librdkafka's underlying fatal error code.
        code: KafkaCode,
        /// librdkafka's description of the fatal error.
        reason: String,
    },

    /// A topic could not be created or inspected.
    #[error("topic `{topic}`: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// Why it failed and what to do.
        reason: String,
    },

    /// A topic that was to be created exists already. Creating topics at start-up treats this as
    /// success.
    #[error(
        "topic `{topic}` exists already; use it as it is, or delete it first to create it anew"
    )]
    TopicExists {
        /// The topic.
        topic: String,
    },

    /// The Kafka client failed outside of publishing.
    #[error("kafka {operation} failed: {source}")]
    Kafka {
        /// What herald was doing.
        operation: &'static str,
        /// What librdkafka reported.
        source: KafkaCause,
    },

    /// Shutting down took longer than allowed; in-flight handlers were abandoned and their events
    /// will be delivered again.
    #[error("shutdown did not finish within {0:?}; unfinished events were not committed and will be redelivered")]
    ShutdownTimeout(Duration),

    /// `start` was called on a bus that is already consuming.
    #[error("the bus is already consuming; call shutdown() before starting it again")]
    AlreadyRunning,

    /// The operation needs a started bus.
    #[error("the bus is not consuming: call start() first")]
    NotRunning,

    /// The consumer groups got no partitions within the given time.
    #[error("consumer groups got no partitions within {0:?}; check that the broker is reachable and the topics exist, or wait longer")]
    AssignmentTimeout(Duration),

    /// A consumer group's task panicked or died; its uncommitted events will be redelivered to the
    /// next member of the group. This is not a shutdown timeout.
    #[error("the consumer of group `{group}` failed: {reason}; restart the bus (uncommitted events will be redelivered) and check the logs for the cause")]
    ConsumerFailed {
        /// The consumer group.
        group: String,
        /// What happened to it.
        reason: String,
    },

    /// The bus is not running or was already shut down.
    #[error("{0}")]
    State(&'static str),

    /// No reply to a request came within its timeout (publishing included). The command may
    /// still be handled later; its late reply is dropped.
    #[error("no reply to command `{command}` (id `{id}`) within {timeout:?}: no handler answered in time; check that a service handles `{command}` and is running, or allow more time (`#[command(timeout = \"...\")]`, `RequestOptions::timeout`)")]
    RequestTimeout {
        /// The command's type (`ce_type`).
        command: &'static str,
        /// The command's id (`ce_id`).
        id: String,
        /// How long the request waited.
        timeout: Duration,
    },

    /// The command's handler failed for good (a permanent error, retries exhausted, data that does
    /// not fit its type): the command was dead-lettered and this is its error reply.
    #[error("command `{command}` (id `{id}`) failed ({kind}) in handler `{handler}`: {message}; the command is on the dead-letter topic")]
    CommandFailed {
        /// The command's type (`ce_type`).
        command: &'static str,
        /// The command's id (`ce_id`).
        id: String,
        /// The dead-letter kind: `permanent`, `retries-exhausted`, `incompatible`, ...
        kind: String,
        /// The handler that failed (empty when none ran).
        handler: String,
        /// The handler's error.
        message: String,
    },

    /// The reply to a command does not decode as the command's reply type: the handling service
    /// runs another version of the command.
    #[error("the reply to command `{command}` (id `{id}`) does not fit its reply type: {reason}; the handling service runs another version of the command")]
    ReplyDecode {
        /// The command's type (`ce_type`).
        command: &'static str,
        /// The command's id (`ce_id`).
        id: String,
        /// The decoding error.
        reason: String,
    },

    /// No broker answered within the time allowed.
    #[error("no Kafka broker at `{servers}` answered within {waited:?}: check the address (KAFKA_BOOTSTRAP_SERVERS, `--bootstrap-servers`), that the broker runs and that this host reaches it, then try again")]
    BrokerUnreachable {
        /// The bootstrap servers that were tried.
        servers: String,
        /// How long herald waited.
        waited: Duration,
    },

    /// The brokers refused herald: wrong credentials, or a TLS handshake that failed (an untrusted
    /// certificate on either side). Nothing secret is in the message.
    #[error("the Kafka brokers at `{servers}` refused the connection: {reason}; check {check}")]
    Authentication {
        /// The bootstrap servers.
        servers: String,
        /// What librdkafka reported, secrets removed.
        reason: String,
        /// The settings to check.
        check: String,
    },

    /// A topic that must exist does not.
    #[error("topic `{topic}` does not exist: {hint}")]
    TopicNotFound {
        /// The topic.
        topic: String,
        /// What to check or do.
        hint: String,
    },

    /// There is no dead letter at the given position of a dead-letter topic.
    #[error("no dead letter at `{topic}` partition {partition} offset {offset}: {reason}; list the dead letters to see their positions (`herald dlq list`, `DeadLetters::list`)")]
    NoDeadLetter {
        /// The dead-letter topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// The offset asked for.
        offset: i64,
        /// Why not (the partition's range, say).
        reason: String,
    },

    /// A record of a dead-letter topic cannot be replayed: it does not say where it came from.
    #[error("the record at `{topic}` partition {partition} offset {offset} cannot be replayed: {reason}")]
    NotReplayable {
        /// The dead-letter topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// What is missing.
        reason: String,
    },

    /// Reading a topic did not finish in time although the broker answered.
    #[error("reading `{topic}` did not finish within {waited:?} ({read} of {expected} records read): the broker is slow or overloaded; try again, or allow more time (`DeadLetters::timeout`, `--timeout`)")]
    ReadTimeout {
        /// The topic.
        topic: String,
        /// How many records were read.
        read: u64,
        /// How many were expected.
        expected: u64,
        /// How long herald waited.
        waited: Duration,
    },
}

/// Every conflict found in the registry, one entry each (displayed joined with `"; "`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConflicts(Vec<String>);

impl RegistryConflicts {
    /// The conflicts, each naming the Rust items involved and what to change.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    /// How many conflicts there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any conflict's text contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.0.iter().any(|conflict| conflict.contains(needle))
    }
}

impl From<Vec<String>> for RegistryConflicts {
    fn from(conflicts: Vec<String>) -> Self {
        Self(conflicts)
    }
}

impl IntoIterator for RegistryConflicts {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a RegistryConflicts {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for RegistryConflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl Error {
    pub(crate) fn kafka(operation: &'static str, source: KafkaError) -> Self {
        match source {
            // librdkafka's text of a refused property holds its value, which may be a password:
            // name the key, never the value.
            KafkaError::ClientConfig(_, description, key, value) => {
                let description = if value.is_empty() {
                    description
                } else {
                    description.replace(&value, "***")
                };
                Self::Config(format!(
                    "librdkafka refused the property `{key}` while {operation} ({description}; the value is not shown): fix it where it is set (KAFKA_PROPERTIES, a KAFKA_* variable or the matching Config setting)"
                ))
            }
            source => Self::Kafka {
                operation,
                source: KafkaCause(source),
            },
        }
    }

    /// Whether doing the same thing again can succeed without changing anything: `true` for
    /// timeouts, unreachable brokers, full queues and a replaced producer; `false` for errors
    /// only a change of the event, the topic, the configuration or the permissions fixes. A
    /// batch is retriable when each of its failures is.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Publish { source, .. } | Self::Kafka { source, .. } => retriable(&source.0),
            Self::ProducerFatal { .. }
            | Self::AssignmentTimeout(_)
            | Self::ShutdownTimeout(_)
            | Self::BrokerUnreachable { .. }
            | Self::ReadTimeout { .. }
            | Self::HeldBack { .. } => true,
            Self::Batch { failures, .. } => failures.iter().all(|(_, e)| e.is_retriable()),
            _ => false,
        }
    }
}

/// What librdkafka reported, behind herald's own type: its message, and its error code when it
/// has one.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaCause(pub(crate) KafkaError);

impl KafkaCause {
    /// librdkafka's error code, when the error has one.
    pub fn code(&self) -> Option<KafkaCode> {
        error_code(&self.0).map(KafkaCode)
    }
}

impl fmt::Display for KafkaCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for KafkaCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// One of librdkafka's error codes (`rd_kafka_resp_err_t`), behind herald's own type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KafkaCode(pub(crate) RDKafkaErrorCode);

impl KafkaCode {
    /// The code's name, e.g. `MessageSizeTooLarge`.
    pub fn name(&self) -> String {
        format!("{:?}", self.0)
    }

    /// The code's number in librdkafka (`rd_kafka_resp_err_t`; Kafka's protocol codes are the
    /// positive ones).
    pub fn number(&self) -> i32 {
        self.0 as i32
    }
}

impl fmt::Debug for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The first failure of a batch, for its message.
fn first_failure(failures: &[(usize, Error)]) -> String {
    failures
        .first()
        .map_or_else(|| "none".to_owned(), |(index, e)| format!("#{index}: {e}"))
}

/// The librdkafka error code behind a Kafka error, when it has one.
fn error_code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    use KafkaError as K;
    match error {
        K::MessageProduction(code)
        | K::Global(code)
        | K::AdminOp(code)
        | K::MetadataFetch(code)
        | K::Flush(code)
        | K::MockCluster(code) => Some(*code),
        _ => None,
    }
}

/// Whether a Kafka error can go away by itself.
fn retriable(error: &KafkaError) -> bool {
    match error {
        KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::Subscription(_) => false,
        _ => permanent_cause(error).is_none(),
    }
}

/// For an error that publishing again cannot fix, what to change instead.
fn permanent_cause(error: &KafkaError) -> Option<&'static str> {
    use RDKafkaErrorCode as C;
    let advice = match error_code(error)? {
        C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge => {
            "it is too large for the producer or the broker: make the event smaller, or raise the \
             producer's `message.max.bytes` and the topic's `max.message.bytes`"
        }
        C::TopicAuthorizationFailed => {
            "this client may not write to the topic: grant its principal WRITE on the topic"
        }
        C::ClusterAuthorizationFailed | C::TransactionalIdAuthorizationFailed => {
            "this client lacks a cluster permission (idempotent producers need IDEMPOTENT_WRITE): \
             grant it to the client's principal"
        }
        C::SaslAuthenticationFailed | C::Authentication => {
            "the broker refused the credentials: fix the SASL settings of the configuration"
        }
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition => {
            "the topic or partition does not exist: create the topic (or turn topic \
             auto-creation on), then publish again"
        }
        C::InvalidTopic => "the topic name is not legal: rename the event's topic",
        C::InvalidRecord | C::InvalidMessage | C::BadMessage => {
            "the broker rejected the record itself (a compacted topic, for one, needs a key): fix \
             the event or the topic's configuration"
        }
        C::InvalidRequiredAcks | C::InvalidArgument | C::InvalidConfig => {
            "the producer's settings are invalid: fix the configured producer properties"
        }
        C::UnsupportedVersion | C::UnsupportedForMessageFormat | C::UnsupportedFeature => {
            "the broker does not support what the producer asks for: upgrade the broker or \
             change the producer properties"
        }
        C::PolicyViolation => "a broker policy forbids this record: ask the cluster's operators",
        _ => return None,
    };
    Some(advice)
}

/// The end of an [`Error::Publish`] message: what to do next.
fn publish_advice(error: &KafkaError) -> String {
    use RDKafkaErrorCode as C;
    if let Some(advice) = permanent_cause(error) {
        return format!("and publishing it again will fail the same way: {advice}");
    }
    match error.rdkafka_error_code() {
        Some(C::MessageTimedOut) => "the cluster did not acknowledge it within the delivery \
            timeout: its partition may have no leader, or fewer in-sync replicas than the topic's \
            min.insync.replicas (herald publishes with acks=all); retry once the cluster has \
            recovered, or check that the broker is reachable"
            .into(),
        Some(C::NotEnoughReplicas | C::NotEnoughReplicasAfterAppend) => "the partition has fewer \
            in-sync replicas than the topic's min.insync.replicas (herald publishes with \
            acks=all): retry once the cluster has recovered"
            .into(),
        _ => "retry, or check that the broker is reachable".into(),
    }
}

/// The error a handler returns. Any `std::error::Error + Send + Sync + 'static` converts into it with
/// `?`; [`HandlerError::msg`] makes one from text.
///
/// A handler error is *transient* by default: the event is tried again with backoff. A
/// [`permanent`](HandlerError::permanent) one says retrying cannot help: the event goes straight to
/// the dead-letter topic. With `?`, mark an error permanent through [`ResultExt::permanent`]:
///
/// ```
/// use herald::{HandlerError, ResultExt};
///
/// fn parse(amount: &str) -> Result<u64, HandlerError> {
///     let cents: u64 = amount.parse().permanent()?; // bad input stays bad: no retry
///     Ok(cents)
/// }
/// assert!(parse("ten").unwrap_err().is_permanent());
/// ```
///
/// Like `anyhow::Error`, it does not itself implement `std::error::Error`, so that the blanket
/// conversion can exist.
pub struct HandlerError {
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
    permanent: bool,
}

impl HandlerError {
    /// An error with the given message (transient).
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::from_boxed(message.to_string().into())
    }

    /// Wraps an already boxed error (`Box<dyn Error + Send + Sync>` cannot convert with `?`, because
    /// the blanket conversion from every `std::error::Error` would overlap with it). Transient.
    pub fn from_boxed(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        Self {
            inner: error,
            permanent: false,
        }
    }

    /// Marks `error` as permanent: retrying cannot help, so the event is not tried again and goes
    /// straight to the dead-letter topic.
    pub fn permanent(error: impl Into<HandlerError>) -> Self {
        Self {
            permanent: true,
            ..error.into()
        }
    }

    /// Marks `error` as transient (the default): the event is tried again with backoff.
    pub fn transient(error: impl Into<HandlerError>) -> Self {
        Self {
            permanent: false,
            ..error.into()
        }
    }

    /// Whether retrying cannot help (see [`HandlerError::permanent`]).
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }
}

/// Marks the error of a `Result` permanent or transient before `?` converts it into a
/// [`HandlerError`].
pub trait ResultExt<T> {
    /// The error, if any, as a permanent [`HandlerError`]: no retry, straight to the dead-letter
    /// topic.
    fn permanent(self) -> Result<T, HandlerError>;

    /// The error, if any, as a transient [`HandlerError`] (tried again with backoff).
    fn transient(self) -> Result<T, HandlerError>;
}

impl<T, E: Into<HandlerError>> ResultExt<T> for std::result::Result<T, E> {
    fn permanent(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::permanent)
    }

    fn transient(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::transient)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::from_boxed(Box::new(error))
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)?;
        let mut source = self.inner.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.permanent {
            "permanent"
        } else {
            "transient"
        };
        write!(f, "HandlerError({kind}: {self})")
    }
}

/// Why a delivered message was not handled.
#[derive(Debug)]
pub enum DispatchError {
    /// The message could not be turned into the handler's event type; retrying cannot help.
    Decode(String),
    /// The handler ran and failed.
    Handler(HandlerError),
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(reason) => write!(f, "undecodable message: {reason}"),
            Self::Handler(error) => write!(f, "handler failed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn handler_error_display_includes_the_cause_chain() {
        let error: HandlerError = Outer(std::io::Error::other("disk full")).into();
        assert_eq!(error.to_string(), "outer: disk full");
        assert_eq!(HandlerError::msg("nope").to_string(), "nope");
        let boxed: Box<dyn std::error::Error + Send + Sync> = "boxed".into();
        assert_eq!(HandlerError::from_boxed(boxed).to_string(), "boxed");
    }

    #[test]
    fn handler_errors_are_transient_unless_marked_permanent() {
        let io = || std::io::Error::other("card declined");
        let plain: HandlerError = io().into();
        assert!(!plain.is_permanent());
        assert!(!HandlerError::msg("later").is_permanent());
        let permanent = HandlerError::permanent(io());
        assert!(permanent.is_permanent());
        assert_eq!(permanent.to_string(), "card declined");
        assert_eq!(
            format!("{permanent:?}"),
            "HandlerError(permanent: card declined)"
        );
        assert!(!HandlerError::transient(permanent).is_permanent());
        assert!(HandlerError::permanent(HandlerError::msg("bad input")).is_permanent());
    }

    #[test]
    fn result_ext_marks_errors_for_the_question_mark() {
        fn parse(text: &str) -> Result<u64, HandlerError> {
            let value = text.parse::<u64>().permanent()?;
            Ok(value * 2)
        }
        fn fetch() -> Result<(), HandlerError> {
            Err(std::io::Error::other("timeout")).transient()?;
            Ok(())
        }
        fn early() -> Result<(), HandlerError> {
            Err(HandlerError::permanent(std::io::Error::other("gone")))?;
            Ok(())
        }
        assert_eq!(parse("42").unwrap(), 84);
        assert!(parse("forty-two").unwrap_err().is_permanent());
        assert!(!fetch().unwrap_err().is_permanent());
        assert!(early().unwrap_err().is_permanent());
    }

    #[test]
    fn registry_conflicts_list_one_entry_each_and_join_them() {
        let conflicts = RegistryConflicts::from(vec!["a clash".to_owned(), "b clash".to_owned()]);
        assert_eq!(conflicts.len(), 2);
        assert_eq!(
            conflicts.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a clash", "b clash"]
        );
        assert!(conflicts.contains("b cl"));
        assert_eq!(
            Error::Registry(conflicts).to_string(),
            "invalid event registry: a clash; b clash"
        );
    }

    fn publish_error(code: RDKafkaErrorCode) -> Error {
        Error::Publish {
            event_type: "order.placed",
            topic: "orders",
            source: KafkaCause(KafkaError::MessageProduction(code)),
        }
    }

    #[test]
    fn transient_publish_errors_say_retry() {
        for code in [
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::AllBrokersDown,
        ] {
            let error = publish_error(code);
            assert!(error.is_retriable(), "{code:?}");
            let message = error.to_string();
            assert!(
                message.ends_with("retry, or check that the broker is reachable"),
                "{message}"
            );
        }
    }

    /// A publish the cluster did not acknowledge in time (two of three nodes down, say) names
    /// the likely causes: a partition without a leader, too few in-sync replicas for acks=all.
    #[test]
    fn a_timed_out_publish_names_leaders_and_in_sync_replicas() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
        ] {
            let error = publish_error(code);
            assert!(error.is_retriable(), "{code:?}");
            let message = error.to_string();
            assert!(message.contains("min.insync.replicas"), "{message}");
            assert!(message.contains("acks=all"), "{message}");
        }
    }

    #[test]
    fn permanent_publish_errors_say_what_to_change() {
        for (code, advice) in [
            (
                RDKafkaErrorCode::MessageSizeTooLarge,
                "make the event smaller",
            ),
            (
                RDKafkaErrorCode::TopicAuthorizationFailed,
                "grant its principal WRITE",
            ),
            (
                RDKafkaErrorCode::InvalidRecord,
                "fix the event or the topic's configuration",
            ),
            (
                RDKafkaErrorCode::UnknownTopicOrPartition,
                "create the topic",
            ),
        ] {
            let error = publish_error(code);
            assert!(!error.is_retriable(), "{code:?}");
            let message = error.to_string();
            assert!(message.contains(advice), "{message}");
            assert!(
                message.contains("publishing it again will fail the same way"),
                "{message}"
            );
            assert!(!message.contains("retry"), "{message}");
        }
    }

    #[test]
    fn batches_and_client_creation_classify_by_their_cause() {
        let batch = |first: Error| Error::Batch {
            total: 2,
            delivered: vec![],
            failures: vec![(0, first)],
        };
        assert!(batch(publish_error(RDKafkaErrorCode::MessageTimedOut)).is_retriable());
        assert!(!batch(publish_error(RDKafkaErrorCode::MessageSizeTooLarge)).is_retriable());
        let creation = Error::kafka(
            "creating the producer",
            KafkaError::ClientCreation("bad".into()),
        );
        assert!(!creation.is_retriable());
        assert!(!Error::Config("x".into()).is_retriable());
    }

    #[test]
    fn the_embedded_broker_reports_an_existing_topic_as_such() {
        let broker = crate::broker::embedded::EmbeddedBroker::start(1).unwrap();
        broker.create_topic("twice", 1).unwrap();
        let error = broker.create_topic("twice", 1).unwrap_err();
        assert!(
            matches!(&error, Error::TopicExists { topic } if topic == "twice"),
            "{error:?}"
        );
    }
}
