//! Consuming: one consumer per consumer group, one worker task per assigned partition.
//!
//! A message's offset is stored for commit only after every handler of its event type succeeded
//! (at-least-once). Within a partition messages are handled in order; partitions run in parallel.
//! A partition whose worker falls `max_buffered_per_partition` messages behind is paused at the
//! broker (not busy-polled) and resumed once it caught up. A failed handler is tried again on the
//! same message with exponential backoff, so nothing after it in the partition is committed before
//! it succeeds; a message that cannot be decoded is logged with its position and reason, and
//! committed past.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::codec::Incoming;
use crate::context::{Context, StateMap};
use crate::envelope::Position;
use crate::error::{DispatchError, Error, Result};
use crate::publish::Publisher;
use crate::registry::HandlerDescriptor;
use crate::stats::Counters;

/// Everything a group's consumer shares with its workers.
pub(crate) struct Shared {
    pub publisher: Publisher,
    pub state: Arc<StateMap>,
    pub counters: Arc<Counters>,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    pub max_buffered: usize,
    /// How long in-flight handlers may take to finish at shutdown.
    pub shutdown_timeout: Duration,
}

/// Rebalance events, forwarded from librdkafka's callback to the consumer loop.
enum GroupEvent {
    Assigned(usize),
    Revoked(Vec<PartitionId>),
}

/// What the rebalance callback and a partition's worker share.
#[derive(Default)]
struct PartitionControl {
    /// The partition was taken away: finish the in-flight message, drop the rest.
    revoked: AtomicBool,
    /// A message is being handled right now.
    busy: AtomicBool,
}

/// The live partition workers' controls, by partition.
type Controls = Arc<std::sync::Mutex<HashMap<PartitionId, Arc<PartitionControl>>>>;

/// How long a revocation waits for in-flight handlers, so that their offsets are committed before
/// the partitions move to another consumer.
const REVOKE_GRACE: Duration = Duration::from_secs(2);

/// The consumer's librdkafka context: reports rebalances.
struct GroupContext {
    events: mpsc::UnboundedSender<GroupEvent>,
    counters: Arc<Counters>,
    group: String,
    controls: Controls,
}

