//! A durable queue whose stored messages are still being read back: after a restart, or once
//! its backlog ran deep while it ran.
//!
//! The broker opens its port once definitions are back; each durable queue starts *loading*:
//! it knows how many entries its store index holds and where they end ([`QueueExtent`]), and
//! takes them in batches from the loader's thread ([`crate::broker::Loader`]), or at once from
//! a `basic.get` that finds nothing loaded yet.
//!
//! Loading is *windowed*: the loader reads a queue's entries only while the queue holds fewer
//! than a window of them in memory ([`Window`]), then parks the queue; the queue asks for more
//! (through [`LoadRequests`]) once consumers took it below the window's low mark. So a deep
//! stored backlog stays in the store, where it already is, instead of being read into memory
//! (or written again to the spill area), and the queue stays loading until its last stored
//! entry is read. Meanwhile it answers as the fully loaded queue would:
//!
//! - counts (`queue.declare`, management, `x-max-length`) include the entries not loaded yet;
//! - a persistent message published while loading is in the store already: it extends the
//!   stored region (`end`) and leaves memory, to be read back in its turn. Any other (a
//!   transient one, or any after a transient one) waits in `held`, a ready list of its own
//!   that packs and spills like the queue's, behind every stored entry: so consumers see
//!   recovered messages first, in order, then the new ones;
//! - a publish to a length-limited queue loads the rest of it first, so the limit applies to
//!   what the loaded queue would hold (`drop-head` dead-letters at once); should a limit
//!   still find its head unloaded (a policy applied meanwhile), the next entries to load are
//!   counted as dropped (`drop_next`) and dead-lettered as they arrive;
//! - a priority queue is not windowed (a later stored entry may outrank every loaded one):
//!   it loads everything, as a queue did before windows;
//! - a purge drops the entries not loaded yet too: the purge then reads them on (`sweep_below`),
//!   removing them from the store instead of queueing them, before it answers;
//! - a deleted queue stops loading (the store dropped its entries with its record).
//!
//! Not exact while loading: `x-max-length-bytes` counts only loaded and held bodies (the
//! index does not record sizes), and an expired message not loaded yet is counted until it
//! is loaded and dropped (as RabbitMQ, which expires messages at the head only).
//!
//! A *running* durable queue that holds a full window in memory enters the same state when a
//! persistent message arrives ([`QueueState::leave_in_store`]): that message and the stored ones
//! after it stay in the store, where they already are, instead of in memory or written a second
//! time to the spill area (which keeps transient messages and the window's overflow). The queue
//! is parked at once and asks the loader, which lives as long as the broker, when its consumers
//! take it below the low mark; it leaves loading when the region is read, and may enter it
//! again. Not for priority queues nor length-limited ones.
//!
//! Locks: a batch is read from the store holding only the queue's `loader` mutex (so two
//! loaders never read the same batch), then applied under the state lock. Lock order:
//! `loader`, then `state`, then the [`LoadRequests`] list; no state lock is held across
//! store I/O.

use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};
use warren_store::{QueueExtent, StoreError};

use super::Queue;
use super::ready::{PACK_AFTER, Ready, ReadyList};
use super::state::{Effects, QueueState};
use crate::Message;
use crate::dead_letter::DeathReason;
use crate::timers::now_ms;

/// Entries read from the store per batch.
pub const LOAD_BATCH: usize = 4096;

/// How much of a queue's stored backlog the loader keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The loader parks a queue holding at least this many ready messages in memory...
    pub high: usize,
    /// ... or at least this many body bytes...
    pub high_bytes: u64,
    /// ... and reads on once it holds fewer than this many, and under half `high_bytes`.
    /// Reads are sized to the bytes left (from the last batch's mean body size), so large
    /// messages do not overshoot the window by a whole batch.
    pub low: usize,
}

impl Default for Window {
    /// Four batches, at most 16 MiB of bodies; more once fewer than two batches are left, so
    /// the next batch is read before a consumer reaches the end of the window.
    fn default() -> Self {
        Window {
            high: 4 * LOAD_BATCH,
            high_bytes: 16 << 20,
            low: 2 * LOAD_BATCH,
        }
    }
}

/// Queues asking the loader to read on: their window fell below its low mark.
///
/// Lock order: taken last, under a queue's state lock (never the other way round).
#[derive(Debug, Default)]
pub struct LoadRequests {
    asked: Mutex<Vec<Weak<Queue>>>,
    wake: Condvar,
}

