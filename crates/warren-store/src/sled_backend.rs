//! [`Backend`] on sled 0.34: the default tree holds the whole key space, so every definition
//! change is one `apply_batch` (atomic, and cheaper than a multi-tree transaction).
//!
//! Message writes do not use `apply_batch`. In sled 0.34.7 every batch first rolls the log
//! buffer (a write and `sync_file_range` handed to sled's thread pool), which made a
//! one-message write about 8x slower than plain inserts here, and, worse, made sled's
//! known thread-pool deadlock (a file truncation queued behind log writes that wait for the
//! segment accountant the truncating thread holds; fixed upstream only after 0.34.7, sled PR
//! #1269) reproducible within 100,000 writes. Message writes are therefore applied as ordered
//! single-key inserts ([`Atomicity::InOrder`]); definition changes, which are rare and must not
//! be torn, keep `apply_batch`.
//!
//! The backend also carries what the online compaction (`compact::online`) needs: the live
//! bytes and records of the key space, kept exact from the old values sled returns, a *mirror*
//! database that receives every change while the compaction copies into it, and the swap that
//! makes the copy the database in use.
//!
//! Lock order: `current` (read or write), then `mirror`. Neither is held across an fsync except
//! the `current` write lock during the swap, which waits for flushes already running on the
//! databases it closes (see `compact::online`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::backend::{Atomicity, Backend, Changes, Visit, VisitWhile};
use crate::format::sync_dir;
use crate::packed::{INDEX_BLOCK, MESSAGE_BLOCK};
use crate::sled_db::{LockRelease, SledDb, open_db};
use crate::{SledOptions, StoreError};

/// Opens the sled database in `sled_dir` with `options`. Drop the backend before the
/// [`LockRelease`]: waiting for the lock is what makes the directory reusable at once.
pub(crate) fn open_sled(
    sled_dir: &Path,
    options: &SledOptions,
) -> Result<(SledBackend, LockRelease), StoreError> {
    let db = open_db(sled_dir, options)?;
    Ok((
        SledBackend::new(db, sled_dir, options),
        LockRelease::for_dir(sled_dir),
    ))
}

/// sled behind a swappable handle, with live-data accounting and an optional mirror.
pub(crate) struct SledBackend {
    /// The database in use; `None` only if reopening it after a swap failed (then every call
    /// fails and the engine refuses mutations; the files on disk are complete).
    current: RwLock<Option<Arc<SledDb>>>,
    /// The compaction's copy while it is built: every change applied to `current` is applied
    /// to it as well, under this lock, which the copy also holds for each chunk it copies.
    mirror: Mutex<Option<Arc<SledDb>>>,
    /// Where `current` lives (`<dir>/sled`).
    sled_dir: PathBuf,
    /// How `current` was opened, for [`Backend::reopen`].
    options: SledOptions,
    /// Bytes of every key and value in the key space (definitions start uncounted: they are
    /// few and small, see `set_live`).
    live_bytes: AtomicU64,
    /// Keys in the key space (as `live_bytes`).
    live_records: AtomicU64,
    /// Swaps done; `dir_synced` is the number whose renames are known durable. A flush
    /// fsyncs the store directory first while they differ, so nothing written to a swapped-in
    /// database is confirmed before the rename that committed it is durable.
    swaps: AtomicU64,
    dir_synced: AtomicU64,
}

impl SledBackend {
    fn new(db: SledDb, sled_dir: &Path, options: &SledOptions) -> Self {
        SledBackend {
            current: RwLock::new(Some(Arc::new(db))),
            mirror: Mutex::new(None),
            sled_dir: sled_dir.to_path_buf(),
            options: options.clone(),
            live_bytes: AtomicU64::new(0),
            live_records: AtomicU64::new(0),
            swaps: AtomicU64::new(0),
            dir_synced: AtomicU64::new(0),
        }
    }

    /// The database in use.
    pub(crate) fn current(&self) -> Result<Arc<SledDb>, StoreError> {
        self.current
            .read_recursive()
            .clone()
            .ok_or(StoreError::Failed)
    }

    /// Starts the live-data count from what the engine's open scans found.
    pub(crate) fn set_live(&self, bytes: u64, records: u64) {
        self.live_bytes.store(bytes, Ordering::Relaxed);
        self.live_records.store(records, Ordering::Relaxed);
    }

    /// Bytes of keys and values, and number of keys, in the key space now.
    pub(crate) fn live(&self) -> (u64, u64) {
        (
            self.live_bytes.load(Ordering::Relaxed),
            self.live_records.load(Ordering::Relaxed),
        )
    }

