//! [`SledDb`]: one open sled 0.34 database and what is needed to make it durable.
//!
//! `flush` closes two gaps in sled's own `Db::flush`, which on Linux writes the log with
//! `sync_file_range` (data pages only: neither file metadata nor the drive's write cache) and
//! never fsyncs the blob files it writes for page images over `segment_size / 4`:
//! after sled's flush we fsync new or grown blob files, the blob directory and the log file.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::format::sync_dir;
use crate::{SledOptions, StoreError};

/// Opens the sled database in `sled_dir` with `options`. After dropping it, drop a
/// [`LockRelease`] for the directory: waiting for sled's lock makes it reusable at once.
pub(crate) fn open_db(sled_dir: &Path, options: &SledOptions) -> Result<SledDb, StoreError> {
    let db = sled::Config::new()
        .path(sled_dir)
        .cache_capacity(options.cache_capacity)
        .flush_every_ms(
            options
                .background_flush
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
        )
        .open()?;
    SledDb::new(db, sled_dir)
}

/// Waits, on drop, until sled's exclusive lock on its log file is gone. sled's background
/// thread pool can hold a clone of the file for a few milliseconds after `Db` is dropped.
pub(crate) struct LockRelease {
    log_path: PathBuf,
}

impl LockRelease {
    /// Waits, when dropped, for sled's lock in `sled_dir` to be released.
    pub(crate) fn for_dir(sled_dir: &Path) -> Self {
        LockRelease {
            log_path: sled_dir.join("db"),
        }
    }
}

impl Drop for LockRelease {
    fn drop(&mut self) {
        use fs2::FileExt;
        let deadline = Instant::now() + Duration::from_secs(2);
        let Ok(file) = File::open(&self.log_path) else {
            return;
        };
        while file.try_lock_exclusive().is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = FileExt::unlock(&file);
    }
}

/// One sled database, plus what is needed to fsync its files.
pub(crate) struct SledDb {
    db: sled::Db,
    log_file: File,
    blobs_dir: PathBuf,
    /// Blob file name -> length when last fsynced (blobs are write-once; a changed length means
    /// it was still being written).
    synced_blobs: Mutex<HashMap<OsString, u64>>,
}

impl SledDb {
    fn new(db: sled::Db, sled_dir: &Path) -> Result<Self, StoreError> {
        // fsync works on any descriptor of the file; write access keeps it portable.
        let log_file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(sled_dir.join("db"))?;
        Ok(SledDb {
            db,
            log_file,
            blobs_dir: sled_dir.join("blobs"),
            synced_blobs: Mutex::new(HashMap::new()),
        })
    }

    /// The sled handle.
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The blobs known fsynced: the online compaction reopens its copy under another name
    /// and carries this over, so they are not fsynced again.
    pub(crate) fn clone_synced(db: &SledDb) -> HashMap<OsString, u64> {
        db.synced_blobs.lock().clone()
    }

    /// Sets the blobs known fsynced (see `clone_synced`).
    pub(crate) fn set_synced_blobs(&self, known: HashMap<OsString, u64>) {
        *self.synced_blobs.lock() = known;
    }

    /// Makes every applied change durable (see the module docs).
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.sync_blobs()?;
        // fdatasync: the log's length is data it persists; its timestamps are not needed.
        self.log_file.sync_data()?;
        Ok(())
    }

    fn sync_blobs(&self) -> Result<(), StoreError> {
        let listing = match fs::read_dir(&self.blobs_dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut synced = self.synced_blobs.lock();
        let mut present = HashMap::with_capacity(synced.len());
        let mut any_new = false;
        for entry in listing {
            let entry = entry?;
            let name = entry.file_name();
            // sled deletes blobs it no longer needs at any time: gone is fine.
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if synced.get(&name) != Some(&len) {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_all()?,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                any_new = true;
            }
            present.insert(name, len);
        }
        if any_new {
            sync_dir(&self.blobs_dir)?;
        }
        *synced = present;
        Ok(())
    }
}