impl LoadRequests {
    /// Asks the loader to read on for `queue`.
    pub(super) fn ask(&self, queue: Weak<Queue>) {
        self.asked.lock().push(queue);
        self.wake.notify_one();
    }

    /// True when some queue asked and the loader did not take it yet.
    pub fn waiting(&self) -> bool {
        !self.asked.lock().is_empty()
    }

    /// The queues that asked since the last call; waits up to `wait` for one when none did.
    pub fn take(&self, wait: Option<std::time::Duration>) -> Vec<Weak<Queue>> {
        let mut asked = self.asked.lock();
        if asked.is_empty()
            && let Some(wait) = wait
        {
            self.wake.wait_for(&mut asked, wait);
        }
        std::mem::take(&mut *asked)
    }
}

/// What a loader's turn on a queue left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStep {
    /// Entries remain and the window has room: read on.
    More,
    /// The window is full: the queue asks again (through [`LoadRequests`]) when it wants more.
    Parked,
    /// Everything is loaded (or the queue is gone).
    Done,
}

/// What a loading queue knows about its entries not yet loaded.
#[derive(Debug, Default)]
pub(super) struct Loading {
    /// Stored entries not yet loaded (including `drop_next`).
    pub(super) unloaded: u64,
    /// Of the next entries loaded, how many are dropped over the length limit on arrival.
    pub(super) drop_next: u64,
    /// Messages published while loading that are not in the stored region, in order, behind
    /// every stored entry.
    pub(super) held: ReadyList,
    /// One past the last entry of the stored region (grows as persistent messages join it).
    pub(super) end: u64,
    /// Where to ask for more once parked, and below which count and body bytes; `None`
    /// while the loader has the queue in hand.
    parked: Option<(Arc<LoadRequests>, usize, u64)>,
    /// Mean body size of the last batch loaded (0 before the first): sizes the next read so
    /// that a window of large messages is not overshot by a whole batch.
    mean_body: u64,
}

/// Where the loader of a queue is in its index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    /// The next `seq` to read.
    next: u64,
}

/// A stored entry read back, decoded.
type Loaded = (u64, Arc<Message>, bool);

impl Loading {
    /// Entries still to come that count as ready.
    fn pending(&self) -> u64 {
        self.unloaded.saturating_sub(self.drop_next)
    }
}

impl QueueState {
    /// Starts loading `extent`'s entries: new messages go after them.
    pub(super) fn begin_loading(&mut self, extent: QueueExtent) {
        self.next_seq = self.next_seq.max(extent.end_seq);
        if extent.count > 0 {
            self.loading = Some(Loading {
                unloaded: extent.count,
                end: extent.end_seq,
                held: self.ready.empty_like(),
                ..Loading::default()
            });
        }
    }

    /// A running durable queue that already holds a full `window` in memory leaves the stored
    /// message `r` (and the stored ones after it) in the store, where it is already, instead of
    /// keeping it in memory or writing it again to the spill area: the queue begins loading
    /// from `r` on, exactly as after a restart, parked until its consumers take it below the
    /// window's low mark. Not for priority queues (any later message may outrank the loaded
    /// ones) nor length-limited ones (a publish to a loading one loads the rest first).
    pub(super) fn leave_in_store(&mut self, r: &Ready) {
        let Some((requests, window)) = &self.store_backlog else {
            return;
        };
        // Not while a purge's sweep is still to read the region before (it starts from
        // `resume_at` too).
        if self.loading.is_some()
            || self.sweep_below > 0
            || self.resume_at.is_some()
            || (self.ready.len() < window.high && self.ready.bytes() < window.high_bytes)
            || self.args.max_priority.is_some()
            || self.args.max_length.is_some()
            || self.args.max_length_bytes.is_some()
            || self.stored(&r.message).is_none()
        {
            return;
        }
        let parked = Some((requests.clone(), window.low, window.high_bytes / 2));
        self.loading = Some(Loading {
            end: r.seq,
            held: self.ready.empty_like(),
            parked,
            ..Loading::default()
        });
        self.resume_at = Some(r.seq);
    }

    /// Where the loader starts, for a queue that began loading while running (once).
    fn take_resume(&mut self) -> Option<u64> {
        self.resume_at.take()
    }

    /// True while stored entries wait to be loaded.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// Ready messages not in `ready` yet: stored ones not loaded, and those held behind them.
    pub(super) fn not_loaded(&self) -> u64 {
        self.loading
            .as_ref()
            .map_or(0, |l| l.pending() + l.held.len() as u64)
    }

    /// Body bytes held behind the loading entries.
    pub(super) fn held_bytes(&self) -> u64 {
        self.loading.as_ref().map_or(0, |l| l.held.bytes())
    }

