//! Testing a herald service without a broker: an in-process bus whose publishes are kept in
//! memory, whose handlers run when the test asks, with the same decode, retry, dead-letter and
//! retry-topic decisions as on Kafka (the consumer groups' own dispatch code), and no group join
//! to wait for.
//!
//! ```no_run
//! use herald::prelude::*;
//! use herald::testing::TestBus;
//!
//! #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
//! pub struct UserCreated { #[event(key)] pub user_id: u64 }
//!
//! #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
//! pub struct WelcomeSent { pub user_id: u64 }
//!
//! #[handler(group = "notification-service")]
//! async fn send_welcome(event: Event<UserCreated>, ctx: &Context) -> Result<(), HandlerError> {
//!     ctx.publish(WelcomeSent { user_id: event.data.user_id }).await?;
//!     Ok(())
//! }
//!
//! # async fn test() -> herald::Result<()> {
//! let bus = TestBus::new("user-service")?;
//! let report = bus.dispatch(UserCreated { user_id: 7 }).await?;
//! assert!(report.all_handled());
//! assert_eq!(bus.published::<WelcomeSent>().await?[0].data.user_id, 7);
//!
//! // A handler called directly, with a context whose publishes the bus keeps:
//! send_welcome(bus.event(UserCreated { user_id: 8 })?, &bus.context()).await.unwrap();
//! assert_eq!(bus.published::<WelcomeSent>().await?.len(), 2);
//! # Ok(()) }
//! ```
//!
//! What the bus does in memory:
//! - Every record goes to an in-memory topic (one partition, offsets from 0), with its key, value
//!   and headers as Kafka would have received them: events published by the test or by handlers,
//!   command replies, and the dead-letter and retry-topic copies of failed events.
//! - [`TestBus::settle`] hands every record not yet consumed, in publish order, to each consumer
//!   group that reads its topic, as the group's consumer would, including those the handlers
//!   publish meanwhile: a flow runs to its end. [`TestBus::dispatch`] publishes an event and
//!   settles.
//! - Retries wait their backoff as on Kafka; run the test with
//!   `#[tokio::test(start_paused = true)]` so that the waits take no time.
//! - [`TestBus::from_env`] runs the same test on a broker when `HERALD_TEST_REAL` is set
//!   (FastStream's `with_real`): see [`TestBus::with_real`].
//! - Not in memory: request/reply ([`Bus::request`] needs a broker's reply topic), health and
//!   lag. Use [`TestBus::with_real`] on the embedded broker for those.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusBuilder};
use crate::config::Config;
use crate::consume::dispatch::{self, Routes, Verdict};
use crate::consume::retry_topic;
use crate::consume::settle::{self, Step};
use crate::consume::Shared;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::event::envelope::{Delivery, Metadata, PublishOptions};
use crate::event::{naming, DynamicEvent, Event, HeraldEvent};
use crate::publish::memory::MemoryLog;
use crate::wire::codec::{self, Incoming};
use crate::wire::received::Received;

mod broker;

pub use crate::publish::memory::StoredRecord;

/// The variable that makes [`TestBus::from_env`] run on a broker.
pub const REAL_VARIABLE: &str = "HERALD_TEST_REAL";

/// The most records one [`TestBus::settle`] consumes: handlers that keep publishing to each
/// other's topics never settle, and the test should fail rather than hang.
const MAX_SETTLED: usize = 100_000;

/// An in-process bus for tests, or the same API on a broker: see the [module](self).
pub struct TestBus {
    bus: Bus,
    mode: Mode,
}

enum Mode {
    /// Topics in memory, handlers run by [`TestBus::settle`].
    Memory(InMemory),
    /// A real bus on a broker, its consumer groups running ([`TestBus::with_real`]).
    Broker(broker::OnBroker),
}

struct InMemory {
    memory: Arc<MemoryLog>,
    shared: Arc<Shared>,
    groups: Vec<TestGroup>,
    /// The sequence of the next record to settle.
    cursor: tokio::sync::Mutex<u64>,
    /// Never cancelled: nothing revokes an in-process partition.
    cancel: CancellationToken,
}

