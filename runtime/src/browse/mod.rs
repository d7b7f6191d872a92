//! Looking at a topic: [`TopicReader`](crate::browse::TopicReader) reads any topic without a
//! consumer group, from where you choose ([`StartAt`](crate::browse::StartAt)), either up to the
//! high watermarks taken when the read starts ([`read`](crate::browse::TopicReader::read)) or
//! following new records ([`follow`](crate::browse::TopicReader::follow)). Every record comes out
//! decoded ([`Record`](crate::browse::Record)): a CloudEvent (binary or structured mode) with its
//! attributes and its data as JSON, or any other record marked as not being one, never an error
//! that stops the read. `herald tail` and `herald trace` are built on it.
//!
//! ```no_run
//! use herald::browse::{Filter, StartAt, TopicReader};
//! # async fn run() -> herald::Result<()> {
//! let config = herald::Config::from_env("debugging")?;
//! let reader = TopicReader::open(&config, "orders").await?;
//! let filter = Filter { correlation_id: Some("c-42".into()), ..Filter::default() };
//! let mut records = reader.read(StartAt::Beginning, filter).await?;
//! while let Some(record) = records.next().await {
//!     let record = record?;
//!     println!("{}/{} {:?}", record.partition, record.offset, record.event().map(|m| &m.event_type));
//! }
//! # Ok(())
//! # }
//! ```

mod record;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::mpsc;

pub use record::{Data, Record, RecordKind};

use crate::config::Config;
use crate::dlq::read::{reader_config, Reader};
use crate::dlq::DEFAULT_TIMEOUT;
use crate::error::{Error, Result};
use crate::telemetry::PartitionInfo;
use crate::wire::received::Received;

/// Where a read starts, in every partition of the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record still held (the low watermark).
    Beginning,
    /// After the newest record (the high watermark): only records written after the read starts.
    End,
    /// This offset, clamped to the partition's low and high watermarks.
    Offset(i64),
    /// The last `n` records of each partition (from the high watermark less `n`, or the low one).
    Last(u64),
    /// The first record whose Kafka timestamp is at or after this time (librdkafka's
    /// offsets-for-times, Kafka's ListOffsets by time). A partition without such a record starts
    /// at its end. librdkafka's mock cluster (`herald broker`, the embedded broker) answers every
    /// such request with "none", so there every partition starts at its end.
    Time(DateTime<Utc>),
}

/// Which records a read returns; an unset field lets every record through. A record that is not
/// a CloudEvent passes a filter only through `key`: it has no type or correlation id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only CloudEvents of this type (`ce_type`).
    pub event_type: Option<String>,
    /// Only records with this key (compared as UTF-8 text).
    pub key: Option<String>,
    /// Only CloudEvents with this correlation id (`ce_correlationid`).
    pub correlation_id: Option<String>,
}

impl Filter {
    /// Whether `record` passes.
    pub fn matches(&self, record: &Record) -> bool {
        if let Some(key) = &self.key {
            if record.key.as_deref() != Some(key.as_bytes()) {
                return false;
            }
        }
        if self.event_type.is_none() && self.correlation_id.is_none() {
            return true;
        }
        let Some(meta) = record.event() else {
            return false;
        };
        self.event_type
            .as_ref()
            .is_none_or(|t| *t == meta.event_type)
            && self
                .correlation_id
                .as_ref()
                .is_none_or(|c| meta.correlation_id.as_ref() == Some(c))
    }
}

/// A handle on one topic for reading it without a consumer group: it never commits, so it moves
/// no group's offsets, and it needs no registered events.
pub struct TopicReader {
    topic: String,
    servers: String,
    client: ClientConfig,
    timeout: Duration,
}

