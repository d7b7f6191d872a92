//! [`DeadLetters`]: a handle on one dead-letter topic that lists, counts and fetches its records
//! without a running consumer or a consumer group.

use std::time::Duration;

use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

use super::letter::DeadLetter;
use super::read::{reader_config, Range, Reader};
use crate::config::Config;
use crate::error::{Error, Result};

/// How long one operation may wait for the broker unless [`DeadLetters::timeout`] says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle on one dead-letter topic: inspect its dead letters ([`list`](Self::list),
/// [`count`](Self::count), [`get`](Self::get)) and send them back to their original topics
/// ([`replay`](Self::replay), [`replay_all`](Self::replay_all)).
///
/// It needs no registered events or handlers and joins no consumer group: it reads with a
/// consumer assigned to the partitions, so it never moves any group's offsets.
pub struct DeadLetters {
    pub(super) topic: String,
    /// The topic this dead-letter topic belongs to (its name less the dead-letter suffix), when
    /// its name has the suffix: replays go nowhere else.
    pub(super) origin: Option<String>,
    pub(super) audience: super::ReplayAudience,
    pub(super) dry_run: bool,
    pub(super) servers: String,
    pub(super) reader: ClientConfig,
    pub(super) producer: FutureProducer,
    pub(super) delivery_timeout: Duration,
    pub(super) timeout: Duration,
    // Keeps what owns the brokers (a bus and its embedded broker) alive while the handle is.
    _owner: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// Connects to the dead-letter topic `dlq_topic` (e.g. `orders.dlq`, see
    /// [`Config::dlq_topic`]) with `config`'s brokers, security and properties, and checks that
    /// the topic exists. For a bus on the embedded broker use [`Bus::dead_letters`](crate::Bus::dead_letters), or give the
    /// configuration the bus's address with `.bootstrap_servers(bus.bootstrap_servers())`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration or one without broker addresses,
    /// [`Error::BrokerUnreachable`], [`Error::TopicNotFound`].
    pub async fn connect(config: &Config, dlq_topic: &str) -> Result<Self> {
        Self::connect_with_timeout(config, dlq_topic, DEFAULT_TIMEOUT).await
    }

    /// As [`DeadLetters::connect`], waiting at most `timeout` for the broker in this and every
    /// later operation (see [`DeadLetters::timeout`]).
    ///
    /// # Errors
    /// As [`DeadLetters::connect`].
    pub async fn connect_with_timeout(
        config: &Config,
        dlq_topic: &str,
        timeout: Duration,
    ) -> Result<Self> {
        config.validate()?;
        let servers = config
            .real_servers(
                "reading dead letters (use `bus.dead_letters(topic)` on the embedded broker)",
            )?
            .to_owned();
        config.check_connection(timeout).await?;
        Self::open(config, &servers, dlq_topic, timeout, None).await
    }

    /// Connects with the brokers at `servers`; `owner` (a bus) is kept alive with the handle.
    pub(crate) async fn open(
        config: &Config,
        servers: &str,
        dlq_topic: &str,
        timeout: Duration,
        owner: Option<Box<dyn std::any::Any + Send + Sync>>,
    ) -> Result<Self> {
        let mut producer_config = config.producer_config(servers);
        if !config.properties.contains_key("allow.auto.create.topics") {
            // A replay must not create a topic that was deleted on purpose.
            producer_config.set("allow.auto.create.topics", "false");
        }
        let producer: FutureProducer = producer_config
            .create()
            .map_err(|e| Error::kafka("creating the replay producer", e))?;
        let handle = Self {
            topic: dlq_topic.to_owned(),
            origin: dlq_topic
                .strip_suffix(config.dlq_suffix.as_str())
                .filter(|o| !o.is_empty() && !config.dlq_suffix.is_empty())
                .map(str::to_owned),
            audience: super::ReplayAudience::EveryGroup,
            dry_run: false,
            servers: servers.to_owned(),
            reader: reader_config(config, servers),
            producer,
            delivery_timeout: config.delivery_timeout,
            timeout,
            _owner: owner,
        };
        handle.partitions().await?;
        Ok(handle)
    }

    /// Which consumer groups handle the replayed copies (default: every group of the original
    /// topic, as for a new event).
    pub fn audience(mut self, audience: super::ReplayAudience) -> Self {
        self.audience = audience;
        self
    }

