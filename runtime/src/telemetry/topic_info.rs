//! Topic information read from the brokers: partitions, low and high watermarks, and consumer
//! groups' committed offsets and lag per partition (seed 003's `get_topic_info`). Used by
//! [`Bus::topic_info`](crate::Bus::topic_info) and by the `herald topics` command.
//!
//! Every call is a blocking request with the inspector's timeout; call it from
//! `tokio::task::spawn_blocking` in async code (the bus's methods do).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::{Error, Result};

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicInfo {
    /// Its name.
    pub topic: String,
    /// Its partitions, by id.
    pub partitions: Vec<PartitionInfo>,
    /// The consumer groups shown.
    pub groups: Vec<GroupInfo>,
}

/// One partition's watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionInfo {
    /// The partition id.
    pub partition: i32,
    /// The oldest offset still held.
    pub low: i64,
    /// The offset the next message gets.
    pub high: i64,
}

/// A consumer group's position on one topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupInfo {
    /// The group.
    pub group: String,
    /// Per partition.
    pub partitions: Vec<GroupPartition>,
    /// The sum of the partitions' lag.
    pub lag: i64,
}

/// A consumer group's position on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GroupPartition {
    /// The partition id.
    pub partition: i32,
    /// The committed offset, `null` when the group committed none.
    pub committed: Option<i64>,
    /// Messages not yet committed: high watermark minus committed offset (minus the low watermark
    /// when nothing is committed).
    pub lag: i64,
}

/// A client that reads metadata, watermarks and committed offsets; it never joins a group.
pub struct Inspector {
    config: ClientConfig,
    client: BaseConsumer,
    timeout: Duration,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The group id of the client that reads metadata and watermarks when none is given.
const INSPECTOR_GROUP: &str = "herald-inspector";

impl Inspector {
    /// An inspector for the brokers of `config` (its bootstrap servers, security and
    /// properties), each request waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Config`] when `config` names no broker addresses (the embedded broker's address
    /// only its bus knows: use [`Bus::topic_info`](crate::Bus::topic_info) there),
    /// [`Error::Kafka`] when librdkafka refuses the configuration.
    pub fn new(config: &Config, timeout: Duration) -> Result<Self> {
        let servers = config
            .real_servers("inspecting topics (use `Bus::topic_info` on the embedded broker)")?;
        Self::with_client(config.consumer_config(servers, INSPECTOR_GROUP), timeout)
    }

    /// An inspector with librdkafka settings made by herald (`group.id`, if set, names the client
    /// only).
    pub(crate) fn with_client(mut config: ClientConfig, timeout: Duration) -> Result<Self> {
        config.set("enable.auto.commit", "false");
        if config.get("group.id").is_none() {
            config.set("group.id", INSPECTOR_GROUP);
        }
        let client = config
            .create()
            .map_err(|e| Error::kafka("creating the inspecting client", e))?;
        Ok(Self {
            config,
            client,
            timeout,
        })
    }

    /// The time limit of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Every topic but Kafka's internal ones, sorted, with its partition ids.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the brokers do not answer within the timeout.
    pub fn topics(&self) -> Result<Vec<(String, Vec<i32>)>> {
        self.metadata(None)
    }

    /// The partition ids of `topic`; `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the brokers do not answer within the timeout.
    pub fn partitions(&self, topic: &str) -> Result<Option<Vec<i32>>> {
        Ok(self
            .metadata(Some(topic))?
            .into_iter()
            .find(|(name, ids)| name == topic && !ids.is_empty())
            .map(|(_, ids)| ids))
    }

    fn metadata(&self, topic: Option<&str>) -> Result<Vec<(String, Vec<i32>)>> {
        let metadata = self
            .client
            .fetch_metadata(topic, self.timeout)
            .map_err(|e| Error::kafka("reading the brokers' metadata", e))?;
        let mut topics: Vec<(String, Vec<i32>)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .map(|t| {
                let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ids.sort_unstable();
                (t.name().to_owned(), ids)
            })
            .collect();
        topics.sort();
        Ok(topics)
    }

    /// The consumer groups the brokers list.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the brokers cannot list groups (the embedded broker cannot) or do not
    /// answer within the timeout.
    pub fn groups(&self) -> Result<Vec<String>> {
        let list = self
            .client
            .fetch_group_list(None, self.timeout)
            .map_err(|e| Error::kafka("listing the consumer groups", e))?;
        Ok(list.groups().iter().map(|g| g.name().to_owned()).collect())
    }

    /// The low and high watermarks of each of `partitions` of `topic`.
    ///
    /// # Errors
    /// [`Error::Kafka`] when a request fails or times out.
    pub fn watermarks(&self, topic: &str, partitions: &[i32]) -> Result<Vec<PartitionInfo>> {
        partitions
            .iter()
            .map(|&partition| {
                let (low, high) = self
                    .client
                    .fetch_watermarks(topic, partition, self.timeout)
                    .map_err(|e| Error::kafka("reading a partition's watermarks", e))?;
                Ok(PartitionInfo {
                    partition,
                    low,
                    high,
                })
            })
            .collect()
    }

    /// `group`'s committed offsets and lag on `partitions` of `topic`.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the request fails or times out.
    pub fn group_position(
        &self,
        group: &str,
        topic: &str,
        partitions: &[PartitionInfo],
    ) -> Result<GroupInfo> {
        let mut config = self.config.clone();
        let consumer: BaseConsumer = config
            .set("group.id", group)
            .create()
            .map_err(|e| Error::kafka("creating the inspecting client", e))?;
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(topic, p.partition);
        }
        let committed = consumer
            .committed_offsets(tpl, self.timeout)
            .map_err(|e| Error::kafka("reading a group's committed offsets", e))?;
        let partitions: Vec<GroupPartition> = partitions
            .iter()
            .map(|p| {
                let committed = match committed
                    .find_partition(topic, p.partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(n)) => Some(n),
                    _ => None,
                };
                GroupPartition {
                    partition: p.partition,
                    committed,
                    lag: (p.high - committed.unwrap_or(p.low)).max(0),
                }
            })
            .collect();
        Ok(GroupInfo {
            group: group.to_owned(),
            lag: partitions.iter().map(|p| p.lag).sum(),
            partitions,
        })
    }

    /// `topic`'s partitions and watermarks, and the position of each of `groups` on it.
    ///
    /// # Errors
    /// [`Error::Config`] when the topic does not exist, [`Error::Kafka`] when a request fails or
    /// times out.
    pub fn topic_info(&self, topic: &str, groups: &[String]) -> Result<TopicInfo> {
        let ids = self.partitions(topic)?.ok_or_else(|| {
            Error::Config(format!(
                "topic `{topic}` does not exist on the brokers: check its name (with any topic \
                 prefix) or create it"
            ))
        })?;
        let partitions = self.watermarks(topic, &ids)?;
        let groups = groups
            .iter()
            .map(|group| self.group_position(group, topic, &partitions))
            .collect::<Result<Vec<_>>>()?;
        Ok(TopicInfo {
            topic: topic.to_owned(),
            partitions,
            groups,
        })
    }
}
