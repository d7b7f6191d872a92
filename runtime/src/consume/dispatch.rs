//! One message → one [`Verdict`]: decode it, pick the handlers of its event type and schema version,
//! run them with their retry policies, and say whether its offset may be committed, whether it goes
//! to the dead-letter topic first, or whether handling stopped (revocation, shutdown) and the event
//! must be delivered again.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use std::sync::Arc;

use super::breaker::{Breaker, Permit};
use super::dynamic::{Caller, EVERY_TYPE};
use super::retry_topic::{self, Deferral, Origin, RetryRecord};
use super::Shared;
use crate::command;
use crate::config::policy::{RetryMode, RetryPolicy};
use crate::context::Context;
use crate::error::{DispatchError, HandlerError};
use crate::registry::{HandlerDescriptor, HandlerReply};
use crate::telemetry::stats::Counters;
use crate::telemetry::{metrics, propagation, spans};
use crate::wire::codec::Incoming;
use crate::wire::received::Received;

/// A handler with the retry policy it runs under, and its circuit breaker if the policy has one.
#[derive(Clone)]
pub(crate) struct Route {
    pub handler: &'static HandlerDescriptor,
    /// How it is called: its `#[handler]` shim, or a dynamic handler's closure.
    pub call: Caller,
    pub policy: RetryPolicy,
    pub breaker: Option<Arc<Breaker>>,
    /// The keys of its `kafka.eventbus.handler.duration` histograms.
    pub durations: Arc<metrics::HandlerDurations>,
}

/// Asks the consumer to pause (`true`) or release (`false`) this message's partition at the
/// broker, while a handler waits for its open circuit breaker.
pub(crate) type Hold<'a> = &'a (dyn Fn(bool) + Sync);

/// A group's routes by event type (looked up per message: a fast hasher).
pub(crate) type Routes = foldhash::HashMap<&'static str, Vec<Route>>;

/// The routes of `group`'s handlers by event type, each with its retry policy and, when the
/// policy has one, a new circuit breaker (also returned, for [`Bus::breakers`](crate::Bus::breakers)).
///
/// # Errors
/// [`Error::Config`](crate::Error::Config) when a handler's retry policy is unknown or invalid.
pub(crate) fn routes(
    group: &str,
    handlers: &[&'static HandlerDescriptor],
    shared: &Shared,
) -> crate::error::Result<(Routes, Vec<Arc<Breaker>>)> {
    let mut routes = Routes::default();
    let mut breakers = Vec::new();
    for &handler in handlers {
        let policy = shared.policies.for_handler(handler)?;
        let breaker = policy.breaker.map(|breaker| {
            Arc::new(Breaker::new(
                group,
                handler.name,
                breaker,
                shared.counters.clone(),
            ))
        });
        breakers.extend(breaker.clone());
        routes.entry(handler.event_type).or_default().push(Route {
            handler,
            call: shared.callers.of(handler),
            policy,
            breaker,
            durations: metrics::HandlerDurations::new(handler.name),
        });
    }
    Ok((routes, breakers))
}

/// What became of a message.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Every handler succeeded: commit.
    Handled,
    /// No handler of the group takes its event type: commit, nothing to do.
    Skipped,
    /// It cannot be handled: put it on the dead-letter topic, then commit.
    DeadLetter(DeadLetterCause),
    /// Handled, except by handlers that retry through retry topics: copy it there for each of
    /// them, then to the dead-letter topic for handlers that failed for good (`dead_letter`), then
    /// commit. `previous` is what its retry headers said, if it came from a retry topic.
    Retry {
        deferrals: Vec<Deferral>,
        previous: Option<RetryRecord>,
        dead_letter: Option<DeadLetterCause>,
    },
    /// Handling stopped (partition revoked, shutdown) before a verdict: do not commit, the event is
    /// delivered again.
    Stopped,
}