/// A consumer group of the test bus: its routes and the topics its consumer would read.
struct TestGroup {
    name: String,
    routes: Routes,
    topics: BTreeSet<String>,
}

impl std::fmt::Debug for TestBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBus")
            .field("service", &self.bus.config().service_name)
            .field("on_broker", &matches!(self.mode, Mode::Broker(_)))
            .finish_non_exhaustive()
    }
}

impl TestBus {
    /// A test bus for `service` with every `#[handler]` linked into the test binary.
    ///
    /// # Errors
    /// As [`TestBus::build`].
    pub fn new(service: &str) -> Result<Self> {
        Self::build(Bus::builder(Config::new(service)))
    }

    /// A test bus from a builder: its state, dynamic handlers, retry policies and groups
    /// ([`BusBuilder::only_groups`]) count; its brokers do not (nothing connects).
    ///
    /// # Errors
    /// What [`BusBuilder::build`] reports about the configuration and the registry.
    pub fn build(builder: BusBuilder) -> Result<Self> {
        let memory = Arc::new(MemoryLog::default());
        let bus = builder.build_in_memory(memory.clone())?;
        let shared = bus.shared();
        let mut groups = Vec::new();
        for (name, handlers) in bus.running_groups() {
            let (routes, _breakers) = dispatch::routes(&name, &handlers, &shared)?;
            let topics = handlers
                .iter()
                .flat_map(|h| {
                    let mut topics = retry_topic::retry_topics(h.topic);
                    topics.push(h.topic.to_owned());
                    topics
                })
                .collect();
            groups.push(TestGroup {
                name,
                routes,
                topics,
            });
        }
        let mode = Mode::Memory(InMemory {
            memory,
            shared,
            groups,
            cursor: tokio::sync::Mutex::new(0),
            cancel: CancellationToken::new(),
        });
        Ok(Self { bus, mode })
    }

    /// The same test bus on a broker (FastStream's `with_real`): `builder` is built into a real
    /// [`Bus`] (its configuration names the broker; the embedded one counts), its consumer groups
    /// are started and have their partitions when this returns. Publishing, settling, the
    /// records, the published events and the dead letters then come from the broker, so a test
    /// written against [`TestBus::build`] runs unchanged. [`TestBus::shutdown`] stops the groups.
    ///
    /// # Errors
    /// As [`BusBuilder::build`], [`Bus::start`] and [`Bus::wait_for_assignment`] (60 s).
    pub async fn with_real(builder: BusBuilder) -> Result<Self> {
        let bus = builder.build().await?;
        bus.start().await?;
        bus.wait_for_assignment(std::time::Duration::from_secs(60))
            .await?;
        let mode = Mode::Broker(broker::OnBroker::default());
        Ok(Self { bus, mode })
    }

    /// [`TestBus::with_real`] when the variable `HERALD_TEST_REAL` is set (to anything but `0`
    /// or empty), [`TestBus::build`] otherwise: one test, run in process by default and on the
    /// broker its configuration names when asked.
    ///
    /// # Errors
    /// As [`TestBus::with_real`] and [`TestBus::build`].
    pub async fn from_env(builder: BusBuilder) -> Result<Self> {
        let real = std::env::var(REAL_VARIABLE).is_ok_and(|v| !v.trim().is_empty() && v != "0");
        if real {
            Self::with_real(builder).await
        } else {
            Self::build(builder)
        }
    }

    /// Whether this test bus runs on a broker ([`TestBus::with_real`]).
    pub fn is_real(&self) -> bool {
        matches!(self.mode, Mode::Broker(_))
    }

    /// Stops a real bus's consumer groups ([`Bus::shutdown`]); nothing to do in memory.
    ///
    /// # Errors
    /// As [`Bus::shutdown`].
    pub async fn shutdown(&self) -> Result<()> {
        match &self.mode {
            Mode::Memory(_) => Ok(()),
            Mode::Broker(_) => self.bus.shutdown().await,
        }
    }

