//! Replaying a range of a topic through a consumer group's handlers, under a consumer group of its
//! own ([`Bus::replay`](crate::Bus::replay)): from the earliest record, an offset, a time or an
//! offset per partition, to the high watermarks taken when it starts (or an earlier `until`).
//!
//! The replay is the group's consumer itself, bounded: the same decoding,
//! handlers, retries, dead-letter topic and circuit breakers as the live group, the same commit
//! after success. It commits under its own group id, so the live group's offsets are untouched,
//! and a replay stopped half-way (a crash, the caller dropping the future) goes on from its last
//! commit when run again with the same replay group. Records published while it runs are past
//! the ends it took at the start: they are not replayed.
//!
//! ```no_run
//! # async fn run(bus: herald::Bus) -> herald::Result<()> {
//! use herald::offsets::OffsetTarget;
//! use herald::replay::{Replay, ReplayProgress};
//!
//! let since = "2026-12-05T08:00:00Z".parse().expect("a time");
//! let (progress, mut watch) = tokio::sync::watch::channel(ReplayProgress::default());
//! tokio::spawn(async move {
//!     while watch.changed().await.is_ok() {
//!         let now = watch.borrow_and_update().clone();
//!         println!("{} of {} left, {} dead-lettered", now.remaining(), now.records(), now.dead_lettered());
//!     }
//! });
//! let report = bus
//!     .replay(
//!         Replay::topic("orders")
//!             .group("billing")
//!             .from(OffsetTarget::Time(since))
//!             .as_group("billing.replay-2026-12-05")
//!             .progress(progress),
//!     )
//!     .await?;
//! println!("{} handled, {} dead-lettered in {:?}", report.handled(), report.dead_lettered(), report.elapsed);
//! # Ok(())
//! # }
//! ```

mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::consume::bounded::Bounds;
use crate::consume::{GroupRunner, GroupStop, Shared};
use crate::error::{Error, Result};
use crate::event::naming::with_prefix;
use crate::offsets::{GroupAdmin, OffsetMove, OffsetTarget};
use crate::registry::HandlerDescriptor;

pub use report::{PartitionProgress, ReplayProgress, ReplayReport};

/// How long each broker request of the planning may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, a running replay sends its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Where a replay starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    /// The same target on every partition.
    Target(OffsetTarget),
    /// An offset per partition; the others are not replayed.
    Offsets(BTreeMap<i32, i64>),
}

/// What to replay, through which group's handlers, under which group id: give it to
/// [`Bus::replay`](crate::Bus::replay).
#[derive(Debug, Clone)]
pub struct Replay {
    topic: String,
    group: Option<String>,
    from: Start,
    until: Option<OffsetTarget>,
    partitions: Option<BTreeSet<i32>>,
    as_group: Option<String>,
    restart: bool,
    progress: Option<watch::Sender<ReplayProgress>>,
}

impl Replay {
    /// Replays `topic` (as the handlers name it; the configured topic prefix is added when it
    /// is not there), from its earliest records unless [`Replay::from`] says otherwise.
    pub fn topic(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            group: None,
            from: Start::Target(OffsetTarget::Earliest),
            until: None,
            partitions: None,
            as_group: None,
            restart: false,
            progress: None,
        }
    }

    /// Runs the handlers of this consumer group (as declared: `#[handler(group = ...)]`). Needed
    /// when more than one group of the bus consumes the topic.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Starts every partition at `target`: [`OffsetTarget::Time`] at the first record at or after
    /// the time, [`OffsetTarget::Offset`] at that offset (clamped to what the partition holds).
    pub fn from(mut self, target: OffsetTarget) -> Self {
        self.from = Start::Target(target);
        self
    }

    /// Starts each partition named at its offset (clamped to what it holds); the partitions not
    /// named are not replayed.
    pub fn from_offsets(mut self, offsets: impl IntoIterator<Item = (i32, i64)>) -> Self {
        self.from = Start::Offsets(offsets.into_iter().collect());
        self
    }

    /// Stops each partition at `target` (exclusive: a time ends before the first record at or
    /// after it) when that comes before the high watermark taken at the start.
    pub fn until(mut self, target: OffsetTarget) -> Self {
        self.until = Some(target);
        self
    }

    /// Replays these partitions only.
    pub fn partitions(mut self, partitions: impl IntoIterator<Item = i32>) -> Self {
        self.partitions = Some(partitions.into_iter().collect());
        self
    }

    /// Commits under this consumer group (named as a handler's group is: the configured group
    /// prefix is added) instead of the default `{group}.replay.{topic}.{start}`.
    pub fn as_group(mut self, group: impl Into<String>) -> Self {
        self.as_group = Some(group.into());
        self
    }

    /// Starts from [`Replay::from`] even when the replay group committed offsets past it (by
    /// default a replay goes on from them: it was stopped half-way, or ran before).
    pub fn restart(mut self) -> Self {
        self.restart = true;
        self
    }

    /// Sends the replay's progress on `progress` as it changes (at most every 100 ms), and once
    /// more when it is done.
    pub fn progress(mut self, progress: watch::Sender<ReplayProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The replay group's id when [`Replay::as_group`] does not name one.
    fn default_group(&self, group: &str) -> String {
        let start = match &self.from {
            Start::Target(OffsetTarget::Earliest) => "earliest".to_owned(),
            Start::Target(OffsetTarget::Latest) => "latest".to_owned(),
            Start::Target(OffsetTarget::Offset(n)) => format!("offset-{n}"),
            Start::Target(OffsetTarget::Time(t)) => t.format("%Y-%m-%dT%H-%M-%S%.3fZ").to_string(),
            Start::Offsets(offsets) => {
                let each: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}@{o}")).collect();
                format!("offsets-{}", each.join("_"))
            }
        };
        format!("{group}.replay.{}.{start}", self.topic)
    }
}

