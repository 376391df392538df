//! The ready messages of a queue: one FIFO per priority level (a single one unless the queue was
//! declared with `x-max-priority`), with the counts that length limits need.
//!
//! A queue holding a backlog keeps it packed: a message pushed while [`PACK_AFTER`] or more are
//! ready, and held by this queue alone, is copied into its level's [`PackedFifo`] and its
//! `Arc<Message>` dropped (which also frees the connection read buffer its fields were slices
//! of). It is unpacked when it leaves. Consecutive packed messages share one entry (a run): the
//! records carry each message's position, deadline and redelivered flag, and the run's entry
//! mirrors those of its first record, so a deep backlog costs its records and few entries. Outside this module every ready message is a [`Ready`]
//! with an `Arc<Message>`; the packed form never shows.

use std::collections::VecDeque;
use std::sync::Arc;

use warren_store::MessageId;

use super::packed::{self, Meta, PackedFifo};
use super::segments::SpillTo;
use crate::Message;

/// No deadline: the message never expires.
pub const NEVER: u64 = u64::MAX;

/// A push packs its message when at least this many are ready already. Below that, messages pass
/// through or wait briefly, and packing would only add a copy; the unpacked head of a backlog
/// also spares its first deliveries the unpacking.
pub const PACK_AFTER: usize = 1024;

/// A message waiting for a consumer.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Its position in the queue.
    pub seq: u64,
    /// The message.
    pub message: Arc<Message>,
    /// When it expires (epoch milliseconds), or [`NEVER`].
    pub deadline: u64,
    /// Times it was handed out and came back (the delivery limit counts these).
    pub returns: u32,
    /// It was delivered before.
    pub redelivered: bool,
}

/// Where an entry's messages are.
#[derive(Debug)]
enum Held {
    /// One message, shared or not packed yet.
    Shared(Arc<Message>),
    /// A run of `Entry::count` records: the next ones of the level's [`PackedFifo`] that no
    /// earlier entry claims.
    Packed,
}

/// A [`Ready`] as the list keeps it, or a run of packed ones. For a run, `seq`, `deadline` and
/// `redelivered` are those of its first record (the run's place in the list, and what TTL
/// looks at when it is the head) and `count` is its length; a shared entry is one message and
/// `count` is its `returns` (packed messages have none: requeued ones are not packed).
#[derive(Debug)]
struct Entry {
    seq: u64,
    deadline: u64,
    count: u32,
    redelivered: bool,
    held: Held,
}

/// Runs stop at this length so that `count` fits in a `u32`.
const MAX_RUN: u32 = u32::MAX;

/// One priority level: entries in order, and the records of those that are packed.
#[derive(Debug, Default)]
struct Level {
    entries: VecDeque<Entry>,
    /// Boxed, and made on the first pack, so a queue that never has a backlog pays one word.
    packed: Option<Box<PackedFifo>>,
}

/// What taking a level's front message gave.
enum Popped {
    /// The message.
    Got(Ready),
    /// The level is empty.
    Empty,
    /// Its packed record is in a spilled segment that is not back yet (asked for).
    Pending,
    /// Messages (and their body bytes) that were lost: a spilled segment could not be read
    /// back, or the packed records and the entries disagree (a bug). Nothing was taken.
    Lost(u64, u64),
}