    /// The bus itself, for the code under test: what it publishes stays in this test bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Publishes `event` without running any handler yet (see [`TestBus::settle`]).
    ///
    /// # Errors
    /// As [`Bus::publish`].
    pub async fn publish<E: HeraldEvent>(&self, event: E) -> Result<Delivery> {
        self.bus.publish(event).await
    }

    /// Publishes `event` and settles: every handler that takes it runs, and so do those of the
    /// events they publish.
    ///
    /// # Errors
    /// As [`Bus::publish`] and [`TestBus::settle`].
    pub async fn dispatch<E: HeraldEvent>(&self, event: E) -> Result<Report> {
        self.dispatch_with(event, PublishOptions::default()).await
    }

    /// [`TestBus::dispatch`] with metadata.
    ///
    /// # Errors
    /// As [`TestBus::dispatch`].
    pub async fn dispatch_with<E: HeraldEvent>(
        &self,
        event: E,
        options: PublishOptions,
    ) -> Result<Report> {
        self.bus.publish_with(event, options).await?;
        self.settle().await
    }

    /// [`TestBus::dispatch`] of a run-time event.
    ///
    /// # Errors
    /// As [`Bus::publish_dynamic`] and [`TestBus::settle`].
    pub async fn dispatch_dynamic(&self, event: &DynamicEvent) -> Result<Report> {
        self.bus.publish_dynamic(event).await?;
        self.settle().await
    }

    /// Hands every record not consumed yet, in publish order, to each consumer group that reads
    /// its topic, as its consumer would (decode, route, retries, dead letters, retry topics),
    /// until no record is left: the events handlers publish meanwhile are handled too.
    ///
    /// # Errors
    /// [`Error::State`] when more than 100,000 records were consumed in one settle (handlers that
    /// publish to each other without end), or a record could be neither handled nor
    /// dead-lettered.
    pub async fn settle(&self) -> Result<Report> {
        match &self.mode {
            Mode::Memory(memory) => memory.settle().await,
            Mode::Broker(on_broker) => on_broker.settle(&self.bus).await,
        }
    }
}

impl InMemory {
    async fn settle(&self) -> Result<Report> {
        let mut cursor = self.cursor.lock().await;
        let mut report = Report::default();
        let mut consumed = 0;
        while let Some(record) = self.memory.at(*cursor) {
            *cursor += 1;
            consumed += 1;
            if consumed > MAX_SETTLED {
                return Err(Error::State(
                    "the test bus consumed 100,000 records without settling: do its handlers publish to each other without end?",
                ));
            }
            for group in self
                .groups
                .iter()
                .filter(|g| g.topics.contains(&record.topic))
            {
                report.outcomes.push(self.consume(group, &record).await?);
            }
        }
        Ok(report)
    }

    /// Consumes `record` in `group` as the group's consumer does.
    async fn consume(&self, group: &TestGroup, record: &StoredRecord) -> Result<Outcome> {
        let message = received(record);
        let verdict = dispatch::dispatch(
            &message,
            &group.routes,
            &group.name,
            &self.shared,
            &self.cancel,
            &|_| {},
        )
        .await;
        let settled =
            settle::carry_out(&message, verdict, &group.name, &self.shared, &self.cancel).await;
        match settled {
            (Step::Commit, carried) => Ok(Outcome::new(
                group.name.clone(),
                record.clone(),
                Became::of(&carried),
            )),
            (Step::Stop, _) => Err(Error::State("the test bus stopped handling a record")),
            (Step::Fail(reason), _) => {
                tracing::error!(%reason, topic = %record.topic, offset = record.offset,
                    "the record can be neither handled nor dead-lettered");
                Err(Error::State(
                    "a record could be neither handled nor dead-lettered (see the log)",
                ))
            }
        }
    }
}