/// Why a message goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetterCause {
    /// What kind of failure (the `dlq_error_kind` header).
    pub kind: FailureKind,
    /// The handlers that failed, comma-separated; empty when no handler ran.
    pub handlers: String,
    /// How many times the failing handler ran.
    pub attempts: u32,
    /// The error, for people.
    pub reason: String,
    /// Where the event was first consumed, when this message came from a retry topic.
    pub origin: Option<Origin>,
}

/// The kinds of dead-lettered messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// Not a CloudEvent herald can read: no headers, a malformed or missing attribute, not JSON,
    /// empty.
    Undecodable,
    /// A CloudEvent whose data does not fit the handler's type (including an incompatible schema
    /// version).
    Incompatible,
    /// An event type no handler of the group takes (only when configured to dead-letter those).
    UnknownType,
    /// Larger than `max_message_bytes`.
    Oversized,
    /// The handler returned a permanent error.
    Permanent,
    /// The handler failed on every try its retry policy allows.
    RetriesExhausted,
    /// A command was handled but its reply was not acknowledged by the broker.
    ReplyUndeliverable,
    /// The handler retries through retry topics, but its retry topic refused the copy for good.
    RetryUndeliverable,
}

impl FailureKind {
    const ALL: [Self; 8] = [
        Self::Undecodable,
        Self::Incompatible,
        Self::UnknownType,
        Self::Oversized,
        Self::Permanent,
        Self::RetriesExhausted,
        Self::ReplyUndeliverable,
        Self::RetryUndeliverable,
    ];

    /// The `dlq_error_kind` value `name` as herald spells it, `"unknown"` when herald has no such
    /// kind.
    pub fn named(name: &str) -> &'static str {
        Self::ALL
            .iter()
            .map(|kind| kind.as_str())
            .find(|known| *known == name)
            .unwrap_or("unknown")
    }

    /// The `dlq_error_kind` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::Incompatible => "incompatible",
            Self::UnknownType => "unknown-type",
            Self::Oversized => "oversized",
            Self::Permanent => "permanent",
            Self::RetriesExhausted => "retries-exhausted",
            Self::ReplyUndeliverable => "reply-undeliverable",
            Self::RetryUndeliverable => "retry-undeliverable",
        }
    }
}

impl DeadLetterCause {
    fn before_handlers(kind: FailureKind, reason: String) -> Self {
        Self {
            kind,
            handlers: String::new(),
            attempts: 0,
            reason,
            origin: None,
        }
    }

    /// One letter for several handlers' failures of the same message: the first failure's kind,
    /// attempts and origin, every handler named (comma-separated) with its own error. `None` when
    /// there is no failure.
    pub(crate) fn merged(failures: Vec<Self>) -> Option<Self> {
        let mut failures = failures.into_iter();
        let mut first = failures.next()?;
        let rest: Vec<Self> = failures.collect();
        if !rest.is_empty() {
            let all = || std::iter::once(&first).chain(&rest);
            let handlers = all().map(|f| f.handlers.as_str()).collect::<Vec<_>>();
            let reasons = all()
                .map(|f| format!("{}: {}", f.handlers, f.reason))
                .collect::<Vec<_>>();
            (first.handlers, first.reason) = (handlers.join(","), reasons.join("; "));
        }
        Some(first)
    }
}

/// Handles one message to a verdict, timing it (`kafka.eventbus.consume.duration`).
pub(crate) async fn dispatch(
    message: &Received,
    routes: &Routes,
    group: &str,
    shared: &Shared,
    cancel: &CancellationToken,
    hold: Hold<'_>,
) -> Verdict {
    let started = std::time::Instant::now();
    let verdict = dispatch_untimed(message, routes, group, shared, cancel, hold).await;
    let name = match verdict {
        Verdict::Handled => "handled",
        Verdict::Skipped => "skipped",
        Verdict::DeadLetter(_) => "dead_letter",
        Verdict::Retry { .. } => "retry",
        Verdict::Stopped => "stopped",
    };
    metrics::consume_duration(name, started.elapsed());
    verdict
}

