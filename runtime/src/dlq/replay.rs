//! Replaying dead letters: a dead letter goes back to its original topic with its original key,
//! value and headers — its `dlq_*` headers included, so that a replayed message that fails again
//! returns to the dead-letter topic with both histories — plus `dlq_replay_count`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio::time::Instant;

use super::inspect::DeadLetters;
use super::letter::DeadLetter;
use super::read::Range;
use crate::error::{Error, Result};
use crate::event::envelope::Delivery;
use crate::headers::dlq;

/// How many dead letters `replay_all` reads from the broker, and replays, at a time.
const CHUNK: usize = 500;

/// How long an enqueue waits before retrying a record the full producer queue refused.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);

/// Which consumer groups handle a replayed copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReplayAudience {
    /// Every group that consumes the original topic, as for a new event (those that handled it
    /// the first time handle it again).
    #[default]
    EveryGroup,
    /// Only the group that gave up on it (its `dlq_consumer_group`); the others skip the copy.
    FailedGroup,
    /// Only this group; the others skip the copy.
    Group(String),
}

/// A copy on its way to the original topic (`None`: a dry run, nothing was sent).
struct Pending {
    delivery: Option<DeliveryFuture>,
    /// The partition it was sent to, when chosen (-1: the partitioner's choice).
    partition: i32,
    topic: String,
    event_id: String,
    /// The dead letter's topic, partition and offset.
    from: (String, i32, i64),
    replay_count: u32,
}

impl Pending {
    /// Waits for the broker's acknowledgement.
    async fn acknowledged(self) -> Result<Delivery> {
        let Some(delivery) = self.delivery else {
            return Ok(Delivery {
                topic: self.topic,
                partition: self.partition,
                offset: -1,
                event_id: self.event_id,
            });
        };
        let (partition, offset) = match delivery.await {
            Ok(Ok(position)) => position,
            Ok(Err((error, _))) => return Err(Error::kafka("replaying a dead letter", error)),
            Err(_canceled) => {
                return Err(Error::kafka(
                    "replaying a dead letter",
                    KafkaError::Canceled,
                ))
            }
        };
        let (dlq_topic, dlq_partition, dlq_offset) = &self.from;
        tracing::info!(%dlq_topic, dlq_partition, dlq_offset, topic = %self.topic, partition, offset,
            replay_count = self.replay_count, "dead letter replayed");
        Ok(Delivery {
            topic: self.topic,
            partition,
            offset,
            event_id: self.event_id,
        })
    }
}

/// Which dead letters [`DeadLetters::replay_all`] replays: those matching every criterion set
/// (the default matches all). Criteria apply to the latest failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    /// Only those consumed from this topic (`dlq_original_topic`).
    pub original_topic: Option<String>,
    /// Only events of this CloudEvents type.
    pub event_type: Option<String>,
    /// Only those of this error kind (`dlq_error_kind`, e.g. `retries-exhausted`).
    pub error_kind: Option<String>,
    /// Only those dead-lettered at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only those dead-lettered before this time.
    pub until: Option<DateTime<Utc>>,
}

impl ReplayFilter {
    /// Matches every dead letter.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only those consumed from `topic`.
    pub fn original_topic(mut self, topic: impl Into<String>) -> Self {
        self.original_topic = Some(topic.into());
        self
    }

    /// Only events of type `event_type`.
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Only those of error kind `kind`.
    pub fn error_kind(mut self, kind: impl Into<String>) -> Self {
        self.error_kind = Some(kind.into());
        self
    }

    /// Only those dead-lettered in `since..until` (either end open when `None`).
    pub fn failed_between(
        mut self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// Whether `letter` matches. A time criterion does not match a letter without a time.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        let failure = letter.failure();
        let same = |wanted: &Option<String>, actual: Option<&str>| {
            wanted.as_deref().is_none_or(|w| Some(w) == actual)
        };
        let failed_at = letter.failed_at();
        same(
            &self.original_topic,
            failure.map(|f| f.original_topic.as_str()),
        ) && same(&self.event_type, letter.ce_type.as_deref())
            && same(&self.error_kind, failure.map(|f| f.error_kind.as_str()))
            && self
                .since
                .is_none_or(|since| failed_at.is_some_and(|t| t >= since))
            && self
                .until
                .is_none_or(|until| failed_at.is_some_and(|t| t < until))
    }
}

/// One replayed dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Its partition in the dead-letter topic.
    pub partition: i32,
    /// Its offset in the dead-letter topic.
    pub offset: i64,
    /// Where the copy landed in the original topic.
    pub delivery: Delivery,
}

/// A matching dead letter that could not be replayed and was passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its partition in the dead-letter topic.
    pub partition: i32,
    /// Its offset in the dead-letter topic.
    pub offset: i64,
    /// Why.
    pub reason: String,
}

/// Where [`DeadLetters::replay_all`] stopped early, and why.
#[derive(Debug)]
pub struct ReplayStopped {
    /// The partition of the dead letter that failed.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The error; the dead letters after it were not replayed.
    pub error: Error,
}