    /// True when the next message to hand out is not in `ready` yet: stored and not loaded,
    /// or held behind the stored ones.
    pub(super) fn head_not_loaded(&self) -> bool {
        if self.priority_loading() {
            // Any stored entry not read yet may outrank every loaded one.
            return true;
        }
        self.ready.is_empty()
            && self
                .loading
                .as_ref()
                .is_some_and(|l| l.pending() > 0 || !l.held.is_empty())
    }

    /// True while a priority queue still reads stored entries back: it delivers nothing until
    /// they are all in, since any of them may outrank what is loaded (RabbitMQ recovers a
    /// queue before it delivers, so recovered messages come out in priority order).
    pub(super) fn priority_loading(&self) -> bool {
        self.args.max_priority.is_some() && self.loading.as_ref().is_some_and(|l| l.pending() > 0)
    }

    /// True when a publish finds a length-limited queue loading: it loads the rest first, so
    /// that consumers took what they would have taken already before the limit is checked,
    /// and `drop-head` drops (and dead-letters) the oldest messages at once. Such a queue holds
    /// at most its limit, unless a policy lowered it while the broker was down.
    pub(super) fn limit_needs_loading(&self) -> bool {
        self.loading.is_some()
            && (self.args.max_length.is_some() || self.args.max_length_bytes.is_some())
    }

    /// While loading, keeps a new message behind the stored ones; otherwise gives it back.
    /// A message this queue stored, with nothing held before it, joins the stored region
    /// instead: the loader reads it back in its turn, and memory does not keep it meanwhile.
    pub(super) fn hold(&mut self, r: Ready) -> Option<Ready> {
        let stored = self.stored(&r.message).is_some();
        let Some(l) = &mut self.loading else {
            return Some(r);
        };
        if stored && l.held.is_empty() && r.seq >= l.end {
            l.unloaded += 1;
            l.end = r.seq + 1;
        } else {
            l.held.push_back(r);
        }
        None
    }

    /// Drops the message at the head of the queue when nothing is loaded: the next stored
    /// entry (dropped when it arrives), or the oldest held one. False when there is none.
    pub(super) fn drop_unloaded_head(&mut self, fx: &mut Effects) -> bool {
        let Some(l) = &mut self.loading else {
            return false;
        };
        if l.pending() > 0 {
            l.drop_next += 1;
            return true;
        }
        let Some(r) = l.held.pop_front() else {
            return false;
        };
        self.die(r.seq, r.message, DeathReason::Maxlen, fx);
        true
    }

    /// A purge while loading: the entries not loaded are gone (the loader removes them from
    /// the store as it reads them), and so are the held ones (listed in `gone` when stored).
    /// Returns how many were dropped.
    pub(super) fn purge_unloaded(&mut self, fx: &mut Effects) -> usize {
        let Some(mut l) = self.loading.take() else {
            return 0;
        };
        self.sweep_below = l.end;
        let held = l.held.len() as u64;
        l.held.clear(self.durable.then_some(&mut fx.gone));
        (l.pending() + held) as usize
    }

