//! A consumer group's consumer: a polling thread, rebalances, one worker task per assigned
//! partition, pause/resume, commit and shutdown.
//!
//! librdkafka is polled on a thread of its own, never on a tokio worker: the rebalance callback
//! runs inside `poll` and may wait for in-flight handlers (so their offsets are committed before
//! their partitions move), which would otherwise block the very runtime those handlers run on — on
//! a current-thread runtime, forever. Messages and rebalance events leave the polling thread on one
//! channel, in the order librdkafka produced them.
//!
//! A message's offset is stored for commit only after its verdict: handled, skipped, or copied to
//! the dead-letter topic. Within a partition messages are handled in order; partitions run in
//! parallel. A partition whose worker falls `max_buffered_per_partition` messages or
//! `max_buffered_bytes_per_partition` bytes behind (or that receives more while the consumer holds
//! `max_buffered_bytes_per_consumer` bytes over all partitions) is paused
//! at the broker and resumed once it caught up; every partition is resumed when it is assigned, since
//! librdkafka keeps an application's pause across a revoke and re-assign.
//!
//! A bounded run (a replay, [`super::bounded`]) is the same consumer with an end offset per
//! partition: what lies past it is dropped and the partition paused, each handled offset is stored
//! at once, and the consumer stops by itself, cleanly, once every partition reached its end.
//!
//! A partition whose handlers all declare `concurrency = N > 1` runs up to N events of different
//! keys at once, each key's events in order ([`PartitionWorker::run_keyed`]); the offset stored is
//! then the highest below which every event reached its verdict ([`Contiguous`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::bounded::{Bound, Bounds, Outcome};
use super::contiguous::Contiguous;
use super::dispatch::{dispatch, routes, Routes, Verdict};
use super::settle::{self, Step};
use super::{retry_topic, Shared};
use crate::config::policy::RetryMode;
use crate::error::{Error, Result};
use crate::registry::HandlerDescriptor;
use crate::telemetry::stats::Counters;
use crate::wire::received::{Received, Recycler};

type PartitionId = (String, i32);

/// What the polling thread hands to the consumer loop, in librdkafka's order.
enum Polled {
    /// Messages in the order they were fetched.
    Messages(Vec<Received>),
    /// The group's assignment now has this many partitions.
    Assigned(usize),
    /// These partitions were taken away; their workers were already told to stop.
    Revoked(Vec<PartitionId>),
    /// librdkafka reported a fatal error: this consumer cannot go on.
    Fatal(String),
}

/// What the rebalance callback and a partition's worker share.
struct PartitionControl {
    /// Cancelled when the partition is revoked or the group stops: the worker finishes its
    /// in-flight attempt, stops waiting for retries, and drops the rest of its queue.
    cancel: CancellationToken,
    /// A message is being handled right now, or (with per-key concurrency) any of the partition's
    /// events runs, or one that is done is not stored yet.
    busy: AtomicBool,
    /// Cleared when a revocation stopped waiting for the worker: an offset stored after that
    /// belongs to an assignment that is over and could move the partition's offset backwards.
    /// Held while an offset is stored, so none is stored after the revocation cleared it.
    may_store: std::sync::Mutex<bool>,
}

/// The live partition workers' controls, by partition.
type Controls = Arc<std::sync::Mutex<HashMap<PartitionId, Arc<PartitionControl>>>>;

/// Values by topic and partition, found without allocating a key and with a fast hasher (routing
/// looks one up per message).
struct ByPartition<T>(foldhash::HashMap<String, foldhash::HashMap<i32, T>>);

impl<T> Default for ByPartition<T> {
    fn default() -> Self {
        Self(foldhash::HashMap::default())
    }
}

impl<T> ByPartition<T> {
    fn get(&self, topic: &str, partition: i32) -> Option<&T> {
        self.0.get(topic)?.get(&partition)
    }

    fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut T> {
        self.0.get_mut(topic)?.get_mut(&partition)
    }

    fn insert(&mut self, topic: &str, partition: i32, value: T) {
        match self.0.get_mut(topic) {
            Some(partitions) => {
                partitions.insert(partition, value);
            }
            None => {
                let mut partitions = foldhash::HashMap::default();
                partitions.insert(partition, value);
                self.0.insert(topic.to_owned(), partitions);
            }
        }
    }

    fn remove(&mut self, topic: &str, partition: i32) -> Option<T> {
        self.0.get_mut(topic)?.remove(&partition)
    }

    fn into_values(self) -> impl Iterator<Item = T> {
        self.0
            .into_values()
            .flat_map(std::collections::HashMap::into_values)
    }
}

/// librdkafka's default `max.poll.interval.ms`, Kafka's rebalance timeout for a member.
const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_secs(300);

/// How long a revocation may wait for the handlers running on the revoked partitions: nine tenths
/// of `max.poll.interval.ms` (the rebalance timeout; the member is dropped from the group past it).
pub(crate) fn revoke_grace(client_config: &rdkafka::ClientConfig) -> Duration {
    let max_poll = client_config
        .get("max.poll.interval.ms")
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(DEFAULT_MAX_POLL_INTERVAL, Duration::from_millis);
    max_poll - max_poll / 10
}

/// How long one `poll` of the polling thread blocks; bounds how long stopping it takes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The polling thread's way to the consumer loop. Messages gather in a batch that leaves in one
/// send when polling runs dry or the batch is full — one wake-up of the loop per batch, not per
/// message — and always before a rebalance event, so the loop sees everything in librdkafka's
/// order. Only the polling thread (where librdkafka runs the callbacks too) uses it.
struct Outbound {
    batch: std::sync::Mutex<Vec<Received>>,
    out: mpsc::UnboundedSender<Polled>,
    /// Emptied batches the consumer loop hands back, so that the polling thread neither grows a
    /// new one for every batch nor has its allocations freed on another thread.
    spare: crossbeam_queue::ArrayQueue<Vec<Received>>,
}

/// The most messages one batch carries.
const BATCH: usize = 256;

impl Outbound {
    fn new(out: mpsc::UnboundedSender<Polled>) -> Self {
        Self {
            batch: std::sync::Mutex::new(Vec::with_capacity(BATCH)),
            out,
            spare: crossbeam_queue::ArrayQueue::new(4),
        }
    }

    /// Takes back an emptied batch (the consumer loop's side).
    fn give_back(&self, mut batch: Vec<Received>) {
        batch.clear();
        let _ = self.spare.push(batch);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a message; sends the batch when it is full. `false`: the consumer loop is gone.
    fn push(&self, message: Received) -> bool {
        let full = {
            let mut batch = self.lock();
            batch.push(message);
            batch.len() >= BATCH
        };
        !full || self.flush()
    }

    /// Sends what has gathered. `false`: the consumer loop is gone.
    fn flush(&self) -> bool {
        let mut batch = self.lock();
        if batch.is_empty() {
            return true;
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH));
        let full = std::mem::replace(&mut *batch, next);
        drop(batch);
        self.out.send(Polled::Messages(full)).is_ok()
    }