/// What [`DeadLetters::replay_all`] did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// How many dead letters were read.
    pub scanned: u64,
    /// How many matched the filter.
    pub matched: u64,
    /// Those replayed, in the order they were sent.
    pub replayed: Vec<Replayed>,
    /// Matching ones that cannot be replayed (no `dlq_original_topic` header).
    pub skipped: Vec<Skipped>,
    /// Set when a replay failed: nothing after it was replayed. Running `replay_all` again
    /// replays the earlier ones a second time.
    pub stopped: Option<ReplayStopped>,
}

impl DeadLetters {
    /// Sends the dead letter at `partition`/`offset` back to its original topic (and original
    /// partition, when the topic still has it), with its key, value and every header, plus
    /// `dlq_replay_count` = the previous count + 1. The dead letter stays where it is.
    ///
    /// # Errors
    /// [`Error::NoDeadLetter`], [`Error::NotReplayable`] when it does not name its original topic,
    /// [`Error::TopicNotFound`] when that topic is gone, [`Error::Kafka`] when the broker did not
    /// acknowledge the copy, and as [`DeadLetters::get`].
    pub async fn replay(&self, partition: i32, offset: i64) -> Result<Delivery> {
        let letter = self.get(partition, offset).await?;
        let pending = self.enqueue(&letter, &mut HashMap::new()).await?;
        pending.acknowledged().await
    }