impl Level {
    /// Takes the front message; when it is packed in a spilled segment, waits for the segment
    /// when `wait` (reading it in this thread if need be), or asks for it and answers
    /// [`Popped::Pending`].
    fn pop(&mut self, wait: bool) -> Popped {
        let Some(e) = self.entries.front_mut() else {
            return Popped::Empty;
        };
        if let Held::Shared(_) = e.held {
            let Some(e) = self.entries.pop_front() else {
                return Popped::Empty;
            };
            let Held::Shared(message) = e.held else {
                return Popped::Empty;
            };
            return Popped::Got(Ready {
                seq: e.seq,
                message,
                deadline: e.deadline,
                returns: e.count,
                redelivered: e.redelivered,
            });
        }
        let Some(fifo) = self.packed.as_mut() else {
            let n = u64::from(e.count);
            self.entries.pop_front();
            lost();
            return Popped::Lost(n, 0);
        };
        if !fifo.ready(wait) {
            return Popped::Pending;
        }
        let (n, bytes) = fifo.take_lost();
        if n > 0 {
            self.forget(n);
            return Popped::Lost(n, bytes);
        }
        let Ok(Some((meta, message))) = fifo.pop_with(wait) else {
            let n = u64::from(e.count);
            self.entries.pop_front();
            lost();
            return Popped::Lost(n, 0);
        };
        e.count -= 1;
        match fifo.peek() {
            Some(next) if e.count > 0 => {
                e.seq = next.seq;
                e.deadline = next.deadline;
                e.redelivered = next.redelivered;
            }
            _ => {
                self.entries.pop_front();
            }
        }
        if fifo.is_empty() {
            self.packed = None;
        }
        Popped::Got(Ready {
            seq: meta.seq,
            message,
            deadline: meta.deadline,
            returns: 0,
            redelivered: meta.redelivered,
        })
    }

    /// Removes `n` lost records from the runs that claim the next records, and makes the
    /// first remaining run mirror its new first record.
    fn forget(&mut self, mut n: u64) {
        let mut i = 0;
        while n > 0 && i < self.entries.len() {
            let Some(e) = self.entries.get_mut(i) else {
                break;
            };
            if !matches!(e.held, Held::Packed) {
                i += 1;
                continue;
            }
            let take = n.min(u64::from(e.count));
            n -= take;
            // `take` is at most `e.count`, a u32.
            e.count -= take as u32;
            if e.count == 0 {
                self.entries.remove(i);
            }
        }
        let next = self.packed.as_mut().and_then(|f| f.peek());
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| matches!(e.held, Held::Packed))
            && let Some(next) = next
        {
            e.seq = next.seq;
            e.deadline = next.deadline;
            e.redelivered = next.redelivered;
        }
    }
}

/// Ready messages in delivery order: highest priority first, FIFO within a priority.
#[derive(Debug, Default)]
pub struct ReadyList {
    /// Index = priority level.
    levels: Vec<Level>,
    len: usize,
    bytes: u64,
    /// Where packed backlogs spill, given to each level's FIFO as it is made.
    spill: Option<SpillTo>,
}

impl ReadyList {
    /// A list with priority levels `0..=max_priority`.
    pub fn new(max_priority: u8) -> Self {
        ReadyList {
            levels: (0..=max_priority).map(|_| Level::default()).collect(),
            len: 0,
            bytes: 0,
            spill: None,
        }
    }

    /// An empty list with the same priority levels, spilling where this one does.
    pub fn empty_like(&self) -> Self {
        let mut list = ReadyList::new(self.levels.len().saturating_sub(1) as u8);
        list.spill = self.spill.clone();
        list
    }

