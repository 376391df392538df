//! Durable messages and queue indexes: [`MessageOp`], [`StoredEntry`] and the
//! [`MessageStore`] trait.
//!
//! A message's bytes are stored once under its [`MessageId`]; each queue holding it has an
//! index entry `(vhost, queue, seq) -> (id, redelivered)`. The message is deleted with the
//! last reference to it: an index entry, or a [`MessageOp::Hold`] of a publish still handing
//! it to its queues.

use bytes::Bytes;

use crate::StoreError;

/// Identifies a stored message; allocated by [`MessageStore::next_message_id`].
pub type MessageId = u64;

/// One change in a [`MessageStore::write`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOp {
    /// Stores a message's bytes once, however many queues it is enqueued in. The same write
    /// must reference it: enqueue it at least once, or [`MessageOp::Hold`] it.
    Put {
        /// A fresh id from [`MessageStore::next_message_id`].
        id: MessageId,
        /// The message as the broker encodes it (properties and body).
        message: Bytes,
    },
    /// Adds an index entry: queue `queue` of `vhost` holds message `id` at position `seq`, which
    /// the queue must not hold yet. The store checks that only against the ops of the same
    /// write: an earlier write's entry at `seq` would be overwritten (its reference leaked until
    /// the next open), so callers must never reuse a position (the broker's are a counter).
    Enqueue {
        /// The virtual host.
        vhost: Bytes,
        /// The queue.
        queue: Bytes,
        /// The position in the queue; entries load in increasing `seq`.
        seq: u64,
        /// A message stored by this write or an earlier one.
        id: MessageId,
    },
    /// Removes an index entry (ack, purge, expiry, dead-lettering); deletes the message's
    /// bytes when no index entry references it any more. The entry must exist and hold `id`:
    /// the store does not read it back to check (that read was a third of a message's store
    /// cost), so removing an entry twice would drop a reference another queue still holds.
    Remove {
        /// The virtual host.
        vhost: Bytes,
        /// The queue.
        queue: Bytes,
        /// The entry's position.
        seq: u64,
        /// The message the entry holds, as enqueued.
        id: MessageId,
    },
    /// Adds a reference to a stored message that no queue index holds: a publish that is
    /// still enqueueing the message in its queues, one queue at a time, holds it so that a
    /// queue which removes its entry at once (a no-ack consumer, `drop-head`, a TTL of 0)
    /// cannot delete the message before the later queues enqueued it. Kept in memory only: a
    /// crash drops every hold, and a message left without index entries is deleted at open.
    Hold {
        /// A message stored by this write or an earlier one.
        id: MessageId,
    },
    /// Drops a [`MessageOp::Hold`] once the publish enqueued the message everywhere it goes;
    /// deletes the message's bytes when no index entry references it any more.
    Release {
        /// A message this store holds for the caller.
        id: MessageId,
    },
    /// Records that the entry was delivered at least once, so recovery sets `redelivered`.
    /// The entry must exist and hold `id`: the op writes it blind, without reading it first.
    MarkRedelivered {
        /// The virtual host.
        vhost: Bytes,
        /// The queue.
        queue: Bytes,
        /// The entry's position.
        seq: u64,
        /// The message the entry holds, as enqueued.
        id: MessageId,
    },
}

/// One entry of a queue as [`MessageStore::load_queue`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The entry's position in the queue.
    pub seq: u64,
    /// The message's id.
    pub id: MessageId,
    /// The entry was marked redelivered.
    pub redelivered: bool,
    /// The message's bytes as they were put.
    pub message: Bytes,
}

/// How many entries a queue's index holds and where it ends, read before the queue loads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueExtent {
    /// Index entries of the queue.
    pub count: u64,
    /// One past the highest `seq` of the queue's entries (0 when it has none): new entries
    /// go at or above it, after every stored one.
    pub end_seq: u64,
}

/// Counters describing a store, cheap to read (kept in memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Distinct messages stored (a message in two queues counts once).
    pub messages: u64,
    /// Index entries over all queues (a message in two queues counts twice).
    pub queue_entries: u64,
    /// Messages held by a [`MessageOp::Hold`] not yet released (publishes still enqueueing).
    pub held: u64,
    /// Flushes actually performed by `sync` and definition changes since open.
    pub flushes: u64,
    /// Key changes cancelled before reaching the disk since open: the writes of messages
    /// acknowledged before they were written, and the deletes that would have undone them.
    pub cancelled_changes: u64,
}

/// Stores messages and queue indexes. See the crate docs for the durability contract.
pub trait MessageStore: Send + Sync {
    /// Applies `ops` in order: all of them, or none when one is refused. Visible to
    /// `load_queue` on return; not yet durable (see [`MessageStore::sync`] and the crate's
    /// durability contract for what a crash before it keeps).
    fn write(&self, ops: &[MessageOp]) -> Result<(), StoreError>;
    /// Makes every write that returned before this call durable. Concurrent callers share
    /// flushes (group commit): at most one flush runs and one more is queued behind it.
    fn sync(&self) -> Result<(), StoreError>;
    /// The entries of one queue, in increasing `seq`.
    fn load_queue(&self, vhost: &[u8], queue: &[u8]) -> Result<Vec<StoredEntry>, StoreError>;
    /// Hands the entries of one queue to `visit` in increasing `seq`, one at a time, stopping
    /// at its first `Err`. Recovery uses it so that a long queue is never held twice in memory
    /// (once collected, once in the broker's queue).
    fn visit_queue(
        &self,
        vhost: &[u8],
        queue: &[u8],
        visit: &mut dyn FnMut(StoredEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.load_queue(vhost, queue)?
            .into_iter()
            .try_for_each(visit)
    }
    /// Up to `max` entries of one queue with `seq` at or above `from`, in increasing `seq`: a
    /// queue loads in batches this way, with no lock of the caller held across the read.
    fn read_queue(
        &self,
        vhost: &[u8],
        queue: &[u8],
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let mut entries = Vec::new();
        self.visit_queue(vhost, queue, &mut |e| {
            if e.seq >= from && entries.len() < max {
                entries.push(e);
            }
            Ok(())
        })?;
        Ok(entries)
    }
    /// The number of entries of one queue and where they end, without reading messages.
    fn queue_extent(&self, vhost: &[u8], queue: &[u8]) -> Result<QueueExtent, StoreError> {
        let mut extent = QueueExtent::default();
        self.visit_queue(vhost, queue, &mut |e| {
            extent.count += 1;
            extent.end_seq = e.seq.saturating_add(1);
            Ok(())
        })?;
        Ok(extent)
    }
    /// A message id greater than any id ever stored, also across restarts.
    fn next_message_id(&self) -> Result<MessageId, StoreError>;
    /// Current counters.
    fn stats(&self) -> StoreStats;
}