async fn dispatch_untimed(
    message: &Received,
    routes: &Routes,
    group: &str,
    shared: &Shared,
    cancel: &CancellationToken,
    hold: Hold<'_>,
) -> Verdict {
    // Retry headers count on a retry tier only: on any other topic they were copied or forged,
    // and honouring them would let a record skip this group or sleep on its partition.
    let read = if retry_topic::is_retry_topic(message.topic()) {
        RetryRecord::read(message)
    } else {
        None
    };
    // A replayed copy meant for another group (`dlq_replay_group`) is not this group's to handle.
    if read.is_none() {
        if let Some(meant) = message.header_value(crate::headers::dlq::REPLAY_GROUP) {
            if meant != group.as_bytes() {
                Counters::add(&shared.counters.replays_skipped, 1);
                return Verdict::Skipped;
            }
        }
    }
    let previous = match read {
        None => None,
        Some(Ok(record)) if record.group != group => {
            Counters::add(&shared.counters.retry_records_skipped, 1);
            return Verdict::Skipped;
        }
        Some(Ok(record)) => Some(record),
        Some(Err(reason)) => {
            return Verdict::DeadLetter(DeadLetterCause::before_handlers(
                FailureKind::Undecodable,
                reason,
            ))
        }
    };
    if let Some(record) = &previous {
        // Records of a retry topic are in the order they became due: waiting for the first one
        // holds the rest back only as long as they have to wait anyway. A wait longer than the
        // handler's policy allows is not one herald asked for: it is cut to the policy's longest.
        let longest = routes
            .values()
            .flatten()
            .find(|r| r.handler.name == record.handler)
            .map_or(Duration::ZERO, |r| r.policy.max_delay);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Verdict::Stopped,
            _ = tokio::time::sleep(record.wait().min(longest)) => {}
        }
    }
    let verdict = dispatch_message(message, routes, shared, cancel, hold, previous.as_ref()).await;
    match (verdict, previous) {
        (Verdict::DeadLetter(mut failure), Some(record)) => {
            failure.origin = Some(record.origin);
            Verdict::DeadLetter(failure)
        }
        (
            Verdict::Retry {
                deferrals,
                dead_letter,
                ..
            },
            previous,
        ) => Verdict::Retry {
            deferrals,
            dead_letter: dead_letter.map(|mut failure| {
                failure.origin = previous.as_ref().map(|p| p.origin.clone());
                failure
            }),
            previous,
        },
        (verdict, _) => verdict,
    }
}

async fn dispatch_message(
    message: &Received,
    routes: &Routes,
    shared: &Shared,
    cancel: &CancellationToken,
    hold: Hold<'_>,
    previous: Option<&RetryRecord>,
) -> Verdict {
    let size = message.payload().map_or(0, <[u8]>::len);
    if let Some(limit) = shared
        .settings
        .max_message_bytes
        .filter(|limit| size > *limit)
    {
        return Verdict::DeadLetter(DeadLetterCause::before_handlers(
            FailureKind::Oversized,
            format!("the value is {size} bytes, more than max_message_bytes ({limit})"),
        ));
    }
    let incoming = match Incoming::decode_received(message) {
        Ok(incoming) => incoming,
        Err(reason) => {
            Counters::add(&shared.counters.undecodable, 1);
            return Verdict::DeadLetter(DeadLetterCause::before_handlers(
                FailureKind::Undecodable,
                reason,
            ));
        }
    };
    let (verdict, reply) =
        dispatch_decoded(message, &incoming, routes, shared, cancel, hold, previous).await;
    answer(&incoming, verdict, reply, shared).await
}

