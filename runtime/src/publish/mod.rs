//! Publishing: events become CloudEvents records; a publish returns only once the broker
//! acknowledged it.
//!
//! Records are enqueued strictly in order: when the producer's queue is full, a publish waits and
//! retries the same record before the next one goes in, so events with one key keep their order
//! even under back-pressure. A fatal producer error (an idempotent producer that can no longer
//! keep its guarantees) fails the publishes it hit and replaces the producer with a new one.

pub(crate) mod mapped;
pub(crate) mod memory;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::Utc;
use futures::future::{join_all, Either};
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::config::{Config, ContentMode};
use crate::error::{Error, KafkaCause, KafkaCode, Result};
use crate::event::envelope::{Delivery, Metadata, PublishOptions};
use crate::event::naming;
use crate::event::{DynamicEvent, HeraldEvent};
use crate::headers;
use crate::telemetry::stats::Counters;
use crate::telemetry::{metrics, propagation, spans};
use crate::wire::codec::{self, encode_headers};
use memory::MemoryLog;

/// How long a publish waits before retrying a record the full producer queue refused.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);

/// How [`Bus::publish_with_retry`](crate::Bus::publish_with_retry) retries: at most `max_attempts`
/// tries, waiting `base_delay`, then twice as long after each failure, at most `max_delay`.
/// Only retriable errors (see [`Error::is_retriable`]) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRetry {
    /// How many times to try in all (at least once).
    pub max_attempts: u32,
    /// The wait after the first failure.
    pub base_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
}

impl Default for PublishRetry {
    /// Three tries, 100 ms then 200 ms apart.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl PublishRetry {
    /// The wait after failed try number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Runs `send` until it succeeds, fails with an error that is not retriable, or has been
    /// tried `max_attempts` times, sleeping [`Self::delay`] between tries (each retry logged).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        event_type: &str,
        event_id: &str,
        mut send: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let attempts = self.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match send().await {
                Ok(sent) => return Ok(sent),
                Err(error) if attempt < attempts && error.is_retriable() => {
                    let delay = self.delay(attempt);
                    tracing::warn!(event_type, event_id, attempt, ?delay, %error,
                        "publishing failed; trying again");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Refuses extension attributes whose names CloudEvents does not allow.
fn check_extensions(options: &PublishOptions) -> Result<()> {
    match options
        .extensions
        .keys()
        .find(|name| !codec::valid_extension_name(name))
    {
        Some(name) => Err(Error::Config(format!(
            "extension attribute `{name}` is not a legal CloudEvents name: use 1 to 20 lower-case \
             letters and digits, not one of herald's own attributes"
        ))),
        None => Ok(()),
    }
}

/// An encoded event, ready to send.
struct Outgoing {
    /// Borrowed unless a publish chose its topic ([`PublishOptions::topic`]).
    topic: Cow<'static, str>,
    event_type: &'static str,
    key: Option<String>,
    /// The event's JSON.
    payload: Vec<u8>,
    meta: Metadata,
    /// Written in structured content mode ([`ContentMode::Structured`]).
    structured: bool,
}

/// A fully encoded CloudEvent, ready to be stored and sent later exactly as it is (same `ce_id`):
/// what a transactional outbox keeps in a row. Built by [`Bus::encode_event`](crate::Bus::encode_event),
/// sent by [`Bus::publish_encoded`](crate::Bus::publish_encoded).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncodedEvent {
    /// The event's id (`ce_id`).
    pub id: String,
    /// The event type (`ce_type`).
    pub event_type: String,
    /// The topic it goes to.
    pub topic: String,
    /// The Kafka key (partition key), if any.
    pub key: Option<String>,
    /// The record's value: the event's JSON.
    pub payload: Vec<u8>,
    /// The record's headers (the CloudEvents attributes), in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Outgoing {
    /// The event's id; the rest of the record is dropped.
    fn into_id(self: Box<Self>) -> String {
        self.meta.id
    }

    /// The encoded event this record would send.
    fn to_encoded(&self) -> EncodedEvent {
        EncodedEvent {
            id: self.meta.id.clone(),
            event_type: self.event_type.into(),
            topic: self.topic.to_string(),
            key: self.key.clone(),
            payload: self.value().into_owned(),
            headers: self
                .headers()
                .iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect(),
        }
    }
}

/// What sending needs of a record: herald's own encoded events and stored [`EncodedEvent`]s.
trait Record {
    fn topic(&self) -> &str;
    fn key(&self) -> Option<&str>;
    /// The record's value: the event's JSON, or in structured mode the whole event.
    fn value(&self) -> Cow<'_, [u8]>;
    fn headers(&self) -> OwnedHeaders;
    fn id(&self) -> &str;
    /// Event type and topic with the lifetime errors need.
    fn names(&self) -> (&'static str, &'static str);
}

impl Record for Outgoing {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    fn value(&self) -> Cow<'_, [u8]> {
        if self.structured {
            Cow::Owned(codec::encode_structured(&self.meta, &self.payload))
        } else {
            Cow::Borrowed(&self.payload)
        }
    }
    fn headers(&self) -> OwnedHeaders {
        if self.structured {
            codec::structured_headers()
        } else {
            encode_headers(&self.meta)
        }
    }
    fn id(&self) -> &str {
        &self.meta.id
    }
    fn names(&self) -> (&'static str, &'static str) {
        let topic = match &self.topic {
            Cow::Borrowed(topic) => topic,
            Cow::Owned(topic) => intern(topic),
        };
        (self.event_type, topic)
    }
}

impl Record for EncodedEvent {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    fn value(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.payload)
    }
    fn headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value),
                })
            },
        )
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn names(&self) -> (&'static str, &'static str) {
        (intern(&self.event_type), intern(&self.topic))
    }
}