    /// With `true`, replays check every dead letter and report where each would go, but write
    /// nothing ([`Replayed::delivery`](super::Replayed) then holds the target topic, the partition
    /// it would go to or -1, and offset -1).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets how long one operation may wait for the broker (default 10 s): metadata, watermarks,
    /// and reading the records of one call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Runs `work` with a new reader of the dead-letter topic on tokio's blocking pool.
    pub(super) async fn with_reader<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Reader) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (client, topic, servers, timeout) = (
            self.reader.clone(),
            self.topic.clone(),
            self.servers.clone(),
            self.timeout,
        );
        tokio::task::spawn_blocking(move || work(&Reader::new(&client, &topic, &servers, timeout)?))
            .await
            .map_err(|_| Error::State("reading the dead-letter topic panicked"))?
    }

    /// The hint of a missing dead-letter topic.
    fn absent_hint(&self) -> String {
        format!(
            "check the name (the dead-letter topic of `t` is `t` plus the suffix, `.dlq` unless KAFKA_DLQ_TOPIC_SUFFIX changes it) and that `{}` are the right brokers; herald creates it with the consumed topics",
            self.servers
        )
    }

    async fn partitions(&self) -> Result<Vec<i32>> {
        let hint = self.absent_hint();
        self.with_reader(move |reader| reader.partitions(&hint))
            .await
    }

    /// Each partition with its low and high watermark.
    pub(super) async fn ranges(&self) -> Result<Vec<(i32, i64, i64)>> {
        let hint = self.absent_hint();
        self.with_reader(move |reader| {
            reader
                .partitions(&hint)?
                .into_iter()
                .map(|p| reader.watermarks(p).map(|(low, high)| (p, low, high)))
                .collect()
        })
        .await
    }

    /// How many dead letters the topic holds: the sum over its partitions of the high watermark
    /// minus the low watermark.
    ///
    /// # Errors
    /// [`Error::BrokerUnreachable`], [`Error::TopicNotFound`], [`Error::Kafka`].
    pub async fn count(&self) -> Result<u64> {
        Ok(self
            .ranges()
            .await?
            .iter()
            .map(|(_, low, high)| (high - low).max(0) as u64)
            .sum())
    }

    /// The oldest `limit` dead letters across all partitions, oldest first (by the time they were
    /// dead-lettered, then partition and offset).
    ///
    /// # Errors
    /// As [`DeadLetters::count`], and [`Error::ReadTimeout`] when reading takes longer than the
    /// timeout.
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let ranges: Vec<Range> = self
            .ranges()
            .await?
            .into_iter()
            .map(|(partition, from, until)| Range {
                partition,
                from,
                until,
                max: limit,
            })
            .collect();
        let mut letters = self.with_reader(move |reader| reader.read(&ranges)).await?;
        letters.sort_by_key(|l| (l.failed_at(), l.partition, l.offset));
        letters.truncate(limit);
        Ok(letters)
    }

    /// The dead letter at `partition` and `offset` of the dead-letter topic.
    ///
    /// # Errors
    /// [`Error::NoDeadLetter`] when there is none there (the message gives the partition's range),
    /// and as [`DeadLetters::list`].
    pub async fn get(&self, partition: i32, offset: i64) -> Result<DeadLetter> {
        let ranges = self.ranges().await?;
        let absent = |reason: String| Error::NoDeadLetter {
            topic: self.topic.clone(),
            partition,
            offset,
            reason,
        };
        let Some(&(_, low, high)) = ranges.iter().find(|(p, _, _)| *p == partition) else {
            return Err(absent(format!(
                "the topic has no partition {partition} (it has {})",
                ranges.len()
            )));
        };
        if low >= high {
            return Err(absent(format!("partition {partition} is empty")));
        }
        if offset < low || offset >= high {
            return Err(absent(format!(
                "partition {partition} holds offsets {low} to {}",
                high - 1
            )));
        }
        let range = Range {
            partition,
            from: offset,
            until: offset + 1,
            max: 1,
        };
        let mut found = self
            .with_reader(move |reader| reader.read(&[range]))
            .await?;
        match found.pop() {
            Some(letter) if letter.offset == offset => Ok(letter),
            _ => Err(absent(format!(
                "offset {offset} holds no record (removed by compaction, or a transaction marker)"
            ))),
        }
    }
}
