//! The store itself, generic over its [`Backend`]: every rule (key layout, reference counts,
//! cascades, validation, group commit) lives here once, so [`SledStore`](crate::SledStore) and
//! [`MemoryStore`](crate::MemoryStore) cannot drift apart.
//!
//! One mutex serialises mutations (plan, install counts). Message writes stop there: their
//! changes wait in a [`Pending`] list, where an acknowledged message cancels its own writes,
//! until a definition change, a read of a queue, the pending-size bound, or the store's drain
//! timer hands them to the backend (see `pending`). A second mutex keeps those hand-overs in
//! order. With a write-ahead log (the sled store; see `wal`), a `sync` only logs the list and
//! the hand-overs log it first; without one (the memory store), a `sync` hands the list over
//! and flushes the backend. Lock order is `order`, then the log, then `shared`. Definition
//! changes hand the list over and log and apply their own batch under all three, so they see
//! every earlier message write and the log's order is the backend's.
//!
//! Message writes are applied [`Atomicity::InOrder`] in a crash-safe order (see `plan`), so a
//! crash may leave messages no entry references; the open scan deletes them. That scan runs
//! in the background while the store serves (see `scan`): with a log, the open reads each
//! queue's extent from the keys the log keeps in step with the entries (see `extents`), after
//! a crash too; without one, an open after a crash ([`Engine::open`]) counts the queue indexes
//! before returning and leaves the sweep of the messages to the background.
//!
//! **Suspension.** A backend write or flush that fails (a full disk: sled then refuses
//! everything until reopened) after every change it was given reached the log *suspends* the
//! engine instead of failing it: memory and the log still hold the whole history. Message
//! writes keep joining the pending list (an ack still cancels its message), while syncs,
//! reads and definition changes are refused with [`StoreError::Suspended`];
//! [`Engine::resume`], retried by the store's drain thread, writes the log record a failed
//! append kept, reopens the backend, replays the log into it, hands it every pending change,
//! flushes, and runs again. A failure that leaves memory and the disk disagreeing (changes
//! taken from the list but not logged, a log append that cannot be taken back) *fails* the
//! engine: every later call is refused with
//! [`StoreError::Failed`] until the store is reopened, whose replay then finishes it.

mod definitions;
mod drop_entries;
#[cfg(test)]
mod drop_entries_tests;
mod extents;
mod messages;
mod pending;
mod scan;
#[cfg(test)]
mod suspend_tests;
#[cfg(test)]
mod tests;
pub(crate) mod wal;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::backend::{Atomicity, Backend, Changes};
use crate::group_commit::GroupCommit;
use crate::keys::{self, IndexValue};
use crate::plan::{ExtentDeltas, Plan};
use crate::refs::RefTable;
use crate::{MessageId, QueueExtent, StoreError};

use extents::{Extents, Tracked};

use pending::Pending;
pub(crate) use pending::Planned;
pub(crate) use scan::ScanState;
use wal::Wal;

/// [`Engine::health`]: serving.
const RUNNING: u8 = 0;
/// [`Engine::health`]: a backend write or flush failed with everything it was given logged;
/// [`Engine::resume`] brings it back (see the module doc, "Suspension").
const SUSPENDED: u8 = 1;
/// [`Engine::health`]: memory and the disk may disagree, or the engine was closed.
const FAILED: u8 = 2;

/// Pending changes beyond which a write hands them to the backend itself. A message is two
/// (its bytes and its index entry): 32 Ki messages, as many as the byte bound holds at 1 KiB.
/// At 16 Ki, a consumer a few thousand messages behind made the publisher's own write hand
/// the whole list to sled on the connection's thread (7 % of the persistent path's CPU).
const MAX_PENDING_CHANGES: usize = 64 * 1024;
/// Pending value bytes beyond which a write hands them to the backend itself.
const MAX_PENDING_BYTES: usize = 32 * 1024 * 1024;