/// The most distinct names [`intern`] keeps. Names can come from outside (a command's `ce_replyto`,
/// the topics of stored or dynamic events), so the set, leaked for good, must be bounded.
const MAX_INTERNED: usize = 1024;

/// What [`intern`] returns for a name past [`MAX_INTERNED`].
const OTHER_NAME: &str = "(one of many names)";

/// A `'static` copy of `name`, made once per distinct name (event types and topics are few): the
/// errors and metric labels of stored events name them like those of herald's own. Past
/// [`MAX_INTERNED`] distinct names, new ones come back as [`OTHER_NAME`]: memory and metric series
/// stay bounded whatever names arrive.
fn intern(name: &str) -> &'static str {
    let mut names = interned();
    if let Some(known) = names.get(name) {
        return known;
    }
    if names.len() >= MAX_INTERNED {
        return OTHER_NAME;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

fn interned() -> std::sync::MutexGuard<'static, HashSet<&'static str>> {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a record was not acknowledged.
#[derive(Clone)]
enum SendFailure {
    /// What librdkafka reported.
    Kafka(KafkaError),
    /// The producer hit a fatal error (code and reason) and was replaced.
    Fatal(RDKafkaErrorCode, String),
    /// Not sent: the record at this index of the batch has the same topic and key and failed.
    HeldBack(usize),
}

/// The producer's client context: logs librdkafka's global errors, a fatal one at ERROR once.
#[derive(Default)]
pub(crate) struct PublisherContext {
    fatal_logged: AtomicBool,
}

impl ClientContext for PublisherContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error == KafkaError::Global(RDKafkaErrorCode::Fatal) {
            if !self.fatal_logged.swap(true, Ordering::Relaxed) {
                tracing::error!(%reason, "the producer hit a fatal error and cannot publish any more; \
                    herald replaces it with a new producer at the next publish");
            }
        } else {
            tracing::error!(%error, %reason, "producer error");
        }
    }
}

/// The librdkafka producer herald uses.
pub(crate) type KafkaProducer = FutureProducer<PublisherContext>;

/// The current producer and how many times it was replaced.
struct Slot {
    producer: KafkaProducer,
    generation: u64,
}

/// The idempotent producer shared by the bus and every handler context. A clone is one shared
/// allocation: every handled message's context takes one, and cloning and dropping each part on its
/// own (six reference counts that the partition workers' threads all touch) cost about 3 % of the
/// consumer's CPU.
#[derive(Clone)]
pub(crate) struct Publisher(Arc<PublisherParts>);

impl std::ops::Deref for Publisher {
    type Target = PublisherParts;

    fn deref(&self) -> &PublisherParts {
        &self.0
    }
}

/// What a [`Publisher`] shares.
pub(crate) struct PublisherParts {
    slot: Arc<RwLock<Slot>>,
    client_config: Arc<ClientConfig>,
    service: Arc<str>,
    /// `Config::topic_prefix`, put before every event's topic.
    topic_prefix: Option<Arc<str>>,
    timeout: Duration,
    /// How events are written (`Config::content_mode`).
    content_mode: ContentMode,
    counters: Arc<Counters>,
    /// In memory mode (an in-process test bus), where every record goes instead of a broker.
    memory: Option<Arc<MemoryLog>>,
}

impl Publisher {
    pub fn new(config: &Config, bootstrap_servers: &str, counters: Arc<Counters>) -> Result<Self> {
        let client_config = config.producer_config(bootstrap_servers);
        let producer = create_producer(&client_config)?;
        Ok(Self(Arc::new(PublisherParts {
            memory: None,
            slot: Arc::new(RwLock::new(Slot {
                producer,
                generation: 0,
            })),
            client_config: Arc::new(client_config),
            service: config.service_name.as_str().into(),
            topic_prefix: config.topic_prefix.as_deref().map(Into::into),
            timeout: config.delivery_timeout,
            content_mode: config.content_mode,
            counters,
        })))
    }

