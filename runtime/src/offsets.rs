//! A consumer group's members and committed offsets, and moving them: replay a topic from a
//! time or an offset into a group, or skip it to the end (`herald groups`). Running a group's
//! handlers over a range under a group of its own is `Bus::replay` (`herald::replay`). Blocking calls: from
//! async code run them in `tokio::task::spawn_blocking`.
//!
//! A reset commits the new offsets as the group, so it is refused while the group has live
//! members (they would overwrite it with their own commits, and see nothing of it before their
//! next rebalance): stop the service first, reset, start it again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::{Error, Result};

/// Where a reset moves a group's offsets on each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetTarget {
    /// The oldest record the partition still holds: replay everything.
    Earliest,
    /// The partition's end: skip everything not handled yet.
    Latest,
    /// The first record at or after this time (its Kafka timestamp); the end when there is none.
    Time(DateTime<Utc>),
    /// This offset, on every partition (clamped to what the partition holds).
    Offset(i64),
}

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OffsetMove {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset before (`None`: the group never committed here).
    pub from: Option<i64>,
    /// The offset committed by the reset (the next record the group reads).
    pub to: i64,
    /// The partition's oldest offset.
    pub low: i64,
    /// The partition's end.
    pub high: i64,
}

/// A consumer group as the group coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupDescription {
    /// The group's id.
    pub group: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Dead` (classic groups).
    pub state: String,
    /// The assignment protocol (`range`, `roundrobin`, `cooperative-sticky`, ...).
    pub protocol: String,
    /// Its live members.
    pub members: Vec<GroupMember>,
}

/// A live member of a group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub id: String,
    /// Its `client.id`.
    pub client_id: String,
    /// The host it connected from.
    pub host: String,
    /// The partitions assigned to it: `(topic, partition)`.
    pub assignment: Vec<(String, i32)>,
}

/// Describes and moves consumer groups of one cluster.
pub struct GroupAdmin {
    config: ClientConfig,
    timeout: Duration,
}

impl std::fmt::Debug for GroupAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAdmin")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl GroupAdmin {
    /// An admin for `config`'s brokers (with its security settings), waiting at most `timeout`
    /// for each answer.
    ///
    /// # Errors
    /// [`Error::Config`] without broker addresses.
    pub fn new(config: &Config, timeout: Duration) -> Result<Self> {
        let servers = config.real_servers("moving a group's offsets")?;
        let mut client = ClientConfig::new();
        for (key, value) in config.client_properties(servers) {
            client.set(key, value);
        }
        client
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false");
        Ok(Self {
            config: client,
            timeout,
        })
    }

    fn consumer(&self, group: &str) -> Result<BaseConsumer> {
        let mut config = self.config.clone();
        config.set("group.id", group);
        config
            .create()
            .map_err(|e| Error::kafka("creating a client for the group", e))
    }

    /// The group's state, protocol and live members with their partitions.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the coordinator does not answer within the timeout.
    pub fn describe(&self, group: &str) -> Result<GroupDescription> {
        let consumer = self.consumer(group)?;
        let list = consumer
            .fetch_group_list(Some(group), self.timeout)
            .map_err(|e| Error::kafka("describing the consumer group", e))?;
        let Some(found) = list.groups().iter().find(|g| g.name() == group) else {
            return Ok(GroupDescription {
                group: group.to_owned(),
                state: "Dead".into(),
                protocol: String::new(),
                members: Vec::new(),
            });
        };
        Ok(GroupDescription {
            group: group.to_owned(),
            state: found.state().to_owned(),
            protocol: found.protocol().to_owned(),
            members: found
                .members()
                .iter()
                .map(|m| GroupMember {
                    id: m.id().to_owned(),
                    client_id: m.client_id().to_owned(),
                    host: m.client_host().to_owned(),
                    assignment: m.assignment().map(assignment).unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// What [`GroupAdmin::reset`] would commit on each partition of `topic`, without committing.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::Kafka`] when the brokers do not answer.
    pub fn plan_reset(
        &self,
        group: &str,
        topic: &str,
        target: OffsetTarget,
    ) -> Result<Vec<OffsetMove>> {
        let consumer = self.consumer(group)?;
        self.plan_with(&consumer, topic, target)
    }

    fn plan_with(
        &self,
        consumer: &BaseConsumer,
        topic: &str,
        target: OffsetTarget,
    ) -> Result<Vec<OffsetMove>> {
        let metadata = consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|e| Error::kafka("reading the topic's metadata", e))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::TopicNotFound {
                topic: topic.to_owned(),
                hint: "name a topic the group consumes (`herald topics` lists them)".into(),
            });
        }
        let mut all = TopicPartitionList::new();
        for partition in &partitions {
            all.add_partition(topic, *partition);
        }
        let committed = consumer
            .committed_offsets(all, self.timeout)
            .map_err(|e| Error::kafka("reading the group's committed offsets", e))?;
        let at_time = match target {
            OffsetTarget::Time(time) => {
                let mut query = TopicPartitionList::new();
                for partition in &partitions {
                    query
                        .add_partition_offset(
                            topic,
                            *partition,
                            Offset::Offset(time.timestamp_millis()),
                        )
                        .map_err(|e| Error::kafka("asking for the offsets at a time", e))?;
                }
                Some(
                    consumer
                        .offsets_for_times(query, self.timeout)
                        .map_err(|e| Error::kafka("asking for the offsets at a time", e))?,
                )
            }
            _ => None,
        };
        let mut moves = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, self.timeout)
                .map_err(|e| Error::kafka("reading the partition's watermarks", e))?;
            let from = match committed
                .find_partition(topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(n)) => Some(n),
                _ => None,
            };
            let to = match target {
                OffsetTarget::Earliest => low,
                OffsetTarget::Latest => high,
                OffsetTarget::Offset(n) => n.clamp(low, high),
                OffsetTarget::Time(_) => {
                    match at_time
                        .as_ref()
                        .and_then(|t| t.find_partition(topic, partition))
                        .map(|e| e.offset())
                    {
                        // No record at or after the time: the end.
                        Some(Offset::Offset(n)) if n >= 0 => n.clamp(low, high),
                        _ => high,
                    }
                }
            };
            moves.push(OffsetMove {
                topic: topic.to_owned(),
                partition,
                from,
                to,
                low,
                high,
            });
        }
        Ok(moves)
    }

    /// Commits `target` on every partition of `topic` as `group`: the group's next reader starts
    /// there (replaying what follows, or skipping to it). Returns the moves made.
    ///
    /// # Errors
    /// [`Error::Config`] while the group has live members (naming them: stop them first), and as
    /// [`GroupAdmin::plan_reset`]; [`Error::Kafka`] when the commit is refused.
    pub fn reset(&self, group: &str, topic: &str, target: OffsetTarget) -> Result<Vec<OffsetMove>> {
        let description = self.describe(group).map_err(|e| match e {
            Error::Kafka { .. } if e.to_string().contains("UnsupportedFeature") => {
                Error::Config(format!(
                    "the broker cannot describe consumer groups (herald's embedded broker cannot), \
                     so herald cannot check that `{group}` has no live members: stop them and use \
                     `reset_unchecked` (`herald groups reset --force`)"
                ))
            }
            e => e,
        })?;
        if !description.members.is_empty() {
            let members: Vec<String> = description
                .members
                .iter()
                .map(|m| format!("{} on {}", m.client_id, m.host))
                .collect();
            return Err(Error::Config(format!(
                "consumer group `{group}` has {} live member(s) ({}): stop them before moving its \
                 offsets, or their commits would undo the reset",
                members.len(),
                members.join(", ")
            )));
        }
        self.reset_unchecked(group, topic, target)
    }

    /// [`GroupAdmin::reset`] without asking the coordinator for the group's members, for brokers
    /// that cannot describe groups (herald's embedded broker): the caller makes sure none runs.
    ///
    /// # Errors
    /// As [`GroupAdmin::plan_reset`]; [`Error::Kafka`] when the commit is refused (a live member
    /// of a consumer-protocol group makes the broker refuse it).
    pub fn reset_unchecked(
        &self,
        group: &str,
        topic: &str,
        target: OffsetTarget,
    ) -> Result<Vec<OffsetMove>> {
        let consumer = self.consumer(group)?;
        let moves = self.plan_with(&consumer, topic, target)?;
        self.commit_with(&consumer, group, &moves)?;
        Ok(moves)
    }

    /// Commits each move's `to` as `group`, without asking for the group's members (as
    /// [`GroupAdmin::reset_unchecked`]): for moves planned with [`GroupAdmin::plan_reset`] and then
    /// chosen or changed (some partitions only, an offset per partition). The replay of
    /// `Bus::replay` starts its own group this way.
    ///
    /// # Errors
    /// [`Error::Config`] when the broker refuses because the group has members, [`Error::Kafka`]
    /// when the commit fails otherwise.
    pub fn commit_moves(&self, group: &str, moves: &[OffsetMove]) -> Result<()> {
        let consumer = self.consumer(group)?;
        self.commit_with(&consumer, group, moves)
    }

    fn commit_with(
        &self,
        consumer: &BaseConsumer,
        group: &str,
        moves: &[OffsetMove],
    ) -> Result<()> {
        if moves.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for m in moves {
            offsets
                .add_partition_offset(&m.topic, m.partition, Offset::Offset(m.to))
                .map_err(|e| Error::kafka("preparing the commit", e))?;
        }
        consumer.commit(&offsets, CommitMode::Sync).map_err(|e| {
            use rdkafka::types::RDKafkaErrorCode as C;
            match e.rdkafka_error_code() {
                Some(
                    C::UnknownMemberId
                    | C::IllegalGeneration
                    | C::RebalanceInProgress
                    | C::StaleMemberEpoch,
                ) => Error::Config(format!(
                    "the broker refused the reset ({e}): consumer group `{group}` still has members, \
                     or a stopped one the broker holds until its session timeout; stop them, \
                     wait out the session timeout and try again"
                )),
                _ => Error::kafka("committing the group's new offsets", e),
            }
        })?;
        Ok(())
    }
}