    /// Sends the gathered messages, then `event`.
    fn send(&self, event: Polled) {
        if self.flush() {
            let _ = self.out.send(event);
        }
    }
}

/// The consumer's librdkafka context: reports rebalances to the consumer loop.
struct GroupContext {
    events: Outbound,
    /// Consumed messages' buffers, handed back by the workers to the polling thread.
    recycler: Recycler,
    counters: Arc<Counters>,
    group: String,
    controls: Controls,
    /// See [`revoke_grace`].
    revoke_grace: Duration,
    /// Set when the group shuts down: the shutdown waited for the handlers already, up to its
    /// deadline, so the revocation at close does not wait again.
    closing: AtomicBool,
}

impl GroupContext {
    /// Stops the revoked partitions' workers at once and lets the handlers running on them finish,
    /// so that librdkafka's commit-on-revoke includes their offsets and the next owner neither
    /// runs them at the same time nor again: the order within a partition holds across the move.
    /// Runs on the polling thread; bounded by the revoke grace (see [`revoke_grace`]).
    fn retire(&self, consumer: &BaseConsumer<Self>, partitions: &[PartitionId]) {
        let controls: Vec<Arc<PartitionControl>> = {
            let map = self.controls.lock().unwrap_or_else(|e| e.into_inner());
            partitions
                .iter()
                .filter_map(|p| map.get(p).cloned())
                .collect()
        };
        for control in &controls {
            control.cancel.cancel();
        }
        let grace = if self.closing.load(Ordering::SeqCst) {
            Duration::ZERO
        } else {
            self.revoke_grace
        };
        let deadline = std::time::Instant::now() + grace;
        while controls.iter().any(|c| c.busy.load(Ordering::SeqCst))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        for control in &controls {
            *control.may_store.lock().unwrap_or_else(|e| e.into_inner()) = false;
            if control.busy.load(Ordering::SeqCst) {
                tracing::warn!(group = %self.group, ?grace,
                    "a handler still runs on a revoked partition; its offset will not be stored and the new owner handles the event again");
            }
        }
        // Committed now, not by librdkafka's asynchronous commit at the unassignment: the next
        // owner reads the committed offsets as soon as it is assigned, and must see these.
        if !self.closing.load(Ordering::SeqCst) {
            if let Err(e) = commit_stored(consumer) {
                tracing::warn!(group = %self.group, error = %e,
                    "committing the revoked partitions' offsets failed; their next owner may handle some events again");
            }
        }
    }
}

/// Commits the stored offsets now and waits for the answer; nothing stored is no error.
fn commit_stored<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> KafkaResult<()> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        result => result,
    }
}

fn partition_ids(tpl: &TopicPartitionList) -> Vec<PartitionId> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partition_ids(tpl);
            self.retire(consumer, &revoked);
            self.events.send(Polled::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        Counters::add(&self.counters.rebalances, 1);
        // What this member holds now: under incremental rebalancing (cooperative-sticky, the
        // consumer protocol) an assignment or revocation is a change, not the whole set.
        let assignment = consumer.assignment().map(|tpl| partition_ids(&tpl));
        match rebalance {
            Rebalance::Assign(tpl) => {
                // A partition paused before it was revoked stays paused in librdkafka when it comes
                // back; its new worker starts with an empty queue, so fetch it again.
                if let Err(e) = consumer.resume(tpl) {
                    tracing::warn!(group = %self.group, error = %e, "could not resume newly assigned partitions");
                }
                tracing::info!(group = %self.group, partitions = tpl.count(), "partitions assigned");
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(group = %self.group, partitions = tpl.count(), "partitions revoked");
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance failed");
                // librdkafka gave up partitions without a revocation: stop their workers too, so
                // that none runs on a partition another member may own now.
                let lost: Vec<PartitionId> = self
                    .controls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .filter(|p| !assignment.as_ref().is_ok_and(|now| now.contains(p)))
                    .cloned()
                    .collect();
                if !lost.is_empty() {
                    self.retire(consumer, &lost);
                    self.events.send(Polled::Revoked(lost));
                }
            }
        }
        self.events
            .send(Polled::Assigned(assignment.map_or(0, |now| now.len())));
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        use rdkafka::error::KafkaError::ConsumerCommit;
        use RDKafkaErrorCode::{NoOffset, RebalanceInProgress};
        match result {
            Ok(()) | Err(ConsumerCommit(NoOffset)) => {}
            Err(ConsumerCommit(RebalanceInProgress)) => {
                tracing::debug!(group = %self.group, "commit deferred by a rebalance; retried at the next commit")
            }
            Err(e) => {
                tracing::warn!(group = %self.group, error = %e, "offset commit failed; it is retried at the next commit")
            }
        }
    }
}

type GroupConsumer = BaseConsumer<GroupContext>;

/// How a group's consumer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupStop {
    /// Every in-flight handler finished and what was handled was committed.
    Clean,
    /// Handlers still running at the deadline were abandoned; their events will be redelivered.
    Abandoned,
    /// The consumer failed (a fatal librdkafka error, a panicked task).
    Failed(String),
}

/// A running consumer group: stop it with [`GroupRunner::stop`].
pub(crate) struct GroupRunner {
    pub group: String,
    stop: oneshot::Sender<Instant>,
    assigned: watch::Receiver<usize>,
    task: JoinHandle<GroupStop>,
}

impl GroupRunner {
    /// Subscribes a new consumer of `group` to the handlers' topics and starts consuming.
    ///
    /// # Errors
    /// [`Error::Config`] when a handler's retry policy is unknown or invalid, [`Error::Kafka`] when
    /// the consumer cannot be created or subscribed.
    pub fn start(
        group: String,
        handlers: Vec<&'static HandlerDescriptor>,
        client_config: rdkafka::ClientConfig,
        shared: Arc<Shared>,
        existing: &BTreeSet<String>,
    ) -> Result<Self> {
        Self::launch(group, handlers, client_config, shared, existing, None)
    }

    /// A bounded run (a replay): subscribes only to `bounds`' topic, handles each partition's
    /// records up to its end (the records past it are neither handled nor committed) and stops by
    /// itself, cleanly, once every partition reached its end ([`GroupRunner::finished`]). `group`
    /// is the handlers' group, which their dead letters and retry copies name; `client_config`
    /// names the consumer group id the run commits under.
    ///
    /// # Errors
    /// As [`GroupRunner::start`].
    pub fn start_bounded(
        group: String,
        handlers: Vec<&'static HandlerDescriptor>,
        client_config: rdkafka::ClientConfig,
        shared: Arc<Shared>,
        bounds: Arc<Bounds>,
    ) -> Result<Self> {
        Self::launch(
            group,
            handlers,
            client_config,
            shared,
            &BTreeSet::new(),
            Some(bounds),
        )
    }

