//! The 64 KiB segments of a packed FIFO, in memory or spilled: when the FIFO's segments in
//! memory pass its budget, each segment it completes goes to the spill area
//! ([`crate::spill`]) and only a slot stays here; the FIFO's front reads them back ahead of need.
//! The front segment (being read) and the back one (being written) never leave memory. This
//! module does not know the records inside a segment (`super::packed` does), only each
//! segment's first record's [`Meta`], record count and body bytes, so that a segment that cannot
//! be read back is dropped with its counts (its messages are lost; logged and counted).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::packed::Meta;
use crate::spill::{Slot, SpillArea, Taken, Waker, Writes};

/// Bytes per segment: one allocation for a few hundred small messages.
pub const SEGMENT: usize = 64 * 1024;
/// Spilled segments asked for ahead of the front.
const READ_AHEAD: usize = 4;

/// Messages dropped because their spilled segment could not be read back, broker-wide.
pub static LOST_MESSAGES: AtomicU64 = AtomicU64::new(0);

/// Where a queue spills, and how to wake it when a segment it waits for arrives.
#[derive(Clone)]
pub struct SpillTo {
    /// The broker's spill area.
    pub area: Arc<SpillArea>,
    /// Runs the queue's dispatch again.
    pub wake: Option<Waker>,
    /// The queue's bytes handed to the writer and not written yet: its publishers pause while
    /// they are over the queue's share (`Queue::spill_pressure`, read without the queue's lock).
    pub writes: Arc<Writes>,
}

impl std::fmt::Debug for SpillTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillTo").finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Data {
    Mem(Vec<u8>),
    Out(Arc<Slot>),
}

#[derive(Debug)]
struct Segment {
    first: Meta,
    records: u64,
    body: u64,
    data: Data,
}

/// What the front segment is.
pub enum Front<'a> {
    /// In memory: its bytes.
    Ready(&'a [u8]),
    /// Spilled and asked for; the waker runs when it arrives.
    Pending,
    /// No segment.
    Empty,
}

/// A FIFO of segments.
#[derive(Debug, Default)]
pub struct Segments {
    list: VecDeque<Segment>,
    /// Bytes allocated for segments in memory.
    in_memory: usize,
    spill: Option<SpillTo>,
    /// Records and body bytes of segments lost since the last [`Segments::take_lost`].
    lost: (u64, u64),
    /// Segments popped from the front so far: a segment's number is this plus its index.
    popped: u64,
    /// Numbers of the segments kept in memory because the writer was too far behind, oldest
    /// first: spilled as soon as it takes them, so that they do not add up over a long fill.
    held: VecDeque<u64>,
}

impl Segments {
    /// Lets the FIFO spill to `to` (or stop spilling new segments, with `None`).
    pub fn set_spill(&mut self, to: Option<SpillTo>) {
        self.spill = to;
    }

    /// True when there is no segment.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Bytes allocated for segments in memory.
    #[cfg(test)]
    pub fn in_memory(&self) -> usize {
        self.in_memory
    }

    /// Segments kept in memory because the writer was too far behind.
    #[cfg(test)]
    pub fn held_back(&self) -> usize {
        self.held.len()
    }

    /// Segments that are spilled now.
    pub fn spilled(&self) -> usize {
        self.list
            .iter()
            .filter(|s| matches!(s.data, Data::Out(_)))
            .count()
    }

