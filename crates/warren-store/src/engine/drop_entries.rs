//! Deleting a queue's (or a vhost's) index entries in bounded chunks.
//!
//! A queue can hold millions of entries; deleting them in the one batch that deletes its
//! record held every key, and every planned change, in memory at once (17.8 GB for 2.7 M
//! entries). Instead the record (and bindings) go first, in one durable batch: that is the
//! commit point, after which the queue is gone and its extent dropped. The entries, and the
//! messages only they held, then go [`DROP_CHUNK`] at a time, each chunk applied
//! [`Atomicity::InOrder`] like message writes (message deletes after the entries that held
//! them), under the mutation lock for one chunk only, so other queues' writes go on between
//! chunks. Each chunk first hands earlier message writes to the backend (logged first, as
//! every hand-over): a chunk's message delete must not overtake the pending removal of that
//! message's other entry. The chunk's own changes are logged too (one record and fsync per
//! chunk), so a resume after a later backend failure replays them (see `wal`).
//!
//! The commit point also writes a `DROPPING` key naming the index prefix; the last chunk
//! deletes it. A crash, a failure (which fails the store) or a close between the two leaves
//! it, and the next open ([`Engine::finish_dropping`]) removes the rest of the entries
//! before the store serves, through the same chunks: after a crash the open's count of the
//! index has counted them; after a clean close the background scan's rules for partial counts apply as
//! to any write.

use crate::StoreError;
use crate::backend::{Backend, Changes};
use crate::engine::Engine;
use crate::keys::{self, DROPPING};
use crate::plan::Plan;

/// Index entries one chunk deletes at most.
pub(crate) const DROP_CHUNK: usize = 4096;

impl<B: Backend> Engine<B> {
    /// Runs `commit` (the durable batch deleting the records whose entries are under
    /// `prefix`), then removes those entries in chunks. A failure after the commit point
    /// fails the store: the next open removes what is left.
    pub(crate) fn delete_then_drop(
        &self,
        prefix: &[u8],
        commit: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.drop_chunks_after(prefix, commit, DROP_CHUNK, usize::MAX)
            .map(|_| ())
    }

    /// As [`Engine::delete_then_drop`], stopping after `chunks` chunks of `chunk` entries;
    /// answers whether entries may remain (a crash point for tests).
    pub(crate) fn drop_chunks_after(
        &self,
        prefix: &[u8],
        commit: impl FnOnce() -> Result<(), StoreError>,
        chunk: usize,
        chunks: usize,
    ) -> Result<bool, StoreError> {
        commit()?;
        {
            for _ in 0..chunks {
                match self.drop_chunk(prefix, chunk) {
                    Ok(true) => {}
                    Ok(false) => return Ok(false),
                    Err(e) => {
                        self.abandon();
                        return Err(e);
                    }
                }
            }
            Ok(true)
        }
    }

    /// Deletes queue `name` as a crash after `chunks` chunks of `chunk` entries leaves it:
    /// the record gone, some entries left; the engine then refuses everything, as
    /// [`Engine::abandon`]. For tests.
    pub(crate) fn crash_in_queue_delete(
        &self,
        vhost: &[u8],
        name: &[u8],
        chunk: usize,
        chunks: usize,
    ) -> Result<(), StoreError> {
        let prefix = keys::queue_index_prefix(vhost, name)?;
        let outcome = self.drop_chunks_after(
            &prefix,
            || self.delete_queue_record(vhost, name),
            chunk,
            chunks,
        );
        self.abandon();
        outcome.map(|_| ())
    }

    /// Deletes at most `limit` entries under `prefix`; answers whether entries may remain.
    fn drop_chunk(&self, prefix: &[u8], limit: usize) -> Result<bool, StoreError> {
        let _order = self.order.lock();
        let mut wal = self.wal.as_ref().map(|w| w.lock());
        if let Some(wal) = wal.as_mut() {
            let earlier = self.log_and_take(wal)?;
            self.hand_over(earlier)?;
        }
        let mut guard = self.shared.lock();
        self.running()?;
        // Writes that arrived since the hand-over above: usually none, so this seldom waits
        // for an fsync while holding `shared`.
        self.hand_over_holding(&mut guard, wal)?;
        let shared = &mut *guard;
        let (more, outcome) = {
            let mut plan = Plan::new(
                &self.backend,
                &shared.refs,
                shared.scan.as_ref(),
                &mut shared.extent_deltas,
            );
            let more = plan.delete_entries_chunk(prefix, limit)?;
            (more, plan.finish(shared.persisted_max)?)
        };
        let changes: Changes = outcome
            .changes
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect();
        shared
            .refs
            .commit(outcome.counts, outcome.held, outcome.entries_delta);
        shared.commit_extents(&outcome.dropped);
        // Released before the log's lock is taken again (the lock order is the log, then
        // `shared`) and its fsync.
        drop(guard);
        // Logged before the backend sees them, as every hand-over: a backend write that fails
        // later suspends the engine, and its resume reopens the backend, which may drop what
        // it had not flushed; the replay must bring these deletes back, or the entries would
        // return behind memory's back (found by `suspend_tests`). A crash instead leaves the
        // `DROPPING` key to the next open.
        if let Some(wal) = &self.wal {
            let mut wal = wal.lock();
            for (key, value) in &changes {
                wal.stage(key, value.as_ref());
            }
            wal.commit().inspect_err(|_| self.fail_if_poisoned(&wal))?;
        }
        self.hand_over(changes)?;
        Ok(more)
    }

    /// Finishes the removals a crash, a failure or a close interrupted (their `DROPPING`
    /// keys); called by the open, before the store serves.
    pub(crate) fn finish_dropping(&self) -> Result<(), StoreError> {
        let mut prefixes = Vec::new();
        self.backend.scan_prefix(&[DROPPING], &mut |k, _| {
            prefixes.push(k.get(1..).unwrap_or_default().to_vec());
            Ok(())
        })?;
        if prefixes.is_empty() {
            return Ok(());
        }
        for prefix in prefixes {
            self.delete_then_drop(&prefix, || Ok(()))?;
        }
        // Durable before the store serves: the open has no log attached yet, and a
        // `DROPPING` key that a crash brought back would remove the entries of a queue
        // declared again under the same name since (found by `suspend_tests`).
        self.backend.flush()
    }
}