    /// A publisher whose records go to `memory`, not to a broker: it sends nothing over the
    /// network (its producer has no brokers to connect to and is never used).
    pub fn in_memory(
        config: &Config,
        counters: Arc<Counters>,
        memory: Arc<MemoryLog>,
    ) -> Result<Self> {
        let mut publisher = Self::new(config, "", counters)?;
        Arc::get_mut(&mut publisher.0)
            .expect("a publisher just made is not shared")
            .memory = Some(memory);
        Ok(publisher)
    }

    /// The in-memory topics, when this publisher writes there instead of to a broker.
    pub(crate) fn memory(&self) -> Option<&Arc<MemoryLog>> {
        self.memory.as_ref()
    }

    /// Appends `record` to the in-memory topics: acknowledged at once.
    fn remember<R: Record>(&self, memory: &MemoryLog, record: &R) -> Delivery {
        let position = memory.append(
            record.topic(),
            record.key().map(str::as_bytes),
            Some(&record.value()),
            &record.headers(),
        );
        self.delivered(record, position)
    }

    /// The envelope of everything this service sends, events and replies alike: `id`, `ce_type`
    /// `event_type`, this service as the source, now as the time, JSON data; the caller fills in
    /// the rest.
    pub(crate) fn envelope(&self, id: String, event_type: String) -> Metadata {
        Metadata {
            id,
            event_type,
            source: self.service.to_string(),
            spec_version: headers::SPEC_VERSION_VALUE.into(),
            time: Some(Utc::now()),
            content_type: Some(headers::JSON.into()),
            ..Metadata::default()
        }
    }

    fn encode<E: HeraldEvent>(&self, event: &E, options: PublishOptions) -> Result<Outgoing> {
        check_extensions(&options)?;
        let payload = serde_json::to_vec(event).map_err(|source| Error::Encode {
            event_type: E::EVENT_TYPE,
            source,
        })?;
        let id = options
            .id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let key = options.key.or_else(|| event.partition_key());
        let topic = match options.topic {
            None => Cow::Borrowed(naming::prefixed(self.topic_prefix.as_deref(), E::TOPIC)),
            Some(topic) => Cow::Owned(self.chosen_topic(&topic)?),
        };
        let meta = Metadata {
            correlation_id: Some(options.correlation_id.unwrap_or_else(|| id.clone())),
            schema_version: Some(E::VERSION),
            causation_id: options.causation_id,
            // The event's own aggregate (a `#[domain_event]`'s, or an `aggregate_id` field) unless
            // the caller gave one.
            aggregate_id: options.aggregate_id.or_else(|| event.aggregate_id()),
            aggregate_type: options
                .aggregate_type
                .or_else(|| E::AGGREGATE_TYPE.map(str::to_owned)),
            aggregate_version: options
                .aggregate_version
                .or_else(|| event.aggregate_version()),
            extensions: options.extensions,
            key: key.clone(),
            ..self.envelope(id, E::EVENT_TYPE.into())
        };
        Ok(Outgoing {
            topic,
            event_type: E::EVENT_TYPE,
            key,
            payload,
            meta,
            structured: self.content_mode == ContentMode::Structured,
        })
    }

    /// The metadata `event` would be published with under `options` (a fresh id, now as its
    /// time), without publishing it.
    pub(crate) fn metadata_of<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> Result<Metadata> {
        self.encode(event, options).map(|outgoing| outgoing.meta)
    }

    /// A topic chosen at the call (a dynamic event's, [`PublishOptions::topic`]), checked and
    /// prefixed like the topics the macros derive.
    fn chosen_topic(&self, topic: &str) -> Result<String> {
        if let Some(problem) = crate::event::topic_problem(topic) {
            return Err(Error::Config(format!("the topic `{topic}` {problem}")));
        }
        Ok(naming::with_prefix(self.topic_prefix.as_deref(), topic))
    }