/// State changed only under the mutation lock.
struct Shared {
    refs: RefTable,
    /// The value of the `max_message_id` meta key on disk: no id above it was ever stored.
    persisted_max: Option<MessageId>,
    /// Message writes the backend has not seen yet.
    pending: Pending,
    /// Every queue's extent (entries, end_seq), kept by each write: `queue_extent` reads
    /// nothing. With a log they are kept in the store too (see `extents`); without, a clean
    /// close records them for the next open.
    extents: Extents,
    /// The extents are kept in the store (`keys::EXTENT`, see `extents`).
    keep_extents: bool,
    /// Prefixes of the queues whose extent changed since it was last staged (`extents`).
    unstaged: Vec<Vec<u8>>,
    /// The background open scan, until it ends.
    scan: Option<ScanState>,
    /// The extent changes of the plan being built (reused: see `ExtentDeltas`).
    extent_deltas: ExtentDeltas,
    /// Bytes of keys and values, and number, of the messages and index entries the open
    /// scan found.
    scanned_live: (u64, u64),
}

impl Shared {
    /// Logs the pending changes not logged yet (staged into `wal`, not committed), the
    /// unstaged extents first set among them (see `extents`).
    fn log_new(&mut self, wal: &mut Wal) {
        self.stage_extents();
        self.pending.log_new(|k, v| wal.stage(k, v));
    }
}

/// A store over a backend.
pub(crate) struct Engine<B: Backend> {
    backend: B,
    shared: Mutex<Shared>,
    /// Held while pending changes go to the backend, so hand-overs keep the order of writes.
    order: Mutex<()>,
    /// The write-ahead log of message writes, if the store keeps one (see `wal`).
    wal: Option<Mutex<Wal>>,
    next_id: AtomicU64,
    commit: GroupCommit,
    /// [`RUNNING`], [`SUSPENDED`] or [`FAILED`] (see the module doc).
    health: AtomicU8,
    /// True once the open scan is over (`Shared::scan` is `None`).
    scan_over: AtomicBool,
}

impl<B: Backend> Engine<B> {
    /// Rebuilds the in-memory state from the backend. After a clean close (the
    /// `clean_extents` key) that is the extents and the id high-water mark only, and the
    /// scan of the index and messages runs later ([`Engine::scan_step`]). Otherwise it
    /// rebuilds reference counts and extents from one scan of the queue indexes before
    /// returning, and leaves the messages that a crash in the middle of a write left without
    /// index entries to the background scan's sweep. The same scans count the live bytes that
    /// decide whether compaction is worth it.
    pub(crate) fn open(backend: B) -> Result<Self, StoreError> {
        let persisted_max = read_max_id(&backend)?;
        if let Some(clean) = backend.get(keys::CLEAN_EXTENTS_KEY)? {
            let extents = scan::decode_extents(&clean)?;
            // Gone before any write: a crash from now on must not find stale extents.
            backend.apply(
                vec![(keys::CLEAN_EXTENTS_KEY.to_vec(), None)],
                Atomicity::Batch,
            )?;
            backend.flush()?;
            let (boundary, next, _) = id_boundary(&backend, persisted_max)?;
            let engine = Self::with_state(backend, persisted_max, next, extents);
            {
                let mut shared = engine.shared.lock();
                shared.scan = Some(ScanState::Counting {
                    boundary,
                    pos: vec![keys::INDEX],
                });
            }
            engine.scan_over.store(false, Ordering::Release);
            engine.finish_dropping()?;
            return Ok(engine);
        }
        let mut refs = RefTable::default();
        let (mut live, mut records) = (0u64, 0u64);
        let mut extents = Extents::default();
        backend.scan_prefix(&[keys::INDEX], &mut |k, v| {
            refs.add_reference(IndexValue::decode(v)?.id);
            let seq = keys::index_seq(k)?;
            let prefix = k.get(..k.len() - 8).unwrap_or_default();
            // Keys come in order, so a queue's entries are contiguous: one lookup per entry.
            let extent = match extents.get_mut(prefix) {
                Some(t) => &mut t.extent,
                None => &mut extents.entry(prefix.to_vec()).or_default().extent,
            };
            extent.count += 1;
            extent.end_seq = seq.saturating_add(1);
            live += (k.len() + v.len()) as u64;
            records += 1;
            Ok(())
        })?;
        // The messages themselves (most of the bytes) are swept in the background, as after a
        // clean close: the counts are exact already, so the scan starts at its second phase.
        let (boundary, next, last_stored) = id_boundary(&backend, persisted_max)?;
        let engine = Self::with_state(backend, persisted_max, next, extents);
        {
            let mut shared = engine.shared.lock();
            shared.refs = refs;
            shared.scanned_live = (live, records);
            // No message stored: nothing to sweep.
            if last_stored.is_some() {
                shared.scan = Some(ScanState::Sweeping { boundary, next: 0 });
                engine.scan_over.store(false, Ordering::Release);
            }
        }
        engine.finish_dropping()?;
        Ok(engine)
    }

