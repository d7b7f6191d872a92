//! A bounded run of a consumer group (a replay): each partition has an end offset, taken when the
//! run starts; records at or past it are not handled, and the run is over once every partition's
//! handled position reached its end.
//!
//! The consumer loop drops (and pauses) what lies past a partition's end; the partition's worker
//! counts each verdict and moves the position when it stores an offset; every change is announced
//! on one `watch`, which the consumer loop (to stop) and the replay (to report progress) follow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// One partition's range and how far the run got.
#[derive(Debug)]
pub(crate) struct Bound {
    /// The first offset of the range (where the run started on this partition).
    pub start: i64,
    /// The offset the run stops at (exclusive): the partition's high watermark at the start.
    pub end: i64,
    /// The next offset to handle: every record before it reached its verdict.
    position: AtomicI64,
    /// The consumer's fetch position at the last [`Bound::settle`], if past the end.
    fetched: AtomicI64,
    handled: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    deferred: AtomicU64,
    changed: watch::Sender<()>,
}

/// What happened to one record of a bounded run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// Its handlers succeeded.
    Handled,
    /// No handler of the group takes its type.
    Skipped,
    /// It was copied to the dead-letter topic.
    DeadLettered,
    /// It was copied to a retry topic: the handler group's live consumer retries it.
    Deferred,
}

/// A snapshot of one partition's [`Bound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoundSnapshot {
    pub start: i64,
    pub end: i64,
    pub position: i64,
    pub handled: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
    pub deferred: u64,
}

impl Bound {
    /// Notes a record's outcome.
    pub fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Handled => &self.handled,
            Outcome::Skipped => &self.skipped,
            Outcome::DeadLettered => &self.dead_lettered,
            Outcome::Deferred => &self.deferred,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.changed.send_replace(());
    }

    /// Every record before `next` reached its verdict (its offset is stored for commit).
    pub fn advance(&self, next: i64) {
        if self.position.fetch_max(next, Ordering::SeqCst) < next {
            self.changed.send_replace(());
        }
    }

    /// Whether every record of the range reached its verdict.
    pub fn done(&self) -> bool {
        self.position.load(Ordering::SeqCst) >= self.end
    }

    /// Called every second with the consumer's fetch position and whether the partition's worker
    /// has nothing queued or running: the partition is done when the position is past the end
    /// with the worker idle twice in a row at the same position, although no handled offset
    /// reached the end (the last offsets hold no record for the application: transaction
    /// markers, compacted records). Twice, because messages fetched may still be on their way to
    /// the worker (batched on the polling thread, or in the consumer loop's channel).
    pub fn settle(&self, fetched: i64, idle: bool) {
        if self.done() {
            return;
        }
        if fetched < self.end || !idle {
            self.fetched.store(-1, Ordering::SeqCst);
            return;
        }
        if self.fetched.swap(fetched, Ordering::SeqCst) == fetched {
            self.advance(self.end);
        }
    }

    /// How far the run got.
    pub fn snapshot(&self) -> BoundSnapshot {
        BoundSnapshot {
            start: self.start,
            end: self.end,
            position: self.position.load(Ordering::SeqCst).min(self.end),
            handled: self.handled.load(Ordering::SeqCst),
            skipped: self.skipped.load(Ordering::SeqCst),
            dead_lettered: self.dead_lettered.load(Ordering::SeqCst),
            deferred: self.deferred.load(Ordering::SeqCst),
        }
    }
}

/// The ranges of a bounded run, by partition of its one topic.
#[derive(Debug)]
pub(crate) struct Bounds {
    pub topic: String,
    partitions: HashMap<i32, Arc<Bound>>,
    changed: watch::Sender<()>,
}

impl Bounds {
    /// Ranges `(partition, start, end)` of `topic`; a partition left out is not read.
    pub fn new(topic: &str, ranges: impl IntoIterator<Item = (i32, i64, i64)>) -> Self {
        let (changed, _) = watch::channel(());
        let partitions = ranges
            .into_iter()
            .map(|(partition, start, end)| {
                let bound = Bound {
                    start,
                    end,
                    position: AtomicI64::new(start),
                    fetched: AtomicI64::new(-1),
                    handled: AtomicU64::new(0),
                    skipped: AtomicU64::new(0),
                    dead_lettered: AtomicU64::new(0),
                    deferred: AtomicU64::new(0),
                    changed: changed.clone(),
                };
                (partition, Arc::new(bound))
            })
            .collect();
        Self {
            topic: topic.to_owned(),
            partitions,
            changed,
        }
    }

    /// The range of a partition; `None` when it is not part of the run.
    pub fn get(&self, topic: &str, partition: i32) -> Option<&Arc<Bound>> {
        (topic == self.topic)
            .then(|| self.partitions.get(&partition))
            .flatten()
    }

    /// Whether every partition reached its end.
    pub fn done(&self) -> bool {
        self.partitions.values().all(|b| b.done())
    }

    /// Announces every change (count or position) of any partition.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Every partition's progress, by partition.
    pub fn snapshot(&self) -> Vec<(i32, BoundSnapshot)> {
        let mut all: Vec<(i32, BoundSnapshot)> = self
            .partitions
            .iter()
            .map(|(p, b)| (*p, b.snapshot()))
            .collect();
        all.sort_unstable_by_key(|(p, _)| *p);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_done_at_its_end_and_an_empty_range_at_once() {
        let bounds = Bounds::new("orders", [(0, 2, 5), (1, 7, 7)]);
        assert!(bounds.get("orders", 2).is_none() && bounds.get("other", 0).is_none());
        assert!(bounds.get("orders", 1).unwrap().done(), "an empty range");
        let first = bounds.get("orders", 0).unwrap();
        first.count(Outcome::Handled);
        first.count(Outcome::DeadLettered);
        first.advance(4);
        first.advance(3); // never backwards
        assert!(!bounds.done());
        assert_eq!(
            first.snapshot(),
            BoundSnapshot {
                start: 2,
                end: 5,
                position: 4,
                handled: 1,
                skipped: 0,
                dead_lettered: 1,
                deferred: 0
            }
        );
        first.advance(5);
        assert!(bounds.done());
    }

    #[test]
    fn a_fetch_position_past_the_end_settles_only_when_seen_twice_with_the_worker_idle() {
        let bounds = Bounds::new("orders", [(0, 0, 5)]);
        let bound = bounds.get("orders", 0).unwrap();
        bound.settle(6, true);
        assert!(
            !bound.done(),
            "the records fetched may still be on their way"
        );
        bound.settle(6, false);
        bound.settle(6, true);
        assert!(!bound.done(), "the worker was busy in between");
        bound.settle(6, true);
        assert!(bound.done());
        let other = Bounds::new("orders", [(0, 0, 5)]);
        let bound = other.get("orders", 0).unwrap();
        bound.settle(4, true);
        bound.settle(4, true);
        assert!(!bound.done(), "not fetched to the end");
    }

    #[test]
    fn every_change_is_announced() {
        let bounds = Bounds::new("orders", [(0, 0, 5)]);
        let mut changes = bounds.subscribe();
        assert!(!changes.has_changed().unwrap());
        bounds.get("orders", 0).unwrap().count(Outcome::Skipped);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        bounds.get("orders", 0).unwrap().advance(0);
        assert!(!changes.has_changed().unwrap(), "no move, no news");
    }
}