impl GroupContext {
    /// Stops the revoked partitions' workers at once and gives their in-flight handlers a short
    /// grace to finish, so librdkafka's commit-on-revoke includes them and the next owner does not
    /// handle them again. Runs on the polling thread; bounded by [`REVOKE_GRACE`].
    fn retire(&self, partitions: &[PartitionId]) {
        let controls: Vec<Arc<PartitionControl>> = {
            let map = self.controls.lock().unwrap_or_else(|e| e.into_inner());
            partitions
                .iter()
                .filter_map(|p| map.get(p).cloned())
                .collect()
        };
        for control in &controls {
            control.revoked.store(true, Ordering::SeqCst);
        }
        let deadline = std::time::Instant::now() + REVOKE_GRACE;
        while controls.iter().any(|c| c.busy.load(Ordering::SeqCst))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<PartitionId> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            self.retire(&revoked);
            let _ = self.events.send(GroupEvent::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        Counters::add(&self.counters.rebalances, 1);
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(group = %self.group, partitions = tpl.count(), "partitions assigned");
                let _ = self.events.send(GroupEvent::Assigned(tpl.count()));
            }
            Rebalance::Revoke(_) => {
                tracing::info!(group = %self.group, "partitions revoked");
                let _ = self.events.send(GroupEvent::Assigned(0));
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance failed")
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        use rdkafka::error::KafkaError::ConsumerCommit;
        use rdkafka::types::RDKafkaErrorCode::{NoOffset, RebalanceInProgress};
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

type GroupConsumer = StreamConsumer<GroupContext>;

/// A running consumer group: stop it with [`GroupRunner::stop`].
pub(crate) struct GroupRunner {
    pub group: String,
    stop: oneshot::Sender<()>,
    assigned: watch::Receiver<usize>,
    task: JoinHandle<bool>,
}

impl GroupRunner {
    /// Subscribes a new consumer of `group` to the handlers' topics and starts consuming.
    pub fn start(
        group: String,
        handlers: Vec<&'static HandlerDescriptor>,
        client_config: rdkafka::ClientConfig,
        shared: Arc<Shared>,
    ) -> Result<Self> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let controls = Controls::default();
        let context = GroupContext {
            events: events_tx,
            counters: shared.counters.clone(),
            group: group.clone(),
            controls: controls.clone(),
        };
        let consumer: GroupConsumer = client_config
            .create_with_context(context)
            .map_err(|e| Error::kafka("creating a consumer", e))?;
        let topics: BTreeSet<&str> = handlers.iter().map(|h| h.topic).collect();
        let topics: Vec<&str> = topics.into_iter().collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| Error::kafka("subscribing to the handlers' topics", e))?;
        tracing::info!(%group, ?topics, handlers = handlers.len(), "consumer subscribed");
        let mut by_type: HashMap<&'static str, Vec<&'static HandlerDescriptor>> = HashMap::new();
        for handler in handlers {
            by_type.entry(handler.event_type).or_default().push(handler);
        }
        let (stop, stop_rx) = oneshot::channel();
        let (assigned_tx, assigned) = watch::channel(0);
        let consumer_loop = ConsumerLoop {
            consumer: Arc::new(consumer),
            handlers: Arc::new(by_type),
            shared,
            workers: HashMap::new(),
            retiring: HashMap::new(),
            controls,
            group: group.clone(),
            stopping: Arc::new(AtomicBool::new(false)),
        };
        let task = tokio::spawn(consumer_loop.run(stop_rx, events_rx, assigned_tx));
        Ok(Self {
            group,
            stop,
            assigned,
            task,
        })
    }

    /// Waits until the group has at least one partition assigned.
    pub async fn wait_for_assignment(&mut self) {
        loop {
            let assigned = *self.assigned.borrow_and_update();
            if assigned > 0 || self.assigned.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops fetching, lets in-flight handlers finish (abandoning those still running after the
    /// shutdown timeout), commits what was handled and closes. Returns whether handlers were
    /// abandoned.
    pub async fn stop(self) -> bool {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(abandoned) => abandoned,
            Err(e) => {
                tracing::error!(group = %self.group, error = %e, "consumer task failed while stopping");
                true
            }
        }
    }
}

/// One partition's worker: its queue, how far behind it is, whether its partition is paused.
struct Worker {
    queue: mpsc::UnboundedSender<OwnedMessage>,
    backlog: Arc<AtomicUsize>,
    paused: bool,
    task: JoinHandle<()>,
}

type PartitionId = (String, i32);

struct ConsumerLoop {
    consumer: Arc<GroupConsumer>,
    handlers: Arc<HashMap<&'static str, Vec<&'static HandlerDescriptor>>>,
    shared: Arc<Shared>,
    workers: HashMap<PartitionId, Worker>,
    /// Workers of revoked partitions that may still be finishing their in-flight message.
    retiring: HashMap<PartitionId, JoinHandle<()>>,
    controls: Controls,
    group: String,
    stopping: Arc<AtomicBool>,
}

impl ConsumerLoop {
    async fn run(
        mut self,
        mut stop: oneshot::Receiver<()>,
        mut events: mpsc::UnboundedReceiver<GroupEvent>,
        assigned: watch::Sender<usize>,
    ) -> bool {
        let (caught_up_tx, mut caught_up) = mpsc::unbounded_channel::<PartitionId>();
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(event) = events.recv() => self.rebalanced(event, &assigned),
                Some(partition) = caught_up.recv() => self.resume(&partition),
                message = self.consumer.recv() => match message {
                    Ok(message) => {
                        let message = message.detach();
                        // A rebalance and the first message after it can come out of one `recv`:
                        // retire the revoked workers before routing.
                        while let Ok(event) = events.try_recv() {
                            self.rebalanced(event, &assigned);
                        }
                        self.route(message, &caught_up_tx);
                    }
                    Err(e) => {
                        tracing::warn!(group = %self.group, error = %e, "consumer error; librdkafka reconnects by itself");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        self.shutdown().await
    }

    /// Applies a rebalance: a revoked partition's worker finishes its in-flight message and drops
    /// the rest (the new owner reads them from the committed offset).
    fn rebalanced(&mut self, event: GroupEvent, assigned: &watch::Sender<usize>) {
        match event {
            GroupEvent::Assigned(n) => {
                let _ = assigned.send(n);
            }
            GroupEvent::Revoked(partitions) => {
                self.retiring.retain(|_, task| !task.is_finished());
                let mut controls = self.controls.lock().unwrap_or_else(|e| e.into_inner());
                for partition in partitions {
                    // `GroupContext::retire` already flagged the worker as revoked.
                    if let Some(worker) = self.workers.remove(&partition) {
                        controls.remove(&partition);
                        self.retiring.insert(partition, worker.task);
                    }
                }
            }
        }
    }

    fn route(&mut self, message: OwnedMessage, caught_up: &mpsc::UnboundedSender<PartitionId>) {
        Counters::add(&self.shared.counters.events_consumed, 1);
        let id: PartitionId = (message.topic().to_owned(), message.partition());
        if !self.workers.contains_key(&id) {
            let previous = self.retiring.remove(&id);
            let worker = self.spawn_worker(id.clone(), previous, caught_up.clone());
            self.workers.insert(id.clone(), worker);
        }
        let worker = self.workers.get_mut(&id).expect("inserted above");
        worker.backlog.fetch_add(1, Ordering::SeqCst);
        let _ = worker.queue.send(message);
        if !worker.paused && worker.backlog.load(Ordering::SeqCst) >= self.shared.max_buffered {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&id.0, id.1);
            match self.consumer.pause(&tpl) {
                Ok(()) => {
                    worker.paused = true;
                    tracing::debug!(topic = %id.0, partition = id.1, "partition paused: its handlers are behind");
                }
                Err(e) => tracing::warn!(error = %e, "could not pause a partition"),
            }
        }
    }

    fn resume(&mut self, id: &PartitionId) {
        let Some(worker) = self.workers.get_mut(id) else {
            return;
        };
        if !worker.paused {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&id.0, id.1);
        match self.consumer.resume(&tpl) {
            Ok(()) => worker.paused = false,
            Err(e) => tracing::warn!(error = %e, "could not resume a partition"),
        }
    }

    async fn shutdown(self) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + self.shared.shutdown_timeout;
        let tasks: Vec<JoinHandle<()>> = self
            .workers
            .into_values()
            .map(|w| w.task)
            .chain(self.retiring.into_values())
            .collect();
        let mut abandoned = false;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                // Its offset is not stored: the event is delivered again after a restart.
                task.abort();
                abandoned = true;
            }
        }
        if abandoned {
            tracing::warn!(group = %self.group, timeout = ?self.shared.shutdown_timeout,
                "handlers still running at the shutdown timeout were abandoned; their events will be redelivered");
        }
        let consumer = self.consumer;
        let group = self.group;
        let _ = tokio::task::spawn_blocking(move || {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(%group, error = %e, "final commit failed; uncommitted events will be redelivered"),
            }
            consumer.unsubscribe();
            drop(consumer);
            tracing::info!(%group, "consumer closed");
        })
        .await;
        abandoned
    }

