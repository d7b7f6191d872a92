//! The test bus on a broker ([`TestBus::with_real`](super::TestBus::with_real)): the records come
//! from the topics themselves, settling waits until every consumer group committed all it reads,
//! and the report tells each consumed record's outcome from the dead-letter topics' headers.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::Mutex;

use super::{Became, DeadLettered, Outcome, Report, StoredRecord};
use crate::browse::{Filter, StartAt, TopicReader};
use crate::bus::Bus;
use crate::config::Config;
use crate::consume::dynamic::EVERY_TYPE;
use crate::error::{Error, Result};
use crate::headers::dlq;

/// How long settling waits for the groups to commit everything.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// How often settling asks for the groups' lag.
const POLL: Duration = Duration::from_millis(100);

/// What a test bus on a broker remembers between settles.
#[derive(Default)]
pub(super) struct OnBroker {
    /// Per group and topic, the next offset of each partition not reported yet.
    reported: Mutex<HashMap<(String, String), HashMap<i32, i64>>>,
}

impl OnBroker {
    /// Waits until every group committed all of its topics, then reports each record consumed
    /// since the last settle: dead-lettered when its group's dead letter names it, skipped when
    /// no handler of the group takes its type, handled otherwise.
    pub async fn settle(&self, bus: &Bus) -> Result<Report> {
        caught_up(bus).await?;
        let mut reported = self.reported.lock().await;
        let mut report = Report::default();
        let groups = bus.running_groups();
        // Each topic and its dead-letter topic read once, whichever groups consume it.
        let mut topics: HashMap<&str, (Vec<StoredRecord>, Vec<StoredRecord>)> = HashMap::new();
        for topic in groups.iter().flat_map(|(_, h)| h.iter().map(|h| h.topic)) {
            if !topics.contains_key(topic) {
                let letters = read(bus, &bus.config().dlq_topic(topic)).await?;
                topics.insert(topic, (read(bus, topic).await?, letters));
            }
        }
        for (group, handlers) in &groups {
            let types: BTreeSet<&str> = handlers.iter().map(|h| h.event_type).collect();
            let consumed: BTreeSet<&str> = handlers.iter().map(|h| h.topic).collect();
            for topic in consumed {
                let (records, letters) = &topics[topic];
                let letters = letters_of(letters, topic, group);
                let next = reported
                    .entry((group.clone(), topic.to_owned()))
                    .or_default();
                for record in records.iter().cloned() {
                    let seen = next.entry(record.partition).or_insert(0);
                    if record.offset < *seen {
                        continue;
                    }
                    *seen = record.offset + 1;
                    let became = match letters.get(&(record.partition, record.offset)) {
                        Some(letter) => Became::DeadLettered(letter.clone()),
                        None => {
                            let kind = super::event_type_of(&record).unwrap_or_default();
                            if types.contains(kind.as_str()) || types.contains(EVERY_TYPE) {
                                Became::Handled
                            } else {
                                Became::Skipped
                            }
                        }
                    };
                    report
                        .outcomes
                        .push(Outcome::new(group.clone(), record, became));
                }
            }
        }
        report
            .outcomes
            .sort_by_key(|o| (o.record.timestamp, o.record.offset));
        Ok(report)
    }
}

/// Waits until no consumer group of `bus` lags on any partition, twice in a row.
async fn caught_up(bus: &Bus) -> Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    let mut quiet = 0;
    while quiet < 2 {
        if tokio::time::Instant::now() > deadline {
            return Err(Error::State(
                "the test bus's consumer groups did not commit everything within 60 s",
            ));
        }
        let lagging = bus
            .consumer_lag()
            .await?
            .iter()
            .flat_map(|info| &info.groups)
            .any(|group| group.lag > 0);
        quiet = if lagging { 0 } else { quiet + 1 };
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Of the records of `topic`'s dead-letter topic, those `group` wrote, by the original's
/// partition and offset.
fn letters_of(
    dead_letters: &[StoredRecord],
    topic: &str,
    group: &str,
) -> HashMap<(i32, i64), DeadLettered> {
    let mut letters = HashMap::new();
    for letter in dead_letters {
        if letter.header(dlq::CONSUMER_GROUP) != Some(group)
            || letter.header(dlq::ORIGINAL_TOPIC) != Some(topic)
        {
            continue;
        }
        let number = |name| letter.header(name).and_then(|v| v.parse::<i64>().ok());
        let (Some(partition), Some(offset)) = (
            number(dlq::ORIGINAL_PARTITION),
            number(dlq::ORIGINAL_OFFSET),
        ) else {
            continue;
        };
        let kind = crate::consume::dispatch::FailureKind::named(
            letter.header(dlq::ERROR_KIND).unwrap_or_default(),
        );
        letters.insert(
            (partition as i32, offset),
            DeadLettered {
                kind,
                handlers: letter.header(dlq::HANDLER).unwrap_or_default().to_owned(),
                attempts: number(dlq::RETRY_COUNT).unwrap_or(0) as u32,
                reason: letter
                    .header(dlq::ERROR_MESSAGE)
                    .unwrap_or_default()
                    .to_owned(),
            },
        );
    }
    letters
}

/// Every record of `topic` on `bus`'s broker, partition by partition; none when it does not exist.
pub(super) async fn read(bus: &Bus, topic: &str) -> Result<Vec<StoredRecord>> {
    let config: Config = bus
        .config()
        .clone()
        .bootstrap_servers(bus.bootstrap_servers());
    let reader = match TopicReader::open(&config, topic).await {
        Ok(reader) => reader,
        Err(Error::TopicNotFound { .. }) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut records = reader
        .read(StartAt::Beginning, Filter::default())
        .await?
        .collect()
        .await?;
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(sequence, record)| StoredRecord {
            sequence: sequence as u64,
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp.unwrap_or_default(),
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
        })
        .collect())
}