    /// An engine with its scan over (the caller sets what differs).
    fn with_state(
        backend: B,
        persisted_max: Option<MessageId>,
        next: u64,
        extents: Extents,
    ) -> Self {
        Engine {
            backend,
            shared: Mutex::new(Shared {
                refs: RefTable::default(),
                persisted_max,
                pending: Pending::default(),
                extents,
                keep_extents: false,
                unstaged: Vec::new(),
                scan: None,
                extent_deltas: ExtentDeltas::default(),
                scanned_live: (0, 0),
            }),
            order: Mutex::new(()),
            wal: None,
            next_id: AtomicU64::new(next),
            commit: GroupCommit::default(),
            health: AtomicU8::new(RUNNING),
            scan_over: AtomicBool::new(true),
        }
    }

    /// The engine, with `wal` logging its message writes from now on.
    pub(crate) fn with_wal(mut self, wal: Wal) -> Self {
        self.wal = Some(Mutex::new(wal));
        self
    }

    /// A store over a backend known to be empty (nothing to scan).
    pub(crate) fn empty(backend: B) -> Self {
        Self::with_state(backend, None, 1, Extents::default())
    }

    /// The backend, for store-specific operations.
    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    /// Bytes of keys and values, and number, of the messages and index entries found by
    /// the open scan (definitions are left out: they are few and small); `None` while the
    /// background scan runs.
    pub(crate) fn live_at_open(&self) -> Option<(u64, u64)> {
        self.scan_done().then(|| self.scanned_live())
    }

    /// A queue's extent, by its index prefix.
    pub(crate) fn extent(&self, prefix: &[u8]) -> QueueExtent {
        let shared = self.shared.lock();
        shared
            .extents
            .get(prefix)
            .map(|t| t.extent)
            .unwrap_or_default()
    }

