//! Reading a topic without a consumer group: metadata, watermarks and offset ranges, with a
//! group-less consumer assigned to the partitions, bounded in time. Blocking: callers run it on
//! tokio's blocking pool.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::letter::DeadLetter;
use crate::config::Config;
use crate::error::{Error, Result};

/// Offsets `from..until` of one partition, at most `max` records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub partition: i32,
    pub from: i64,
    pub until: i64,
    pub max: usize,
}

/// A group-less consumer of one topic.
pub(crate) struct Reader {
    consumer: BaseConsumer,
    topic: String,
    servers: String,
    timeout: Duration,
}

/// The librdkafka settings of a reader: the configuration's brokers, security and properties, no
/// commits, no topic creation. librdkafka's `assign` wants a `group.id`, but an assigned consumer
/// never joins that group and, without commits, never writes its offsets.
pub(crate) fn reader_config(config: &Config, servers: &str) -> ClientConfig {
    let mut client = config.admin_config(servers);
    client
        .set("group.id", "herald-dead-letter-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        // The embedded broker holds every fetch this long instead of answering when data arrives.
        .set("fetch.wait.max.ms", "50");
    client
}

/// Whether a metadata error means that no broker answered.
fn unreachable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error,
        KafkaError::MetadataFetch(
            C::OperationTimedOut
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::Resolve
                | C::TimedOutQueue
        )
    )
}

impl Reader {
    pub(crate) fn new(
        client: &ClientConfig,
        topic: &str,
        servers: &str,
        timeout: Duration,
    ) -> Result<Self> {
        let consumer: BaseConsumer = client
            .create()
            .map_err(|e| Error::kafka("creating a topic reader", e))?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            servers: servers.to_owned(),
            timeout,
        })
    }

    /// The topic read.
    pub(crate) fn topic_name(&self) -> &str {
        &self.topic
    }

    /// How long one operation may wait for the brokers.
    pub(crate) fn read_timeout(&self) -> Duration {
        self.timeout
    }

    /// The consumer, assigned to nothing until [`Reader::read`] or a caller assigns it.
    pub(crate) fn consumer(&self) -> &BaseConsumer {
        &self.consumer
    }

    pub(crate) fn broker_error(&self, operation: &'static str, error: KafkaError) -> Error {
        if unreachable(&error) {
            Error::BrokerUnreachable {
                servers: self.servers.clone(),
                waited: self.timeout,
            }
        } else {
            Error::kafka(operation, error)
        }
    }

    /// The topic's partitions, in order.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::BrokerUnreachable`] or [`Error::Kafka`].
    pub(crate) fn partitions(&self, hint: &str) -> Result<Vec<i32>> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), self.timeout)
            .map_err(|e| self.broker_error("reading topic metadata", e))?;
        let topic = metadata.topics().iter().find(|t| t.name() == self.topic);
        let mut ids: Vec<i32> = topic
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return Err(Error::TopicNotFound {
                topic: self.topic.clone(),
                hint: hint.to_owned(),
            });
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The low and high watermark of a partition.
    pub(crate) fn watermarks(&self, partition: i32) -> Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(&self.topic, partition, self.timeout)
            .map_err(|e| self.broker_error("reading watermarks", e))
    }

    /// The records of `ranges`, in offset order per partition. Stops a partition at its range's
    /// end, at `max` records or at its end of data; fails when it takes longer than the timeout.
    pub(crate) fn read(&self, ranges: &[Range]) -> Result<Vec<DeadLetter>> {
        let mut open: HashMap<i32, (Range, usize)> = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for range in ranges.iter().filter(|r| r.from < r.until && r.max > 0) {
            tpl.add_partition_offset(&self.topic, range.partition, Offset::Offset(range.from))
                .map_err(|e| Error::kafka("choosing the offsets to read", e))?;
            open.insert(range.partition, (*range, 0));
        }
        let expected: u64 = open
            .values()
            .map(|(r, _)| (r.max as u64).min((r.until - r.from) as u64))
            .sum();
        let mut out = Vec::new();
        if open.is_empty() {
            return Ok(out);
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| Error::kafka("assigning the partitions to read", e))?;
        let deadline = Instant::now() + self.timeout;
        while !open.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::ReadTimeout {
                    topic: self.topic.clone(),
                    read: out.len() as u64,
                    expected,
                    waited: self.timeout,
                });
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            match self.consumer.poll(wait) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    open.remove(&partition);
                }
                Some(Err(error)) => {
                    return Err(self.broker_error("reading the dead-letter topic", error))
                }
                Some(Ok(message)) => {
                    use rdkafka::Message;
                    let partition = message.partition();
                    let Some((range, taken)) = open.get_mut(&partition) else {
                        continue;
                    };
                    let offset = message.offset();
                    if offset >= range.from && offset < range.until {
                        out.push(DeadLetter::from_message(&message));
                        *taken += 1;
                    }
                    if *taken >= range.max || offset + 1 >= range.until {
                        open.remove(&partition);
                    }
                }
            }
        }
        let _ = self.consumer.unassign();
        Ok(out)
    }
}