/// What a replay takes from the bus.
pub(crate) struct Wiring<'a> {
    /// The bus's configuration (embedded or not).
    pub config: &'a Config,
    /// The brokers' addresses.
    pub servers: &'a str,
    /// Every group's handlers.
    pub groups: BTreeMap<String, Vec<&'static HandlerDescriptor>>,
    /// What the replay's consumer shares with its workers (a breaker list of its own).
    pub shared: Arc<Shared>,
}

/// Runs `replay`: see [`Bus::replay`](crate::Bus::replay).
pub(crate) async fn run(replay: Replay, wiring: Wiring<'_>) -> Result<ReplayReport> {
    let began = tokio::time::Instant::now();
    let config = wiring.config;
    let (group, topic, handlers) = choose_handlers(&replay, config, wiring.groups)?;
    let replay_group = config.group_id(
        &replay
            .as_group
            .clone()
            .unwrap_or_else(|| replay.default_group(&group)),
    );
    if replay_group == config.group_id(&group) {
        return Err(Error::Config(format!(
            "a replay commits under a consumer group of its own, not the live group `{replay_group}`: \
             name another with `as_group` (to replay into the live group, stop it and reset its \
             offsets: `herald groups reset`)"
        )));
    }
    let admin = GroupAdmin::new(
        &config.clone().bootstrap_servers(wiring.servers),
        ADMIN_TIMEOUT,
    )?;
    let admin = Arc::new(admin);
    let planned = {
        let (admin, replay, replay_group, topic) = (
            admin.clone(),
            replay.clone(),
            replay_group.clone(),
            topic.clone(),
        );
        retrying(move || plan(&admin, &replay, &replay_group, &topic)).await?
    };
    let Plan {
        ranges,
        commit,
        resumed,
    } = planned;
    let bounds = Arc::new(Bounds::new(
        &topic,
        ranges.iter().map(|r| (r.partition, r.start, r.end)),
    ));
    let report = |elapsed| ReplayReport {
        topic: topic.clone(),
        group: group.clone(),
        replay_group: replay_group.clone(),
        resumed,
        partitions: progress_of(&bounds),
        elapsed,
    };
    if bounds.done() {
        tracing::info!(%topic, %group, %replay_group, "nothing to replay: every range is empty");
        if let Some(progress) = &replay.progress {
            progress.send_replace(progress_now(&bounds));
        }
        return Ok(report(began.elapsed()));
    }
    {
        let (admin, replay_group) = (admin.clone(), replay_group.clone());
        let group = replay_group.clone();
        retrying(move || admin.commit_moves(&replay_group, &commit))
            .await
            .map_err(|e| match e {
                Error::Config(why) => Error::Config(format!(
                    "replay group `{group}` cannot start (is a replay of it running?): {why}"
                )),
                e => e,
            })?;
    }
    tracing::info!(%topic, %group, %replay_group, resumed, records = ranges.iter().map(|r| r.end - r.start).sum::<i64>(),
        "replay starts");
    let mut client = config.consumer_config(wiring.servers, &group);
    client
        .set("group.id", &replay_group)
        // Every replayed partition has a committed start; the others are not read.
        .set("auto.offset.reset", "latest")
        .remove("group.instance.id");
    let runner = GroupRunner::start_bounded(
        group.clone(),
        handlers,
        client,
        wiring.shared,
        bounds.clone(),
    )?;
    let reporter = replay.progress.clone().map(|progress| {
        let bounds = bounds.clone();
        tokio::spawn(async move {
            let mut changes = bounds.subscribe();
            while changes.changed().await.is_ok() {
                progress.send_replace(progress_now(&bounds));
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        })
    });
    let stop = runner.finished().await;
    if let Some(reporter) = reporter {
        // Waited for, not only aborted: on another thread it may be half-way through a send,
        // which would otherwise land after the last one below with an older snapshot.
        reporter.abort();
        let _ = reporter.await;
    }
    if let Some(progress) = &replay.progress {
        progress.send_replace(progress_now(&bounds));
    }
    match stop {
        GroupStop::Clean if bounds.done() => {
            let report = report(began.elapsed());
            tracing::info!(%topic, %replay_group, handled = report.handled(), dead_lettered = report.dead_lettered(),
                elapsed = ?report.elapsed, "replay done");
            Ok(report)
        }
        GroupStop::Failed(reason) => Err(Error::ConsumerFailed {
            group: replay_group,
            reason,
        }),
        GroupStop::Clean | GroupStop::Abandoned => Err(Error::ConsumerFailed {
            group: replay_group,
            reason: "the replay stopped before the end of its range; run it again to go on from \
                     its last commit"
                .into(),
        }),
    }
}

/// How often a blocking broker call that failed retriably (a coordinator loading, a timeout) is
/// tried in all, a second apart.
const ATTEMPTS: u32 = 3;

/// Runs `call` on the blocking pool, again after a retriable error, up to [`ATTEMPTS`] times.
async fn retrying<T: Send + 'static>(
    call: impl Fn() -> Result<T> + Send + Sync + 'static,
) -> Result<T> {
    let call = Arc::new(call);
    let mut attempt = 1;
    loop {
        let once = call.clone();
        let result = tokio::task::spawn_blocking(move || once())
            .await
            .map_err(|_| Error::State("a broker call of the replay panicked"))?;
        match result {
            Err(e) if e.is_retriable() && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "a broker call of the replay failed; trying again");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            result => return result,
        }
    }
}