    fn launch(
        group: String,
        handlers: Vec<&'static HandlerDescriptor>,
        client_config: rdkafka::ClientConfig,
        shared: Arc<Shared>,
        existing: &BTreeSet<String>,
        bounds: Option<Arc<Bounds>>,
    ) -> Result<Self> {
        let (routes, breakers) = routes(&group, &handlers, &shared)?;
        let concurrency = concurrency_by_topic(&handlers);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let controls = Controls::default();
        let context = GroupContext {
            events: Outbound::new(events_tx),
            recycler: Recycler::default(),
            counters: shared.counters.clone(),
            group: group.clone(),
            controls: controls.clone(),
            revoke_grace: revoke_grace(&client_config),
            closing: AtomicBool::new(false),
        };
        let consumer: GroupConsumer = client_config
            .create_with_context(context)
            .map_err(|e| Error::kafka("creating a consumer", e))?;
        let consumed: BTreeSet<&str> = handlers.iter().map(|h| h.topic).collect();
        let mut topics: BTreeSet<String> = consumed.iter().map(|t| (*t).to_owned()).collect();
        for route in routes.values().flatten() {
            if route.policy.mode == RetryMode::Topics {
                topics.extend(retry_topic::retry_topics(route.handler.topic));
            }
        }
        // The existing tiers of the other topics: a handler retried through them before it
        // switched to in-place retries (or went away), and records waiting there for this group
        // have their main offsets committed.
        for topic in consumed {
            topics.extend(
                retry_topic::retry_topics(topic)
                    .into_iter()
                    .filter(|tier| existing.contains(tier)),
            );
        }
        if let Some(bounds) = &bounds {
            // A bounded run reads its one topic; retry copies it makes are its group's to retry.
            topics = BTreeSet::from([bounds.topic.clone()]);
        }
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| Error::kafka("subscribing to the handlers' topics", e))?;
        tracing::info!(%group, ?topics, handlers = handlers.len(), "consumer subscribed");
        shared
            .breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(breakers);
        let consumer = Arc::new(consumer);
        let polling = Arc::new(AtomicBool::new(true));
        let poller = {
            let (consumer, polling, group) = (consumer.clone(), polling.clone(), group.clone());
            std::thread::Builder::new()
                .name(format!("herald-poll-{group}"))
                .spawn(move || poll_loop(&consumer, &polling, &group))
                .map_err(|e| Error::Config(format!("cannot spawn a consumer thread: {e}")))?
        };
        let (stop, stop_rx) = oneshot::channel();
        let (assigned_tx, assigned) = watch::channel(0);
        let shared_max_per_consumer = shared.settings.max_buffered_bytes_per_consumer;
        let consumer_loop = ConsumerLoop {
            consumer,
            routes: Arc::new(routes),
            concurrency,
            shared,
            workers: ByPartition::default(),
            retiring: HashMap::new(),
            controls,
            group: group.clone(),
            cancel: CancellationToken::new(),
            polling,
            poller: Some(poller),
            budget: Arc::new(Budget::new(shared_max_per_consumer)),
            bounds,
        };
        let task = tokio::spawn(consumer_loop.run(stop_rx, events_rx, assigned_tx));
        Ok(Self {
            group,
            stop,
            assigned,
            task,
        })
    }

    /// The number of partitions assigned to this consumer, as it changes.
    pub fn assignment(&self) -> watch::Receiver<usize> {
        self.assigned.clone()
    }

    /// Waits until the consumer ends by itself: a bounded run that reached its ends, or a failure.
    pub async fn finished(self) -> GroupStop {
        // Held until the end: dropping it stops the consumer.
        let _stop = self.stop;
        match self.task.await {
            Ok(stop) => stop,
            Err(e) => GroupStop::Failed(format!("the consumer task failed: {e}")),
        }
    }

    /// Stops fetching, lets in-flight handlers finish until `deadline` (abandoning those still
    /// running then), commits what was handled and closes the consumer.
    pub async fn stop(self, deadline: Instant) -> GroupStop {
        let _ = self.stop.send(deadline);
        match self.task.await {
            Ok(stop) => stop,
            Err(e) => GroupStop::Failed(format!("the consumer task failed: {e}")),
        }
    }
}

/// How many events of different keys each consumed topic's partitions run at once: the smallest
/// `concurrency` among the group's handlers of the topic, so that one handler that needs the
/// partition's order keeps it sequential. Topics left out (retry tiers) run one event at a time.
fn concurrency_by_topic(
    handlers: &[&'static HandlerDescriptor],
) -> foldhash::HashMap<String, usize> {
    let mut by_topic: foldhash::HashMap<String, usize> = foldhash::HashMap::default();
    for handler in handlers {
        let concurrency = usize::from(handler.concurrency.max(1));
        by_topic
            .entry(handler.topic.to_owned())
            .and_modify(|n| *n = (*n).min(concurrency))
            .or_insert(concurrency);
    }
    by_topic
}

/// Waits until `assigned` reports at least one partition (true), or its group ended (false).
pub(crate) async fn assigned(mut assigned: watch::Receiver<usize>) -> bool {
    loop {
        if *assigned.borrow_and_update() > 0 {
            return true;
        }
        if assigned.changed().await.is_err() {
            return false;
        }
    }
}

/// The polling thread: [`poll_until_stopped`], and a panic on it ends the group as a failure
/// (health then says so) rather than leaving a consumer that no longer reads.
fn poll_loop(consumer: &GroupConsumer, polling: &AtomicBool, group: &str) {
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll_until_stopped(consumer, polling, group)
    }));
    if let Err(panic) = polled {
        let reason = panic_text(&*panic);
        tracing::error!(%group, %reason, "the polling thread panicked: this consumer stops; restart the service");
        consumer.context().events.send(Polled::Fatal(format!(
            "the polling thread panicked: {reason}"
        )));
    }
}