    /// Plans a mutation with `build` and installs its counts. Message writes
    /// ([`Atomicity::InOrder`]) join the pending list; definition changes
    /// ([`Atomicity::Batch`]) first hand the pending list to the backend, because their plans
    /// read the backend (a queue's entries), then apply their own batch.
    fn mutate(
        &self,
        atomicity: Atomicity,
        build: impl FnOnce(&mut Plan<'_, B>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let batch = atomicity == Atomicity::Batch;
        let _order = batch.then(|| self.order.lock());
        // A definition change hands the pending list to the backend first (logged first, as
        // every hand-over: its plan reads the backend), and keeps the log locked until its own
        // batch is logged and applied, so the log's order is the backend's.
        let wal = match (&self.wal, batch) {
            (Some(wal), true) => {
                let mut wal = wal.lock();
                let earlier = self.log_and_take(&mut wal)?;
                self.hand_over(earlier)?;
                Some(wal)
            }
            _ => None,
        };
        let mut wal = wal;
        let mut shared = self.shared.lock();
        // A suspended engine still takes message writes (into the pending list, for the
        // resume to hand over), nothing else.
        let suspended = match self.health.load(Ordering::Acquire) {
            RUNNING => false,
            SUSPENDED if !batch => true,
            _ => return Err(self.refusal()),
        };
        if batch {
            // Writes that arrived since that hand-over: logged first, as every hand-over.
            if let Some(wal) = wal.as_deref_mut() {
                shared.log_new(wal);
                wal.commit().inspect_err(|_| self.fail_if_poisoned(wal))?;
            }
            let earlier = shared.pending.take();
            self.hand_over(earlier)?;
        }
        let outcome = {
            let shared = &mut *shared;
            let mut plan = Plan::new(
                &self.backend,
                &shared.refs,
                shared.scan.as_ref(),
                &mut shared.extent_deltas,
            );
            build(&mut plan)?;
            plan.finish(shared.persisted_max)?
        };
        // A hold or a release that is not the last reference changes counts only.
        if outcome.changes.is_empty() && outcome.counts.is_empty() {
            return Ok(());
        }
        let mut over_bound = false;
        if batch {
            let changes: Changes = outcome
                .changes
                .into_iter()
                .map(|p| (p.key, p.value))
                .collect();
            match wal.as_deref_mut() {
                // Logged first: once its record is durable the change is made, and a backend
                // that fails it (a full disk) suspends the engine, whose resume replays it.
                Some(wal) => {
                    for (key, value) in &changes {
                        wal.stage(key, value.as_ref());
                    }
                    if let Err(e) = wal.commit() {
                        // Refused: the record must not reach the log with a later commit.
                        wal.discard();
                        self.fail_if_poisoned(wal);
                        return Err(e);
                    }
                    self.commit.count_flush();
                    if self.backend.apply(changes, atomicity).is_err() {
                        self.suspend();
                    }
                }
                // Nothing of the batch is in memory yet, and sled's batches are atomic.
                None => self
                    .backend
                    .apply(changes, atomicity)
                    .inspect_err(|_| self.suspend())?,
            }
        } else {
            shared.pending.absorb(outcome.changes);
            over_bound = shared.pending.len() > MAX_PENDING_CHANGES
                || shared.pending.bytes() > MAX_PENDING_BYTES;
        }
        shared
            .refs
            .commit(outcome.counts, outcome.held, outcome.entries_delta);
        shared.commit_extents(&outcome.dropped);
        if let Some(reserved) = outcome.reserved {
            shared.persisted_max = shared.persisted_max.max(Some(reserved));
        }
        if let Some(max) = outcome.max_put {
            self.next_id
                .fetch_max(max.saturating_add(1), Ordering::Relaxed);
        }
        drop(shared);
        // With a log, the batch's record made it durable: sled is flushed by the next
        // checkpoint, which deletes the record after (see `wal`). Without one, the caller
        // flushes (`mutate_durably`).
        drop(wal);
        if over_bound && !suspended {
            self.drain()?;
        }
        Ok(())
    }

    /// The error a call gets from an engine that is not running.
    fn refusal(&self) -> StoreError {
        match self.health.load(Ordering::Acquire) {
            SUSPENDED => StoreError::Suspended,
            _ => StoreError::Failed,
        }
    }

    /// `Ok` while the engine runs, else its refusal.
    fn running(&self) -> Result<(), StoreError> {
        match self.health.load(Ordering::Acquire) {
            RUNNING => Ok(()),
            _ => Err(self.refusal()),
        }
    }

    /// Whether the engine serves ([`RUNNING`]), waits for [`Engine::resume`] ([`SUSPENDED`])
    /// or refuses everything ([`FAILED`]).
    pub(crate) fn health(&self) -> u8 {
        self.health.load(Ordering::Acquire)
    }

    /// Whether the engine failed for good (or was closed): only a reopen brings it back.
    pub(crate) fn has_failed(&self) -> bool {
        self.health() == FAILED
    }

    /// A backend write or flush failed, every change it was given being in the log: the
    /// engine suspends (see the module doc). Without a log nothing can be replayed: it fails.
    fn suspend(&self) {
        if self.wal.is_none() {
            self.health.store(FAILED, Ordering::Release);
            return;
        }
        if self
            .health
            .compare_exchange(RUNNING, SUSPENDED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(
                "the store cannot write to its database (a full disk?): confirms fail and \
                 message writes wait in memory until it can write again"
            );
        }
    }

    /// A failed log append that could not be taken back fails the engine.
    fn fail_if_poisoned(&self, wal: &Wal) {
        if wal.poisoned() {
            self.health.store(FAILED, Ordering::Release);
        }
    }

    /// Applies pending changes taken from the list, all of them logged (or, without a log,
    /// nothing to lose on a failure that fails the store); a failure suspends the engine (a
    /// prefix of them may have reached the backend: the resume's replay completes it).
    fn hand_over(&self, changes: Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.backend
            .apply(changes, Atomicity::InOrder)
            .inspect_err(|_| self.suspend())
    }

    /// Logs the pending changes not logged yet (one record, one `fdatasync`, with the
    /// caller's `wal` guard, released after it), then hands every pending change to the
    /// backend, all while the caller holds `shared`: for the steps whose reads must see every
    /// write decided so far (the open scan, a deletion's chunk).
    fn hand_over_holding(
        &self,
        shared: &mut Shared,
        mut wal: Option<MutexGuard<'_, Wal>>,
    ) -> Result<(), StoreError> {
        if let Some(wal) = wal.as_deref_mut() {
            shared.log_new(wal);
            wal.commit().inspect_err(|_| self.fail_if_poisoned(wal))?;
        }
        drop(wal);
        let pending = shared.pending.take();
        self.hand_over(pending)
    }

    /// Hands every pending message write to the backend (not a flush: see `sync`), logging
    /// first what is not logged yet.
    pub(crate) fn drain(&self) -> Result<(), StoreError> {
        let _order = self.order.lock();
        let changes = match &self.wal {
            Some(wal) => self.log_and_take(&mut wal.lock())?,
            None => {
                let mut shared = self.shared.lock();
                self.running()?;
                shared.pending.take()
            }
        };
        self.hand_over(changes)
    }

    /// Logs the pending changes, then takes the whole list for the backend. The first append
    /// does not take: if it fails (a full disk) the list stays and the store goes on; only a
    /// failure of the second, which logs what arrived in between, fails the store.
    fn log_and_take(&self, wal: &mut MutexGuard<'_, Wal>) -> Result<Changes, StoreError> {
        self.log_pending(wal, false)?;
        self.log_pending(wal, true)
    }

    /// Logs the pending changes not logged yet (one record, one `fdatasync`); with `take`, also
    /// takes the whole list for the backend. The caller holds the log's lock.
    fn log_pending(
        &self,
        wal: &mut MutexGuard<'_, Wal>,
        take: bool,
    ) -> Result<Changes, StoreError> {
        let taken = {
            let mut shared = self.shared.lock();
            self.running()?;
            shared.log_new(wal);
            if take {
                shared.pending.take()
            } else {
                Vec::new()
            }
        };
        if let Err(e) = wal.commit() {
            if wal.poisoned() || take {
                // A hand-over cannot put its changes back in the list: the store fails, the
                // log keeps what it logged before.
                self.health.store(FAILED, Ordering::Release);
            }
            return Err(e);
        }
        Ok(taken)
    }

    /// Flushes the backend after a hand-over of logged changes; a failure suspends the engine
    /// (see `wal`, "Failures"): the log files stay, and the resume replays them.
    fn flush_or_suspend(&self) -> Result<(), StoreError> {
        self.backend.flush().inspect_err(|_| self.suspend())
    }

    /// Hands every pending write to the backend, flushes it, and deletes the log files that
    /// covered them (see `wal`). Without a log, a drain.
    pub(crate) fn checkpoint(&self) -> Result<(), StoreError> {
        let _order = self.order.lock();
        match &self.wal {
            Some(wal) => {
                let (changes, done) = {
                    let mut wal = wal.lock();
                    let changes = self.log_and_take(&mut wal)?;
                    (changes, wal.rotate())
                };
                self.finish_checkpoint(changes, done)
            }
            None => {
                let changes = self.shared.lock().pending.take();
                self.hand_over(changes)
            }
        }
    }

    /// The drain thread's periodic checkpoint (see `wal`, "Aged checkpoints"): logs every
    /// pending change, closes the log file, and hands to the backend only the changes logged
    /// before the previous aged checkpoint; then flushes the backend and deletes the log files
    /// up to the one the previous aged checkpoint closed. A change waits one to two intervals
    /// instead of zero to one before it reaches sled, so a message acked within that time
    /// never does. Without a log, a drain.
    pub(crate) fn checkpoint_aged(&self) -> Result<(), StoreError> {
        let Some(wal) = &self.wal else {
            return self.checkpoint();
        };
        let _order = self.order.lock();
        let (older, through) = self.take_aged(&mut wal.lock())?;
        self.hand_over(older)?;
        let Some(generation) = through else {
            // Nothing logged to retire; the key space may still have work only a flush
            // advances (the message log's recount, reclaim and relocation after a restart).
            if self.backend.wants_flush() {
                self.flush_or_suspend()?;
            }
            return Ok(());
        };
        self.flush_or_suspend()?;
        let dir = wal.lock().dir().to_path_buf();
        wal::remove_through(&dir, generation)
    }

    /// Brings a suspended engine back (see the module doc, "Suspension"): writes the record a
    /// failed log append kept, reopens the backend, replays the log files into it (then
    /// deletes them), logs and hands it every pending change, flushes it, and runs again.
    /// Answers whether the engine runs: not yet while the log's filesystem lacks the room
    /// to replay it (see `wal::room_to_replay`); an error leaves it suspended, to be tried
    /// again (or failed, if the log cannot be written again).
    pub(crate) fn resume(&self) -> Result<bool, StoreError> {
        let Some(wal) = &self.wal else {
            return Ok(self.health() == RUNNING);
        };
        let _order = self.order.lock();
        let mut wal = wal.lock();
        match self.health() {
            RUNNING => return Ok(true),
            SUSPENDED => {}
            _ => return Err(StoreError::Failed),
        }
        // The kept record may hold the only trace of a change the list has dropped since (the
        // delete that cancelled a logged creation): it must be in a file before the replay.
        wal.commit().inspect_err(|_| self.fail_if_poisoned(&wal))?;
        wal.rotate();
        if !wal::room_to_replay(wal.dir())? {
            return Ok(false);
        }
        self.backend.reopen()?;
        let dir = wal.dir().to_path_buf();
        let generation = wal::recover(&dir, &self.backend)?;
        *wal = Wal::new(dir, generation)?;
        // The backend now holds every logged change, so the whole list goes to it, the
        // deletes and values kept for the log only included, logged first into the new log.
        let changes = {
            let mut shared = self.shared.lock();
            shared.stage_extents();
            shared.pending.log_new_uncompacted(|k, v| wal.stage(k, v));
            wal.commit().inspect_err(|_| self.fail_if_poisoned(&wal))?;
            shared.pending.take_all()
        };
        if !changes.is_empty() {
            self.backend.apply(changes, Atomicity::InOrder)?;
        }
        self.backend.flush()?;
        if let Some(generation) = wal.rotate() {
            wal::remove_through(wal.dir(), generation)?;
        }
        self.health.store(RUNNING, Ordering::Release);
        tracing::info!("the store writes to its database again");
        Ok(true)
    }

    /// The first half of an aged checkpoint, under `order` and the log: logs the pending
    /// changes, closes the log file, takes the changes logged before the previous aged
    /// checkpoint and answers them with the generation whose files they cover.
    fn take_aged(
        &self,
        wal: &mut MutexGuard<'_, Wal>,
    ) -> Result<(Changes, Option<u64>), StoreError> {
        self.log_pending(wal, false)?;
        let through = wal.rotate_aged();
        let mut shared = self.shared.lock();
        self.running()?;
        // Taken after the log's fsync and under its lock: every change taken is durable in a
        // file up to `through`, and no sync logs in between.
        Ok((shared.pending.take_aged(), through))
    }

    /// An aged checkpoint stopped as a crash stops it: after the first `applied` of the
    /// changes it took reached the backend (and were flushed), before the log files went;
    /// the engine then refuses everything, as [`Engine::abandon`]. For tests.
    pub(crate) fn crash_in_aged_checkpoint(&self, applied: usize) -> Result<(), StoreError> {
        let _order = self.order.lock();
        if let Some(wal) = &self.wal {
            let (mut older, _) = self.take_aged(&mut wal.lock())?;
            older.truncate(applied);
            self.hand_over(older)?;
            self.backend.flush()?;
        }
        self.abandon();
        Ok(())
    }

    /// A checkpoint stopped as a crash stops it: after the first `applied` of its changes
    /// reached the backend (and were flushed), before the log files went; the engine then
    /// refuses everything, as [`Engine::abandon`]. For tests.
    pub(crate) fn crash_in_checkpoint(&self, applied: usize) -> Result<(), StoreError> {
        let _order = self.order.lock();
        if let Some(wal) = &self.wal {
            let mut changes = {
                let mut wal = wal.lock();
                let changes = self.log_pending(&mut wal, true)?;
                wal.rotate();
                changes
            };
            changes.truncate(applied);
            self.hand_over(changes)?;
            self.backend.flush()?;
        }
        self.abandon();
        Ok(())
    }

    /// The second half of a checkpoint, the log released: apply, flush, delete the log files
    /// up to `done` (nothing was logged since the last checkpoint if `None`).
    fn finish_checkpoint(&self, changes: Changes, done: Option<u64>) -> Result<(), StoreError> {
        self.hand_over(changes)?;
        let Some(generation) = done else {
            return Ok(());
        };
        self.flush_or_suspend()?;
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        let dir = wal.lock().dir().to_path_buf();
        wal::remove_through(&dir, generation)
    }

    /// Group-committed: with a log, logs the pending changes; without, drains them and
    /// flushes the backend.
    fn sync_backend(&self) -> Result<(), StoreError> {
        match &self.wal {
            Some(wal) => self.commit.sync(|| {
                self.log_pending(&mut wal.lock(), false)?;
                Ok(())
            }),
            None => self.commit.sync(|| {
                self.drain()?;
                self.backend.flush()
            }),
        }
    }

    /// A mutation durable when it returns: how definitions change. With a log, the batch's
    /// own record made it so (a failure to write it to the backend afterwards suspends the
    /// engine, the change standing: see `wal`); without one, the backend is flushed.
    fn mutate_durably(
        &self,
        build: impl FnOnce(&mut Plan<'_, B>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.mutate(Atomicity::Batch, build)?;
        if self.wal.is_some() {
            return Ok(());
        }
        self.sync_backend()
    }
}

/// The highest message id stored or reserved (the open scan's boundary), the next id to hand
/// out, and the last stored id. The meta key is rewritten (reserving ids ahead) whenever a put
/// passes it, after the message itself: the last message key (orphans included) covers a crash
/// between the two.
fn id_boundary<B: Backend>(
    backend: &B,
    persisted_max: Option<MessageId>,
) -> Result<(MessageId, u64, Option<MessageId>), StoreError> {
    let last_stored = match backend.last_key(&[keys::MESSAGE])? {
        Some(k) => Some(keys::message_id(&k)?),
        None => None,
    };
    let boundary = persisted_max.max(last_stored).unwrap_or(0);
    let next = boundary
        .checked_add(1)
        .ok_or_else(|| StoreError::corrupt("message ids exhausted"))?;
    Ok((boundary, next, last_stored))
}

/// The `max_message_id` meta key, if stored.
fn read_max_id<B: Backend>(backend: &B) -> Result<Option<MessageId>, StoreError> {
    Ok(match backend.get(keys::MAX_ID_KEY)? {
        Some(v) => {
            Some(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                StoreError::corrupt("max_message_id is not 8 bytes")
            })?))
        }
        None => None,
    })
}

