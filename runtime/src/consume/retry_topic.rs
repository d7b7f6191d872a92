//! Non-blocking retries through retry topics, for handlers whose policy asks for them
//! (`RetryPolicy { mode: RetryMode::Topics, .. }`): a failed event is copied to
//! `{topic}.retry.{n}` with headers saying which group and handler retry it, how often it was tried,
//! when it first failed and when it may run again, and the main partition moves on at once. The
//! group also consumes the retry tiers; a record waits there until its time, then runs only its
//! handler; on failure it moves to the next tier, and after the policy's last retry to the main
//! topic's dead-letter topic. Order within a key is given up for those handlers only.
//!
//! The tiers are shared by every group that consumes the topic: a group skips the records of the
//! others. Everything a retry needs travels in headers, so it survives restarts. A group reads the
//! existing tiers of its topics also when none of its handlers retries through them any more, so a
//! record left waiting there is still handled (in place, by its handler); tiers are looked up when
//! the group starts.

use crate::headers::retry;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use tokio_util::sync::CancellationToken;

use super::forward::{self, Forwarded};
use super::Shared;
use crate::wire::received::Received;

/// The number of retry topics per topic; retries past the last tier stay in the last tier.
pub const TIERS: u32 = 3;

/// The retry topic of `topic` for retry number `retry` (1 for the first).
pub fn retry_topic(topic: &str, retry: u32) -> String {
    format!("{topic}.retry.{}", retry.clamp(1, TIERS))
}

/// Whether `topic` is a retry tier (`{topic}.retry.{n}`, `n` from 1 to [`TIERS`]): only records of
/// a tier have their retry headers honoured; elsewhere they are a copy's or a forger's.
pub fn is_retry_topic(topic: &str) -> bool {
    // Asked of every consumed message: split at the last dot (a char search) rather than search
    // for ".retry." (a substring searcher built per call, about 450 instructions a message).
    let Some((rest, n)) = topic.rsplit_once('.') else {
        return false;
    };
    rest.strip_suffix(".retry")
        .is_some_and(|base| !base.is_empty())
        && n.parse::<u32>().is_ok_and(|n| (1..=TIERS).contains(&n))
}

/// Every retry topic of `topic`.
pub fn retry_topics(topic: &str) -> Vec<String> {
    (1..=TIERS).map(|n| retry_topic(topic, n)).collect()
}

/// Where an event was first consumed from, before it went through retry topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What the headers of a record in a retry topic say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryRecord {
    pub group: String,
    pub handler: String,
    pub attempts: u32,
    pub first_failure: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub origin: Origin,
}

fn text<'a>(message: &'a Received, name: &str) -> Option<&'a str> {
    std::str::from_utf8(message.header_value(name)?).ok()
}

fn time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl RetryRecord {
    /// The retry headers of `message`, if it came through a retry topic. `Err` names a header that
    /// is there but unreadable.
    pub fn read(message: &Received) -> Option<Result<Self, String>> {
        let handler = text(message, retry::HANDLER)?;
        let field = |name: &'static str| text(message, name).ok_or(name);
        let parse = || -> Result<Self, &'static str> {
            Ok(Self {
                group: field(retry::GROUP)?.to_owned(),
                handler: handler.to_owned(),
                attempts: field(retry::ATTEMPTS)?
                    .parse()
                    .map_err(|_| retry::ATTEMPTS)?,
                first_failure: time(field(retry::FIRST_FAILURE)?).ok_or(retry::FIRST_FAILURE)?,
                not_before: time(field(retry::NOT_BEFORE)?).ok_or(retry::NOT_BEFORE)?,
                origin: Origin {
                    topic: field(retry::ORIGINAL_TOPIC)?.to_owned(),
                    partition: field(retry::ORIGINAL_PARTITION)?
                        .parse()
                        .map_err(|_| retry::ORIGINAL_PARTITION)?,
                    offset: field(retry::ORIGINAL_OFFSET)?
                        .parse()
                        .map_err(|_| retry::ORIGINAL_OFFSET)?,
                },
            })
        };
        Some(parse().map_err(|name| format!("retry header `{name}` is missing or malformed")))
    }

    /// How long until the record may run, from now.
    pub fn wait(&self) -> Duration {
        (self.not_before - Utc::now()).to_std().unwrap_or_default()
    }
}

/// A handler that failed on an event and retries it through the retry topics.
#[derive(Debug, Clone)]
pub(crate) struct Deferral {
    pub handler: &'static str,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// Delay before the next attempt.
    pub delay: Duration,
    pub error: String,
}

/// Copies `message` to its handler's next retry topic, trying until the broker acknowledged it,
/// `cancel` fired, or the topic refused it for good.
pub(crate) async fn forward(
    message: &Received,
    deferral: &Deferral,
    previous: Option<&RetryRecord>,
    group: &str,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Forwarded {
    let origin = previous
        .map(|p| p.origin.clone())
        .unwrap_or_else(|| Origin {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        });
    let topic = retry_topic(&origin.topic, deferral.attempts);
    let now = Utc::now();
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let first_failure = stamp(previous.map(|p| p.first_failure).unwrap_or(now));
    let not_before = stamp(now + deferral.delay);
    let attempts = deferral.attempts.to_string();
    let (partition, offset) = (origin.partition.to_string(), origin.offset.to_string());
    let mut out = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for header in original
            .iter()
            .filter(|h| !h.key.starts_with(retry::PREFIX))
        {
            out = out.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    for (key, value) in [
        (retry::GROUP, group),
        (retry::HANDLER, deferral.handler),
        (retry::ATTEMPTS, attempts.as_str()),
        (retry::FIRST_FAILURE, first_failure.as_str()),
        (retry::NOT_BEFORE, not_before.as_str()),
        (retry::ORIGINAL_TOPIC, origin.topic.as_str()),
        (retry::ORIGINAL_PARTITION, partition.as_str()),
        (retry::ORIGINAL_OFFSET, offset.as_str()),
        (retry::ERROR, &forward::capped(&deferral.error)),
    ] {
        out = out.insert(Header {
            key,
            value: Some(value),
        });
    }
    let outcome =
        forward::until_acknowledged(message, message.payload(), &topic, out, shared, cancel).await;
    if let Forwarded::Landed(..) = outcome {
        tracing::info!(topic = %origin.topic, partition = origin.partition, offset = origin.offset,
            retry_topic = %topic, handler = deferral.handler, attempts = deferral.attempts,
            delay = ?deferral.delay, "event sent to its retry topic");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tiers_of_a_topic_are_retry_topics() {
        for tier in retry_topics("orders") {
            assert!(is_retry_topic(&tier), "{tier}");
        }
        assert!(is_retry_topic("a.retry.x.retry.2"));
        for not in [
            "orders",
            "orders.retry",
            "orders.retry.",
            ".retry.1",
            "retry.1",
            "orders.retry.0",
            &format!("orders.retry.{}", TIERS + 1),
            "orders.retry.1.5",
            "orders.retry.x",
            "orders.retries.1",
            "orders.dlq",
        ] {
            assert!(!is_retry_topic(not), "{not}");
        }
    }
}