/// A panic's message, when it has one.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// Hands messages, rebalances (through the context) and fatal errors to the consumer loop until
/// told to stop.
fn poll_until_stopped(consumer: &GroupConsumer, polling: &AtomicBool, group: &str) {
    let out = &consumer.context().events;
    let mut last_error: Option<String> = None;
    // Topic names, shared by every message of the topic instead of copied into each.
    let mut topics: foldhash::HashMap<String, Arc<str>> = foldhash::HashMap::default();
    let mut gathering = false;
    while polling.load(Ordering::SeqCst) {
        // While messages keep coming, take what librdkafka has without waiting; send when dry.
        let wait = if gathering {
            Duration::ZERO
        } else {
            POLL_INTERVAL
        };
        match consumer.poll(wait) {
            None => {
                gathering = false;
                if !out.flush() {
                    return;
                }
                consumer.context().recycler.trim();
            }
            Some(Ok(message)) => {
                #[cfg(test)]
                assert!(
                    message.key() != Some(tests::PANIC_POLLING),
                    "injected by a test"
                );
                last_error = None;
                gathering = true;
                let topic = match topics.get(message.topic()) {
                    Some(topic) => topic.clone(),
                    None => {
                        let topic: Arc<str> = message.topic().into();
                        topics.insert(message.topic().to_owned(), topic.clone());
                        topic
                    }
                };
                let recycler = &consumer.context().recycler;
                if !out.push(Received::copy_recycled(&message, topic, recycler)) {
                    return;
                }
            }
            Some(Err(error)) => {
                gathering = false;
                if let Some((code, reason)) = consumer.client().fatal_error() {
                    tracing::error!(%group, ?code, %reason, "fatal consumer error: this consumer stops; restart the service");
                    out.send(Polled::Fatal(format!("{code:?}: {reason}")));
                    return;
                }
                if !out.flush() {
                    return;
                }
                // librdkafka recovers from transient errors by itself; say each once, not per poll.
                let text = error.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(%group, error = %text, "consumer error; librdkafka keeps trying");
                    last_error = Some(text);
                }
            }
        }
    }
    out.flush();
}

/// How far a partition's worker is behind, in messages and in bytes; shared by the consumer loop
/// (which adds) and the worker (which takes).
#[derive(Debug)]
struct Backlog {
    messages: AtomicUsize,
    bytes: AtomicUsize,
    max_messages: usize,
    max_bytes: usize,
    /// The bytes of every partition of the consumer.
    budget: Arc<Budget>,
}

/// The bytes buffered by one consumer over all its partitions, and their bound.
#[derive(Debug)]
struct Budget {
    bytes: AtomicUsize,
    max: usize,
}

impl Budget {
    fn new(max: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `size` bytes off; returns whether that brought the total back to half the bound.
    fn release(&self, size: usize) -> bool {
        let was = self.bytes.fetch_sub(size, Ordering::SeqCst);
        was > self.max / 2 && was - size <= self.max / 2
    }

    /// At or below half the bound.
    fn below_half(&self) -> bool {
        self.bytes.load(Ordering::SeqCst) <= self.max / 2
    }
}

impl Backlog {
    fn new(max_messages: usize, max_bytes: usize, budget: Arc<Budget>) -> Self {
        Self {
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_messages,
            max_bytes,
            budget,
        }
    }

    /// Adds a message of `size` bytes; returns whether the partition is now too far behind, or
    /// the consumer as a whole holds too many bytes.
    fn add(&self, size: usize) -> bool {
        let messages = self.messages.fetch_add(1, Ordering::SeqCst) + 1;
        let bytes = self.bytes.fetch_add(size, Ordering::SeqCst) + size;
        let total = self.budget.bytes.fetch_add(size, Ordering::SeqCst) + size;
        messages >= self.max_messages || bytes >= self.max_bytes || total >= self.budget.max
    }

    /// Takes a message of `size` bytes off; returns whether that brought the partition back to
    /// half of both bounds (the moment to fetch again), and whether it brought the consumer's
    /// total back to half its bound (the moment to fetch the other paused partitions again).
    fn take(&self, size: usize) -> (bool, bool) {
        let was = self.caught_up();
        self.messages.fetch_sub(1, Ordering::SeqCst);
        self.bytes.fetch_sub(size, Ordering::SeqCst);
        let freed = self.budget.release(size);
        (!was && self.caught_up(), freed)
    }