impl std::fmt::Debug for TopicReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicReader")
            .field("topic", &self.topic)
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TopicReader {
    /// Opens `topic` (its full name, prefix included) with `config`'s brokers, security and
    /// properties, and checks that it exists.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration or one without broker addresses (the
    /// embedded broker included: give its address with `Config::bootstrap_servers`),
    /// [`Error::BrokerUnreachable`], [`Error::Authentication`], [`Error::TopicNotFound`].
    pub async fn open(config: &Config, topic: &str) -> Result<Self> {
        Self::open_with_timeout(config, topic, DEFAULT_TIMEOUT).await
    }

    /// As [`TopicReader::open`], waiting at most `timeout` for the brokers here and in every
    /// later operation (see [`TopicReader::timeout`]).
    ///
    /// # Errors
    /// As [`TopicReader::open`].
    pub async fn open_with_timeout(
        config: &Config,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self> {
        config.validate()?;
        let servers = config.real_servers("reading a topic")?.to_owned();
        config.check_connection(timeout).await?;
        let mut client = reader_config(config, &servers);
        client.set("group.id", "herald-topic-reader");
        let reader = Self {
            topic: topic.to_owned(),
            servers,
            client,
            timeout,
        };
        reader.watermarks().await?;
        Ok(reader)
    }

    /// Sets how long one operation may wait for the brokers (default 10 s): metadata, watermarks,
    /// finding offsets by time, and, in a bounded read, the wait for the next record.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Each partition with its low and high watermark, in partition order.
    ///
    /// # Errors
    /// [`Error::BrokerUnreachable`], [`Error::TopicNotFound`], [`Error::Kafka`].
    pub async fn watermarks(&self) -> Result<Vec<PartitionInfo>> {
        let (client, topic, servers, timeout) = self.parts();
        tokio::task::spawn_blocking(move || {
            let reader = Reader::new(&client, &topic, &servers, timeout)?;
            partition_infos(&reader, &servers)
        })
        .await
        .map_err(|_| Error::State("reading the topic's watermarks panicked"))?
    }

    /// Reads the records from `start` up to the high watermarks taken when the read starts, then
    /// ends: records written after that are not read. The records that pass `filter` come out in
    /// offset order per partition, partitions interleaved as they arrive.
    ///
    /// # Errors
    /// As [`TopicReader::watermarks`], and [`Error::Kafka`] when the offsets of a
    /// [`StartAt::Time`] cannot be found. Errors while reading come out of [`Records::next`]:
    /// [`Error::ReadTimeout`] when no record arrives within the timeout although some are due.
    pub async fn read(&self, start: StartAt, filter: Filter) -> Result<Records> {
        self.start(start, filter, false).await
    }

    /// Reads the records from `start`, then every record written later, until the [`Records`] is
    /// dropped. The start offsets are fixed when this returns: a record written after it is read.
    ///
    /// # Errors
    /// As [`TopicReader::read`].
    pub async fn follow(&self, start: StartAt, filter: Filter) -> Result<Records> {
        self.start(start, filter, true).await
    }

    fn parts(&self) -> (ClientConfig, String, String, Duration) {
        (
            self.client.clone(),
            self.topic.clone(),
            self.servers.clone(),
            self.timeout,
        )
    }

    async fn start(&self, start: StartAt, filter: Filter, follow: bool) -> Result<Records> {
        let (client, topic, servers, timeout) = self.parts();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = mpsc::channel(256);
        // A thread of its own, not tokio's blocking pool: a followed topic keeps it for as long as
        // the caller reads.
        std::thread::Builder::new()
            .name("herald-topic-reader".into())
            .spawn(move || {
                let prepared = Reader::new(&client, &topic, &servers, timeout).and_then(|reader| {
                    prepare(&reader, &servers, start, follow).map(|plan| (reader, plan))
                });
                let (reader, plan) = match prepared {
                    Ok(ready) => ready,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(plan.expected));
                pump(&reader, plan, &filter, follow, &tx);
            })
            .map_err(|e| Error::Config(format!("cannot start a thread to read the topic: {e}")))?;
        let expected = ready_rx
            .await
            .map_err(|_| Error::State("the topic reader stopped before it started"))??;
        Ok(Records { rx, expected })
    }
}

/// The records of one read, as they arrive. Dropping it stops the read.
#[derive(Debug)]
pub struct Records {
    rx: mpsc::Receiver<Result<Record>>,
    expected: u64,
}

impl Records {
    /// The next record that passes the filter; `None` when a bounded read reached the high
    /// watermarks taken at its start (a followed read ends only when dropped, or after an error).
    pub async fn next(&mut self) -> Option<Result<Record>> {
        self.rx.recv().await
    }

    /// How many records lie between the start offsets and the high watermarks taken when the
    /// read started (before filtering): the number a bounded read without a filter returns,
    /// unless compaction or transaction markers left gaps.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// Every remaining record of a bounded read.
    ///
    /// # Errors
    /// The first error of the read (see [`TopicReader::read`]).
    pub async fn collect(mut self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        while let Some(record) = self.next().await {
            out.push(record?);
        }
        Ok(out)
    }
}

fn partition_infos(reader: &Reader, servers: &str) -> Result<Vec<PartitionInfo>> {
    let hint = format!(
        "check the name (with its prefix, if the service sets one) and that `{servers}` are the right brokers; `herald topics` lists the topics"
    );
    reader
        .partitions(&hint)?
        .into_iter()
        .map(|partition| {
            reader
                .watermarks(partition)
                .map(|(low, high)| PartitionInfo {
                    partition,
                    low,
                    high,
                })
        })
        .collect()
}

/// Per partition: where the read starts and (bounded) where it ends.
struct Plan {
    /// `(partition, from, until)`.
    ranges: Vec<(i32, i64, i64)>,
    expected: u64,
}

/// Resolves `start` to an offset per partition and assigns the consumer there.
fn prepare(reader: &Reader, servers: &str, start: StartAt, follow: bool) -> Result<Plan> {
    let partitions = partition_infos(reader, servers)?;
    let by_time = match start {
        StartAt::Time(time) => Some(offsets_for_time(reader, &partitions, time)?),
        _ => None,
    };
    let mut ranges = Vec::with_capacity(partitions.len());
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let from = match start {
            StartAt::Beginning => p.low,
            StartAt::End => p.high,
            StartAt::Offset(offset) => offset.clamp(p.low, p.high.max(p.low)),
            StartAt::Last(n) => p
                .high
                .saturating_sub(n.min(i64::MAX as u64) as i64)
                .max(p.low),
            StartAt::Time(_) => by_time
                .as_ref()
                .and_then(|found| found.get(&p.partition).copied())
                .flatten()
                .map_or(p.high, |offset| offset.clamp(p.low, p.high.max(p.low))),
        };
        ranges.push((p.partition, from, p.high));
        if follow || from < p.high {
            tpl.add_partition_offset(reader.topic_name(), p.partition, Offset::Offset(from))
                .map_err(|e| Error::kafka("choosing the offsets to read", e))?;
        }
    }
    if tpl.count() > 0 {
        reader
            .consumer()
            .assign(&tpl)
            .map_err(|e| Error::kafka("assigning the partitions to read", e))?;
    }
    let expected = ranges
        .iter()
        .map(|(_, from, until)| (until - from).max(0) as u64)
        .sum();
    Ok(Plan { ranges, expected })
}