impl<B: Backend> Drop for Engine<B> {
    fn drop(&mut self) {
        // A clean close keeps what was written and records the extents for a quick open;
        // after a failure (or an explicit close) there is nothing safe to add.
        // A suspended engine tries once more (the disk may have room by now); else the log
        // stays for the next open to replay.
        if self.health() == SUSPENDED {
            let _ = self.resume();
        }
        if self.health() == RUNNING {
            let _ = self.close();
        }
    }
}

/// Implements [`MessageStore`](crate::MessageStore) and
/// [`DefinitionStore`](crate::DefinitionStore) for a wrapper type by delegating to its
/// `engine` field.
macro_rules! delegate_to_engine {
    ($store:ty) => {
        impl $crate::MessageStore for $store {
            fn write(&self, ops: &[$crate::MessageOp]) -> Result<(), $crate::StoreError> {
                self.engine.write(ops)
            }
            fn sync(&self) -> Result<(), $crate::StoreError> {
                self.engine.sync()
            }
            fn load_queue(
                &self,
                vhost: &[u8],
                queue: &[u8],
            ) -> Result<Vec<$crate::StoredEntry>, $crate::StoreError> {
                self.engine.load_queue(vhost, queue)
            }
            fn visit_queue(
                &self,
                vhost: &[u8],
                queue: &[u8],
                visit: &mut dyn FnMut($crate::StoredEntry) -> Result<(), $crate::StoreError>,
            ) -> Result<(), $crate::StoreError> {
                self.engine.visit_queue(vhost, queue, visit)
            }
            fn read_queue(
                &self,
                vhost: &[u8],
                queue: &[u8],
                from: u64,
                max: usize,
            ) -> Result<Vec<$crate::StoredEntry>, $crate::StoreError> {
                self.engine.read_queue(vhost, queue, from, max)
            }
            fn queue_extent(
                &self,
                vhost: &[u8],
                queue: &[u8],
            ) -> Result<$crate::QueueExtent, $crate::StoreError> {
                self.engine.queue_extent(vhost, queue)
            }
            fn next_message_id(&self) -> Result<$crate::MessageId, $crate::StoreError> {
                self.engine.next_message_id()
            }
            fn stats(&self) -> $crate::StoreStats {
                self.engine.stats()
            }
        }

        impl $crate::DefinitionStore for $store {
            fn put_vhost(&self, name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.put_vhost(name)
            }
            fn delete_vhost(&self, name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_vhost(name)
            }
            fn put_user(&self, user: &$crate::UserRecord) -> Result<(), $crate::StoreError> {
                self.engine.put_user(user)
            }
            fn delete_user(&self, name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_user(name)
            }
            fn put_exchange(
                &self,
                vhost: &[u8],
                x: &$crate::ExchangeRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_exchange(vhost, x)
            }
            fn delete_exchange(&self, vhost: &[u8], name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_exchange(vhost, name)
            }
            fn put_queue(
                &self,
                vhost: &[u8],
                q: &$crate::QueueRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_queue(vhost, q)
            }
            fn delete_queue(&self, vhost: &[u8], name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_queue(vhost, name)
            }
            fn put_binding(
                &self,
                vhost: &[u8],
                b: &$crate::BindingRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_binding(vhost, b)
            }
            fn delete_binding(
                &self,
                vhost: &[u8],
                b: &$crate::BindingRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.delete_binding(vhost, b)
            }
            fn put_vhost_limits(
                &self,
                vhost: &[u8],
                limits: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_vhost_limits(vhost, limits)
            }
            fn delete_vhost_limits(&self, vhost: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_vhost_limits(vhost)
            }
            fn put_parameter(
                &self,
                vhost: &[u8],
                p: &$crate::ParameterRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_parameter(vhost, p)
            }
            fn delete_parameter(
                &self,
                vhost: &[u8],
                component: &[u8],
                name: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.engine.delete_parameter(vhost, component, name)
            }
            fn put_global_parameter(
                &self,
                name: &[u8],
                value: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_global_parameter(name, value)
            }
            fn delete_global_parameter(&self, name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_global_parameter(name)
            }
            fn load_definitions(&self) -> Result<$crate::Definitions, $crate::StoreError> {
                self.engine.load_definitions()
            }
        }
    };
}
pub(crate) use delegate_to_engine;