    /// At or below half of both bounds, with the consumer's total at or below half its bound.
    fn caught_up(&self) -> bool {
        self.messages.load(Ordering::SeqCst) <= self.max_messages / 2
            && self.bytes.load(Ordering::SeqCst) <= self.max_bytes / 2
            && self.budget.below_half()
    }
}

impl Drop for Backlog {
    /// The messages a revoked partition's worker dropped leave the consumer's total too.
    fn drop(&mut self) {
        self.budget.release(*self.bytes.get_mut());
    }
}

/// One partition's worker: its queue, how far behind it is, whether its partition is paused, and
/// whether a handler's open circuit breaker holds it.
struct Worker {
    queue: mpsc::UnboundedSender<Received>,
    backlog: Arc<Backlog>,
    paused: bool,
    held: bool,
    /// A bounded run's partition that reached its end: it stays paused.
    ended: bool,
    task: JoinHandle<()>,
}

/// What a partition's worker asks of the consumer loop.
enum WorkerSignal {
    /// Its backlog fell to half the buffer: the partition may be fetched again.
    CaughtUp(PartitionId),
    /// The consumer's buffered bytes fell to half their bound: every paused partition that is not
    /// behind may be fetched again.
    BudgetFreed,
    /// A handler waits for its open circuit breaker (`true`) or no longer does (`false`).
    Hold(PartitionId, bool),
    /// A message can be neither handled nor dead-lettered (its dead-letter topic refuses it for
    /// good): the group stops with this reason, the message uncommitted.
    Failed(String),
}

/// Joins the polling thread, commits what was stored and closes the consumer, on a thread of its
/// own; the receiver hears when that is done. Not on tokio's blocking pool: dropping a runtime
/// waits for every blocking task, so a close that waits for an unreachable broker would hold the
/// service's exit past its shutdown timeout (librdkafka gives up on its own, seconds later).
fn close(
    consumer: Arc<GroupConsumer>,
    group: String,
    poller: Option<std::thread::JoinHandle<()>>,
) -> oneshot::Receiver<()> {
    let (done, closed) = oneshot::channel();
    let work = move || {
        if let Some(poller) = poller {
            let _ = poller.join();
        }
        if let Err(e) = commit_stored(&consumer) {
            tracing::warn!(%group, error = %e, "final commit failed; uncommitted events will be redelivered")
        }
        consumer.unsubscribe();
        drop(consumer);
        tracing::info!(%group, "consumer closed");
        let _ = done.send(());
    };
    if let Err(e) = std::thread::Builder::new()
        .name("herald-close".into())
        .spawn(work)
    {
        // The work went down with the failed spawn: the consumer is dropped (closed) here.
        tracing::warn!(error = %e, "could not start a thread to close the consumer");
    }
    closed
}

struct ConsumerLoop {
    consumer: Arc<GroupConsumer>,
    routes: Arc<Routes>,
    /// See [`concurrency_by_topic`].
    concurrency: foldhash::HashMap<String, usize>,
    shared: Arc<Shared>,
    workers: ByPartition<Worker>,
    /// Workers of revoked partitions that may still be finishing their in-flight message.
    retiring: HashMap<PartitionId, JoinHandle<()>>,
    controls: Controls,
    group: String,
    /// The parent of every partition's token: cancelled when the group stops.
    cancel: CancellationToken,
    /// Cleared to stop the polling thread.
    polling: Arc<AtomicBool>,
    poller: Option<std::thread::JoinHandle<()>>,
    /// The bytes buffered over all partitions.
    budget: Arc<Budget>,
    /// A bounded run's end offsets; `None` for a live group.
    bounds: Option<Arc<Bounds>>,
}

impl ConsumerLoop {
    async fn run(
        mut self,
        mut stop: oneshot::Receiver<Instant>,
        mut polled: mpsc::UnboundedReceiver<Polled>,
        assigned: watch::Sender<usize>,
    ) -> GroupStop {
        let (signals_tx, mut signals) = mpsc::unbounded_channel::<WorkerSignal>();
        let mut failure = None;
        // A safety net under the signals: bytes released by a revoked partition's dropped queue
        // send none, and a paused partition must never wait for a signal that does not come.
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut progress = self.bounds.as_ref().map(|b| b.subscribe());
        let deadline = loop {
            if self.bounds.as_ref().is_some_and(|b| b.done()) {
                tracing::info!(group = %self.group, "bounded run reached the end of every partition");
                break Instant::now() + self.shared.settings.shutdown_timeout;
            }
            tokio::select! {
                biased;
                deadline = &mut stop => {
                    break deadline.unwrap_or_else(|_| Instant::now() + self.shared.settings.shutdown_timeout)
                }
                _ = sweep.tick() => {
                    self.resume_caught_up();
                    self.settle_bounds();
                }
                Some(()) = changed(progress.as_mut()) => {}
                Some(signal) = signals.recv() => {
                    if let Some(reason) = self.signalled(signal) {
                        tracing::error!(group = %self.group, %reason, "consumer group failed: it stops; fix the cause and restart the service");
                        failure = Some(reason);
                        break Instant::now() + self.shared.settings.shutdown_timeout;
                    }
                }
                event = polled.recv() => match event {
                    Some(Polled::Messages(mut messages)) => {
                        Counters::add(&self.shared.counters.events_consumed, messages.len() as u64);
                        for message in messages.drain(..) {
                            self.route(message, &signals_tx);
                        }
                        self.consumer.context().events.give_back(messages);
                    }
                    Some(Polled::Assigned(n)) => {
                        let _ = assigned.send(n);
                    }
                    Some(Polled::Revoked(partitions)) => self.revoked(partitions),
                    Some(Polled::Fatal(reason)) => {
                        failure = Some(reason);
                        break Instant::now() + self.shared.settings.shutdown_timeout;
                    }
                    None => {
                        failure = Some("the polling thread ended".to_owned());
                        break Instant::now() + self.shared.settings.shutdown_timeout;
                    }
                },
            }
        };
        let stop = self.shutdown(deadline).await;
        match failure {
            Some(reason) => GroupStop::Failed(reason),
            None => stop,
        }
    }

    /// Drops the workers of revoked partitions (already cancelled by the rebalance callback); each
    /// finishes its in-flight message and drops the rest, which the new owner reads from the
    /// committed offset.
    fn revoked(&mut self, partitions: Vec<PartitionId>) {
        self.retiring.retain(|_, task| !task.is_finished());
        let mut controls = self.controls.lock().unwrap_or_else(|e| e.into_inner());
        for partition in partitions {
            if let Some(worker) = self.workers.remove(&partition.0, partition.1) {
                controls.remove(&partition);
                self.retiring.insert(partition, worker.task);
            }
        }
    }

    /// Hands a message to its partition's worker (counted as consumed by the caller). In a
    /// bounded run, a message at or past its partition's end is dropped and the partition paused.
    fn route(&mut self, message: Received, signals: &mpsc::UnboundedSender<WorkerSignal>) {
        let (topic, partition) = (message.topic(), message.partition());
        let beyond = self.bounds.as_ref().is_some_and(|bounds| {
            bounds
                .get(topic, partition)
                .is_none_or(|b| message.offset() >= b.end)
        });
        if self.workers.get(topic, partition).is_none() {
            let id: PartitionId = (topic.to_owned(), partition);
            let previous = self.retiring.remove(&id);
            let worker = self.spawn_worker(id, previous, signals.clone());
            self.workers.insert(topic, partition, worker);
        }
        let worker = self
            .workers
            .get_mut(topic, partition)
            .expect("inserted above");
        if beyond {
            let id = (topic.to_owned(), partition);
            self.pause(&id);
            if let Some(worker) = self.workers.get_mut(topic, partition) {
                worker.ended = true;
            }
            return;
        }
        let behind = worker.backlog.add(message.size());
        let pause = (!worker.paused && behind).then(|| (topic.to_owned(), partition));
        let _ = worker.queue.send(message);
        if let Some(id) = pause {
            self.pause(&id);
        }
    }

    /// Carries out a worker's signal; returns the reason when the group must stop.
    fn signalled(&mut self, signal: WorkerSignal) -> Option<String> {
        match signal {
            WorkerSignal::Failed(reason) => return Some(reason),
            WorkerSignal::CaughtUp(id) => {
                if self.workers.get(&id.0, id.1).is_some_and(|w| !w.held) {
                    self.resume(&id);
                }
            }
            WorkerSignal::BudgetFreed => self.resume_caught_up(),
            WorkerSignal::Hold(id, held) => {
                let worker = self.workers.get_mut(&id.0, id.1)?;
                worker.held = held;
                if held {
                    self.pause(&id);
                } else if worker.backlog.caught_up() {
                    self.resume(&id);
                }
            }
        }
        None
    }