    fn account(&self, key: &[u8], old: Option<usize>, new: Option<usize>) {
        // Blocks of packed messages and entries are counted by `Packed`, per message and
        // entry, as the open scan counts them.
        if matches!(key.first(), Some(&(MESSAGE_BLOCK | INDEX_BLOCK))) {
            return;
        }
        let size = |v: Option<usize>| v.map_or(0, |v| (key.len() + v) as u64);
        let (before, after) = (size(old), size(new));
        if after >= before {
            self.live_bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            saturating_sub(&self.live_bytes, before - after);
        }
        match (old.is_some(), new.is_some()) {
            (false, true) => {
                self.live_records.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => saturating_sub(&self.live_records, 1),
            _ => {}
        }
    }

    /// Makes `db` the mirror: from now on it receives every change.
    pub(crate) fn start_mirror(&self, db: Arc<SledDb>) {
        let _current = self.current.read_recursive();
        *self.mirror.lock() = Some(db);
    }

    /// Stops mirroring (a compaction that gave up); answers the mirror.
    pub(crate) fn stop_mirror(&self) -> Option<Arc<SledDb>> {
        let _current = self.current.read_recursive();
        self.mirror.lock().take()
    }

    /// Copies up to `limit` records after `after` (from the start if `None`) from the database
    /// in use into the mirror, atomically with respect to every change (both locks held), so a
    /// change is either copied or mirrored, never lost or resurrected. Answers the last key
    /// copied, `None` once nothing is left.
    pub(crate) fn copy_chunk(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let current = self.current.read_recursive();
        let db = current.as_ref().ok_or(StoreError::Failed)?;
        let mirror = self.mirror.lock();
        let target = mirror
            .as_ref()
            .ok_or_else(|| StoreError::Engine("no compaction is running".into()))?;
        let range = match after {
            Some(k) => db
                .db()
                .range::<&[u8], _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
            None => db.db().iter(),
        };
        let mut last = None;
        for pair in range.take(limit) {
            let (k, v) = pair?;
            target.db().insert(&k, v)?;
            last = Some(k.to_vec());
        }
        Ok(last)
    }

    /// Replaces the database in use by the mirror: `install` is called with the write lock
    /// held, once every running flush of the two databases finished and both are closed; it
    /// renames the directories and answers the reopened database (see `compact::online`).
    pub(crate) fn swap(
        &self,
        install: impl FnOnce() -> Result<SledDb, StoreError>,
    ) -> Result<(), StoreError> {
        let mut current = self.current.write();
        // Neither is taken unless both are there: a reopen after a failed write may have
        // dropped the mirror, and the database in use must stay.
        if current.is_none() || self.mirror.lock().is_none() {
            return Err(StoreError::Engine("no compaction is running".into()));
        }
        let (Some(old), Some(copy)) = (current.take(), self.mirror.lock().take()) else {
            return Err(StoreError::Engine("no compaction is running".into()));
        };
        // Flushes clone the handles and run without a lock: wait for those still running.
        let old = wait_unique(old);
        let copy = wait_unique(copy);
        let known_blobs = SledDb::clone_synced(&copy);
        drop(old);
        drop(copy);
        match install() {
            Ok(db) => {
                db.set_synced_blobs(known_blobs);
                *current = Some(Arc::new(db));
                self.swaps.fetch_add(1, Ordering::Release);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn sync_store_dir(&self) -> Result<(), StoreError> {
        let swaps = self.swaps.load(Ordering::Acquire);
        if self.dir_synced.load(Ordering::Acquire) < swaps {
            if let Some(parent) = self.sled_dir.parent() {
                sync_dir(parent)?;
            }
            self.dir_synced.fetch_max(swaps, Ordering::AcqRel);
        }
        Ok(())
    }
}

/// Waits until `arc` is the last handle (running flushes end), and answers it.
fn wait_unique(mut arc: Arc<SledDb>) -> SledDb {
    loop {
        match Arc::try_unwrap(arc) {
            Ok(db) => return db,
            Err(again) => {
                arc = again;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

fn saturating_sub(counter: &AtomicU64, by: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(by))
    });
}

impl Backend for SledBackend {
    /// The writes made during the scan moved the count already; the sum is an estimate
    /// (a key the scan missed because a write deleted it first was subtracted by nothing),
    /// good enough for the compaction policy it feeds.
    fn add_live(&self, bytes: u64, records: u64) {
        self.live_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.live_records.fetch_add(records, Ordering::Relaxed);
    }

    fn remove_live(&self, bytes: u64, records: u64) {
        saturating_sub(&self.live_bytes, bytes);
        saturating_sub(&self.live_records, records);
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let current = self.current.read_recursive();
        let db = current.as_ref().ok_or(StoreError::Failed)?;
        Ok(db.db().get(key)?.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        // Visitors read single keys (`get`) while the scan holds the read lock: recursive
        // reads must not queue behind a waiting swap.
        let current = self.current.read_recursive();
        let db = current.as_ref().ok_or(StoreError::Failed)?;
        for pair in db.db().scan_prefix(prefix) {
            let (k, v) = pair?;
            visit(&k, &v)?;
        }
        Ok(())
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError> {
        // As `scan_prefix`: a recursive read, so a waiting swap (online compaction) cannot
        // deadlock a visitor; a swap between two calls is harmless, each call reads one db.
        let current = self.current.read_recursive();
        let db = current.as_ref().ok_or(StoreError::Failed)?;
        for pair in db.db().range(start..) {
            let (k, v) = pair?;
            if !k.starts_with(prefix) || !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let current = self.current.read_recursive();
        let db = current.as_ref().ok_or(StoreError::Failed)?;
        Ok(db
            .db()
            .scan_prefix(prefix)
            .next_back()
            .transpose()?
            .map(|(k, _)| k.to_vec()))
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        let current = self.current.read_recursive();
        let db = current.as_ref().ok_or(StoreError::Failed)?;
        Ok(db.db().iter().next().transpose()?.is_none())
    }

    fn apply(&self, changes: Changes, atomicity: Atomicity) -> Result<(), StoreError> {
        let current = self.current.read_recursive();
        let db = current.as_ref().ok_or(StoreError::Failed)?;
        let mirror = self.mirror.lock();
        let mirror = mirror.as_deref();
        // A single key is atomic on its own, without the batch's forced log write.
        if atomicity == Atomicity::InOrder || changes.len() == 1 {
            for (key, value) in changes {
                let old = match &value {
                    Some(v) => db.db().insert(&key, &v[..])?,
                    None => db.db().remove(&key)?,
                };
                if let Some(m) = mirror {
                    match &value {
                        Some(v) => m.db().insert(&key, &v[..])?,
                        None => m.db().remove(&key)?,
                    };
                }
                self.account(&key, old.map(|o| o.len()), value.as_ref().map(Bytes::len));
            }
            return Ok(());
        }
        // Batches (definition changes) are rare: reading the old sizes first is affordable.
        let mut olds = Vec::with_capacity(changes.len());
        let mut batch = sled::Batch::default();
        for (key, value) in &changes {
            olds.push(db.db().get(key)?.map(|o| o.len()));
            match value {
                Some(v) => batch.insert(&key[..], &v[..]),
                None => batch.remove(&key[..]),
            }
        }
        if let Some(m) = mirror {
            m.db().apply_batch(batch.clone())?;
        }
        db.db().apply_batch(batch)?;
        for ((key, value), old) in changes.iter().zip(olds) {
            self.account(key, old, value.as_ref().map(Bytes::len));
        }
        Ok(())
    }

    /// Closes sled (after a failed write it refuses every call: its error is sticky) and opens
    /// it again: it recovers what it made durable, as after a crash. A compaction copying
    /// meanwhile loses its copy (its next step finds none and gives up). A failed open leaves
    /// no database in use: every call fails until a later reopen succeeds.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut current = self.current.write();
        drop(self.mirror.lock().take());
        if let Some(old) = current.take() {
            // Flushes clone the handle and run without a lock: wait for those still running.
            drop(wait_unique(old));
        }
        // sled's threads may hold its lock a little longer than the handle.
        drop(LockRelease::for_dir(&self.sled_dir));
        // A swap that failed after its commit point left the copy committed beside the old
        // database: it is the database from now on (an open would swap it in and replay the
        // log over it), so the resume must not replay into the old one, which the next open
        // would throw away with everything the replay put there.
        if let Some(parent) = self.sled_dir.parent() {
            crate::compact::finish_committed_swap(parent)?;
        }
        *current = Some(Arc::new(open_db(&self.sled_dir, &self.options)?));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Clone the handles and flush without a lock (never a lock across an fsync).
        let (db, mirror) = {
            let current = self.current.read_recursive();
            let db = current.clone().ok_or(StoreError::Failed)?;
            (db, self.mirror.lock().clone())
        };
        self.sync_store_dir()?;
        db.flush()?;
        // While a compaction copies, its copy is flushed too: whenever it commits, it holds
        // every change a flush made durable.
        if let Some(m) = mirror {
            m.flush()?;
        }
        Ok(())
    }
}
