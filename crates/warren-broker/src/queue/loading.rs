//! A durable queue whose stored messages are still being read back after a restart.
//!
//! The broker opens its port once definitions are back; each durable queue starts *loading*:
//! it knows how many entries its store index holds and where they end ([`QueueExtent`]), and
//! takes them in batches ([`Queue::load_batch`]) from a background thread, or at once from a
//! `basic.get` that finds nothing loaded yet. Meanwhile it answers as the fully loaded queue
//! would:
//!
//! - counts (`queue.declare`, management, `x-max-length`) include the entries not loaded yet;
//! - a message published while loading takes a `seq` above every stored one and waits in
//!   `held`, behind them, until the last batch is in: so consumers see recovered messages
//!   first, in order, then the new ones;
//! - a publish to a length-limited queue loads the rest of it first, so the limit applies to
//!   what the loaded queue would hold (`drop-head` dead-letters at once); should a limit
//!   still find its head unloaded (a policy applied meanwhile), the next entries to load are
//!   counted as dropped (`drop_next`) and dead-lettered as they arrive;
//! - a purge drops the entries not loaded yet too: the purge then reads them on (`sweep_below`),
//!   removing them from the store instead of queueing them, before it answers;
//! - a deleted queue stops loading (the store dropped its entries with its record).
//!
//! Not exact while loading: `x-max-length-bytes` counts only loaded and held bodies (the
//! index does not record sizes), and an expired message not loaded yet is counted until it is
//! loaded and dropped. Both settle once the queue is loaded.
//!
//! Locks: a batch is read from the store holding only the queue's `loader` mutex (so two
//! loaders never read the same batch), then applied under the state lock. Lock order:
//! `loader`, then `state`; no state lock is held across store I/O.

use std::collections::VecDeque;
use std::sync::Arc;

use warren_store::{QueueExtent, StoreError};

use super::Queue;
use super::ready::Ready;
use super::state::{Effects, QueueState};
use crate::Message;
use crate::dead_letter::DeathReason;
use crate::timers::now_ms;

/// Entries read from the store per batch.
pub const LOAD_BATCH: usize = 4096;

/// What a loading queue knows about its entries not yet loaded.
#[derive(Debug, Default)]
pub(super) struct Loading {
    /// Stored entries not yet loaded (including `drop_next`).
    pub(super) unloaded: u64,
    /// Of the next entries loaded, how many are dropped over the length limit on arrival.
    pub(super) drop_next: u64,
    /// Messages published while loading, in order, behind every stored one.
    pub(super) held: VecDeque<Ready>,
    /// Body bytes of `held`.
    pub(super) held_bytes: u64,
    /// One past the last stored entry.
    pub(super) end: u64,
}

/// Where the loader of a queue is in its index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    /// The next `seq` to read.
    next: u64,
    /// One past the last stored entry: entries from here on were published after the restart.
    end: u64,
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
                ..Loading::default()
            });
        }
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
        self.loading.as_ref().map_or(0, |l| l.held_bytes)
    }

    /// True when the next message to hand out is stored and not loaded yet.
    pub(super) fn head_not_loaded(&self) -> bool {
        self.ready.is_empty() && self.loading.as_ref().is_some_and(|l| l.pending() > 0)
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
    pub(super) fn hold(&mut self, r: Ready) -> Option<Ready> {
        match &mut self.loading {
            Some(l) => {
                l.held_bytes += r.message.body.len() as u64;
                l.held.push_back(r);
                None
            }
            None => Some(r),
        }
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
        l.held_bytes -= r.message.body.len() as u64;
        self.die(r.seq, r.message, DeathReason::Maxlen, fx);
        true
    }

    /// A purge while loading: the entries not loaded are gone (the loader removes them from
    /// the store as it reads them), and so are the held ones (listed in `gone` when stored).
    /// Returns how many were dropped.
    pub(super) fn purge_unloaded(&mut self, fx: &mut Effects) -> usize {
        let Some(l) = self.loading.take() else {
            return 0;
        };
        self.sweep_below = l.end;
        for r in &l.held {
            if let Some(id) = self.stored(&r.message) {
                fx.gone.push((r.seq, id));
            }
        }
        (l.pending() + l.held.len() as u64) as usize
    }

    /// Applies one batch read from the store; `done` says the index has no more. Entries a
    /// purge dropped are listed in `gone`; those over the length limit die.
    pub(super) fn apply_loaded(&mut self, batch: Vec<Loaded>, done: bool, fx: &mut Effects) {
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
        let finished = self.loading.as_ref().is_some_and(|l| l.unloaded == 0);
        if done || finished {
            self.finish_loading();
        }
    }

    /// The last stored entry is in: the held messages follow it.
    fn finish_loading(&mut self) {
        let Some(l) = self.loading.take() else {
            return;
        };
        if l.unloaded > 0 {
            tracing::warn!(
                missing = l.unloaded,
                "a queue's index held fewer entries than counted before loading"
            );
        }
        for r in l.held {
            self.ready.push_back(r);
        }
    }
}

impl Queue {
    /// Makes the queue load its stored entries up to `extent` (read before anything was
    /// published to it), counting them at once.
    pub(crate) fn begin_loading(&self, extent: QueueExtent) {
        let mut loader = self.loader.lock();
        self.state.lock().begin_loading(extent);
        if extent.count > 0 {
            *loader = Some(Cursor {
                next: 0,
                end: extent.end_seq,
            });
        }
    }

    /// True while stored messages wait to be loaded (or removed after a purge).
    pub fn loading(&self) -> bool {
        self.loader.lock().is_some()
    }

    /// Reads the next batch of at most `max` stored entries and applies it; returns whether
    /// entries remain. Runs on the loader thread, or on a caller that needs the head now.
    pub fn load_batch(self: &Arc<Self>, max: usize) -> Result<bool, StoreError> {
        let mut loader = self.loader.lock();
        let Some(cursor) = *loader else {
            return Ok(false);
        };
        let Some(store) = self.store.as_ref().filter(|_| !self.is_deleted()) else {
            *loader = None;
            return Ok(false);
        };
        let entries = store.read_queue(&self.vhost_key, self.name.bytes(), cursor.next, max)?;
        let now = now_ms();
        let mut next = cursor.next;
        let mut batch = Vec::with_capacity(entries.len());
        let mut done = entries.len() < max.max(1);
        for e in entries {
            if e.seq >= cursor.end {
                done = true;
                break;
            }
            let message = Message::decode(&e.message, now)
                .map_err(|err| StoreError::Corrupt(format!("message {}: {err}", e.id)))?;
            next = e.seq.saturating_add(1);
            batch.push((e.seq, Arc::new(message.with_store_id(e.id)), e.redelivered));
        }
        done |= next >= cursor.end;
        *loader = (!done).then_some(Cursor { next, ..cursor });
        let mut s = self.state.lock();
        if self.is_deleted() {
            *loader = None;
            return Ok(false);
        }
        let mut fx = Effects::default();
        s.apply_loaded(batch, done, &mut fx);
        let now = self.now_if(&s, None);
        // No length check here: recovery keeps what was stored (as a loaded restart did); the
        // next publish applies the limit.
        s.dispatch(self, now, &mut fx);
        s.expire(now_ms(), &mut fx);
        drop(loader);
        self.conclude(s, fx);
        Ok(!done)
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
    /// loading). A store error leaves the queue as it is: the get finds what is loaded.
    pub(super) fn load_head(self: &Arc<Self>) {
        while self.state.lock().head_not_loaded() {
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
}