    /// Resumes every paused partition that is neither behind nor held.
    fn resume_caught_up(&mut self) {
        let ready: Vec<PartitionId> = self
            .workers
            .0
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .filter(|(_, w)| w.paused && !w.held && w.backlog.caught_up())
                    .map(move |(p, _)| (topic.clone(), *p))
            })
            .collect();
        for id in ready {
            self.resume(&id);
        }
    }

    /// Pauses fetching a partition at the broker (its handlers are behind, or held by a breaker).
    fn pause(&mut self, id: &PartitionId) {
        let Some(worker) = self.workers.get_mut(&id.0, id.1) else {
            return;
        };
        if worker.paused {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&id.0, id.1);
        match self.consumer.pause(&tpl) {
            Ok(()) => {
                worker.paused = true;
                Counters::add(&self.shared.counters.partitions_paused, 1);
                tracing::debug!(topic = %id.0, partition = id.1, held = worker.held, "partition paused");
            }
            Err(e) => tracing::warn!(error = %e, "could not pause a partition"),
        }
    }

    fn resume(&mut self, id: &PartitionId) {
        let Some(worker) = self.workers.get_mut(&id.0, id.1) else {
            return;
        };
        if !worker.paused || worker.ended {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&id.0, id.1);
        match self.consumer.resume(&tpl) {
            Ok(()) => worker.paused = false,
            Err(e) => tracing::warn!(error = %e, "could not resume a partition"),
        }
    }

    /// Tells a bounded run's partitions where the consumer fetches and whether their workers are
    /// idle (see [`Bound::settle`]).
    fn settle_bounds(&self) {
        let Some(bounds) = &self.bounds else { return };
        if bounds.done() {
            return;
        }
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let controls = self.controls.lock().unwrap_or_else(|e| e.into_inner());
        for element in positions.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Some(bound) = bounds.get(topic, partition) else {
                continue;
            };
            let rdkafka::Offset::Offset(fetched) = element.offset() else {
                continue;
            };
            let idle = self.workers.get(topic, partition).is_none_or(|w| {
                w.backlog.messages.load(Ordering::SeqCst) == 0
                    && !controls
                        .get(&(topic.to_owned(), partition))
                        .is_some_and(|c| c.busy.load(Ordering::SeqCst))
            });
            bound.settle(fetched, idle);
        }
    }

    /// Stops polling, lets the workers finish until `deadline` (aborting the rest), commits and
    /// closes the consumer — the commit and close too only until `deadline`.
    async fn shutdown(mut self, deadline: Instant) -> GroupStop {
        self.cancel.cancel();
        self.polling.store(false, Ordering::SeqCst);
        self.consumer
            .context()
            .closing
            .store(true, Ordering::SeqCst);
        let tasks: Vec<JoinHandle<()>> = self
            .workers
            .into_values()
            .map(|w| w.task)
            .chain(self.retiring.into_values())
            .collect();
        let mut stop = GroupStop::Clean;
        for mut task in tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    stop = GroupStop::Failed(format!("a partition worker failed: {e}"));
                }
                Err(_) => {
                    // Its offset is not stored: the event is delivered again after a restart.
                    task.abort();
                    if stop == GroupStop::Clean {
                        stop = GroupStop::Abandoned;
                    }
                }
            }
        }
        if stop == GroupStop::Abandoned {
            tracing::warn!(group = %self.group, timeout = ?self.shared.settings.shutdown_timeout,
                "handlers still running at the shutdown timeout were abandoned; their events will be redelivered");
        }
        let closed = close(self.consumer, self.group, self.poller.take());
        if tokio::time::timeout_at(deadline, closed).await.is_err() && stop == GroupStop::Clean {
            stop = GroupStop::Abandoned;
        }
        stop
    }

    /// Spawns the worker of a partition; it starts once `previous`, the partition's worker from
    /// before a rebalance, finished its in-flight message, so one partition is never handled by two
    /// tasks at once.
    fn spawn_worker(
        &self,
        id: PartitionId,
        previous: Option<JoinHandle<()>>,
        signals: mpsc::UnboundedSender<WorkerSignal>,
    ) -> Worker {
        let (consumer, routes, shared, group) = (
            self.consumer.clone(),
            self.routes.clone(),
            self.shared.clone(),
            self.group.clone(),
        );
        let (queue, inbox) = mpsc::unbounded_channel::<Received>();
        let backlog = Arc::new(Backlog::new(
            self.shared.settings.max_buffered,
            self.shared.settings.max_buffered_bytes,
            self.budget.clone(),
        ));
        let control = Arc::new(PartitionControl {
            cancel: self.cancel.child_token(),
            busy: AtomicBool::new(false),
            may_store: std::sync::Mutex::new(true),
        });
        self.controls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), control.clone());
        let on_panic = (signals.clone(), format!("{}/{}", id.0, id.1));
        let concurrency = self.concurrency.get(&id.0).copied().unwrap_or(1);
        let bound = self
            .bounds
            .as_ref()
            .and_then(|b| b.get(&id.0, id.1).cloned());
        let worker = PartitionWorker {
            bound,
            concurrency,
            id,
            consumer,
            routes,
            shared,
            group,
            control,
            signals,
            backlog: backlog.clone(),
        };
        // A panic in a worker (not in a handler: those are contained) would leave its partition
        // unread with the group looking healthy: it fails the group instead.
        let task = tokio::spawn(async move {
            let run = std::panic::AssertUnwindSafe(worker.run(inbox, previous));
            if let Err(panic) = futures::FutureExt::catch_unwind(run).await {
                let what = panic_text(&*panic);
                let (signals, partition) = on_panic;
                let _ = signals.send(WorkerSignal::Failed(format!(
                    "the worker of partition {partition} panicked: {what}"
                )));
            }
        });
        Worker {
            queue,
            backlog,
            paused: false,
            held: false,
            ended: false,
            task,
        }
    }
}

/// Stored offsets are given to librdkafka at least every this many handled messages of a
/// partition, and whenever its queue runs empty (storing each one costs a topic-handle lookup).
const STORE_EVERY: u32 = 256;

/// One partition's worker task: handles its messages in order, each to a verdict, and stores the
/// offsets of those done for commit.
struct PartitionWorker {
    /// In a bounded run, the partition's range, which counts its outcomes and position.
    bound: Option<Arc<Bound>>,
    /// How many events of different keys may run at once (see [`concurrency_by_topic`]).
    concurrency: usize,
    id: PartitionId,
    consumer: Arc<GroupConsumer>,
    routes: Arc<Routes>,
    shared: Arc<Shared>,
    group: String,
    control: Arc<PartitionControl>,
    signals: mpsc::UnboundedSender<WorkerSignal>,
    backlog: Arc<Backlog>,
}

