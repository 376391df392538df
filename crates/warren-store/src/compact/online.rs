//! Online compaction: the broker gets sled's space back while it runs. sled 0.34 keeps its
//! files at their peak; when they grow past [`SledOptions::online_compaction`]'s ratio to the
//! live data (the backend counts live bytes exactly, from the old values sled returns), the
//! store's compactor thread copies the live records into a fresh database and swaps it in,
//! while writes go on.
//!
//! # Steps
//!
//! 1. open a fresh database in `sled.building/` and make it the backend's *mirror*: from then
//!    on every change applied to the database in use is applied to the copy too, under the
//!    backend's `mirror` lock;
//! 2. copy the database in use into it in chunks of [`CHUNK`] records, each under the same
//!    lock, so each record is either copied (its latest value) or, when it changed after its
//!    chunk, mirrored: a delete of a record not yet copied is a no-op on the copy, and the
//!    record is gone from the source by the time its chunk comes;
//! 3. flush the copy and fsync every file and directory under `sled.building/`; from here every
//!    flush of the store flushes both databases (the backend's `flush`), so the copy holds
//!    everything any `sync` confirmed;
//! 4. the **swap**, under the backend's `current` write lock: wait for running flushes of the
//!    two databases, close both (and wait for sled's file locks), rename `sled.building/` to
//!    `sled.compact/` (**the commit point**, once durable), `sled/` to `sled.old/`,
//!    `sled.compact/` to `sled/`, and reopen the copy there;
//! 5. fsync `<dir>`, remove `sled.old/`, fsync `<dir>` again.
//!
//! The swap's renames are not fsynced under the lock (no lock is held across an fsync but the
//! wait for flushes already running). Instead every flush after a swap fsyncs `<dir>` before
//! it flushes the database (the backend's `swaps`/`dir_synced` counters), so nothing written
//! only to the swapped-in database is confirmed before the renames are durable.
//!
//! # What kill -9 leaves
//!
//! Every open runs `finish_interrupted` (see the parent module), whose rules cover each state:
//!
//! - before the commit rename is durable (steps 1–4, or after 4 with nothing fsynced yet):
//!   `sled.building/` is deleted and `sled/` is the database in use before the swap. Every
//!   change any sync confirmed was applied to it (the mirror only ever receives changes in
//!   addition), and nothing was confirmed after the swap without the directory fsync that
//!   makes the commit durable.
//! - after the commit rename is durable: `sled.compact/` (with or without `sled/`, `sled.old/`)
//!   is swapped in, or `sled.old/` beside `sled/` deleted; the copy holds every record copied
//!   or mirrored, flushed at step 3 and by every later flush, and whatever was written to it
//!   under its final name.
//!
//! So a crash at any point loses nothing confirmed. What a crash may lose is what it may lose
//! anyway: changes no sync covered (a prefix of the log survives, as ever).
//!
//! # A swap that fails
//!
//! A swap whose renames or reopen fail leaves the backend without a database: the next write
//! to it suspends the store (syncs still append to the log), and the resume reopens the
//! database as an open would, finishing a swap past its commit point first
//! (`finish_committed_swap`): the copy is then the database, and the log is replayed into it.
//! (The resume reopened the old database until session 17: it replayed there what was
//! confirmed after the failed swap, and the next open swapped the copy in without it.)

#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{BUILDING, COMPACT, CompactPolicy, CompactReport, OLD, disk_usage, sync_tree};
use crate::format::{SLED_DIR, sync_dir};
use crate::sled_backend::SledBackend;
use crate::sled_db::{LockRelease, SledDb, open_db};
use crate::{SledOptions, StoreError};

/// Records copied per hold of the mirror lock: about a millisecond of writes held back.
pub(crate) const CHUNK: usize = 1024;

/// Where a test stops an online compaction, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnlineStep {
    /// The copy is complete and flushed (step 3); the copy is then closed, its files left.
    Copied,
    /// `sled.building` was renamed `sled.compact` and nothing else (inside step 4); the store
    /// is left failed, as a crashed process would be.
    Committed,
}

/// The last online compaction: when it ended, how long it took, and the live bytes it left.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastCompaction {
    /// When it ended.
    pub(crate) ended: Instant,
    /// How long it took.
    pub(crate) took: Duration,
    /// The live bytes when it ended (what it had copied, give or take the churn).
    pub(crate) live_bytes: u64,
}

/// Whether `policy` wants an online compaction now: the files are over its ratio to the live
/// data, and the last compaction ended at least as long ago as the next one should take (its
/// duration scaled by how much of the live data it copied is still there), and 10 s. A
/// compaction under heavy churn can end over the ratio (its copy mirrored the churn), so
/// another may be needed; the pause bounds the time spent compacting to about half when the
/// ratio cannot be reached. The scaling matters when the live data shrinks fast (a deep queue
/// drained at 80 k msg/s): a compaction that took 75 s while 3 GB were live must not hold back
/// the one-second copy of the few megabytes left a minute later.
pub(crate) fn wanted(
    policy: &CompactPolicy,
    disk: u64,
    live: (u64, u64),
    last: Option<LastCompaction>,
) -> bool {
    if !policy.wants(disk, live.0, live.1) {
        return false;
    }
    last.is_none_or(|last| {
        let share = (live.0 as f64 / last.live_bytes.max(1) as f64).min(1.0);
        last.ended.elapsed() >= last.took.mul_f64(share).max(MIN_PAUSE)
    })
}

