//! Copying a consumed message to another topic (its dead-letter topic, a retry topic) with its key
//! and value and the given headers, trying until the broker acknowledges it: the original is
//! committed only after, so the message is never nowhere. Errors that no retry can cure (the copy
//! is too large, the topic does not exist or may not be written, its name is invalid) end the
//! trying and are reported to the caller, which decides what becomes of the message.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::telemetry::stats::Counters;
use crate::wire::received::Received;

/// The longest wait between two tries.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The most bytes of error text a copy carries in a header: a handler's error can be any size, and
/// the copy must stay under the broker's record size.
pub(crate) const MAX_ERROR_TEXT: usize = 4096;

/// `text`, cut to [`MAX_ERROR_TEXT`] bytes (at a character boundary) with a note of how much was cut.
pub(crate) fn capped(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_ERROR_TEXT {
        return text.into();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes cut)", &text[..end], text.len() - end).into()
}

/// How health names a copy that keeps failing.
const STALLED: &str = "a dead-letter or retry-topic copy";

/// What became of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// The broker acknowledged it at this partition and offset.
    Landed(i32, i64),
    /// `cancel` fired first (revocation, shutdown): the original stays uncommitted.
    Cancelled,
    /// It can never be written as it is.
    Refused(Refusal),
}

/// Why a copy can never be written as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The copy is larger than the producer or the broker accepts.
    pub too_large: bool,
    /// The error, for people.
    pub reason: String,
}

/// Whether `error` says the record can never be written as it is; `Some(too_large)` then.
fn permanent(error: &KafkaError) -> Option<bool> {
    let code = match error {
        KafkaError::MessageProduction(code) => *code,
        _ => return None,
    };
    match code {
        RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize => Some(true),
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed
        | RDKafkaErrorCode::UnknownTopic
        | RDKafkaErrorCode::UnknownPartition
        | RDKafkaErrorCode::InvalidTopic
        | RDKafkaErrorCode::InvalidRecord
        | RDKafkaErrorCode::InvalidMessage
        | RDKafkaErrorCode::InvalidArgument => Some(false),
        _ => None,
    }
}

/// Writes `message`'s key and `value` with `headers` to `topic`, trying with backoff (100 ms
/// doubling to 30 s, each failure counted in `dead_letter_failures`) until the broker acknowledges
/// it, `cancel` fires between two tries, or the error is one no retry cures. A producer that turned fatal is replaced
/// (as publishing replaces it) and the copy tried again with the new one.
pub(crate) async fn until_acknowledged(
    message: &Received,
    value: Option<&[u8]>,
    topic: &str,
    headers: OwnedHeaders,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Forwarded {
    if let Some(memory) = shared.publisher.memory() {
        let (partition, offset) = memory.append(topic, message.key(), value, &headers);
        return Forwarded::Landed(partition, offset);
    }
    let mut wait = Duration::from_millis(100);
    // Registered at the first failure: health reports a copy that keeps failing.
    let mut stalled = None;
    loop {
        let mut record = FutureRecord::to(topic).headers(headers.clone());
        if let Some(payload) = value {
            record = record.payload(payload);
        }
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        let (producer, generation) = shared.publisher.forwarding_producer();
        // Not cancelled once sent: librdkafka would deliver the copy anyway, and with the original
        // left uncommitted its next owner would copy it again. The wait is bounded by the delivery
        // timeout; revocation and shutdown wait for it (shutdown up to its deadline).
        let result = producer
            .send(record, Timeout::After(shared.settings.delivery_timeout))
            .await;
        let error = match result {
            Ok(position) => return Forwarded::Landed(position.0, position.1),
            Err((error, _)) => error,
        };
        Counters::add(&shared.counters.dead_letter_failures, 1);
        if stalled.is_none() {
            stalled = Some(shared.stalled_copies.start(STALLED));
        }
        if let Some(fatal) = shared.publisher.replace_if_fatal(&producer, generation) {
            tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(),
                to = %topic, %fatal, retry_in = ?wait,
                "the producer failed for good while copying the message; a new producer tries again");
        } else if let Some(too_large) = permanent(&error) {
            return Forwarded::Refused(Refusal {
                too_large,
                reason: format!("`{topic}` refused the copy: {error}"),
            });
        } else {
            tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(),
                to = %topic, %error, retry_in = ?wait,
                "could not copy the message to its dead-letter or retry topic; the partition waits and tries again");
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Forwarded::Cancelled,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(MAX_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::envelope::Position;

    /// A consume-only service whose idempotent producer turned fatal still writes its dead
    /// letters: the copy replaces the producer, as publishing does. Before, every try went
    /// through the fatal producer and failed, for good.
    #[tokio::test]
    async fn a_copy_through_a_producer_that_turned_fatal_goes_through_a_new_one() {
        let broker = crate::broker::embedded::EmbeddedBroker::start(1).unwrap();
        broker.create_topic("orders.dlq", 1).unwrap();
        let config = Config::new("forward").bootstrap_servers(broker.bootstrap_servers());
        let shared = Shared::for_test(&config, broker.bootstrap_servers());
        shared.publisher.make_fatal_for_test();
        let position = Position {
            topic: "orders".into(),
            partition: 0,
            offset: 7,
        };
        let message = Received::for_test(&position, Some(b"k"), Some(b"v"), None::<&OwnedHeaders>);
        let cancel = CancellationToken::new();
        let copy = until_acknowledged(
            &message,
            message.payload(),
            "orders.dlq",
            OwnedHeaders::new(),
            &shared,
            &cancel,
        );
        let copied = tokio::time::timeout(Duration::from_secs(20), copy)
            .await
            .expect("the copy never went through the fatal producer");
        assert_eq!(copied, Forwarded::Landed(0, 0));
        assert_eq!(shared.counters.snapshot().producer_restarts, 1);
    }

    #[test]
    fn error_text_is_capped_at_a_character_boundary() {
        assert_eq!(capped("short"), "short");
        let long = "é".repeat(MAX_ERROR_TEXT);
        let cut = capped(&long);
        assert!(cut.len() < MAX_ERROR_TEXT + 40, "{}", cut.len());
        assert!(cut.ends_with(&format!("({} more bytes cut)", long.len() - MAX_ERROR_TEXT)));
    }
}