impl PartitionWorker {
    /// Starts once `previous`, the partition's worker from before a rebalance, is done, so one
    /// partition is never handled by two tasks at once.
    async fn run(
        self,
        mut inbox: mpsc::UnboundedReceiver<Received>,
        previous: Option<JoinHandle<()>>,
    ) {
        if let Some(previous) = previous {
            let _ = previous.await;
        }
        if self.concurrency > 1 {
            return self.run_keyed(inbox).await;
        }
        // The last handled offset not yet stored, and how many messages since the last store.
        let (mut unstored, mut since_store): (Option<i64>, u32) = (None, 0);
        while let Some(message) = inbox.recv().await {
            #[cfg(test)]
            assert!(
                message.key() != Some(tests::PANIC_WORKER),
                "injected by a test"
            );
            let (caught_up, freed) = self.backlog.take(message.size());
            if caught_up {
                let _ = self.signals.send(WorkerSignal::CaughtUp(self.id.clone()));
            }
            if freed {
                let _ = self.signals.send(WorkerSignal::BudgetFreed);
            }
            // `busy` before the check: a revocation either sees us busy and waits, or we see its
            // cancellation. It stays set while handled offsets are unstored, so a revocation waits
            // for them to be stored.
            self.control.busy.store(true, Ordering::SeqCst);
            if self.control.cancel.is_cancelled() {
                break;
            }
            match self.handle(&message).await {
                Step::Commit => {}
                Step::Stop => break,
                Step::Fail(reason) => {
                    let _ = self.signals.send(WorkerSignal::Failed(reason));
                    break;
                }
            }
            unstored = Some(message.offset());
            since_store += 1;
            self.consumer.context().recycler.give(message);
            // A bounded run stores each one: its progress moves per record, and a replay stopped
            // half-way goes on from the last one handled.
            if inbox.is_empty() || since_store >= STORE_EVERY || self.bound.is_some() {
                self.store(unstored.take());
                since_store = 0;
                self.control.busy.store(false, Ordering::SeqCst);
            }
        }
        self.store(unstored);
        self.control.busy.store(false, Ordering::SeqCst);
    }

    /// [`run`](Self::run) with per-key concurrency: up to `concurrency` events of different keys
    /// at once (records without a key share one lane), the events of one key in order, one at a
    /// time. The offset stored is the highest one below which every received event reached its
    /// verdict, so the committed offset never passes an event that is running or waits. It
    /// receives at most `max_buffered_per_partition` events past the oldest unfinished one.
    ///
    /// `busy` stays set from the first message received until nothing runs and what is done is
    /// stored. Cancelled (revocation, shutdown) or failed, it starts nothing more, lets the
    /// running events finish and stores what is contiguously done.
    async fn run_keyed(&self, mut inbox: mpsc::UnboundedReceiver<Received>) {
        let cancel = &self.control.cancel;
        // Each key with an event running, and its events waiting behind that one.
        let mut lanes: foldhash::HashMap<Option<Box<[u8]>>, VecDeque<Received>> =
            foldhash::HashMap::default();
        // A message of a key without a lane, received while every lane was taken: nothing more
        // is received until a lane frees.
        let mut waiting: Option<Received> = None;
        let mut done = Contiguous::default();
        let (mut since_store, mut stopping, mut open) = (0u32, false, true);
        // Several events may wait for an open breaker at once: the partition is held while any
        // does.
        let holds = AtomicUsize::new(0);
        let hold = |held: bool| {
            let edge = if held {
                holds.fetch_add(1, Ordering::SeqCst) == 0
            } else {
                holds.fetch_sub(1, Ordering::SeqCst) == 1
            };
            if edge {
                let _ = self.signals.send(WorkerSignal::Hold(self.id.clone(), held));
            }
        };
        let start = |message: Received| {
            // Taken off the backlog when it starts, as the sequential worker does: the messages
            // waiting in lanes still count, so a partition far behind is paused.
            let (caught_up, freed) = self.backlog.take(message.size());
            if caught_up {
                let _ = self.signals.send(WorkerSignal::CaughtUp(self.id.clone()));
            }
            if freed {
                let _ = self.signals.send(WorkerSignal::BudgetFreed);
            }
            let hold = &hold;
            async move {
                let step = self.handle_holding(&message, hold).await;
                (message, step)
            }
        };
        let mut running = FuturesUnordered::new();
        // Read at most a partition's buffer past the oldest unfinished event: a key that is stuck
        // (retries, an open breaker) bounds what is handled again after a crash, and the
        // partition is paused at the broker meanwhile.
        let ahead = self.backlog.max_messages.max(self.concurrency);
        loop {
            let receiving = open && !stopping && waiting.is_none() && done.len() < ahead;
            if !receiving && running.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some(finished) = running.next(), if !running.is_empty() => {
                    let (message, step): (Received, Step) = finished;
                    match step {
                        Step::Commit => {
                            done.finish(message.offset());
                            since_store += 1;
                        }
                        Step::Stop => stopping = true,
                        Step::Fail(reason) => {
                            let _ = self.signals.send(WorkerSignal::Failed(reason));
                            stopping = true;
                        }
                    }
                    stopping |= cancel.is_cancelled();
                    let key = lane_key(&message);
                    self.consumer.context().recycler.give(message);
                    let next = match lanes.get_mut(&key) {
                        Some(lane) if !stopping => lane.pop_front(),
                        _ => None,
                    };
                    match next {
                        Some(next) => running.push(start(next)),
                        None => {
                            lanes.remove(&key);
                            if let Some(next) = waiting.take().filter(|_| !stopping) {
                                lanes.insert(lane_key(&next), VecDeque::new());
                                running.push(start(next));
                            }
                        }
                    }
                    if running.is_empty()
                        || inbox.is_empty()
                        || since_store >= STORE_EVERY
                        || self.bound.is_some()
                    {
                        self.store(done.advance());
                        since_store = 0;
                        if running.is_empty() && done.len() == 0 {
                            self.control.busy.store(false, Ordering::SeqCst);
                        }
                    }
                }
                received = inbox.recv(), if receiving => {
                    let Some(message) = received else {
                        open = false;
                        continue;
                    };
                    #[cfg(test)]
                    assert!(
                        message.key() != Some(tests::PANIC_WORKER),
                        "injected by a test"
                    );
                    // As in `run`: a revocation either sees us busy and waits, or we see its
                    // cancellation.
                    self.control.busy.store(true, Ordering::SeqCst);
                    if cancel.is_cancelled() {
                        stopping = true;
                        continue;
                    }
                    done.begin(message.offset());
                    let key = lane_key(&message);
                    if let Some(lane) = lanes.get_mut(&key) {
                        lane.push_back(message);
                    } else if lanes.len() < self.concurrency {
                        lanes.insert(key, VecDeque::new());
                        running.push(start(message));
                    } else {
                        waiting = Some(message);
                    }
                }
            }
        }
        self.store(done.advance());
        self.control.busy.store(false, Ordering::SeqCst);
    }

    /// Handles one message to its verdict and carries it out.
    async fn handle(&self, message: &Received) -> Step {
        let hold = |held| {
            let _ = self.signals.send(WorkerSignal::Hold(self.id.clone(), held));
        };
        self.handle_holding(message, &hold).await
    }

    /// [`handle`](Self::handle), asking through `hold` to hold the partition while a breaker is
    /// open.
    async fn handle_holding(&self, message: &Received, hold: super::dispatch::Hold<'_>) -> Step {
        let cancel = &self.control.cancel;
        let verdict = dispatch(
            message,
            &self.routes,
            &self.group,
            &self.shared,
            cancel,
            hold,
        )
        .await;
        let (step, carried) =
            settle::carry_out(message, verdict, &self.group, &self.shared, cancel).await;
        // Counted in a bounded run only: the live path allocates nothing for it.
        if step == Step::Commit && self.bound.is_some() {
            for outcome in outcomes(&carried) {
                self.count(outcome);
            }
        }
        step
    }

    /// Stores `offset` (the last handled one) for the next commit.
    fn store(&self, offset: Option<i64>) {
        let Some(offset) = offset else { return };
        let (topic, partition) = (&self.id.0, self.id.1);
        let may_store = self
            .control
            .may_store
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !*may_store {
            tracing::debug!(%topic, partition, offset,
                "offset not stored: the partition was revoked before the handler finished; the new owner handles the event again");
            return;
        }
        match self.consumer.store_offset(topic, partition, offset) {
            Ok(()) => {
                if let Some(bound) = &self.bound {
                    bound.advance(offset + 1);
                }
            }
            Err(e) => {
                tracing::debug!(%topic, partition, offset, error = %e,
                    "offset not stored (partition revoked?); the events after the last commit will be redelivered");
            }
        }
    }

    /// In a bounded run, counts a record's outcome.
    fn count(&self, outcome: Outcome) {
        if let Some(bound) = &self.bound {
            bound.count(outcome);
        }
    }
}

