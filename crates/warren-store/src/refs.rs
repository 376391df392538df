//! Reference counts of stored messages, kept in memory.
//!
//! Counting in memory keeps a write a single atomic batch of puts and deletes (no
//! read-modify-write of a counter key), and costs one index scan at open to rebuild (in the
//! background after a clean close: see `engine::scan`). Once that scan is over the table holds
//! exactly the messages on disk: a message is stored iff it has an entry here. A count
//! includes the holds of publishes still enqueueing the message (`MessageOp::Hold`), which are
//! also counted apart so that a `Release` without its `Hold` is refused rather than dropping a
//! queue's reference.

use ahash::AHashMap;

use crate::MessageId;

/// Ids per block of the bitset of single references.
const BLOCK_IDS: u64 = 4096;

/// Which ids of one aligned range of [`BLOCK_IDS`] have exactly one reference.
#[derive(Debug)]
struct Block {
    bits: [u64; (BLOCK_IDS / 64) as usize],
    /// Bits set: the block goes when it reaches 0.
    set: u32,
}

/// Message id -> number of index entries and holds referencing it.
///
/// Most stored messages are held by one queue, and ids are handed out in order, so a count of
/// one is a bit in a block of 4096 ids (about 1 bit per message for a backlog, where a map
/// entry took ~35 bytes: ~340 MiB at 10 M messages); other counts are a map entry.
#[derive(Debug, Default)]
pub(crate) struct RefTable {
    ones: AHashMap<u64, Box<Block>>,
    /// Counts other than one (fanned-out or held messages).
    many: AHashMap<MessageId, u32>,
    /// Message id -> holds not yet released (few: the publishes in progress).
    held: AHashMap<MessageId, u32>,
    /// Distinct messages with a count.
    messages: u64,
    entries: u64,
}

impl RefTable {
    /// The number of queues holding `id`, or `None` when it is not stored.
    pub(crate) fn get(&self, id: MessageId) -> Option<u32> {
        if let Some(n) = self.many.get(&id) {
            return Some(*n);
        }
        let (block, word, bit) = Self::place(id);
        let block = self.ones.get(&block)?;
        (block.bits[word] & bit != 0).then_some(1)
    }

    /// The block key, word index and bit mask of `id`.
    fn place(id: MessageId) -> (u64, usize, u64) {
        let offset = id % BLOCK_IDS;
        (id / BLOCK_IDS, (offset / 64) as usize, 1 << (offset % 64))
    }

    /// Sets (`Some`) or removes (`None`) the count of `id`.
    fn set(&mut self, id: MessageId, count: Option<u32>) {
        let (key, word, bit) = Self::place(id);
        let was = if self.many.remove(&id).is_some() {
            true
        } else if let Some(block) = self.ones.get_mut(&key)
            && block.bits[word] & bit != 0
        {
            block.bits[word] &= !bit;
            block.set -= 1;
            if block.set == 0 {
                self.ones.remove(&key);
            }
            true
        } else {
            false
        };
        match count {
            Some(1) => {
                let block = self.ones.entry(key).or_insert_with(|| {
                    Box::new(Block {
                        bits: [0; (BLOCK_IDS / 64) as usize],
                        set: 0,
                    })
                });
                block.bits[word] |= bit;
                block.set += 1;
            }
            Some(n) => {
                self.many.insert(id, n);
            }
            None => {}
        }
        match (was, count.is_some()) {
            (false, true) => self.messages += 1,
            (true, false) => self.messages -= 1,
            _ => {}
        }
    }

    /// The holds on `id` not yet released.
    pub(crate) fn holds(&self, id: MessageId) -> u32 {
        self.held.get(&id).copied().unwrap_or(0)
    }

    /// Counts one more index entry for `id` (used by the open scan).
    pub(crate) fn add_reference(&mut self, id: MessageId) {
        let n = self.get(id).unwrap_or(0);
        self.set(id, Some(n + 1));
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
            self.set(id, count);
        }
        self.entries = self.entries.saturating_add_signed(entries_delta);
    }

    /// Distinct stored messages.
    pub(crate) fn messages(&self) -> u64 {
        self.messages
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

    proptest::proptest! {
        /// The bitset and the map together answer as one map of counts would.
        #[test]
        fn counts_agree_with_a_map(
            ops in proptest::collection::vec((0u64..20_000, proptest::option::of(0u32..4)), 1..300)
        ) {
            let mut t = RefTable::default();
            let mut model = std::collections::HashMap::new();
            for (id, count) in ops {
                // The engine never installs a count of zero (a plan with one is refused).
                let count = count.filter(|n| *n > 0);
                t.commit([(id, count)], [], 0);
                match count {
                    Some(n) => model.insert(id, n),
                    None => model.remove(&id),
                };
                proptest::prop_assert_eq!(t.get(id), count);
                proptest::prop_assert_eq!(t.messages(), model.len() as u64);
            }
            for (id, n) in &model {
                proptest::prop_assert_eq!(t.get(*id), Some(*n));
            }
            let blocks: std::collections::HashSet<u64> =
                model.iter().filter(|(_, n)| **n == 1).map(|(id, _)| id / BLOCK_IDS).collect();
            proptest::prop_assert_eq!(t.ones.len(), blocks.len(), "empty blocks are freed");
        }
    }
}
