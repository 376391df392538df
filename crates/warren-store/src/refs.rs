//! Reference counts of stored messages, kept in memory.
//!
//! Counting in memory keeps a write a single atomic batch of puts and deletes (no
//! read-modify-write of a counter key), and costs one index scan at open to rebuild. The table
//! holds exactly the messages on disk: a message is stored iff it has an entry here. A count
//! includes the holds of publishes still enqueueing the message (`MessageOp::Hold`), which are
//! also counted apart so that a `Release` without its `Hold` is refused rather than dropping a
//! queue's reference.

use ahash::AHashMap;

use crate::MessageId;

/// Message id -> number of index entries and holds referencing it.
#[derive(Debug, Default)]
pub(crate) struct RefTable {
    counts: AHashMap<MessageId, u32>,
    /// Message id -> holds not yet released (few: the publishes in progress).
    held: AHashMap<MessageId, u32>,
    entries: u64,
}

impl RefTable {
    /// The number of queues holding `id`, or `None` when it is not stored.
    pub(crate) fn get(&self, id: MessageId) -> Option<u32> {
        self.counts.get(&id).copied()
    }

    /// The holds on `id` not yet released.
    pub(crate) fn holds(&self, id: MessageId) -> u32 {
        self.held.get(&id).copied().unwrap_or(0)
    }

    /// Counts one more index entry for `id` (used while rebuilding at open).
    pub(crate) fn add_reference(&mut self, id: MessageId) {
        *self.counts.entry(id).or_insert(0) += 1;
        self.entries += 1;
    }

    /// Installs the outcome of a committed plan.
    pub(crate) fn commit(
        &mut self,
        counts: impl IntoIterator<Item = (MessageId, Option<u32>)>,
        held: impl IntoIterator<Item = (MessageId, u32)>,
        entries_delta: i64,
    ) {
        for (id, n) in held {
            if n == 0 {
                self.held.remove(&id);
            } else {
                self.held.insert(id, n);
            }
        }
        for (id, count) in counts {
            match count {
                Some(n) => {
                    self.counts.insert(id, n);
                }
                None => {
                    self.counts.remove(&id);
                }
            }
        }
        self.entries = self.entries.saturating_add_signed(entries_delta);
    }

    /// Distinct stored messages.
    pub(crate) fn messages(&self) -> u64 {
        self.counts.len() as u64
    }

    /// Messages with a hold not yet released.
    pub(crate) fn held(&self) -> u64 {
        self.held.len() as u64
    }

    /// Index entries over all queues.
    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_sets_and_removes_counts() {
        let mut t = RefTable::default();
        t.add_reference(1);
        t.add_reference(1);
        t.add_reference(2);
        assert_eq!((t.get(1), t.messages(), t.entries()), (Some(2), 2, 3));
        t.commit([(1, None), (3, Some(1))], [], -1);
        assert_eq!(
            (t.get(1), t.get(3), t.messages(), t.entries()),
            (None, Some(1), 2, 2)
        );
    }
}