/// The handler group, the topic as the handlers name it, and the group's handlers of it.
fn choose_handlers(
    replay: &Replay,
    config: &Config,
    groups: BTreeMap<String, Vec<&'static HandlerDescriptor>>,
) -> Result<(String, String, Vec<&'static HandlerDescriptor>)> {
    let prefixed = with_prefix(config.topic_prefix.as_deref(), &replay.topic);
    let consumes = |h: &&HandlerDescriptor| h.topic == replay.topic || h.topic == prefixed;
    let consuming: Vec<&String> = groups
        .iter()
        .filter(|(_, handlers)| handlers.iter().any(consumes))
        .map(|(g, _)| g)
        .collect();
    let group = match (&replay.group, consuming.as_slice()) {
        (Some(group), _) => group.clone(),
        (None, [only]) => (*only).clone(),
        (None, []) => {
            return Err(Error::Config(format!(
                "no handler of this bus consumes topic `{}`: name a topic its handlers consume",
                replay.topic
            )))
        }
        (None, several) => {
            return Err(Error::Config(format!(
                "several consumer groups consume topic `{}` ({}): name the one to replay with \
                 `Replay::group`",
                replay.topic,
                several
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let Some(all) = groups.get(&group) else {
        return Err(Error::Config(format!(
            "no handler runs in consumer group `{group}`; the groups of this binary are: {}",
            groups.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    let handlers: Vec<&'static HandlerDescriptor> =
        all.iter().copied().filter(|h| consumes(h)).collect();
    let Some(first) = handlers.first() else {
        let topics: BTreeSet<&str> = all.iter().map(|h| h.topic).collect();
        return Err(Error::Config(format!(
            "no handler of consumer group `{group}` consumes topic `{}`; its topics are: {}",
            replay.topic,
            topics.into_iter().collect::<Vec<_>>().join(", ")
        )));
    };
    Ok((group, first.topic.to_owned(), handlers))
}

/// One partition's range.
struct Range {
    partition: i32,
    start: i64,
    end: i64,
}

/// What the planning decided.
struct Plan {
    ranges: Vec<Range>,
    /// The starts to commit for the replay group (those it has not committed itself).
    commit: Vec<OffsetMove>,
    resumed: bool,
}

/// Refuses a replay group with live members, takes the high watermarks and chooses each
/// partition's range (going on from the replay group's own commits unless restarting).
fn plan(admin: &GroupAdmin, replay: &Replay, replay_group: &str, topic: &str) -> Result<Plan> {
    // Whether the broker describes groups: then the resumed offsets are committed again too, so
    // that the broker refuses a group with members the classic call does not show (a
    // consumer-protocol group, KIP-848). The embedded broker refuses any commit from outside a
    // group it knows, members or not.
    let mut described = true;
    match admin.describe(replay_group) {
        Ok(described) if !described.members.is_empty() => {
            let members: Vec<String> = described
                .members
                .iter()
                .map(|m| format!("{} on {}", m.client_id, m.host))
                .collect();
            return Err(Error::Config(format!(
                "replay group `{replay_group}` has {} live member(s) ({}): a replay of it is \
                 running already; wait for it, stop it, or name another group with `as_group`",
                members.len(),
                members.join(", ")
            )));
        }
        Ok(_) => {}
        // The embedded broker describes no groups: nothing to check there.
        Err(e) if e.to_string().contains("UnsupportedFeature") => {
            described = false;
            tracing::debug!(%replay_group, "the broker cannot describe groups; live members of the replay group are not checked");
        }
        Err(e) => return Err(e),
    }
    let target = match &replay.from {
        Start::Target(target) => *target,
        Start::Offsets(_) => OffsetTarget::Earliest,
    };
    let starts = admin.plan_reset(replay_group, topic, target)?;
    let ends: Option<Vec<OffsetMove>> = match replay.until {
        Some(until) => Some(admin.plan_reset(replay_group, topic, until)?),
        None => None,
    };
    let mut wanted = replay.partitions.clone();
    if let Start::Offsets(offsets) = &replay.from {
        let named: BTreeSet<i32> = offsets.keys().copied().collect();
        wanted = Some(match wanted {
            Some(w) => w.intersection(&named).copied().collect(),
            None => named,
        });
    }
    if let Some(wanted) = &wanted {
        let known: BTreeSet<i32> = starts.iter().map(|m| m.partition).collect();
        if let Some(missing) = wanted.iter().find(|p| !known.contains(p)) {
            return Err(Error::Config(format!(
                "topic `{topic}` has no partition {missing} (it has {})",
                known.len()
            )));
        }
    }
    let (mut ranges, mut commit, mut resumed) = (Vec::new(), Vec::new(), false);
    for mut start in starts {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&start.partition))
        {
            continue;
        }
        if let Start::Offsets(offsets) = &replay.from {
            start.to = offsets[&start.partition].clamp(start.low, start.high);
        }
        let until = ends
            .as_ref()
            .and_then(|e| e.iter().find(|m| m.partition == start.partition))
            .map_or(start.high, |m| m.to);
        let end = until.min(start.high);
        let mut from = start.to.min(end);
        match start.from {
            // Its own commit in the range: a replay that stopped half-way (or ran to an end that
            // the partition has since passed).
            Some(committed) if !replay.restart && committed >= from => {
                resumed = true;
                from = committed.min(end);
                if described {
                    commit.push(OffsetMove {
                        to: committed,
                        ..start.clone()
                    });
                }
            }
            _ => commit.push(OffsetMove {
                to: from,
                ..start.clone()
            }),
        }
        ranges.push(Range {
            partition: start.partition,
            start: from,
            end,
        });
    }
    Ok(Plan {
        ranges,
        commit,
        resumed,
    })
}

/// The run's progress now, `done` read from the same snapshot as the partitions (reading it from
/// `bounds` again could see a partition finish in between: done, with a record remaining).
fn progress_now(bounds: &Bounds) -> ReplayProgress {
    let partitions = progress_of(bounds);
    let done = partitions.iter().all(PartitionProgress::done);
    ReplayProgress { partitions, done }
}

fn progress_of(bounds: &Bounds) -> Vec<PartitionProgress> {
    bounds
        .snapshot()
        .into_iter()
        .map(|(partition, b)| PartitionProgress {
            partition,
            start: b.start,
            position: b.position,
            end: b.end,
            handled: b.handled,
            skipped: b.skipped,
            dead_lettered: b.dead_lettered,
            deferred: b.deferred,
        })
        .collect()
}
