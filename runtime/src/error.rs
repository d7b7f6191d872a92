//! herald's error type, and the error a handler returns.

use std::fmt;
use std::time::Duration;

use rdkafka::error::KafkaError;

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

    /// The registered events and handlers contradict each other (found at start-up).
    #[error("invalid event registry: {0}")]
    Registry(String),

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

    /// The broker did not acknowledge a published event.
    #[error("publishing `{event_type}` to topic `{topic}` failed: {source}; the event was not published, retry or check the broker")]
    Publish {
        /// The event type that was being published.
        event_type: &'static str,
        /// The topic it was sent to.
        topic: &'static str,
        /// What librdkafka reported.
        source: KafkaError,
    },

    /// Some events of a batch were not acknowledged; those that were are listed.
    #[error("{failed} of {total} events of the batch were not published (first error: {first_error}); the {} acknowledged ones are in `delivered`", delivered.len())]
    Batch {
        /// How many events the batch had.
        total: usize,
        /// How many failed.
        failed: usize,
        /// The acknowledged events, in batch order, with their index in the batch.
        delivered: Vec<(usize, crate::Delivery)>,
        /// The first failure.
        first_error: Box<Error>,
    },

    /// A topic could not be created or inspected.
    #[error("topic `{topic}`: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// Why it failed and what to do.
        reason: String,
    },

    /// The Kafka client failed outside of publishing.
    #[error("kafka {operation} failed: {source}")]
    Kafka {
        /// What herald was doing.
        operation: &'static str,
        /// What librdkafka reported.
        source: KafkaError,
    },

    /// Shutting down took longer than allowed; in-flight handlers were abandoned and their events
    /// will be delivered again.
    #[error("shutdown did not finish within {0:?}; unfinished events were not committed and will be redelivered")]
    ShutdownTimeout(Duration),

    /// The bus is not running or was already shut down.
    #[error("{0}")]
    State(&'static str),
}

impl Error {
    pub(crate) fn kafka(operation: &'static str, source: KafkaError) -> Self {
        Self::Kafka { operation, source }
    }
}

/// The error a handler returns. Any `std::error::Error + Send + Sync + 'static` converts into it with
/// `?`; [`HandlerError::msg`] makes one from text.
///
/// Like `anyhow::Error`, it does not itself implement `std::error::Error`, so that the blanket
/// conversion can exist.
pub struct HandlerError {
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl HandlerError {
    /// An error with the given message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            inner: message.to_string().into(),
        }
    }

    /// Wraps an already boxed error (`Box<dyn Error + Send + Sync>` cannot convert with `?`, because
    /// the blanket conversion from every `std::error::Error` would overlap with it).
    pub fn from_boxed(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        Self { inner: error }
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self {
            inner: Box::new(error),
        }
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
        write!(f, "HandlerError({self})")
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
}