/// A decoded message to its verdict, with the reply of a command's handler.
async fn dispatch_decoded(
    message: &Received,
    incoming: &Incoming,
    routes: &Routes,
    shared: &Shared,
    cancel: &CancellationToken,
    hold: Hold<'_>,
    previous: Option<&RetryRecord>,
) -> (Verdict, HandlerReply) {
    let event_type = incoming.event_type();
    // Handlers of every event of the message's topic (`DynamicHandler::all`) run beside those of
    // its type.
    let every: Vec<Route> = routes
        .get(EVERY_TYPE)
        .map(|all| {
            all.iter()
                .filter(|r| r.handler.topic == topic_of(message, previous))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let merged: Vec<Route>;
    let for_type = match (routes.get(event_type), every.is_empty()) {
        (Some(for_type), true) => Some(for_type.as_slice()),
        (None, false) => Some(every.as_slice()),
        (Some(for_type), false) => {
            merged = for_type.iter().cloned().chain(every).collect();
            Some(merged.as_slice())
        }
        (None, true) => None,
    };
    let Some(for_type) = for_type else {
        Counters::add(&shared.counters.skipped_unknown_type, 1);
        if shared.settings.dead_letter_unknown_types {
            let failure = DeadLetterCause::before_handlers(
                FailureKind::UnknownType,
                format!("no handler of this consumer group takes event type `{event_type}`"),
            );
            return (Verdict::DeadLetter(failure), None);
        }
        tracing::debug!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            event_type,
            "no handler for this event type in this group; skipped"
        );
        return (Verdict::Skipped, None);
    };
    let (chosen, prior) = match previous {
        None => (for_version(for_type, incoming.schema_version()), 0),
        Some(record) => {
            let chosen: Vec<Route> = for_type
                .iter()
                .filter(|r| r.handler.name == record.handler)
                .cloned()
                .collect();
            if chosen.is_empty() {
                let failure = DeadLetterCause::before_handlers(
                    FailureKind::UnknownType,
                    format!(
                        "handler `{}` no longer runs in this group; it cannot retry this event",
                        record.handler
                    ),
                );
                return (Verdict::DeadLetter(failure), None);
            }
            (Cow::Owned(chosen), record.attempts)
        }
    };
    let run = |route| run_with_retries(route, incoming, shared, cancel, hold, prior);
    // Most event types have one handler per group: run it without collecting futures.
    let outcomes = match &*chosen {
        [route] => match run(route).await {
            HandlerOutcome::Done(reply) => {
                Counters::add(&shared.counters.events_handled, 1);
                return (Verdict::Handled, reply);
            }
            outcome => vec![outcome],
        },
        routes => futures::future::join_all(routes.iter().map(run)).await,
    };
    let mut failures: Vec<DeadLetterCause> = Vec::new();
    let mut deferrals: Vec<Deferral> = Vec::new();
    // A command has one handler per group (the registry checks it), so at most one reply.
    let mut reply: HandlerReply = None;
    for outcome in outcomes {
        match outcome {
            HandlerOutcome::Done(answer) => reply = reply.or(answer),
            HandlerOutcome::Stopped => return (Verdict::Stopped, None),
            HandlerOutcome::Failed(failure) => failures.push(failure),
            HandlerOutcome::Deferred(deferral) => deferrals.push(deferral),
        }
    }
    let Some(first) = DeadLetterCause::merged(failures) else {
        if !deferrals.is_empty() {
            let verdict = Verdict::Retry {
                deferrals,
                previous: None,
                dead_letter: None,
            };
            return (verdict, None);
        }
        Counters::add(&shared.counters.events_handled, 1);
        return (Verdict::Handled, reply);
    };
    if first.kind == FailureKind::Incompatible {
        Counters::add(&shared.counters.undecodable, 1);
    }
    if !deferrals.is_empty() {
        // The handlers that defer still get their retries; the letter names those that failed.
        let verdict = Verdict::Retry {
            deferrals,
            previous: None,
            dead_letter: Some(first),
        };
        return (verdict, None);
    }
    (Verdict::DeadLetter(first), None)
}

/// The topic the message was first consumed from: its own, or for a record of a retry topic the
/// original topic its retry headers name.
fn topic_of<'a>(message: &'a Received, previous: Option<&'a RetryRecord>) -> &'a str {
    previous.map_or(message.topic(), |p| p.origin.topic.as_str())
}

/// Answers a command that asked for a reply (`ce_replyto`): a handled one with its handler's
/// reply, acknowledged before the command's offset may be committed (else the command is
/// dead-lettered as `reply-undeliverable`); a dead-lettered one with an error reply, so the caller
/// fails at once instead of at its timeout. Events and fire-and-forget commands pass through.
async fn answer(
    incoming: &Incoming,
    verdict: Verdict,
    reply: HandlerReply,
    shared: &Shared,
) -> Verdict {
    // Read without building the metadata: most messages are events, not commands.
    let Some(reply_to) = incoming
        .extension(crate::headers::extensions::REPLY_TO)
        .filter(|topic| !topic.is_empty())
    else {
        return verdict;
    };
    let meta = incoming.meta();
    match (&verdict, reply) {
        (Verdict::Handled, Some(payload)) => {
            let reply_type = command::reply_type(&meta.event_type);
            match command::send_reply(&shared.publisher, meta, reply_to, reply_type, payload).await
            {
                Ok(_) => {
                    Counters::add(&shared.counters.replies_sent, 1);
                    verdict
                }
                Err(error) => {
                    tracing::error!(command = %meta.event_type, command_id = %meta.id, %reply_to, %error,
                        "the reply was not acknowledged; dead-lettering the command");
                    Verdict::DeadLetter(DeadLetterCause {
                        kind: FailureKind::ReplyUndeliverable,
                        handlers: String::new(),
                        attempts: 1,
                        reason: format!("its reply to `{reply_to}` was not acknowledged: {error}"),
                        origin: None,
                    })
                }
            }
        }
        (Verdict::DeadLetter(failure), _) => {
            let data = command::CommandFailure {
                kind: failure.kind.as_str().to_owned(),
                handler: failure.handlers.clone(),
                message: failure.reason.clone(),
            };
            let payload = serde_json::to_vec(&data).unwrap_or_default();
            let type_ = crate::headers::COMMAND_FAILED_TYPE.to_owned();
            // Sent before the dead-letter copy is written (by the partition worker, next).
            match command::send_reply(&shared.publisher, meta, reply_to, type_, payload).await {
                Ok(_) => Counters::add(&shared.counters.replies_sent, 1),
                Err(error) => tracing::warn!(command = %meta.event_type, command_id = %meta.id,
                    %reply_to, %error, "the error reply of a dead-lettered command was not \
                    acknowledged; its caller will time out"),
            }
            verdict
        }
        _ => verdict,
    }
}

/// The routes that read an event of schema `version`: the handlers of exactly that version; else
/// those of the newest older version (a newer event is read by a tolerant older reader if its data
/// still fits); else those of the oldest newer version. An event without a schema version goes to
/// the newest. Handlers of one event type with different versions in one group are alternatives
/// (a migration), so each message runs one version's handlers only.
pub(crate) fn for_version(routes: &[Route], version: Option<u32>) -> Cow<'_, [Route]> {
    // Version 0: a dynamic handler, which takes every version; it runs beside the chosen ones.
    if routes.iter().any(|r| r.handler.event_version == 0)
        && routes.iter().any(|r| r.handler.event_version != 0)
    {
        let versioned: Vec<Route> = routes
            .iter()
            .filter(|r| r.handler.event_version != 0)
            .cloned()
            .collect();
        let mut chosen = for_version(&versioned, version).into_owned();
        chosen.extend(
            routes
                .iter()
                .filter(|r| r.handler.event_version == 0)
                .cloned(),
        );
        return chosen.into();
    }
    if let [first, rest @ ..] = routes {
        // One version only (one handler, most often): all of them, whatever the event's version.
        let version = first.handler.event_version;
        if rest.iter().all(|r| r.handler.event_version == version) {
            return Cow::Borrowed(routes);
        }
    }
    let versions: BTreeSet<u32> = routes.iter().map(|r| r.handler.event_version).collect();
    let target = match version {
        Some(v) if versions.contains(&v) => Some(v),
        Some(v) => versions
            .range(..v)
            .next_back()
            .or_else(|| versions.range(v..).next())
            .copied(),
        None => versions.last().copied(),
    };
    routes
        .iter()
        .filter(|r| Some(r.handler.event_version) == target)
        .cloned()
        .collect::<Vec<_>>()
        .into()
}