/// What a bounded run counts for a verdict as it was carried out (see [`settle::carry_out`]).
fn outcomes(verdict: &Verdict) -> Vec<Outcome> {
    match verdict {
        Verdict::Handled => vec![Outcome::Handled],
        Verdict::Skipped => vec![Outcome::Skipped],
        Verdict::DeadLetter(_) => vec![Outcome::DeadLettered],
        Verdict::Retry {
            deferrals,
            dead_letter,
            ..
        } => {
            let mut counted = Vec::new();
            if !deferrals.is_empty() {
                counted.push(Outcome::Deferred);
            }
            if dead_letter.is_some() {
                counted.push(Outcome::DeadLettered);
            }
            if counted.is_empty() {
                counted.push(Outcome::Handled);
            }
            counted
        }
        Verdict::Stopped => Vec::new(),
    }
}

/// Resolves when `progress` announces a change; never without one (a live group).
async fn changed(progress: Option<&mut watch::Receiver<()>>) -> Option<()> {
    match progress {
        Some(progress) => progress.changed().await.ok(),
        None => std::future::pending().await,
    }
}

/// The lane of a message: its key; records without a key share one lane.
fn lane_key(message: &Received) -> Option<Box<[u8]>> {
    message.key().map(Box::from)
}

#[cfg(test)]
mod tests {
    use super::super::dispatch::tests::{descriptor, succeeding};
    use super::*;
    use crate::config::Config;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    /// A record with this key makes the polling thread panic.
    pub(super) const PANIC_POLLING: &[u8] = b"herald-test:panic-the-polling-thread";
    /// A record with this key makes its partition's worker panic.
    pub(super) const PANIC_WORKER: &[u8] = b"herald-test:panic-the-worker";

    /// A handler of `ledger.posted` on topic `ledger` that succeeds.
    static HANDLER: HandlerDescriptor = descriptor("noop", 1, succeeding);

    /// Starts a group on a broker of its own, writes one record with `key` and returns how the
    /// group ended, once its consumer loop ended by itself.
    async fn ended_by(key: &[u8]) -> GroupStop {
        let broker = crate::broker::embedded::EmbeddedBroker::start(1).unwrap();
        broker.create_topic("ledger", 1).unwrap();
        let servers = broker.bootstrap_servers().to_owned();
        let config = Config::new("panics").bootstrap_servers(&servers);
        let shared = Arc::new(Shared::for_test(&config, &servers));
        let client = config.consumer_config(&servers, "panics");
        let runner = GroupRunner::start(
            "panics".into(),
            vec![&HANDLER],
            client,
            shared,
            &BTreeSet::new(),
        )
        .unwrap();
        let mut assignment = runner.assignment();
        let joined = tokio::time::timeout(Duration::from_secs(30), assigned(assignment.clone()));
        assert!(joined.await.unwrap(), "the group got its partition");
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .create()
            .unwrap();
        producer
            .send(BaseRecord::to("ledger").key(key).payload("{}"))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        // The consumer loop drops its sender when it ends.
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            while assignment.changed().await.is_ok() {}
        });
        ended.await.expect("the group ended by itself");
        runner.stop(Instant::now() + Duration::from_secs(1)).await
    }

    /// A panic on the polling thread fails the group (health reports a failed group). Before, the
    /// thread died, the group looked healthy and read nothing more.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_on_the_polling_thread_fails_the_group() {
        let stop = ended_by(PANIC_POLLING).await;
        assert!(
            matches!(&stop, GroupStop::Failed(reason) if reason.contains("polling thread panicked")),
            "{stop:?}"
        );
    }

    /// A partition runs with the smallest concurrency of its group's handlers of its topic; a
    /// topic without handlers (a retry tier) is not in the map and runs one event at a time.
    #[test]
    fn the_smallest_concurrency_of_a_topic_wins() {
        static EIGHT: HandlerDescriptor = HandlerDescriptor {
            concurrency: 8,
            ..descriptor("eight", 1, succeeding)
        };
        static FOUR: HandlerDescriptor = HandlerDescriptor {
            concurrency: 4,
            ..descriptor("four", 1, succeeding)
        };
        static OTHER: HandlerDescriptor = HandlerDescriptor {
            concurrency: 16,
            topic: "other",
            ..descriptor("other", 1, succeeding)
        };
        let by_topic = concurrency_by_topic(&[&EIGHT, &FOUR, &OTHER]);
        assert_eq!(by_topic.get("ledger"), Some(&4));
        assert_eq!(by_topic.get("other"), Some(&16));
        let with_sequential = concurrency_by_topic(&[&EIGHT, &HANDLER, &OTHER]);
        assert_eq!(
            with_sequential.get("ledger"),
            Some(&1),
            "one sequential handler keeps order"
        );
        assert_eq!(by_topic.get("ledger.retry.1"), None);
    }

    /// A panic in a partition's worker fails the group. Before, the partition stayed unread with
    /// the group looking healthy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_a_partition_worker_fails_the_group() {
        let stop = ended_by(PANIC_WORKER).await;
        assert!(
            matches!(&stop, GroupStop::Failed(reason) if reason.contains("worker of partition ledger/0 panicked")),
            "{stop:?}"
        );
    }
}