impl TestBus {
    /// Every record published to `topic` (named as events name it: the configured topic prefix
    /// is put before it), oldest first (on a broker: in partition order, each partition's in
    /// offset order; a topic that does not exist has none).
    ///
    /// # Errors
    /// On a broker, what reading the topic reports ([`TopicReader`](crate::browse::TopicReader)).
    pub async fn records(&self, topic: &str) -> Result<Vec<StoredRecord>> {
        let topic = naming::with_prefix(self.bus.config().topic_prefix.as_deref(), topic);
        match &self.mode {
            Mode::Memory(memory) => Ok(memory.memory.topic(&topic)),
            Mode::Broker(_) => broker::read(&self.bus, &topic).await,
        }
    }

    /// The dead letters of `topic`: the records of its dead-letter topic (`{topic}.dlq`).
    ///
    /// # Errors
    /// As [`TestBus::records`].
    pub async fn dead_letters(&self, topic: &str) -> Result<Vec<StoredRecord>> {
        self.records(&self.bus.config().dlq_topic(topic)).await
    }

    /// Every `E` published so far (to `E`'s topic, of `E`'s event type), decoded, oldest first.
    ///
    /// # Errors
    /// As [`TestBus::records`].
    ///
    /// # Panics
    /// When a record of `E`'s type does not decode as `E`: the test fails, naming the record.
    pub async fn published<E: HeraldEvent>(&self) -> Result<Vec<Event<E>>> {
        Ok(self
            .records(E::TOPIC)
            .await?
            .iter()
            .filter(|record| event_type_of(record).as_deref() == Some(E::EVENT_TYPE))
            .map(|record| {
                decode::<E>(record).unwrap_or_else(|reason| {
                    panic!(
                        "the record at {}@{} is of type `{}` but does not decode as {}: {reason}",
                        record.topic,
                        record.offset,
                        E::EVENT_TYPE,
                        std::any::type_name::<E>()
                    )
                })
            })
            .collect())
    }

    /// `data` as a handler would receive it, with the metadata a publish would give it (a fresh
    /// id, this service as its source): for calling a `#[handler]` fn directly.
    ///
    /// # Errors
    /// As [`Bus::publish`] for bad options (none here): encoding `data` failed.
    pub fn event<E: HeraldEvent>(&self, data: E) -> Result<Event<E>> {
        let meta = self
            .bus
            .publisher()
            .metadata_of(&data, PublishOptions::default())?;
        Ok(Event { meta, data })
    }

    /// A handler context as if handling a new event of this service: its publishes are kept by
    /// this bus and carry the event's correlation id; `ctx.state()` sees the builder's state.
    pub fn context(&self) -> Context {
        let id = uuid::Uuid::new_v4().to_string();
        let mut meta = self
            .bus
            .publisher()
            .envelope(id.clone(), "herald.test".into());
        meta.correlation_id = Some(id);
        self.context_for(meta)
    }

    /// A handler context for an event with `meta` (e.g. [`TestBus::event`]'s).
    pub fn context_for(&self, meta: Metadata) -> Context {
        Context::new(
            Incoming::of_metadata(meta),
            "test",
            self.bus.publisher().clone(),
            self.bus.state_map().clone(),
        )
    }
}

/// A stored record as if consumed.
fn received(record: &StoredRecord) -> Received {
    let headers: Vec<(&[u8], Option<&[u8]>)> = record
        .headers
        .iter()
        .map(|(name, value)| (name.as_bytes(), value.as_deref()))
        .collect();
    Received::from_parts(
        (&record.topic, record.partition, record.offset),
        record.timestamp.timestamp_millis(),
        record.key.as_deref(),
        record.value.as_deref(),
        &headers,
    )
}

/// The event type of `record`, in either content mode: binary mode names it in a header,
/// structured mode in the value.
pub(crate) fn event_type_of(record: &StoredRecord) -> Option<String> {
    match record.header(crate::headers::TYPE) {
        Some(event_type) => Some(event_type.to_owned()),
        None => Incoming::decode_received(&received(record))
            .ok()
            .map(|incoming| incoming.event_type().to_owned()),
    }
}