    /// Where the stored region ends, and how many entries to read next (0: none remain),
    /// before a read: at most `max`, and with a `window`, about what its bytes have room for.
    fn load_plan(&self, max: usize, window: Option<&Window>) -> (u64, usize) {
        match &self.loading {
            Some(l) if l.unloaded == 0 => (l.end, 0),
            Some(l) => {
                let room = window.map_or(u64::MAX, |w| {
                    let room = w.high_bytes.saturating_sub(self.ready.bytes());
                    match l.mean_body {
                        // Sizes unknown yet: a small first read to learn them.
                        0 => 64,
                        mean => room / mean,
                    }
                });
                (
                    l.end,
                    max.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1),
                )
            }
            // After a purge: the sweep reads on to `sweep_below`.
            None if self.sweep_below > 0 => (self.sweep_below, max),
            None => (self.sweep_below, 0),
        }
    }

    /// Applies one batch read from the store. Entries a purge dropped are listed in `gone`;
    /// those over the length limit die.
    fn apply_loaded(&mut self, batch: Vec<Loaded>, fx: &mut Effects) {
        if let Some(l) = self.loading.as_mut().filter(|_| !batch.is_empty()) {
            let bytes: u64 = batch.iter().map(|(_, m, _)| m.body.len() as u64).sum();
            l.mean_body = (bytes / batch.len() as u64).max(1);
        }
        for (seq, message, redelivered) in batch {
            let Some(l) = self.loading.as_mut().filter(|l| l.unloaded > 0) else {
                // Purged (or counted wrong): not this queue's any more.
                if seq < self.sweep_below
                    && let Some(id) = self.stored(&message)
                {
                    fx.gone.push((seq, id));
                }
                continue;
            };
            l.unloaded -= 1;
            if l.drop_next > 0 {
                l.drop_next -= 1;
                self.die(seq, message, DeathReason::Maxlen, fx);
            } else {
                self.push_recovered(seq, message, redelivered);
            }
        }
    }

    /// Ends loading once the stored region is read (`read_all`), unless `windowed` and a deep
    /// `held` list would have to move behind what is still ready: then it waits until the
    /// ready list is empty and swaps instead. Returns whether loading is over.
    fn try_finish(&mut self, read_all: bool, windowed: bool) -> bool {
        let Some(l) = &self.loading else {
            return true;
        };
        if !read_all && l.unloaded > 0 {
            return false;
        }
        if windowed && !self.ready.is_empty() && l.held.len() > PACK_AFTER {
            return false;
        }
        let Some(mut l) = self.loading.take() else {
            return true;
        };
        if l.unloaded > 0 {
            tracing::warn!(
                missing = l.unloaded,
                "a queue's index held fewer entries than counted before loading"
            );
        }
        if self.ready.is_empty() {
            // No copy, no read of what the held list spilled.
            std::mem::swap(&mut self.ready, &mut l.held);
        } else {
            while let Some(r) = l.held.pop_front() {
                self.ready.push_back(r);
            }
        }
        true
    }

    /// True when the window is full: the loader parks the queue, which asks `requests` for
    /// more once it holds fewer than `window.low` ready messages (or none, when only the
    /// held list is left to take over).
    fn park(&mut self, window: &Window, requests: &Arc<LoadRequests>) -> bool {
        let full = self.ready.len() >= window.high
            || self.ready.bytes() >= window.high_bytes
            || self.loading.as_ref().is_some_and(|l| l.unloaded == 0);
        let Some(l) = self.loading.as_mut().filter(|_| full) else {
            return false;
        };
        let low = if l.unloaded == 0 { 1 } else { window.low };
        l.parked = Some((requests.clone(), low, window.high_bytes / 2));
        true
    }

    /// When a parked queue's window fell below its low mark: the loader to ask (once).
    pub(super) fn wants_loading(&mut self) -> Option<Arc<LoadRequests>> {
        let l = self.loading.as_mut()?;
        let (_, low, low_bytes) = l.parked.as_ref()?;
        if self.ready.len() >= *low || self.ready.bytes() >= *low_bytes {
            return None;
        }
        l.parked.take().map(|(requests, _, _)| requests)
    }
}

impl Queue {
    /// Makes the queue load its stored entries up to `extent` (read before anything was
    /// published to it), counting them at once.
    pub(crate) fn begin_loading(&self, extent: QueueExtent) {
        let mut loader = self.loader.lock();
        self.state.lock().begin_loading(extent);
        if extent.count > 0 {
            *loader = Some(Cursor { next: 0 });
        }
    }

    /// Ready messages in memory (loaded), as opposed to [`Queue::message_count`], which
    /// also counts stored entries a loading queue has not read yet.
    pub fn messages_in_memory(&self) -> usize {
        self.state.lock().ready.len()
    }

    /// True while stored messages wait to be loaded (or removed after a purge).
    pub fn loading(&self) -> bool {
        let loader = self.loader.lock();
        loader.is_some() || self.state.lock().is_loading()
    }

    /// Reads the next batch of at most `max` stored entries and applies it; returns whether
    /// entries remain. Runs on a caller that needs the head now, or loads the rest.
    pub fn load_batch(self: &Arc<Self>, max: usize) -> Result<bool, StoreError> {
        Ok(self.load_next(max, None)? != LoadStep::Done)
    }

    /// The loader's turn: reads the next batch of at most `max` entries, applies it, and
    /// parks the queue once `window` is full (priority queues load everything).
    pub fn load_windowed(
        self: &Arc<Self>,
        max: usize,
        window: &Window,
        requests: &Arc<LoadRequests>,
    ) -> Result<LoadStep, StoreError> {
        self.load_next(max, Some((window, requests)))
    }