    /// Encodes a run-time event in the envelope of a typed one (the same metadata, extensions
    /// and trace context), ready to send as it is.
    pub fn encode_dynamic(
        &self,
        event: &DynamicEvent,
        options: PublishOptions,
    ) -> Result<EncodedEvent> {
        if let Some(problem) = event.problem() {
            return Err(Error::Config(format!(
                "the dynamic event cannot be published: {problem}"
            )));
        }
        check_extensions(&options)?;
        let topic = self.chosen_topic(options.topic.as_deref().unwrap_or(&event.topic))?;
        let payload = serde_json::to_vec(&event.data).map_err(|source| Error::Encode {
            event_type: intern(&event.event_type),
            source,
        })?;
        let id = options
            .id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let key = options.key.or_else(|| event.key.clone());
        let mut meta = Metadata {
            correlation_id: Some(options.correlation_id.unwrap_or_else(|| id.clone())),
            schema_version: Some(event.version),
            causation_id: options.causation_id,
            aggregate_id: options.aggregate_id,
            aggregate_type: options.aggregate_type,
            aggregate_version: options.aggregate_version,
            extensions: options.extensions,
            key: key.clone(),
            ..self.envelope(id.clone(), event.event_type.clone())
        };
        propagation::inject(&Span::current(), &mut meta.extensions);
        let outgoing = Outgoing {
            topic: Cow::Owned(topic),
            event_type: "",
            key,
            payload,
            meta,
            structured: self.content_mode == ContentMode::Structured,
        };
        Ok(EncodedEvent {
            event_type: event.event_type.clone(),
            ..outgoing.to_encoded()
        })
    }

    /// Publishes a command that asks for a reply on `reply_to` (`ce_replyto`) within `timeout`
    /// (`ce_timeoutms`) and waits for the broker's acknowledgement.
    pub async fn publish_command<E: HeraldEvent>(
        &self,
        command: &E,
        options: PublishOptions,
        reply_to: &str,
        timeout: Duration,
    ) -> Result<Delivery> {
        let mut outgoing = self.encode(command, options)?;
        // After `encode` checked the caller's extensions, which cannot name these.
        let extensions = &mut outgoing.meta.extensions;
        extensions.insert(
            headers::extensions::REPLY_TO.to_owned(),
            reply_to.to_owned(),
        );
        extensions.insert(
            headers::extensions::TIMEOUT.to_owned(),
            timeout.as_millis().to_string(),
        );
        let (outgoing, span) = Self::traced(outgoing);
        self.send(&outgoing, &span).await
    }

    /// The current producer and its generation.
    fn current(&self) -> (KafkaProducer, u64) {
        let slot = self
            .slot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (slot.producer.clone(), slot.generation)
    }

    /// Enqueues one record, waiting while the producer's queue is full (until `deadline`).
    async fn enqueue<R: Record>(
        &self,
        producer: &KafkaProducer,
        outgoing: &R,
        deadline: Instant,
    ) -> std::result::Result<DeliveryFuture, KafkaError> {
        let value = outgoing.value();
        let mut record = FutureRecord::to(outgoing.topic())
            .payload(&*value)
            .headers(outgoing.headers());
        if let Some(key) = outgoing.key() {
            record = record.key(key);
        }
        match producer.send_result(record) {
            Ok(delivery) => Ok(delivery),
            // Waiting for room is boxed: the common path's future stays small.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused))
                if Instant::now() < deadline =>
            {
                Box::pin(Self::enqueue_when_room(producer, refused, deadline)).await
            }
            Err((error, _)) => Err(error),
        }
    }

