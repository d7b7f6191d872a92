//! Dead-letter topics: a message that cannot be handled is copied to `{topic}{dlq_suffix}` byte for
//! byte — original key, value and headers — plus `dlq_*` headers saying where it came from and why
//! it failed. Only once the broker acknowledged the copy is the original's offset committed; if the
//! copy cannot be written the partition waits and tries again, so a message is always either in the
//! main topic's uncommitted range or in the dead-letter topic.

use chrono::{SecondsFormat, Utc};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use tokio_util::sync::CancellationToken;

use super::dispatch::DeadLetterCause;
use super::forward::{self, Forwarded, Refusal};
use super::Shared;
use crate::headers::dlq;
use crate::telemetry::stats::Counters;
use crate::wire::received::Received;

/// What became of a dead letter.
#[derive(Debug)]
pub(crate) enum Lettered {
    /// The broker acknowledged it: the original may be committed.
    Written,
    /// `cancel` fired first (revocation, shutdown): the original stays uncommitted and is
    /// delivered again.
    Cancelled,
    /// The dead-letter topic refused it for good (it does not exist, may not be written, or its
    /// name is invalid): the original stays uncommitted and the consumer group fails.
    Refused(String),
}

/// Copies `message` to its dead-letter topic, trying until the broker acknowledges it. A letter
/// too large for the topic is written once more without the message's value (the `dlq_*` headers
/// still say where the original is and why it failed, and `dlq_value_omitted` gives its size).
pub(crate) async fn dead_letter(
    message: &Received,
    failure: &DeadLetterCause,
    group: &str,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Lettered {
    // An event that went through retry topics belongs to its original topic's dead letters.
    let original = failure.origin.as_ref();
    let topic = format!(
        "{}{}",
        original.map_or(message.topic(), |o| o.topic.as_str()),
        shared.settings.dlq_suffix
    );
    let headers = letter_headers(message, failure, group, None);
    let mut outcome =
        forward::until_acknowledged(message, message.payload(), &topic, headers, shared, cancel)
            .await;
    let mut omitted = None;
    if let Forwarded::Refused(Refusal {
        too_large: true, ..
    }) = &outcome
    {
        if let Some(size) = message.payload().map(<[u8]>::len).filter(|n| *n > 0) {
            omitted = Some(size);
            let headers = letter_headers(message, failure, group, omitted);
            outcome =
                forward::until_acknowledged(message, None, &topic, headers, shared, cancel).await;
        }
    }
    let (partition, offset) = match outcome {
        Forwarded::Landed(partition, offset) => (partition, offset),
        Forwarded::Cancelled => return Lettered::Cancelled,
        Forwarded::Refused(refusal) => {
            tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(),
                dlq_topic = %topic, reason = %refusal.reason,
                "the message cannot be dead-lettered; it stays uncommitted and the consumer group stops");
            return Lettered::Refused(format!(
                "the message at {}/{}/{} cannot be dead-lettered: {}",
                message.topic(),
                message.partition(),
                message.offset(),
                refusal.reason
            ));
        }
    };
    Counters::add(&shared.counters.dead_lettered, 1);
    tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(),
        dlq_topic = %topic, dlq_partition = partition, dlq_offset = offset,
        kind = failure.kind.as_str(), handlers = %failure.handlers, reason = %failure.reason,
        value_omitted = ?omitted, "message dead-lettered");
    Lettered::Written
}

/// The original headers, byte for byte, followed by herald's `dlq_*` headers. A message that was
/// dead-lettered before keeps its earlier `dlq_*` headers, so its whole history travels with it.
fn letter_headers(
    message: &Received,
    failure: &DeadLetterCause,
    group: &str,
    omitted: Option<usize>,
) -> OwnedHeaders {
    let original = message.headers();
    let count = original.map(|h| h.count()).unwrap_or(0);
    let mut out = OwnedHeaders::new_with_capacity(count + 9);
    if let Some(original) = original {
        for header in original.iter() {
            out = out.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    let original = failure.origin.as_ref();
    let topic = original.map_or(message.topic(), |o| o.topic.as_str());
    let partition = original
        .map_or(message.partition(), |o| o.partition)
        .to_string();
    let offset = original.map_or(message.offset(), |o| o.offset).to_string();
    let attempts = failure.attempts.to_string();
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let reason = forward::capped(&failure.reason);
    let added: [(&str, &str); 9] = [
        (dlq::ORIGINAL_TOPIC, topic),
        (dlq::ORIGINAL_PARTITION, &partition),
        (dlq::ORIGINAL_OFFSET, &offset),
        (dlq::CONSUMER_GROUP, group),
        (dlq::HANDLER, &failure.handlers),
        (dlq::ERROR_KIND, failure.kind.as_str()),
        (dlq::ERROR_MESSAGE, &reason),
        (dlq::RETRY_COUNT, &attempts),
        (dlq::TIMESTAMP, &now),
    ];
    for (key, value) in added {
        out = out.insert(Header {
            key,
            value: Some(value),
        });
    }
    if let Some(size) = omitted {
        out = out.insert(Header {
            key: dlq::VALUE_OMITTED,
            value: Some(&size.to_string()),
        });
    }
    out
}
