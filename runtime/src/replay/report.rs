//! What a replay reports: each partition's range and how far it got, while it runs
//! ([`ReplayProgress`]) and when it is done ([`ReplayReport`]).

use std::time::Duration;

/// One partition of a replay: its range and how far the replay got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: i32,
    /// The first offset of the range (for a resumed replay: where this run started).
    pub start: i64,
    /// The next offset to handle: every record before it reached its verdict.
    pub position: i64,
    /// The end of the range (exclusive): the partition's high watermark when the replay started,
    /// or the `until` bound when earlier.
    pub end: i64,
    /// Records whose handlers succeeded.
    pub handled: u64,
    /// Records no handler of the group takes (their event type).
    pub skipped: u64,
    /// Records copied to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records copied to a retry topic (handlers retrying through topics): the handler group's
    /// live consumer retries them.
    pub deferred: u64,
}

impl PartitionProgress {
    /// The offsets in the range (records, unless some are transaction markers or compacted away).
    pub fn records(&self) -> u64 {
        u64::try_from(self.end - self.start).unwrap_or(0)
    }

    /// The offsets of the range not handled yet.
    pub fn remaining(&self) -> u64 {
        u64::try_from(self.end - self.position).unwrap_or(0)
    }

    /// Whether every record of the range reached its verdict.
    pub fn done(&self) -> bool {
        self.position >= self.end
    }
}

/// A running replay's progress, sent on the channel given to
/// [`Replay::progress`](super::Replay::progress) as it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayProgress {
    /// Every replayed partition, by number.
    pub partitions: Vec<PartitionProgress>,
    /// The replay reached the end of every partition.
    pub done: bool,
}

impl ReplayProgress {
    /// The offsets in every range.
    pub fn records(&self) -> u64 {
        self.partitions.iter().map(PartitionProgress::records).sum()
    }

    /// The offsets not handled yet.
    pub fn remaining(&self) -> u64 {
        self.partitions
            .iter()
            .map(PartitionProgress::remaining)
            .sum()
    }

    /// Records whose handlers succeeded.
    pub fn handled(&self) -> u64 {
        self.partitions.iter().map(|p| p.handled).sum()
    }

    /// Records copied to the dead-letter topic.
    pub fn dead_lettered(&self) -> u64 {
        self.partitions.iter().map(|p| p.dead_lettered).sum()
    }
}

/// What a finished replay did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// The replayed topic.
    pub topic: String,
    /// The handlers' consumer group (as declared), whose handlers ran.
    pub group: String,
    /// The consumer group id the replay committed under.
    pub replay_group: String,
    /// The replay group had committed offsets in the range: this run went on from them.
    pub resumed: bool,
    /// Every replayed partition, by number.
    pub partitions: Vec<PartitionProgress>,
    /// How long it took, from planning to the last commit.
    pub elapsed: Duration,
}

impl ReplayReport {
    /// The offsets in every range (0: there was nothing to replay).
    pub fn records(&self) -> u64 {
        self.partitions.iter().map(PartitionProgress::records).sum()
    }

    /// Records whose handlers succeeded.
    pub fn handled(&self) -> u64 {
        self.partitions.iter().map(|p| p.handled).sum()
    }

    /// Records no handler of the group takes.
    pub fn skipped(&self) -> u64 {
        self.partitions.iter().map(|p| p.skipped).sum()
    }

    /// Records copied to the dead-letter topic.
    pub fn dead_lettered(&self) -> u64 {
        self.partitions.iter().map(|p| p.dead_lettered).sum()
    }

    /// Records copied to a retry topic.
    pub fn deferred(&self) -> u64 {
        self.partitions.iter().map(|p| p.deferred).sum()
    }
}