    /// Retries a record the full queue refused until it is taken or `deadline` passes.
    async fn enqueue_when_room(
        producer: &KafkaProducer,
        mut record: FutureRecord<'_, str, [u8]>,
        deadline: Instant,
    ) -> std::result::Result<DeliveryFuture, KafkaError> {
        loop {
            tokio::time::sleep(QUEUE_FULL_WAIT).await;
            match producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused))
                    if Instant::now() < deadline =>
                {
                    record = refused;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Waits for the broker's answer to an enqueued record.
    async fn acknowledged(delivery: DeliveryFuture) -> std::result::Result<(i32, i64), KafkaError> {
        match delivery.await {
            Ok(Ok(position)) => Ok(position),
            Ok(Err((error, _))) => Err(error),
            Err(_canceled) => Err(KafkaError::Canceled),
        }
    }

    /// Classifies a failure of `producer` (of `generation`): when the producer hit a fatal error,
    /// replaces it (once) and reports the fatal cause.
    fn failure(&self, producer: &KafkaProducer, generation: u64, error: KafkaError) -> SendFailure {
        match producer.client().fatal_error() {
            Some((code, reason)) => {
                self.replace(generation, code, &reason);
                SendFailure::Fatal(code, reason)
            }
            None => SendFailure::Kafka(error),
        }
    }

    /// Replaces the producer of `generation` with a new one, unless another publish did already.
    fn replace(&self, generation: u64, code: RDKafkaErrorCode, reason: &str) {
        let mut slot = self
            .slot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.generation != generation {
            return;
        }
        match create_producer(&self.client_config) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut slot.producer, fresh);
                slot.generation += 1;
                Counters::add(&self.counters.producer_restarts, 1);
                tracing::warn!(%code, %reason, generation = slot.generation,
                    "replaced the producer after its fatal error; publishing works again");
                // Dropping a producer purges, flushes and joins its polling thread: not on an
                // async worker.
                std::thread::spawn(move || drop(old));
            }
            Err(error) => tracing::error!(%error,
                "could not create a new producer after a fatal error; the next failing publish tries again"),
        }
    }

    /// The error for a record that failed.
    fn error<R: Record>(&self, outgoing: &R, failure: SendFailure) -> Error {
        self.error_of(outgoing.names(), failure)
    }

    /// The error for a record of `(event_type, topic)` that failed.
    fn error_of(
        &self,
        (event_type, topic): (&'static str, &'static str),
        failure: SendFailure,
    ) -> Error {
        Counters::add(&self.counters.publish_failures, 1);
        match failure {
            SendFailure::Kafka(source) => Error::Publish {
                event_type,
                topic,
                source: KafkaCause(source),
            },
            SendFailure::HeldBack(behind) => Error::HeldBack {
                event_type,
                topic,
                behind,
            },
            SendFailure::Fatal(code, reason) => Error::ProducerFatal {
                event_type,
                topic,
                code: KafkaCode(code),
                reason,
            },
        }
    }

    /// The delivery of an acknowledged record.
    fn delivered<R: Record>(&self, outgoing: &R, (partition, offset): (i32, i64)) -> Delivery {
        Counters::add(&self.counters.events_published, 1);
        Delivery {
            topic: outgoing.topic().into(),
            partition,
            offset,
            event_id: outgoing.id().into(),
        }
    }

    /// Opens the publish span of an encoded event and writes its trace context into the event.
    fn traced(mut outgoing: Outgoing) -> (Outgoing, Span) {
        let span = spans::publish(&outgoing.topic, 1, Some(&outgoing.meta));
        propagation::inject(&span, &mut outgoing.meta.extensions);
        (outgoing, span)
    }

    /// Sends one of herald's own records under its publish span and waits for its acknowledgement;
    /// while the broker answers it keeps only the event's id, not the record (its metadata and
    /// payload, which librdkafka copied).
    /// The record is boxed so that each layer of the future holds a pointer, not the record: a
    /// publish waiting for its acknowledgement is a few hundred bytes (50,000 of them in flight are
    /// that many futures).
    /// The span is held once, by the instrumentation: the result is recorded on it from inside.
    fn send_one(
        &self,
        outgoing: Box<Outgoing>,
        span: Span,
    ) -> impl std::future::Future<Output = Result<Delivery>> + Send + '_ {
        // Its id only: a disabled publish span must not have the result recorded on whatever
        // span is current instead.
        let id = span.id();
        async move {
            let result = self.send_one_timed(outgoing).await;
            let span = Span::current();
            if id.is_some() && span.id() == id {
                match &result {
                    Ok(delivery) => spans::delivered(&span, delivery.partition, delivery.offset),
                    Err(error) => spans::failed(&span, error),
                }
            }
            result
        }
        .instrument(span)
    }

    async fn send_one_timed(&self, outgoing: Box<Outgoing>) -> Result<Delivery> {
        if let Some(memory) = &self.memory {
            return Ok(self.remember(memory, &*outgoing));
        }
        let started = std::time::Instant::now();
        let (producer, generation) = self.current();
        let deadline = Instant::now() + self.timeout;
        // Boxed: the enqueueing state (the record, its headers) lives only until librdkafka took
        // it, while the future waits for the acknowledgement much longer.
        let enqueued = Box::pin(self.enqueue(&producer, &*outgoing, deadline)).await;
        let (names, id) = (outgoing.names(), outgoing.into_id());
        let acknowledged = match enqueued {
            Ok(delivery) => Self::acknowledged(delivery).await,
            Err(error) => Err(error),
        };
        let result = match acknowledged {
            Ok((partition, offset)) => {
                Counters::add(&self.counters.events_published, 1);
                Ok(Delivery {
                    topic: names.1.into(),
                    partition,
                    offset,
                    event_id: id,
                })
            }
            Err(error) => {
                let failure = self.failure(&producer, generation, error);
                Err(self.error_of(names, failure))
            }
        };
        metrics::publish_duration(names.1, started.elapsed());
        result
    }

    /// Sends one of herald's own records under its publish span.
    async fn send(&self, outgoing: &Outgoing, span: &Span) -> Result<Delivery> {
        let result = self.send_record(outgoing).instrument(span.clone()).await;
        match &result {
            Ok(delivery) => spans::delivered(span, delivery.partition, delivery.offset),
            Err(error) => spans::failed(span, error),
        }
        result
    }

    /// Sends one record and waits for its acknowledgement.
    async fn send_record<R: Record>(&self, outgoing: &R) -> Result<Delivery> {
        let started = std::time::Instant::now();
        let result = self.send_record_untimed(outgoing).await;
        metrics::publish_duration(outgoing.names().1, started.elapsed());
        result
    }

    async fn send_record_untimed<R: Record>(&self, outgoing: &R) -> Result<Delivery> {
        if let Some(memory) = &self.memory {
            return Ok(self.remember(memory, outgoing));
        }
        let (producer, generation) = self.current();
        let deadline = Instant::now() + self.timeout;
        let acknowledged = match self.enqueue(&producer, outgoing, deadline).await {
            Ok(delivery) => Self::acknowledged(delivery).await,
            Err(error) => Err(error),
        };
        acknowledged
            .map(|position| self.delivered(outgoing, position))
            .map_err(|error| {
                let failure = self.failure(&producer, generation, error);
                self.error(outgoing, failure)
            })
    }

    /// Publishes one event and waits for the broker's acknowledgement; waits within the delivery
    /// timeout while the producer's queue is full.
    /// The event is encoded at once: the returned future does not borrow it.
    pub fn publish<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> impl std::future::Future<Output = Result<Delivery>> + Send + '_ {
        match self.encode(event, options) {
            Ok(outgoing) => {
                let (outgoing, span) = Self::traced(outgoing);
                Either::Left(self.send_one(Box::new(outgoing), span))
            }
            Err(error) => Either::Right(std::future::ready(Err(error))),
        }
    }

    /// Publishes one event, trying again after retriable failures with exponential backoff; every
    /// try carries the same event id, so consumers can tell a repeat.
    ///
    /// # Errors
    /// The last try's error after `retry.max_attempts` tries, or at once the first error that is
    /// not retriable.
    pub async fn publish_with_retry<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
        retry: PublishRetry,
    ) -> Result<Delivery> {
        let (outgoing, span) = Self::traced(self.encode(event, options)?);
        retry
            .run(outgoing.event_type, &outgoing.meta.id, || {
                self.send(&outgoing, &span)
            })
            .await
    }

    /// Publishes events and waits for all acknowledgements; encodes all of them before sending
    /// any. Records are enqueued strictly in batch order (waiting while the queue is full), so
    /// events with one key land in batch order; acknowledgements are awaited together.
    pub async fn publish_batch<E: HeraldEvent>(
        &self,
        events: impl IntoIterator<Item = E>,
        options: PublishOptions,
    ) -> Result<Vec<Delivery>> {
        let mut outgoing = events
            .into_iter()
            .map(|event| self.encode(&event, options.clone()))
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = outgoing.first() else {
            return Ok(Vec::new());
        };
        let span = spans::publish(&first.topic, outgoing.len(), None);
        for record in &mut outgoing {
            propagation::inject(&span, &mut record.meta.extensions);
        }
        let result = self.send_batch(&outgoing).instrument(span.clone()).await;
        if let Err(error) = &result {
            spans::failed(&span, error);
        }
        result
    }

    /// Encodes an event for sending later as it is (same id): see [`EncodedEvent`].
    pub fn encode_event<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> Result<EncodedEvent> {
        let mut outgoing = self.encode(event, options)?;
        // A stored event carries the trace of the code that stored it.
        propagation::inject(&Span::current(), &mut outgoing.meta.extensions);
        Ok(outgoing.to_encoded())
    }

    /// Sends a stored encoded event as it is and waits for the broker's acknowledgement. Its
    /// headers are not changed: the trace context it carries is the one of [`Self::encode_event`].
    pub async fn publish_encoded(&self, event: &EncodedEvent) -> Result<Delivery> {
        let span = spans::publish(&event.topic, 1, None);
        if !span.is_disabled() {
            span.record("messaging.message.id", event.id.as_str());
            span.record("cloudevents.event_id", event.id.as_str());
            span.record("cloudevents.event_type", event.event_type.as_str());
        }
        let result = self.send_record(event).instrument(span.clone()).await;
        match &result {
            Ok(delivery) => spans::delivered(&span, delivery.partition, delivery.offset),
            Err(error) => spans::failed(&span, error),
        }
        result
    }

    /// Sends stored encoded events as they are, enqueued in order, and waits for all
    /// acknowledgements (as [`Publisher::publish_batch`]).
    pub async fn publish_encoded_batch(&self, events: &[EncodedEvent]) -> Result<Vec<Delivery>> {
        self.send_batch(events).await
    }

    /// Sends records strictly in order and waits for all acknowledgements.
    async fn send_batch<R: Record>(&self, outgoing: &[R]) -> Result<Vec<Delivery>> {
        let started = std::time::Instant::now();
        let result = self.send_batch_untimed(outgoing).await;
        if let Some(first) = outgoing.first() {
            metrics::batch_size(outgoing.len());
            metrics::publish_duration(first.names().1, started.elapsed());
        }
        result
    }

    async fn send_batch_untimed<R: Record>(&self, outgoing: &[R]) -> Result<Vec<Delivery>> {
        if let Some(memory) = &self.memory {
            return Ok(outgoing.iter().map(|r| self.remember(memory, r)).collect());
        }
        let total = outgoing.len();
        let (producer, generation) = self.current();
        // Once the queue stayed full for the delivery timeout or the producer failed fatally, the
        // rest of the batch is not sent: it would only overtake or fail the same way.
        let mut stopped: Option<SendFailure> = None;
        // Per topic and key, the first record that failed to enqueue: the later records of that
        // key are held back, so that none overtakes it when it is published again.
        let mut failed_keys: HashMap<(&str, &str), usize> = HashMap::new();
        let mut enqueued = Vec::with_capacity(total);
        for (index, record) in outgoing.iter().enumerate() {
            if let Some(failure) = &stopped {
                enqueued.push(Err(failure.clone()));
                continue;
            }
            let key = record.key().map(|key| (record.topic(), key));
            if let Some(&behind) = key.as_ref().and_then(|key| failed_keys.get(key)) {
                enqueued.push(Err(SendFailure::HeldBack(behind)));
                continue;
            }
            let deadline = Instant::now() + self.timeout;
            match self.enqueue(&producer, record, deadline).await {
                Ok(delivery) => enqueued.push(Ok(delivery)),
                Err(error) => {
                    let queue_full =
                        error == KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
                    let failure = self.failure(&producer, generation, error);
                    if queue_full || matches!(failure, SendFailure::Fatal(..)) {
                        stopped = Some(failure.clone());
                    }
                    if let Some(key) = key {
                        failed_keys.entry(key).or_insert(index);
                    }
                    enqueued.push(Err(failure));
                }
            }
        }
        let results = join_all(enqueued.into_iter().map(|enqueued| async {
            match enqueued {
                Ok(delivery) => Self::acknowledged(delivery)
                    .await
                    .map_err(|error| self.failure(&producer, generation, error)),
                Err(failure) => Err(failure),
            }
        }))
        .await;
        let mut delivered = Vec::with_capacity(total);
        let mut failures = Vec::new();
        for (index, (record, result)) in outgoing.iter().zip(results).enumerate() {
            match result {
                Ok(position) => delivered.push((index, self.delivered(record, position))),
                Err(failure) => failures.push((index, self.error(record, failure))),
            }
        }
        if failures.is_empty() {
            Ok(delivered.into_iter().map(|(_, d)| d).collect())
        } else {
            Err(Error::Batch {
                total,
                delivered,
                failures,
            })
        }
    }

    /// Makes the current producer hit a fatal error (librdkafka's test hook), as an idempotent
    /// producer that lost its sequence would.
    #[cfg(test)]
    pub(crate) fn make_fatal_for_test(&self) {
        let doomed = self.producer();
        // SAFETY: the producer's handle is live while `doomed` is.
        let code = unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                doomed.client().native_ptr(),
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                c"injected by herald's test".as_ptr(),
            )
        };
        assert_eq!(
            code,
            rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        );
    }

    /// The current producer, for records herald forwards as they are (dead letters).
    pub(crate) fn producer(&self) -> KafkaProducer {
        self.current().0
    }

    /// The current producer with its generation, for records herald forwards as they are: pass
    /// both to [`Publisher::replace_if_fatal`] when a record sent through it failed.
    pub(crate) fn forwarding_producer(&self) -> (KafkaProducer, u64) {
        self.current()
    }

    /// After a record sent through `producer` (of `generation`) failed: when the producer hit a
    /// fatal error, replaces it (once, as publishing does) and returns the fatal reason.
    pub(crate) fn replace_if_fatal(
        &self,
        producer: &KafkaProducer,
        generation: u64,
    ) -> Option<String> {
        let (code, reason) = producer.client().fatal_error()?;
        self.replace(generation, code, &reason);
        Some(format!("{code:?}: {reason}"))
    }

    /// Waits until every queued event was acknowledged or failed.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.current()
            .0
            .flush(Timeout::After(timeout))
            .map_err(|e| Error::kafka("flushing the producer", e))
    }
}