/// The first offset at or after `time` per partition; `None` where there is none (librdkafka
/// answers -1: no record that new, or the mock cluster, which answers -1 to every such request).
fn offsets_for_time(
    reader: &Reader,
    partitions: &[PartitionInfo],
    time: DateTime<Utc>,
) -> Result<HashMap<i32, Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(
            reader.topic_name(),
            p.partition,
            Offset::Offset(time.timestamp_millis()),
        )
        .map_err(|e| Error::kafka("asking for the offsets of a time", e))?;
    }
    let found = reader
        .consumer()
        .offsets_for_times(tpl, reader.read_timeout())
        .map_err(|e| reader.broker_error("finding the offsets of a time", e))?;
    let mut out = HashMap::new();
    for element in found.elements() {
        if let Err(error) = element.error() {
            return Err(Error::kafka("finding the offsets of a time", error));
        }
        let offset = match element.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset),
            _ => None,
        };
        out.insert(element.partition(), offset);
    }
    Ok(out)
}

/// Polls the consumer and sends the records that pass `filter` until a bounded read reached its
/// ends, the receiver is dropped, or an error.
fn pump(
    reader: &Reader,
    plan: Plan,
    filter: &Filter,
    follow: bool,
    tx: &mpsc::Sender<Result<Record>>,
) {
    use rdkafka::Message;
    // Bounded: the partitions still to read, each with its end.
    let mut open: HashMap<i32, i64> = plan
        .ranges
        .iter()
        .filter(|(_, from, until)| from < until)
        .map(|(partition, _, until)| (*partition, *until))
        .collect();
    let topic: Arc<str> = reader.topic_name().into();
    let timeout = reader.read_timeout();
    let mut read = 0u64;
    let mut last_progress = Instant::now();
    while follow || !open.is_empty() {
        if tx.is_closed() {
            return;
        }
        match reader.consumer().poll(Duration::from_millis(100)) {
            None => {
                if !follow && last_progress.elapsed() >= timeout {
                    let _ = tx.blocking_send(Err(Error::ReadTimeout {
                        topic: topic.to_string(),
                        read,
                        expected: plan.expected,
                        waited: timeout,
                    }));
                    return;
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                last_progress = Instant::now();
                open.remove(&partition);
            }
            Some(Err(error)) => {
                if follow {
                    // librdkafka retries by itself; a followed read waits for the brokers.
                    tracing::warn!(%error, topic = %topic, "reading a followed topic; still waiting");
                    continue;
                }
                let _ = tx.blocking_send(Err(reader.broker_error("reading the topic", error)));
                return;
            }
            Some(Ok(message)) => {
                last_progress = Instant::now();
                let (partition, offset) = (message.partition(), message.offset());
                let wanted = follow || open.get(&partition).is_some_and(|until| offset < *until);
                if !follow
                    && open
                        .get(&partition)
                        .is_some_and(|until| offset + 1 >= *until)
                {
                    open.remove(&partition);
                }
                if !wanted {
                    continue;
                }
                read += 1;
                let record = Record::decode(&Received::copy(&message, topic.clone()));
                if filter.matches(&record) && tx.blocking_send(Ok(record)).is_err() {
                    return;
                }
            }
        }
    }
}