/// What became of one handler's runs on a message.
enum HandlerOutcome {
    /// It succeeded, with a command's reply.
    Done(HandlerReply),
    Failed(DeadLetterCause),
    /// It failed and retries through the retry topics.
    Deferred(Deferral),
    Stopped,
}

/// Runs a handler until it succeeds, fails permanently, runs out of retries, or `cancel` stops the
/// wait for the next try. An attempt already running is never interrupted by `cancel`. With a
/// circuit breaker, an attempt waits while the breaker is open (its partition held at the broker),
/// and failures that find or leave the breaker open do not use up the message's retries, until the
/// message has been held longer than the breaker's hold limit.
async fn run_with_retries(
    route: &Route,
    incoming: &Incoming,
    shared: &Shared,
    cancel: &CancellationToken,
    hold: Hold<'_>,
    prior: u32,
) -> HandlerOutcome {
    let Route {
        handler,
        ref call,
        policy,
        ref breaker,
        ref durations,
    } = *route;
    let (topic, partition, offset) = incoming.position();
    // Attempts run, and those counted against `max_retries` (including the `prior` ones, made
    // before the event went through a retry topic).
    let (mut attempt, mut counted): (u32, u32) = (prior, prior);
    // When this message first failed with the breaker open: it spares its retries for the
    // breaker's hold limit only.
    let mut held_since: Option<std::time::Instant> = None;
    loop {
        let permit = match breaker {
            None => None,
            Some(breaker) => match admit(breaker, cancel, hold).await {
                Some(permit) => Some(permit),
                None => return HandlerOutcome::Stopped,
            },
        };
        attempt = attempt.saturating_add(1);
        let result = run_once(handler, call, durations, incoming, shared, policy.timeout).await;
        let error = match result {
            Ok(reply) => {
                if let (Some(breaker), Some(permit)) = (breaker, permit) {
                    breaker.record(permit, true);
                }
                return HandlerOutcome::Done(reply);
            }
            Err(DispatchError::Decode(reason)) => {
                release_probe(breaker, permit);
                tracing::warn!(topic, partition, offset, handler = handler.name, %reason,
                    "the event does not fit the handler's type; dead-lettering it");
                return HandlerOutcome::Failed(DeadLetterCause {
                    kind: FailureKind::Incompatible,
                    handlers: handler.name.to_owned(),
                    attempts: attempt,
                    reason,
                    origin: None,
                });
            }
            Err(DispatchError::Handler(error)) => error,
        };
        Counters::add(&shared.counters.handler_failures, 1);
        let permanent = error.is_permanent();
        if permanent {
            release_probe(breaker, permit);
        }
        let breaker_open = match (breaker, permit) {
            (Some(breaker), Some(permit)) if !permanent => breaker.record(permit, false),
            _ => false,
        };
        let held_too_long = match (breaker, breaker_open) {
            (Some(breaker), true) => {
                held_since
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    >= breaker.hold_limit()
            }
            _ => false,
        };
        if !breaker_open || held_too_long {
            counted = counted.saturating_add(1);
        }
        if permanent || counted > policy.max_retries {
            tracing::warn!(topic, partition, offset, handler = handler.name, attempt, %error, permanent,
                "handler failed for good; dead-lettering the event");
            return HandlerOutcome::Failed(DeadLetterCause {
                kind: if permanent {
                    FailureKind::Permanent
                } else {
                    FailureKind::RetriesExhausted
                },
                handlers: handler.name.to_owned(),
                attempts: attempt,
                reason: error.to_string(),
                origin: None,
            });
        }
        Counters::add(&shared.counters.retries, 1);
        if policy.mode == RetryMode::Topics && !breaker_open {
            return HandlerOutcome::Deferred(Deferral {
                handler: handler.name,
                attempts: attempt,
                delay: policy.delay(counted, fastrand::f64()),
                error: error.to_string(),
            });
        }
        if breaker_open {
            tracing::warn!(topic, partition, offset, handler = handler.name, attempt, %error,
                "handler failed; its circuit breaker is open, the event waits for it");
            continue;
        }
        let delay = policy.delay(counted, fastrand::f64());
        tracing::warn!(topic, partition, offset, handler = handler.name, attempt, %error, ?delay,
            "handler failed; it is tried again");
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return HandlerOutcome::Stopped,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Waits for the breaker to let an attempt through, holding the partition at the broker while it
/// is open.
async fn admit(breaker: &Breaker, cancel: &CancellationToken, hold: Hold<'_>) -> Option<Permit> {
    if breaker.is_closed() {
        return breaker.admit(cancel).await;
    }
    hold(true);
    let permit = breaker.admit(cancel).await;
    hold(false);
    permit
}

/// A probe whose message failed for reasons of its own says nothing against the dependency: the
/// breaker closes instead of staying half-open forever.
fn release_probe(breaker: &Option<Arc<Breaker>>, permit: Option<Permit>) {
    if let (Some(breaker), Some(Permit::Probe)) = (breaker, permit) {
        breaker.record(Permit::Probe, true);
    }
}

/// One attempt, in its `process` span (the child of the publish span whose trace context the event
/// carries) and timed: decodes the event for the handler and runs it, containing panics and
/// enforcing the attempt timeout.
async fn run_once(
    handler: &'static HandlerDescriptor,
    call: &Caller,
    durations: &metrics::HandlerDurations,
    incoming: &Incoming,
    shared: &Shared,
    timeout: Option<Duration>,
) -> Result<HandlerReply, DispatchError> {
    let group = handler.group.unwrap_or(&shared.settings.default_group);
    let span = spans::process(incoming, handler.name, group);
    if !span.is_disabled() {
        propagation::continue_trace(&span, incoming.meta());
    }
    Counters::add(&shared.counters.handler_invocations, 1);
    let running = shared.in_flight.start(handler.name);
    let result = run_once_in(handler, call, incoming, shared, timeout, span.clone()).await;
    metrics::handler_duration(durations, result.is_ok(), running.started.elapsed());
    if let Err(error) = &result {
        spans::failed(&span, error);
    }
    result
}

async fn run_once_in(
    handler: &'static HandlerDescriptor,
    call: &Caller,
    incoming: &Incoming,
    shared: &Shared,
    timeout: Option<Duration>,
    span: tracing::Span,
) -> Result<HandlerReply, DispatchError> {
    let ctx = Context::new(
        incoming.clone(),
        handler.name,
        shared.publisher.clone(),
        shared.state.clone(),
    );
    let future = std::panic::AssertUnwindSafe(call(incoming.clone(), ctx))
        .catch_unwind()
        .instrument(span);
    let result = match timeout {
        None => future.await,
        Some(limit) => match tokio::time::timeout(limit, future).await {
            Ok(result) => result,
            Err(_) => {
                Counters::add(&shared.counters.handler_timeouts, 1);
                return Err(DispatchError::Handler(HandlerError::msg(format!(
                    "the attempt timed out after {limit:?}"
                ))));
            }
        },
    };
    result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a handler panicked".into());
        Err(DispatchError::Handler(HandlerError::msg(format!(
            "panic: {message}"
        ))))
    })
}

#[cfg(test)]
pub(super) mod tests;
