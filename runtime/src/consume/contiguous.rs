//! The highest offset of a partition below which every event reached its verdict, when events
//! finish out of order (per-key concurrency, see `docs/concurrency.md`): the offset that may be
//! stored for commit without passing an event that is still running or not started.

use std::collections::VecDeque;

/// The offsets a partition's worker received, in the order it received them (ascending, as Kafka
/// delivers a partition), each with whether it reached its verdict.
#[derive(Debug, Default)]
pub(crate) struct Contiguous {
    /// Received and not yet passed by [`Contiguous::advance`]; offsets ascend, with gaps where the
    /// log has none (compaction, transaction markers).
    pending: VecDeque<(i64, bool)>,
}

impl Contiguous {
    /// Records that the event at `offset` was received. Offsets must come in ascending order.
    pub fn begin(&mut self, offset: i64) {
        debug_assert!(
            self.pending.back().is_none_or(|&(last, _)| last < offset),
            "offset {offset} received after {:?}",
            self.pending.back()
        );
        self.pending.push_back((offset, false));
    }

    /// Records that the event at `offset`, received before, reached its verdict. An offset not
    /// received (or already passed) is ignored.
    pub fn finish(&mut self, offset: i64) {
        if let Ok(at) = self.pending.binary_search_by_key(&offset, |&(o, _)| o) {
            self.pending[at].1 = true;
        }
    }

    /// The highest offset at or below which every received event reached its verdict, if it moved
    /// since the last call: the offset to store.
    pub fn advance(&mut self) -> Option<i64> {
        let mut done = None;
        while let Some(&(offset, true)) = self.pending.front() {
            done = Some(offset);
            self.pending.pop_front();
        }
        done
    }

    /// How many received events have not been passed yet (running, waiting, or done after one that
    /// is not).
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Contiguous;

    fn received(offsets: &[i64]) -> Contiguous {
        let mut done = Contiguous::default();
        for &offset in offsets {
            done.begin(offset);
        }
        done
    }

    #[test]
    fn nothing_received_nothing_to_store() {
        assert_eq!(Contiguous::default().advance(), None);
    }

    #[test]
    fn in_order_moves_one_by_one() {
        let mut done = received(&[0, 1, 2]);
        done.finish(0);
        assert_eq!(done.advance(), Some(0));
        done.finish(1);
        assert_eq!(done.advance(), Some(1));
        assert_eq!(done.advance(), None, "nothing new");
        done.finish(2);
        assert_eq!(done.advance(), Some(2));
        assert_eq!(done.len(), 0);
    }

    #[test]
    fn never_passes_an_unfinished_offset() {
        let mut done = received(&[10, 11, 12, 13]);
        done.finish(11);
        done.finish(13);
        assert_eq!(done.advance(), None, "10 is still running");
        done.finish(10);
        assert_eq!(done.advance(), Some(11), "12 is still running");
        done.finish(12);
        assert_eq!(done.advance(), Some(13));
    }

    #[test]
    fn gaps_in_the_log_are_no_holes() {
        let mut done = received(&[3, 7, 8, 20]);
        done.finish(20);
        done.finish(7);
        done.finish(3);
        assert_eq!(done.advance(), Some(7));
        done.finish(8);
        assert_eq!(done.advance(), Some(20));
    }

    #[test]
    fn unknown_and_repeated_finishes_change_nothing() {
        let mut done = received(&[5, 6]);
        done.finish(4);
        done.finish(9);
        assert_eq!(done.advance(), None);
        done.finish(5);
        done.finish(5);
        assert_eq!(done.advance(), Some(5));
        done.finish(5);
        assert_eq!(done.advance(), None, "5 was passed already");
        assert_eq!(done.len(), 1);
    }

    #[test]
    fn received_after_a_store_continues_from_there() {
        let mut done = received(&[0, 1]);
        done.finish(1);
        done.finish(0);
        assert_eq!(done.advance(), Some(1));
        done.begin(2);
        done.begin(3);
        done.finish(3);
        assert_eq!(done.advance(), None);
        done.finish(2);
        assert_eq!(done.advance(), Some(3));
    }
}