/// The least time between the end of one online compaction and the start of the next.
const MIN_PAUSE: Duration = Duration::from_secs(10);

/// Compacts the database `backend` uses, in the store directory `dir`, while it serves (see
/// the module docs). `stop` is raised to abandon it (the store closes): the copy is discarded.
pub(crate) fn compact_online(
    backend: &SledBackend,
    dir: &Path,
    options: &SledOptions,
    stop: &AtomicBool,
) -> Result<Option<CompactReport>, StoreError> {
    let mut compaction = Compaction::begin(backend, dir, options)?;
    loop {
        if stop.load(Ordering::Relaxed) {
            compaction.abandon();
            return Ok(None);
        }
        if compaction.copy_some(CHUNK)? {
            break;
        }
    }
    compaction.finish(None).map(Some)
}

/// One online compaction, step by step (tests interleave the steps with store operations).
/// Dropped unfinished, it is abandoned: the mirror stops and the copy is deleted.
pub(crate) struct Compaction<'a> {
    backend: &'a SledBackend,
    dir: PathBuf,
    options: SledOptions,
    started: Instant,
    disk_before: u64,
    /// The copy, while it is the mirror.
    copy: Option<Arc<SledDb>>,
    /// The last key copied.
    after: Option<Vec<u8>>,
}

impl<'a> Compaction<'a> {
    /// Step 1: opens the copy in `sled.building/` and makes it the mirror.
    pub(crate) fn begin(
        backend: &'a SledBackend,
        dir: &Path,
        options: &SledOptions,
    ) -> Result<Self, StoreError> {
        let started = Instant::now();
        let disk_before = disk_usage(&dir.join(SLED_DIR))?;
        let building = dir.join(BUILDING);
        super::remove_dir_if_present(&building)?;
        let copy_options = SledOptions {
            background_flush: None, // the store's flushes flush the copy too
            ..options.clone()
        };
        let copy = Arc::new(open_db(&building, &copy_options)?);
        backend.start_mirror(copy.clone());
        Ok(Compaction {
            backend,
            dir: dir.to_path_buf(),
            options: options.clone(),
            started,
            disk_before,
            copy: Some(copy),
            after: None,
        })
    }

    /// Step 2, up to `limit` records; whether the copy is complete.
    pub(crate) fn copy_some(&mut self, limit: usize) -> Result<bool, StoreError> {
        match self.backend.copy_chunk(self.after.as_deref(), limit)? {
            Some(last) => {
                self.after = Some(last);
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// Steps 3 to 5 (the copy must be complete): flush, swap, clean up. Stopped after
    /// `test_stop`, the state is what a crash there would leave (the store fails at
    /// `Committed`).
    pub(crate) fn finish(
        mut self,
        test_stop: Option<OnlineStep>,
    ) -> Result<CompactReport, StoreError> {
        let (sled, building) = (self.dir.join(SLED_DIR), self.dir.join(BUILDING));
        if let Some(copy) = &self.copy {
            copy.flush()?;
        }
        sync_tree(&building)?;
        if test_stop == Some(OnlineStep::Copied) {
            self.crash();
            return Err(StoreError::Engine("stopped after the copy (test)".into()));
        }
        // The backend's mirror is now the only handle besides running flushes.
        self.copy = None;
        let (compact, old) = (self.dir.join(COMPACT), self.dir.join(OLD));
        let options = self.options.clone();
        self.backend.swap(|| {
            drop(LockRelease::for_dir(&building));
            drop(LockRelease::for_dir(&sled));
            fs::rename(&building, &compact)?;
            if test_stop == Some(OnlineStep::Committed) {
                return Err(StoreError::Engine("stopped after the commit (test)".into()));
            }
            fs::rename(&sled, &old)?;
            fs::rename(&compact, &sled)?;
            open_db(&sled, &options)
        })?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&old)?;
        sync_dir(&self.dir)?;
        let (live_bytes, records) = self.backend.live();
        Ok(CompactReport {
            disk_before: self.disk_before,
            disk_after: disk_usage(&sled)?,
            records,
            live_bytes,
            elapsed: self.started.elapsed(),
        })
    }

    /// Gives up: the database in use stands; the copy is closed and deleted.
    pub(crate) fn abandon(mut self) {
        self.discard(true);
    }

    /// Stops mirroring and closes the copy but leaves its files, as a crash would (tests).
    fn crash(&mut self) {
        self.discard(false);
    }

    fn discard(&mut self, delete: bool) {
        let Some(copy) = self.copy.take() else {
            return;
        };
        let mirrored = self.backend.stop_mirror();
        drop(mirrored);
        drop(copy);
        let building = self.dir.join(BUILDING);
        drop(LockRelease::for_dir(&building));
        if delete {
            let _ = fs::remove_dir_all(&building);
        }
    }
}

impl Drop for Compaction<'_> {
    fn drop(&mut self) {
        self.discard(true);
    }
}