    /// Replays every dead letter that matches `filter`, partition by partition in offset order,
    /// calling `progress(done, total)` as it goes (offsets read of the total held when it began;
    /// dead letters added meanwhile, replayed ones that fail again included, are not read).
    /// The copies of up to 500 dead letters are in flight at once, enqueued in order (the
    /// producer is idempotent, so they land in order). Stops after the first replay the broker
    /// refuses (see [`ReplayReport::stopped`]); [`ReplayReport::replayed`] lists every copy the
    /// broker acknowledged.
    ///
    /// # Errors
    /// As [`DeadLetters::list`], for reading.
    pub async fn replay_all(
        &self,
        filter: &ReplayFilter,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<ReplayReport> {
        let ranges = self.ranges().await?;
        let total: u64 = ranges
            .iter()
            .map(|(_, low, high)| (high - low).max(0) as u64)
            .sum();
        let mut report = ReplayReport::default();
        let mut partitions_of = HashMap::new();
        let mut done = 0u64;
        progress(done, total);
        for (partition, low, high) in ranges {
            let mut from = low;
            while from < high {
                let range = Range {
                    partition,
                    from,
                    until: high,
                    max: CHUNK,
                };
                let chunk = self.with_reader(move |r| r.read(&[range])).await?;
                if chunk.is_empty() {
                    break; // the rest of the range holds no records
                }
                let mut in_flight = Vec::new();
                for letter in &chunk {
                    report.scanned += 1;
                    if !filter.matches(letter) {
                        continue;
                    }
                    report.matched += 1;
                    match self.enqueue(letter, &mut partitions_of).await {
                        Ok(pending) => in_flight.push((letter.offset, pending)),
                        Err(Error::NotReplayable { reason, .. }) => report.skipped.push(Skipped {
                            partition,
                            offset: letter.offset,
                            reason,
                        }),
                        Err(error) => {
                            report.stopped = Some(ReplayStopped {
                                partition,
                                offset: letter.offset,
                                error,
                            });
                            break;
                        }
                    }
                }
                let chunk_end = chunk.last().map_or(from, |l| l.offset + 1);
                let mut acked = from;
                for (offset, pending) in in_flight {
                    match pending.acknowledged().await {
                        Ok(delivery) => report.replayed.push(Replayed {
                            partition,
                            offset,
                            delivery,
                        }),
                        Err(error) => {
                            if report.stopped.as_ref().is_none_or(|s| s.offset > offset) {
                                report.stopped = Some(ReplayStopped {
                                    partition,
                                    offset,
                                    error,
                                });
                            }
                        }
                    }
                    done += (offset + 1 - acked) as u64;
                    acked = offset + 1;
                    progress(done, total);
                }
                if report.stopped.is_some() {
                    return Ok(report);
                }
                done += (chunk_end - acked) as u64;
                from = chunk_end;
                progress(done, total);
            }
            done += (high - from).max(0) as u64;
            progress(done, total);
        }
        Ok(report)
    }

    /// Enqueues the copy of one dead letter for its original topic; `partitions_of` caches the
    /// partition count of each original topic.
    async fn enqueue(
        &self,
        letter: &DeadLetter,
        partitions_of: &mut HashMap<String, usize>,
    ) -> Result<Pending> {
        let Some(failure) = letter.failure().filter(|f| !f.original_topic.is_empty()) else {
            return Err(Error::NotReplayable {
                topic: letter.topic.clone(),
                partition: letter.partition,
                offset: letter.offset,
                reason: format!(
                    "it has no `{}` header, so it was not dead-lettered by herald; publish its value to the right topic yourself",
                    dlq::ORIGINAL_TOPIC
                ),
            });
        };
        if let Some(size) = letter.header(dlq::VALUE_OMITTED) {
            return Err(Error::NotReplayable {
                topic: letter.topic.clone(),
                partition: letter.partition,
                offset: letter.offset,
                reason: format!(
                    "its value ({size} bytes) was too large for the dead-letter topic and was not kept; read the original at {}/{}/{} while the topic retains it",
                    failure.original_topic,
                    failure.original_partition.map_or("?".into(), |p| p.to_string()),
                    failure.original_offset.map_or("?".into(), |o| o.to_string())
                ),
            });
        }
        if let Some(origin) = self
            .origin
            .as_deref()
            .filter(|o| *o != failure.original_topic)
        {
            return Err(Error::NotReplayable {
                topic: letter.topic.clone(),
                partition: letter.partition,
                offset: letter.offset,
                reason: format!(
                    "it names `{}` as its original topic, but `{}` holds the dead letters of `{origin}`: it was copied here from elsewhere, or its headers were changed; replay it from its own dead-letter topic",
                    failure.original_topic, letter.topic
                ),
            });
        }
        let group = match &self.audience {
            ReplayAudience::EveryGroup => None,
            ReplayAudience::Group(group) => Some(group.clone()),
            ReplayAudience::FailedGroup if failure.consumer_group.is_empty() => {
                return Err(Error::NotReplayable {
                    topic: letter.topic.clone(),
                    partition: letter.partition,
                    offset: letter.offset,
                    reason: format!(
                        "it names no consumer group (`{}`), so it cannot be replayed to the group that failed",
                        dlq::CONSUMER_GROUP
                    ),
                });
            }
            ReplayAudience::FailedGroup => Some(failure.consumer_group.clone()),
        };
        let topic = failure.original_topic.clone();
        let partitions = match partitions_of.get(&topic) {
            Some(n) => *n,
            None => {
                let n = self.original_partitions(&topic).await?;
                partitions_of.insert(topic.clone(), n);
                n
            }
        };
        let count = (letter.replay_count + 1).to_string();
        let mut out = OwnedHeaders::new_with_capacity(letter.headers.len() + 1);
        // A letter from a retry tier carries that tier's retry headers: the replayed event starts
        // its retries afresh on the original topic (where they are ignored anyway), so they go.
        // An earlier replay's audience goes too: this replay sets its own.
        for header in letter.headers.iter().filter(|h| {
            !h.name.starts_with(crate::headers::retry::PREFIX) && h.name != dlq::REPLAY_GROUP
        }) {
            out = out.insert(KafkaHeader {
                key: &header.name,
                value: header.value.as_deref(),
            });
        }
        out = out.insert(KafkaHeader {
            key: dlq::REPLAY_COUNT,
            value: Some(count.as_str()),
        });
        if let Some(group) = &group {
            out = out.insert(KafkaHeader {
                key: dlq::REPLAY_GROUP,
                value: Some(group.as_str()),
            });
        }
        let chosen = failure
            .original_partition
            .filter(|p| *p >= 0 && (*p as usize) < partitions);
        if self.dry_run {
            return Ok(Pending {
                delivery: None,
                partition: chosen.unwrap_or(-1),
                topic,
                event_id: letter.ce_id.clone().unwrap_or_default(),
                from: (letter.topic.clone(), letter.partition, letter.offset),
                replay_count: letter.replay_count + 1,
            });
        }
        let mut record = FutureRecord::to(&topic).headers(out);
        if let Some(key) = &letter.key {
            record = record.key(key);
        }
        if let Some(value) = &letter.value {
            record = record.payload(value);
        }
        if let Some(p) = chosen {
            record = record.partition(p);
        }
        let deadline = Instant::now() + self.delivery_timeout;
        let delivery = loop {
            match self.producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused))
                    if Instant::now() < deadline =>
                {
                    record = refused;
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err((error, _)) => return Err(Error::kafka("replaying a dead letter", error)),
            }
        };
        Ok(Pending {
            delivery: Some(delivery),
            partition: chosen.unwrap_or(-1),
            topic,
            event_id: letter.ce_id.clone().unwrap_or_default(),
            from: (letter.topic.clone(), letter.partition, letter.offset),
            replay_count: letter.replay_count + 1,
        })
    }

    /// How many partitions the original topic `topic` has.
    async fn original_partitions(&self, topic: &str) -> Result<usize> {
        let (client, servers, timeout) = (self.reader.clone(), self.servers.clone(), self.timeout);
        let topic = topic.to_owned();
        let hint = "the dead letter was consumed from it, so it was deleted or renamed since: \
                    create it again to replay into it, or publish the value elsewhere yourself"
            .to_owned();
        tokio::task::spawn_blocking(move || {
            super::read::Reader::new(&client, &topic, &servers, timeout)?
                .partitions(&hint)
                .map(|p| p.len())
        })
        .await
        .map_err(|_| Error::State("reading topic metadata panicked"))?
    }
}