    /// Bytes of records held in memory.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.list
            .iter()
            .map(|s| match &s.data {
                Data::Mem(v) => v.len(),
                Data::Out(_) => 0,
            })
            .sum()
    }

    /// Room left in the back segment.
    pub fn back_room(&self) -> usize {
        match self.list.back().map(|s| &s.data) {
            Some(Data::Mem(v)) => SEGMENT.saturating_sub(v.len()),
            _ => 0,
        }
    }

    /// Starts a new back segment whose first record will be `first`, spilling the one it
    /// follows when the FIFO is over its budget.
    pub fn start(&mut self, first: Meta) {
        self.spill_completed();
        self.list.push_back(Segment {
            first,
            records: 0,
            body: 0,
            data: Data::Mem(Vec::with_capacity(SEGMENT)),
        });
        self.in_memory += SEGMENT;
    }

    /// The back segment's bytes, to append a record of `body` bytes to.
    pub fn back(&mut self, body: usize) -> Option<&mut Vec<u8>> {
        let s = self.list.back_mut()?;
        s.records += 1;
        s.body += body as u64;
        match &mut s.data {
            Data::Mem(v) => Some(v),
            Data::Out(_) => None,
        }
    }

    /// Spills the back segment (complete: a new one is about to start) when the segments in
    /// memory pass the budget, unless it is also the front; and the segments held back
    /// earlier, while the writer takes them.
    fn spill_completed(&mut self) {
        // A clone per segment, not per message.
        let Some(to) = self.spill.clone() else { return };
        if self.list.len() < 2 || (self.in_memory as u64) < to.area.budget() {
            return;
        }
        let back = self.popped + self.list.len() as u64 - 1;
        let spilled = self.spill_one(back);
        if spilled {
            while (self.in_memory as u64) >= to.area.budget()
                && let Some(&n) = self.held.front()
                && self.spill_one(n)
            {
                self.held.pop_front();
            }
        } else {
            // The newest, so `held` stays in order.
            self.held.push_back(back);
        }
    }

    /// Hands segment number `n` to the writer; false when the writer is too far behind.
    /// A segment that is no longer in memory, or is the front, counts as spilled.
    fn spill_one(&mut self, n: u64) -> bool {
        let Some(to) = &self.spill else { return false };
        let Some(i) = n.checked_sub(self.popped).filter(|&i| i > 0) else {
            return true;
        };
        let Some(s) = usize::try_from(i).ok().and_then(|i| self.list.get_mut(i)) else {
            return true;
        };
        let Data::Mem(v) = std::mem::replace(&mut s.data, Data::Mem(Vec::new())) else {
            return true;
        };
        match to.area.write_for(v, &to.writes) {
            Ok(slot) => {
                s.data = Data::Out(slot);
                self.in_memory -= SEGMENT;
                true
            }
            // The writer is behind: keep it here.
            Err(v) => {
                s.data = Data::Mem(v);
                false
            }
        }
    }

    /// Removes the front segment, keeping the numbering and `held` right.
    fn pop_list_front(&mut self) -> Option<Segment> {
        let s = self.list.pop_front()?;
        if self.held.front() == Some(&self.popped) {
            self.held.pop_front();
        }
        self.popped += 1;
        Some(s)
    }

    /// The front segment, read back first if it was spilled: waiting for the I/O thread's read
    /// (or reading it in this thread) when `wait`, otherwise asking for it and answering
    /// [`Front::Pending`]. A segment that cannot be read is dropped and counted in `lost`.
    pub fn front(&mut self, wait: bool) -> Front<'_> {
        loop {
            let Some(s) = self.list.front_mut() else {
                return Front::Empty;
            };
            let Data::Out(slot) = &s.data else {
                break;
            };
            let Some(to) = &self.spill else {
                // Spilled segments without an area cannot happen; treat as lost.
                self.drop_lost();
                continue;
            };
            let got = if wait {
                to.area.take_now(slot)
            } else {
                match to.area.take(slot, to.wake.clone()) {
                    Taken::Ready(v) => Some(v),
                    Taken::Pending => return Front::Pending,
                    Taken::Failed => None,
                }
            };
            match got {
                Some(v) => {
                    s.data = Data::Mem(v);
                    self.in_memory += SEGMENT;
                }
                None => self.drop_lost(),
            }
        }
        match self.list.front().map(|s| &s.data) {
            Some(Data::Mem(v)) => Front::Ready(v),
            _ => Front::Empty,
        }
    }

    fn drop_lost(&mut self) {
        if let Some(s) = self.pop_list_front() {
            let total = LOST_MESSAGES.fetch_add(s.records, Ordering::Relaxed) + s.records;
            tracing::error!(
                messages = s.records,
                lost_since_start = total,
                "a spilled segment could not be read back; its messages are dropped \
                 (warren_spill_lost_messages_total)"
            );
            self.lost.0 += s.records;
            self.lost.1 += s.body;
        }
    }

    /// Records and body bytes lost since the last call.
    pub fn take_lost(&mut self) -> (u64, u64) {
        std::mem::take(&mut self.lost)
    }

    /// The first record's [`Meta`] of the front segment, for a front that is not in memory.
    pub fn front_first(&self) -> Option<Meta> {
        self.list.front().map(|s| s.first)
    }

    /// True when the front segment is in memory.
    pub fn front_in_memory(&self) -> bool {
        matches!(self.list.front().map(|s| &s.data), Some(Data::Mem(_)))
    }

    /// Drops the front segment (all read) and asks for the next spilled ones.
    pub fn pop_front(&mut self) {
        if let Some(s) = self.pop_list_front()
            && let Data::Mem(_) = s.data
        {
            self.in_memory -= SEGMENT;
        }
        let Some(to) = &self.spill else { return };
        for s in self.list.iter().take(READ_AHEAD) {
            if let Data::Out(slot) = &s.data {
                to.area.load(slot, to.wake.clone());
            }
        }
    }
}
