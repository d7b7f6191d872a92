//! Commands with request/reply (seed 001's `CommandEvent`: `command_name`, `reply_to`,
//! `timeout_ms`): a command is a herald message that one handler answers with a typed reply.
//!
//! - [`Bus::request`](crate::Bus::request) publishes the command with `ce_replyto` naming this
//!   service's reply topic (`{service}.replies`, see [`Config::reply_topic`](crate::Config::reply_topic))
//!   and waits for the reply whose `ce_causationid` is the command's `ce_id`, or for the timeout.
//! - The consuming side runs the command's `#[handler]`, which returns `Result<Reply, E>`; herald
//!   publishes the reply to the command's `ce_replyto` topic (causation = the command's id,
//!   correlation carried, key = the command's key) and commits the command only after the broker
//!   acknowledged the reply. A command that is dead-lettered (permanent error, retries exhausted,
//!   data that does not fit) gets an error reply, so the caller fails with
//!   [`Error::CommandFailed`] instead of waiting for its timeout.
//! - Replies are read by one listener per bus, started by the first request: a consumer *without*
//!   a consumer group, assigned every partition of the reply topic from its end. It never waits
//!   for a group join (about 3 s on the embedded broker) and every instance of the service sees
//!   every reply; each completes only its own requests (command ids are fresh UUIDs), and ignores
//!   the rest. A reply that comes after its request timed out is dropped with a log line.
//!
//! See `docs/commands.md`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::broker::embedded::EmbeddedBroker;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::envelope::Delivery;
use crate::event::envelope::Metadata;
use crate::event::{HeraldEvent, Reply};
use crate::headers;
use crate::publish::{EncodedEvent, Publisher};
use crate::telemetry::stats::Counters;
use crate::wire::codec::{encode_headers, Incoming};
use crate::wire::received::Received;

/// A command: a herald message with a typed reply ([`HeraldEvent::Reply`]) and a default request
/// timeout. Derive it with `#[derive(Command)]` and `#[command(reply = MyReply)]`; send it with
/// [`Bus::request`](crate::Bus::request) (or fire and forget with
/// [`Bus::publish`](crate::Bus::publish)); answer it with a `#[handler]` returning
/// `Result<MyReply, E>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a herald command",
    label = "not a command",
    note = "derive it: `#[derive(Command, Serialize, Deserialize, JsonSchema)]` with `#[command(reply = MyReply)]` on `{Self}`"
)]
pub trait Command: HeraldEvent {
    /// How long [`Bus::request`](crate::Bus::request) waits for the reply unless
    /// [`RequestOptions::timeout`] says otherwise (`#[command(timeout = "5s")]`, default 30 s).
    const TIMEOUT: Duration;
}

/// The `ce_type` of a successful reply to a command of type `command_type`.
pub fn reply_type(command_type: &str) -> String {
    format!("{command_type}.reply")
}

/// The data of an error reply (`ce_type` [`FAILED_TYPE`]): why the command was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandFailure {
    /// The dead-letter kind: `permanent`, `retries-exhausted`, `incompatible`, ...
    pub kind: String,
    /// The handler that failed, if one ran.
    pub handler: String,
    /// The error, for people.
    pub message: String,
}

/// Per-request settings of [`Bus::request_with`](crate::Bus::request_with).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestOptions {
    /// How long to wait for the reply, publishing included (default: the command's
    /// [`Command::TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// Correlation id to carry; when `None` the command starts its own correlation (its id).
    pub correlation_id: Option<String>,
    /// Id of the event that caused this command.
    pub causation_id: Option<String>,
    /// Overrides the command's partition key.
    pub key: Option<String>,
    /// Extra CloudEvents extension attributes.
    pub extensions: std::collections::BTreeMap<String, String>,
}