    /// Spawns the worker of a partition; it starts once `previous`, the partition's worker from
    /// before a rebalance, finished its in-flight message, so one partition is never handled by two
    /// tasks at once.
    fn spawn_worker(
        &self,
        id: PartitionId,
        previous: Option<JoinHandle<()>>,
        caught_up: mpsc::UnboundedSender<PartitionId>,
    ) -> Worker {
        let (consumer, handlers, shared, stopping) = (
            self.consumer.clone(),
            self.handlers.clone(),
            self.shared.clone(),
            self.stopping.clone(),
        );
        let controls = &self.controls;
        let (queue, mut inbox) = mpsc::unbounded_channel::<OwnedMessage>();
        let backlog = Arc::new(AtomicUsize::new(0));
        let control = Arc::new(PartitionControl::default());
        controls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), control.clone());
        // The worker owns `control` from here; the map's copy is for the rebalance callback.
        let task = {
            let backlog = backlog.clone();
            tokio::spawn(async move {
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                let resume_below = shared.max_buffered / 2;
                while let Some(message) = inbox.recv().await {
                    let before = backlog.fetch_sub(1, Ordering::SeqCst);
                    if before > resume_below && before - 1 <= resume_below {
                        let _ = caught_up.send(id.clone());
                    }
                    // `busy` before the check: a revocation either sees us busy and waits, or we see it.
                    control.busy.store(true, Ordering::SeqCst);
                    let stop = || {
                        control.revoked.load(Ordering::SeqCst) || stopping.load(Ordering::SeqCst)
                    };
                    if stop() {
                        control.busy.store(false, Ordering::SeqCst);
                        break;
                    }
                    let offset = message.offset();
                    if handle_message(&message, &handlers, &shared, &stop).await {
                        if let Err(e) = consumer.store_offset(&id.0, id.1, offset) {
                            tracing::debug!(topic = %id.0, partition = id.1, offset, error = %e,
                            "offset not stored (partition revoked?); the event will be redelivered");
                        }
                    }
                    control.busy.store(false, Ordering::SeqCst);
                }
            })
        };
        Worker {
            queue,
            backlog,
            paused: false,
            task,
        }
    }
}