/// Decodes a stored record as an `E`.
fn decode<E: HeraldEvent>(record: &StoredRecord) -> std::result::Result<Event<E>, String> {
    let message = received(record);
    let incoming = Incoming::decode_received(&message)?;
    codec::decode_event::<E>(&incoming).map_err(|e| e.to_string())
}

/// What [`TestBus::settle`] did: one outcome per record and consumer group, in the order handled.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The outcomes, in the order the records were consumed.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Whether every record was handled or skipped (no dead letter, no retry pending).
    pub fn all_handled(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.became, Became::Handled | Became::Skipped))
    }

    /// The outcomes that sent their record to a dead-letter topic.
    pub fn dead_lettered(&self) -> Vec<&Outcome> {
        self.outcomes
            .iter()
            .filter(|o| o.dead_letter().is_some())
            .collect()
    }

    /// The outcomes of consumer group `group`.
    pub fn of_group(&self, group: &str) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| o.group == group).collect()
    }
}

/// What became of one record in one consumer group.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The consumer group.
    pub group: String,
    /// The record.
    pub record: StoredRecord,
    /// What became of it.
    pub became: Became,
    /// The record's event type, in either content mode.
    event_type: Option<String>,
}

impl Outcome {
    pub(crate) fn new(group: String, record: StoredRecord, became: Became) -> Self {
        let event_type = event_type_of(&record);
        Self {
            group,
            record,
            became,
            event_type,
        }
    }

    /// The record's event type (`ce_type`, or `type` of a structured event), if it has one.
    pub fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }

    /// Why it went to the dead-letter topic, if it did.
    pub fn dead_letter(&self) -> Option<&DeadLettered> {
        match &self.became {
            Became::DeadLettered(letter) => Some(letter),
            Became::Retrying { dead_letter, .. } => dead_letter.as_ref(),
            Became::Handled | Became::Skipped => None,
        }
    }
}

/// What became of a record in a consumer group: the decision a consumer on Kafka makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Became {
    /// Every handler that takes it succeeded.
    Handled,
    /// No handler of the group takes it (or it was meant for another group).
    Skipped,
    /// It went to the dead-letter topic.
    DeadLettered(DeadLettered),
    /// Handlers that retry through retry topics failed: it was copied to their next retry topic
    /// (handled there by a later part of the same settle); `dead_letter` when other handlers
    /// failed for good.
    Retrying {
        /// The handlers it was copied for.
        handlers: Vec<String>,
        /// Why it also went to the dead-letter topic, if it did.
        dead_letter: Option<DeadLettered>,
    },
}

/// Why a record went to the dead-letter topic: what its `dlq_*` headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLettered {
    /// The kind of failure (`dlq_error_kind`): `undecodable`, `incompatible`, `unknown-type`,
    /// `oversized`, `permanent`, `retries-exhausted`, `reply-undeliverable`,
    /// `retry-undeliverable`.
    pub kind: &'static str,
    /// The handlers that failed, comma-separated; empty when none ran.
    pub handlers: String,
    /// How many times the failing handler ran.
    pub attempts: u32,
    /// The error.
    pub reason: String,
}

impl Became {
    fn of(verdict: &Verdict) -> Self {
        let letter = |cause: &dispatch::DeadLetterCause| DeadLettered {
            kind: cause.kind.as_str(),
            handlers: cause.handlers.clone(),
            attempts: cause.attempts,
            reason: cause.reason.clone(),
        };
        match verdict {
            Verdict::Handled => Self::Handled,
            // Not produced in memory: nothing cancels the dispatch.
            Verdict::Skipped | Verdict::Stopped => Self::Skipped,
            Verdict::DeadLetter(cause) => Self::DeadLettered(letter(cause)),
            Verdict::Retry {
                deferrals,
                dead_letter,
                ..
            } => Self::Retrying {
                handlers: deferrals.iter().map(|d| d.handler.to_owned()).collect(),
                dead_letter: dead_letter.as_ref().map(letter),
            },
        }
    }
}