impl RequestOptions {
    /// The defaults: the command's timeout, a new correlation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits at most `timeout` for the reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Carries a correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Overrides the partition key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds an extension attribute (`ce_{name}` header).
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(name.into(), value.into());
        self
    }

    /// Options that continue the story of `cause`: same correlation, causation = `cause.id`.
    pub fn caused_by(cause: &Metadata) -> Self {
        let caused = crate::event::envelope::PublishOptions::caused_by(cause);
        Self {
            correlation_id: caused.correlation_id,
            causation_id: caused.causation_id,
            ..Self::default()
        }
    }
}

/// How many ids of timed-out or abandoned requests the listener remembers, to tell a late reply
/// (logged at WARN) from one of another instance (DEBUG).
const REMEMBERED_EXPIRED: usize = 4096;

/// How long one poll of the reply consumer blocks: bounds how long stopping takes.
const POLL: Duration = Duration::from_millis(100);

/// The requests of this bus waiting for their replies.
struct Pending {
    counters: Arc<Counters>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Incoming>>>,
    /// Ids of requests that gave up (timeout, cancelled), oldest first, bounded.
    expired: Mutex<(VecDeque<String>, HashSet<String>)>,
}

impl Pending {
    fn expire(&self, id: &str) {
        let mut guard = self.expired.lock().unwrap_or_else(|e| e.into_inner());
        let (order, set) = &mut *guard;
        if set.insert(id.to_owned()) {
            order.push_back(id.to_owned());
            if order.len() > REMEMBERED_EXPIRED {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }

    /// Hands a consumed reply to the request it answers, if that request is still waiting here.
    fn deliver(&self, reply: Incoming) {
        let meta = reply.meta();
        let Some(id) = meta.causation_id.clone() else {
            tracing::debug!(reply_id = %meta.id, reply_type = %meta.event_type,
                "message on the reply topic without `ce_causationid` ignored");
            return;
        };
        let sender = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let late = || {
            self.expired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .contains(&id)
        };
        match sender {
            Some(sender) => {
                if sender.send(reply).is_err() {
                    Counters::add(&self.counters.late_replies, 1);
                    tracing::warn!(command_id = %id,
                        "late reply dropped: its request gave up as the reply arrived");
                }
            }
            None if late() => {
                Counters::add(&self.counters.late_replies, 1);
                tracing::warn!(command_id = %id, reply_type = %meta.event_type,
                    "late reply dropped: its request already timed out or was cancelled");
            }
            None => {
                tracing::debug!(command_id = %id, reply_type = %meta.event_type,
                    "reply to a request this instance is not waiting for (another instance's) ignored");
            }
        }
    }
}

/// A request's place in [`Pending`]: removed (and remembered as expired) when the request ends
/// without its reply, whether it timed out or its future was dropped.
pub(crate) struct Waiting {
    pending: Arc<Pending>,
    id: String,
    receiver: Option<oneshot::Receiver<Incoming>>,
}

impl Waiting {
    /// Waits for the reply until `deadline`; `None` when it did not come in time.
    pub(crate) async fn reply(
        mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Incoming>> {
        let mut receiver = self.receiver.take().expect("a reply is awaited once");
        match tokio::time::timeout_at(deadline, &mut receiver).await {
            Ok(Ok(reply)) => Ok(Some(reply)),
            Ok(Err(_)) => Err(Error::State(
                "the reply listener stopped while the request waited for its reply (the bus shut \
                 down, or the listener failed and the next request starts a new one)",
            )),
            // It may have come just now, after the timer fired and before this line.
            Err(_) => Ok(receiver.try_recv().ok()),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let removed = self
            .pending
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        if removed.is_some() {
            self.pending.expire(&self.id);
        }
    }
}

/// The reply listener of a bus: a group-less consumer of the reply topic and the pending requests.
pub(crate) struct Replies {
    topic: String,
    pending: Arc<Pending>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Set when the listener's thread panicked.
    dead: Arc<AtomicBool>,
}

impl Replies {
    /// Creates the reply topic when auto-creation is on, assigns every partition of it at its
    /// current end and starts reading. Replies produced after this returns are read.
    pub(crate) async fn start(
        config: &Config,
        servers: &str,
        broker: Option<&EmbeddedBroker>,
        counters: Arc<Counters>,
    ) -> Result<Self> {
        let topic = config.reply_topic();
        if config.creates_topics() {
            crate::broker::topics::ensure_topics(config, servers, broker, &[topic.as_str()])
                .await?;
        }
        let client = listener_config(config, servers);
        let (consumer, topic) = tokio::task::spawn_blocking(move || {
            let consumer = assign_at_end(&client, &topic)?;
            Ok::<_, Error>((consumer, topic))
        })
        .await
        .map_err(|_| Error::State("starting the reply listener panicked"))??;
        let pending = Arc::new(Pending {
            counters,
            waiting: Mutex::default(),
            expired: Mutex::default(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let dead = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pending, stop, topic) = (pending.clone(), stop.clone(), topic.clone());
            let dead = dead.clone();
            std::thread::Builder::new()
                .name("herald-replies".into())
                .spawn(move || {
                    let listening = std::panic::AssertUnwindSafe(|| {
                        listen(&consumer, &topic, &pending, &stop);
                    });
                    if std::panic::catch_unwind(listening).is_err() {
                        dead.store(true, Ordering::Relaxed);
                        tracing::error!(%topic, "the reply listener panicked: the waiting requests fail now, \
                            health reports it, and the next request starts a new listener");
                        // Dropping the senders ends every waiting request with an error.
                        pending.waiting.lock().unwrap_or_else(|e| e.into_inner()).clear();
                    }
                })
                .map_err(|_| Error::State("could not start the reply listener's thread"))?
        };
        tracing::debug!(%topic, "reply listener started");
        Ok(Self {
            topic,
            pending,
            stop,
            thread: Mutex::new(Some(thread)),
            dead,
        })
    }

    /// Whether the listener ended without being stopped (its thread panicked): requests would
    /// wait in vain, so it is replaced, and health reports it meanwhile.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// The reply topic, as written into `ce_replyto`.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// Registers a request for the reply to command `id`, before the command is published.
    pub(crate) fn wait_for(&self, id: &str) -> Waiting {
        let (sender, receiver) = oneshot::channel();
        self.pending
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), sender);
        Waiting {
            pending: self.pending.clone(),
            id: id.to_owned(),
            receiver: Some(receiver),
        }
    }

    /// How many requests wait for their replies now.
    pub(crate) fn waiting(&self) -> usize {
        self.pending
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Replies {
    /// Stops the listener (within one poll) and ends every waiting request with an error instead
    /// of letting it wait out its timeout. Blocks while the thread ends; idempotent.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the senders wakes every waiting request.
        self.pending
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reply consumer's settings: no group membership (partitions are assigned), no commits.
/// librdkafka's `assign` wants a `group.id`; an assigned consumer never joins it.
fn listener_config(config: &Config, servers: &str) -> rdkafka::ClientConfig {
    let mut client = config.admin_config(servers);
    client
        .set(
            "group.id",
            format!("herald-replies-{}", config.service_name),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "latest")
        .set("allow.auto.create.topics", "false");
    if config.is_embedded() {
        // The embedded broker holds every fetch this long instead of answering when data arrives.
        client.set("fetch.wait.max.ms", "4");
    }
    client
}

/// A consumer assigned every partition of `topic` at its high watermark, read before assigning so
/// that nothing produced after this returns is skipped (`Offset::End` would be resolved later).
fn assign_at_end(client: &rdkafka::ClientConfig, topic: &str) -> Result<BaseConsumer> {
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = client
        .create()
        .map_err(|e| Error::kafka("creating the reply listener", e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| Error::kafka("reading the reply topic's metadata", e))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(Error::TopicNotFound {
            topic: topic.to_owned(),
            hint: "requests read their replies from it: create it, or turn on topic creation \
                   (KAFKA_AUTO_CREATE_TOPICS)"
                .to_owned(),
        });
    }
    let mut tpl = TopicPartitionList::new();
    for partition in partitions {
        let (_, high) = watermarks_once_led(&consumer, topic, partition, timeout)
            .map_err(|e| Error::kafka("reading the reply topic's watermarks", e))?;
        tpl.add_partition_offset(topic, partition, Offset::Offset(high))
            .map_err(|e| Error::kafka("choosing the reply topic's offsets", e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::kafka("assigning the reply topic's partitions", e))?;
    Ok(consumer)
}

/// The watermarks of `partition`, asked again while its leader is still taking up leadership
/// (just after the topic was created, or after an election), for up to `timeout`.
fn watermarks_once_led(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<(i64, i64)> {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode as Code;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match consumer.fetch_watermarks(topic, partition, timeout) {
            Err(KafkaError::MetadataFetch(
                Code::NotLeaderForPartition | Code::LeaderNotAvailable | Code::OffsetNotAvailable,
            )) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            answer => return answer,
        }
    }
}

/// A reply with this key makes the listener's thread panic, in tests.
#[cfg(test)]
pub(crate) const PANIC_LISTENER: &str = "herald-test:panic-the-reply-listener";

/// The listener's loop: every reply to the request it answers, until `stop`.
fn listen(consumer: &BaseConsumer, topic: &str, pending: &Pending, stop: &AtomicBool) {
    let topic_name: Arc<str> = topic.into();
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL) {
            None => {}
            Some(Err(error)) => {
                tracing::warn!(%topic, %error, "reading the reply topic failed; trying again");
                std::thread::sleep(POLL);
            }
            Some(Ok(message)) => {
                #[cfg(test)]
                assert!(
                    message.key() != Some(PANIC_LISTENER.as_bytes()),
                    "injected by a test"
                );
                // Copied as the consumer groups copy: header names as bytes (rdkafka's reader
                // panics on one that is not UTF-8).
                let received = Received::copy(&message, topic_name.clone());
                match Incoming::decode_received(&received) {
                    Ok(reply) => pending.deliver(reply),
                    Err(reason) => tracing::warn!(%topic, partition = message.partition(),
                        offset = message.offset(), %reason, "unreadable message on the reply topic ignored"),
                }
            }
        }
    }
}

/// The typed result of a request from its reply.
pub(crate) fn read_reply<C: Command>(reply: &Incoming, id: &str) -> Result<C::Reply> {
    let meta = reply.meta();
    if meta.event_type == headers::COMMAND_FAILED_TYPE {
        let failure: CommandFailure =
            serde_json::from_slice(reply.data()).unwrap_or_else(|e| CommandFailure {
                kind: "unknown".into(),
                handler: String::new(),
                message: format!("an error reply that does not decode ({e})"),
            });
        return Err(Error::CommandFailed {
            command: C::EVENT_TYPE,
            id: id.to_owned(),
            kind: failure.kind,
            handler: failure.handler,
            message: failure.message,
        });
    }
    <C::Reply as Reply>::from_json(reply.data()).map_err(|e| Error::ReplyDecode {
        command: C::EVENT_TYPE,
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

/// Publishes a reply (`event_type`, JSON `payload`) to the command's `ce_replyto` topic and waits
/// for the broker's acknowledgement: causation = the command's id, its correlation carried, keyed
/// like the command.
pub(crate) async fn send_reply(
    publisher: &Publisher,
    command: &Metadata,
    reply_to: &str,
    event_type: String,
    payload: Vec<u8>,
) -> Result<Delivery> {
    let meta = Metadata {
        correlation_id: Some(
            command
                .correlation_id
                .clone()
                .unwrap_or_else(|| command.id.clone()),
        ),
        causation_id: Some(command.id.clone()),
        key: command.key.clone(),
        ..publisher.envelope(uuid::Uuid::new_v4().to_string(), event_type)
    };
    let record = EncodedEvent {
        id: meta.id.clone(),
        event_type: meta.event_type.clone(),
        topic: reply_to.to_owned(),
        key: meta.key.clone(),
        payload,
        headers: encode_headers(&meta)
            .iter()
            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
            .collect(),
    };
    publisher.publish_encoded(&record).await
}