/// Handles one message; returns whether its offset may be committed.
async fn handle_message(
    message: &OwnedMessage,
    handlers: &HashMap<&'static str, Vec<&'static HandlerDescriptor>>,
    shared: &Shared,
    stop: &(dyn Fn() -> bool + Sync),
) -> bool {
    let position = Position {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    };
    let incoming = match Incoming::decode(
        message.headers(),
        message.key(),
        message.payload(),
        position.clone(),
    ) {
        Ok(incoming) => incoming,
        Err(reason) => {
            Counters::add(&shared.counters.undecodable, 1);
            tracing::warn!(topic = %position.topic, partition = position.partition, offset = position.offset,
                %reason, "skipping a message that is not a readable CloudEvent");
            return true;
        }
    };
    let event_type = incoming.meta().event_type.as_str();
    let Some(for_type) = handlers.get(event_type) else {
        Counters::add(&shared.counters.skipped_unknown_type, 1);
        tracing::debug!(topic = %position.topic, partition = position.partition, offset = position.offset,
            event_type, "no handler for this event type in this group; skipped");
        return true;
    };
    let mut pending: Vec<&'static HandlerDescriptor> = for_type.clone();
    let mut attempt: u32 = 0;
    let mut undecodable = false;
    loop {
        let runs = pending
            .iter()
            .map(|handler| run_handler(handler, &incoming, shared));
        let results = futures::future::join_all(runs).await;
        let mut still_failing = Vec::new();
        for (handler, result) in pending.iter().zip(results) {
            match result {
                Ok(()) => {}
                Err(DispatchError::Decode(reason)) => {
                    undecodable = true;
                    Counters::add(&shared.counters.undecodable, 1);
                    tracing::warn!(topic = %position.topic, partition = position.partition, offset = position.offset,
                        handler = handler.name, %reason, "skipping a message its handler cannot decode");
                }
                Err(DispatchError::Handler(error)) => {
                    Counters::add(&shared.counters.handler_failures, 1);
                    tracing::warn!(topic = %position.topic, partition = position.partition, offset = position.offset,
                        handler = handler.name, attempt = attempt + 1, %error, "handler failed; the event will be tried again");
                    still_failing.push(*handler);
                }
            }
        }
        if still_failing.is_empty() {
            if !undecodable {
                Counters::add(&shared.counters.events_handled, 1);
            }
            return true;
        }
        pending = still_failing;
        attempt += 1;
        let delay = backoff(attempt, shared.retry_base_delay, shared.retry_max_delay);
        let deadline = tokio::time::Instant::now() + delay;
        while tokio::time::Instant::now() < deadline {
            if stop() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50).min(delay)).await;
        }
        if stop() {
            return false;
        }
    }
}

/// Exponential backoff: `base * 2^(attempt-1)`, at most `max`.
pub(crate) fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(max)
}

async fn run_handler(
    handler: &'static HandlerDescriptor,
    incoming: &Incoming,
    shared: &Shared,
) -> std::result::Result<(), DispatchError> {
    let meta = incoming.meta();
    let span = tracing::info_span!(
        "herald.handle",
        handler = handler.name,
        event_type = %meta.event_type,
        event_id = %meta.id,
        correlation_id = meta.correlation_id.as_deref().unwrap_or(""),
        topic = meta.position.as_ref().map(|p| p.topic.as_str()).unwrap_or(""),
        partition = meta.position.as_ref().map(|p| p.partition).unwrap_or(-1),
        offset = meta.position.as_ref().map(|p| p.offset).unwrap_or(-1),
    );
    let ctx = Context::new(
        incoming.clone(),
        handler.name,
        shared.publisher.clone(),
        shared.state.clone(),
    );
    let future = (handler.call)(incoming.clone(), ctx);
    match std::panic::AssertUnwindSafe(future)
        .catch_unwind()
        .instrument(span)
        .await
    {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a handler panicked".into());
            Err(DispatchError::Handler(crate::error::HandlerError::msg(
                format!("panic: {message}"),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<u128> = (1..=6).map(|a| backoff(a, base, max).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(u32::MAX, base, max), max);
    }
}