/// The partitions of a classic consumer protocol assignment (`ConsumerProtocolAssignment`:
/// version, then `[topic, [partition]]`, then user data); empty when it does not parse.
fn assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    fn read(bytes: &[u8]) -> Option<Vec<(String, i32)>> {
        let mut at = 2; // the version
        let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
            let part = bytes.get(*at..*at + n)?;
            *at += n;
            Some(part)
        };
        let int = |at: &mut usize| -> Option<i32> {
            Some(i32::from_be_bytes(take(at, 4)?.try_into().ok()?))
        };
        let mut out = Vec::new();
        let topics = int(&mut at)?;
        for _ in 0..topics.max(0) {
            let len = i16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?);
            let topic = std::str::from_utf8(take(&mut at, usize::try_from(len).ok()?)?).ok()?;
            let partitions = int(&mut at)?;
            for _ in 0..partitions.max(0) {
                out.push((topic.to_owned(), int(&mut at)?));
            }
        }
        Some(out)
    }
    read(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_reads_its_topics_and_partitions_and_garbage_reads_as_none() {
        let mut bytes = vec![0, 1]; // version 1
        bytes.extend(1i32.to_be_bytes()); // one topic
        bytes.extend(6i16.to_be_bytes());
        bytes.extend(b"orders");
        bytes.extend(2i32.to_be_bytes());
        bytes.extend(0i32.to_be_bytes());
        bytes.extend(3i32.to_be_bytes());
        bytes.extend((-1i32).to_be_bytes()); // no user data
        assert_eq!(
            assignment(&bytes),
            [("orders".to_owned(), 0), ("orders".to_owned(), 3)]
        );
        assert_eq!(assignment(&[0, 1, 0, 0]), Vec::new());
        assert_eq!(assignment(&[]), Vec::new());
    }
}