    /// Lets the packed backlog spill past its budget to `to` (`None`: stop spilling).
    pub fn set_spill(&mut self, to: Option<SpillTo>) {
        for l in &mut self.levels {
            if let Some(f) = &mut l.packed {
                f.set_spill(to.clone());
            }
        }
        self.spill = to;
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes held (what `x-max-length-bytes` limits).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn level_of(&self, message: &Message) -> usize {
        (message.priority as usize).min(self.levels.len().saturating_sub(1))
    }

    /// Appends a message at its priority, packed when the list holds a backlog and no other
    /// queue shares the message (fan-out keeps sharing one copy).
    pub fn push_back(&mut self, mut r: Ready) {
        let level = self.level_of(&r.message);
        let backlog = self.len >= PACK_AFTER;
        self.len += 1;
        self.bytes += r.message.body.len() as u64;
        let Some(l) = self.levels.get_mut(level) else {
            return;
        };
        let meta = Meta {
            seq: r.seq,
            deadline: r.deadline,
            redelivered: r.redelivered,
        };
        let packs = backlog
            && r.returns == 0
            && Arc::get_mut(&mut r.message).is_some()
            && packed::packable(&r.message)
            && l.packed
                .get_or_insert_with(|| {
                    let mut f = Box::<PackedFifo>::default();
                    f.set_spill(self.spill.clone());
                    f
                })
                .push_with(&r.message, meta);
        if packs {
            if let Some(back) = l.entries.back_mut()
                && matches!(back.held, Held::Packed)
                && back.count < MAX_RUN
            {
                back.count += 1;
                return;
            }
            l.entries.push_back(Entry {
                seq: r.seq,
                deadline: r.deadline,
                count: 1,
                redelivered: r.redelivered,
                held: Held::Packed,
            });
            return;
        }
        l.entries.push_back(Entry {
            seq: r.seq,
            deadline: r.deadline,
            count: r.returns,
            redelivered: r.redelivered,
            held: Held::Shared(r.message),
        });
    }

    fn highest(&self) -> Option<usize> {
        self.levels.iter().rposition(|l| !l.entries.is_empty())
    }

    /// Takes the next message, reading its spilled segment in this thread if need be. Tests
    /// use it; the queue itself uses [`ReadyList::pop_front_ready`] and never reads the disk
    /// under its lock, with one exception left: a loading queue's *held* list (messages
    /// published while a stored backlog is unread), when it is moved behind a non-empty ready
    /// list or its head is dropped over `x-max-length`, reads what it spilled here.
    pub fn pop_front(&mut self) -> Option<Ready> {
        self.pop(true)
    }

    /// Takes the next message, or `None` while it is in a spilled segment that is not back yet
    /// (then [`ReadyList::head_pending`]): the segment has been asked for and the queue's waker
    /// runs when it is. Used by dispatch, `basic.get`, expiry and drop-head alike, so that no
    /// operation reads the disk while it holds the queue's lock.
    pub fn pop_front_ready(&mut self) -> Option<Ready> {
        self.pop(false)
    }

    /// After [`ReadyList::pop_front_ready`] answered `None`: true when that was because the
    /// next message is in a spilled segment not back yet (messages are ready).
    pub fn head_pending(&self) -> bool {
        self.len > 0
    }

    fn pop(&mut self, wait: bool) -> Option<Ready> {
        loop {
            let level = self.highest()?;
            let l = self.levels.get_mut(level)?;
            match l.pop(wait) {
                Popped::Got(r) => {
                    self.len -= 1;
                    self.bytes -= r.message.body.len() as u64;
                    return Some(r);
                }
                Popped::Empty | Popped::Pending => return None,
                Popped::Lost(n, bytes) => self.lose(n, bytes),
            }
        }
    }

    fn lose(&mut self, n: u64, bytes: u64) {
        self.len = self.len.saturating_sub(n as usize);
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    /// Takes, from the head of each level, every message whose deadline is at or before `now`.
    /// Like RabbitMQ, an expired message behind a live one waits until it reaches the head.
    /// A head in a spilled segment that is not back yet stops the level (the segment has been
    /// asked for; the queue expires again when it arrives): the disk is not read here.
    pub fn pop_expired(&mut self, now: u64, out: &mut Vec<Ready>) {
        let mut lost = (0, 0);
        for l in &mut self.levels {
            while l.entries.front().is_some_and(|e| e.deadline <= now) {
                match l.pop(false) {
                    Popped::Got(r) => {
                        self.len -= 1;
                        self.bytes -= r.message.body.len() as u64;
                        out.push(r);
                    }
                    Popped::Empty | Popped::Pending => break,
                    Popped::Lost(n, bytes) => {
                        lost.0 += n;
                        lost.1 += bytes;
                    }
                }
            }
        }
        self.lose(lost.0, lost.1);
    }

    /// The earliest deadline among the level heads, or [`NEVER`].
    pub fn next_deadline(&self) -> u64 {
        self.levels
            .iter()
            .filter_map(|l| l.entries.front().map(|e| e.deadline))
            .min()
            .unwrap_or(NEVER)
    }

    /// Puts settled-with-requeue messages back in their original order: ahead of the messages
    /// never delivered, behind none that came before them. They stay unpacked: packed records
    /// can only be appended.
    pub fn requeue(&mut self, mut back: Vec<Ready>) {
        // Newest first, so that the usual case (all belong at the front) inserts at index 0.
        back.sort_by_key(|r| std::cmp::Reverse(r.seq));
        for r in back {
            let level = self.level_of(&r.message);
            self.len += 1;
            self.bytes += r.message.body.len() as u64;
            let Some(l) = self.levels.get_mut(level) else {
                continue;
            };
            // Usually the requeued message belongs at the front; otherwise find its place. A run
            // sorts by its first record and never needs splitting: its records were never
            // delivered and came after every message of the level that was.
            let at = l.entries.partition_point(|x| x.seq < r.seq);
            l.entries.insert(
                at,
                Entry {
                    seq: r.seq,
                    deadline: r.deadline,
                    count: r.returns,
                    redelivered: r.redelivered,
                    held: Held::Shared(r.message),
                },
            );
        }
    }

    /// Segments spilled now.
    pub fn spilled(&self) -> usize {
        self.levels
            .iter()
            .filter_map(|l| l.packed.as_ref())
            .map(|f| f.spilled())
            .sum()
    }

    /// Drops every message, listing `(seq, store id)` of those with a store id in `stored` when
    /// asked. Packed ones are not unpacked.
    pub fn clear(&mut self, mut stored: Option<&mut Vec<(u64, MessageId)>>) {
        self.len = 0;
        self.bytes = 0;
        for l in &mut self.levels {
            let mut fifo = l.packed.take();
            for e in l.entries.drain(..) {
                let Some(out) = stored.as_deref_mut() else {
                    continue;
                };
                match e.held {
                    Held::Shared(m) => {
                        if let Some(id) = m.store_id() {
                            out.push((e.seq, id));
                        }
                    }
                    Held::Packed => {
                        for _ in 0..e.count {
                            let f = fifo.as_mut();
                            let Some((seq, id)) = f.and_then(|f| f.discard_with()) else {
                                break;
                            };
                            if let Some(id) = id {
                                out.push((seq, id));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
impl ReadyList {
    /// Entries held packed.
    pub fn packed_count(&self) -> usize {
        self.levels
            .iter()
            .flat_map(|l| &l.entries)
            .filter(|e| matches!(e.held, Held::Packed))
            .map(|e| e.count as usize)
            .sum()
    }

    /// Bytes allocated for packed segments in memory.
    pub fn in_memory(&self) -> usize {
        self.levels
            .iter()
            .filter_map(|l| l.packed.as_ref())
            .map(|f| f.allocated())
            .sum()
    }

    /// Segments kept in memory because the spill writer was too far behind.
    pub fn held_back(&self) -> usize {
        self.levels
            .iter()
            .filter_map(|l| l.packed.as_ref())
            .map(|f| f.held_back())
            .sum()
    }

    /// Entries kept (a run of packed messages is one).
    pub fn entry_count(&self) -> usize {
        self.levels.iter().map(|l| l.entries.len()).sum()
    }
}

/// A packed entry without its record: a bug, reported rather than panicking in a queue (the
/// byte count then keeps the lost body's size).
fn lost() {
    tracing::error!("a packed ready message has no record; it is lost");
    debug_assert!(false, "packed entries and records disagree");
}

#[cfg(test)]
#[path = "ready_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "ready_model_tests.rs"]
mod model_tests;