    fn load_next(
        self: &Arc<Self>,
        max: usize,
        park: Option<(&Window, &Arc<LoadRequests>)>,
    ) -> Result<LoadStep, StoreError> {
        let mut loader = self.loader.lock();
        let resumed = match *loader {
            Some(_) => None,
            None => self.state.lock().take_resume(),
        };
        let Some(cursor) = loader.or(resumed.map(|next| Cursor { next })) else {
            return Ok(LoadStep::Done);
        };
        // Kept from here on: a read that fails (a store suspended by a full disk) must leave
        // the position taken out of the state for the next try, or the region is never read.
        *loader = Some(cursor);
        let Some(store) = self.store.as_ref().filter(|_| !self.is_deleted()) else {
            *loader = None;
            return Ok(LoadStep::Done);
        };
        let (end, max) = self
            .state
            .lock()
            .load_plan(max.max(1), park.map(|(w, _)| w));
        let to_read = max > 0;
        let mut batch = Vec::new();
        let mut next = cursor.next;
        // Nothing left below `end` past this batch, as the store stood at the read.
        let mut exhausted = !to_read;
        if to_read {
            let entries = store.read_queue(&self.vhost_key, self.name.bytes(), cursor.next, max)?;
            exhausted = entries.len() < max;
            let now = now_ms();
            batch.reserve(entries.len());
            for e in entries {
                if e.seq >= end {
                    // Past the region (a held message, or one that joined the region after
                    // `end` was read: the next batch reads it).
                    exhausted = true;
                    break;
                }
                let message = Message::decode(&e.message, now)
                    .map_err(|err| StoreError::Corrupt(format!("message {}: {err}", e.id)))?;
                next = e.seq.saturating_add(1);
                batch.push((e.seq, Arc::new(message.with_store_id(e.id)), e.redelivered));
            }
        }
        let mut s = self.state.lock();
        if self.is_deleted() {
            *loader = None;
            return Ok(LoadStep::Done);
        }
        let mut fx = Effects::default();
        s.apply_loaded(batch, &mut fx);
        // A region that grew since the read was planned has more to read.
        let (end_now, _) = s.load_plan(1, None);
        let read_all = (exhausted && end_now == end) || next >= end_now;
        let windowed = park.is_some() && s.args.max_priority.is_none();
        let step = if s.try_finish(read_all, windowed) {
            if s.sweep_below > 0 && !read_all {
                LoadStep::More
            } else {
                LoadStep::Done
            }
        } else if let Some((window, requests)) = park.filter(|_| windowed)
            && s.park(window, requests)
        {
            LoadStep::Parked
        } else {
            LoadStep::More
        };
        if step == LoadStep::Done {
            // A purge's sweep, if any, read everything below its mark.
            s.sweep_below = 0;
        }
        *loader = (step != LoadStep::Done).then_some(Cursor { next });
        let now = self.now_if(&s, None);
        // No length check here: recovery keeps what was stored (as a loaded restart did); the
        // next publish applies the limit.
        s.dispatch(self, now, &mut fx);
        s.expire(now_ms(), &mut fx);
        drop(loader);
        self.conclude(s, fx);
        Ok(step)
    }

    /// After a purge while loading: reads the rest of the stored entries, removing them.
    pub(super) fn sweep_purged(self: &Arc<Self>) {
        if self.state.lock().sweep_below == 0 {
            return;
        }
        self.load_rest();
    }

    /// Loads every stored entry still to load, on the caller's thread.
    pub(super) fn load_rest(self: &Arc<Self>) {
        loop {
            match self.load_batch(LOAD_BATCH) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::error!(queue = %self.name, error = %e, "cannot load stored messages");
                    return;
                }
            }
        }
    }

    /// Loads until the next message to hand out is in memory (a `basic.get` on a queue still
    /// loading, after [`GetResult::Load`](super::GetResult::Load)). Reads the store: never on
    /// the async runtime. A store error leaves the queue as it is, and is returned: the caller
    /// tries again later ([`StoreError::Suspended`]: the store resumes by itself) or answers
    /// with what is loaded.
    pub fn load_head(self: &Arc<Self>) -> Result<(), StoreError> {
        while self.state.lock().head_not_loaded() {
            match self.load_batch(LOAD_BATCH) {
                Ok(true) => {}
                // Done, yet the head still waits to be loaded: nothing will load it, and a
                // caller trying again would never stop.
                Ok(false) if self.state.lock().head_not_loaded() => {
                    tracing::error!(queue = %self.name, "the stored head cannot be loaded");
                    return Err(StoreError::Engine(format!(
                        "queue {}: loading ended before its head",
                        self.name
                    )));
                }
                Ok(false) => return Ok(()),
                Err(e) => {
                    tracing::error!(queue = %self.name, error = %e, "cannot load stored messages");
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
