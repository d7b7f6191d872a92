//! Dead-letter topics: a message that cannot be handled is copied to `{topic}{dlq_suffix}` byte for
//! byte — original key, value and headers — plus `dlq_*` headers saying where it came from and why
//! it failed. Only once the broker acknowledged the copy is the original's offset committed; if the
//! copy cannot be written the partition waits and tries again, so a message is always either in the
//! main topic's uncommitted range or in the dead-letter topic.

use chrono::{SecondsFormat, Utc};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use tokio_util::sync::CancellationToken;

use super::dispatch::Failure;
use super::received::Received;
use super::{forward, Shared};
use crate::dlq::headers;
use crate::stats::Counters;

/// Copies `message` to its dead-letter topic, trying until the broker acknowledges it. Returns
/// `false` only when `cancel` fired first (revocation, shutdown): the message then stays
/// uncommitted and is delivered again.
pub(crate) async fn dead_letter(
    message: &Received,
    failure: &Failure,
    group: &str,
    shared: &Shared,
    cancel: &CancellationToken,
) -> bool {
    // An event that went through retry topics belongs to its original topic's dead letters.
    let original = failure.origin.as_ref();
    let topic = format!(
        "{}{}",
        original.map_or(message.topic(), |o| o.topic.as_str()),
        shared.dlq_suffix
    );
    let headers = letter_headers(message, failure, group);
    let Some((partition, offset)) =
        forward::until_acknowledged(message, &topic, headers, shared, cancel).await
    else {
        return false;
    };
    Counters::add(&shared.counters.dead_lettered, 1);
    tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(),
        dlq_topic = %topic, dlq_partition = partition, dlq_offset = offset,
        kind = failure.kind.as_str(), handlers = %failure.handlers, reason = %failure.reason,
        "message dead-lettered");
    true
}

/// The original headers, byte for byte, followed by herald's `dlq_*` headers. A message that was
/// dead-lettered before keeps its earlier `dlq_*` headers, so its whole history travels with it.
fn letter_headers(message: &Received, failure: &Failure, group: &str) -> OwnedHeaders {
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
    let added: [(&str, &str); 9] = [
        (headers::ORIGINAL_TOPIC, topic),
        (headers::ORIGINAL_PARTITION, &partition),
        (headers::ORIGINAL_OFFSET, &offset),
        (headers::CONSUMER_GROUP, group),
        (headers::HANDLER, &failure.handlers),
        (headers::ERROR_KIND, failure.kind.as_str()),
        (headers::ERROR_MESSAGE, &failure.reason),
        (headers::RETRY_COUNT, &attempts),
        (headers::TIMESTAMP, &now),
    ];
    for (key, value) in added {
        out = out.insert(Header {
            key,
            value: Some(value),
        });
    }
    out
}
