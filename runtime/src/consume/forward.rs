//! Copying a consumed message to another topic (its dead-letter topic, a retry topic) with its key
//! and value and the given headers, trying until the broker acknowledges it: the original is
//! committed only after, so the message is never nowhere.

use std::time::Duration;

use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;

use super::received::Received;
use super::Shared;
use crate::stats::Counters;

/// The longest wait between two tries.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Writes `message`'s key and value with `headers` to `topic`, trying with backoff (100 ms doubling
/// to 30 s, each failure counted in `dead_letter_failures`) until the broker acknowledges it.
/// Returns where it landed, or `None` when `cancel` fired first.
pub(crate) async fn until_acknowledged(
    message: &Received,
    topic: &str,
    headers: OwnedHeaders,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Option<(i32, i64)> {
    let mut wait = Duration::from_millis(100);
    loop {
        let mut record = FutureRecord::to(topic).headers(headers.clone());
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        let producer = shared.publisher.producer();
        let send = producer.send(record, Timeout::After(shared.delivery_timeout));
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => return None,
            result = send => result,
        };
        match result {
            Ok(position) => return Some(position),
            Err((error, _)) => {
                Counters::add(&shared.counters.dead_letter_failures, 1);
                tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(),
                    to = %topic, %error, retry_in = ?wait,
                    "could not copy the message to its dead-letter or retry topic; the partition waits and tries again");
            }
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(MAX_WAIT);
    }
}