/// A producer with herald's context.
fn create_producer(client_config: &ClientConfig) -> Result<KafkaProducer> {
    client_config
        .create_with_context(PublisherContext::default())
        .map_err(|e| Error::kafka("creating the producer", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::embedded::EmbeddedBroker;

    #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    struct Probe {
        note: String,
    }

    impl HeraldEvent for Probe {
        const EVENT_TYPE: &'static str = "probe.sent";
        const TOPIC: &'static str = "herald-publish-unit";
        const VERSION: u32 = 1;
        type Reply = ();

        fn partition_key(&self) -> Option<String> {
            None
        }
    }

    fn probe(len: usize) -> Probe {
        Probe {
            note: "x".repeat(len),
        }
    }

    fn publisher(config: &Config, servers: &str) -> (Publisher, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let publisher = Publisher::new(config, servers, counters.clone()).expect("producer");
        (publisher, counters)
    }

    /// A loopback address nothing listens on.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        address.to_string()
    }

    #[test]
    fn a_publish_in_flight_is_small() {
        let (publisher, _) = publisher(&Config::new("s"), "");
        let publishing = publisher.publish(&probe(10), PublishOptions::default());
        let size = std::mem::size_of_val(&publishing);
        println!("publish future: {size} bytes");
        // 536 bytes before the enqueueing state was boxed and the span held once (2026-12-05).
        assert!(size <= 400, "a publish in flight grew to {size} bytes");
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let retry = PublishRetry {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (1..=5).map(|a| retry.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000]);
        assert_eq!(retry.delay(u32::MAX), retry.max_delay);
    }

    #[test]
    fn interned_names_are_bounded() {
        for n in 0..MAX_INTERNED + 500 {
            let name = format!("reply-topic-{n}");
            let interned = intern(&name);
            assert!(interned == name || interned == OTHER_NAME);
        }
        assert_eq!(interned().len(), MAX_INTERNED);
        assert_eq!(intern("reply-topic-0"), "reply-topic-0");
        assert_eq!(intern("one-more-reply-topic"), OTHER_NAME);
    }

    #[tokio::test]
    async fn a_fatal_producer_error_fails_one_publish_then_a_new_producer_takes_over() {
        let broker = EmbeddedBroker::start(1).unwrap();
        broker.create_topic(Probe::TOPIC, 1).unwrap();
        let config = Config::new("fatal").bootstrap_servers(broker.bootstrap_servers());
        let (publisher, counters) = publisher(&config, broker.bootstrap_servers());
        let options = PublishOptions::default;

        let first = publisher.publish(&probe(1), options()).await.unwrap();
        publisher.make_fatal_for_test();

        let error = publisher.publish(&probe(1), options()).await.unwrap_err();
        let Error::ProducerFatal { reason, code, .. } = &error else {
            panic!("expected a fatal producer error, got {error:?}");
        };
        assert!(reason.contains("injected by herald's test"), "{reason}");
        assert_eq!(code.name(), "OutOfOrderSequenceNumber");
        assert!(error.is_retriable());
        assert!(
            error.to_string().contains("replaced the producer"),
            "{error}"
        );

        let after = publisher.publish(&probe(1), options()).await.unwrap();
        assert!(after.offset > first.offset, "{after:?} after {first:?}");
        let stats = counters.snapshot();
        assert_eq!(
            (
                stats.producer_restarts,
                stats.publish_failures,
                stats.events_published
            ),
            (1, 1, 2)
        );
    }

    #[tokio::test]
    async fn publish_with_retry_gives_up_after_max_attempts_when_the_broker_is_unreachable() {
        let servers = closed_port();
        let timeout = Duration::from_millis(300);
        let config = Config::new("retry")
            .bootstrap_servers(&servers)
            .delivery_timeout(timeout);
        let (publisher, counters) = publisher(&config, &servers);
        let retry = PublishRetry {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        };
        let started = std::time::Instant::now();
        let error = publisher
            .publish_with_retry(&probe(1), PublishOptions::default(), retry)
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Publish { .. }) && error.is_retriable(),
            "{error:?}"
        );
        assert_eq!(counters.snapshot().publish_failures, 3, "{error}");
        assert!(started.elapsed() >= timeout * 3, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn publish_with_retry_does_not_retry_a_permanent_error() {
        let servers = closed_port();
        let config = Config::new("too-large")
            .bootstrap_servers(&servers)
            .property("message.max.bytes", "1000");
        let (publisher, counters) = publisher(&config, &servers);
        let error = publisher
            .publish_with_retry(
                &probe(5_000),
                PublishOptions::default(),
                PublishRetry::default(),
            )
            .await
            .unwrap_err();
        assert!(!error.is_retriable(), "{error:?}");
        assert!(
            error.to_string().contains("make the event smaller"),
            "{error}"
        );
        assert_eq!(counters.snapshot().publish_failures, 1);
    }
}
