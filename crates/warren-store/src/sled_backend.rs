//! [`Backend`] on sled 0.34: the default tree holds the whole key space, so every mutation is
//! one `apply_batch` (atomic, and cheaper than a multi-tree transaction).
//!
//! `flush` closes two gaps in sled's own `Db::flush`, which on Linux writes the log with
//! `sync_file_range` (data pages only: neither file metadata nor the drive's write cache) and
//! never fsyncs the blob files it writes for page images over `segment_size / 4`:
//! after sled's flush we fsync new or grown blob files, the blob directory and the log file.
//!
//! Message writes do not use `apply_batch`. In sled 0.34.7 every batch first rolls the log
//! buffer (a write and `sync_file_range` handed to sled's thread pool), which made a
//! one-message write about 8x slower than plain inserts here, and, worse, made sled's
//! known thread-pool deadlock (a file truncation queued behind log writes that wait for the
//! segment accountant the truncating thread holds; fixed upstream only after 0.34.7, sled PR
//! #1269) reproducible within 100,000 writes. Message writes are therefore applied as ordered
//! single-key inserts ([`Atomicity::InOrder`]); definition changes, which are rare and must not
//! be torn, keep `apply_batch`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::backend::{Atomicity, Backend, Changes, Visit};
use crate::format::sync_dir;
use crate::{SledOptions, StoreError};

/// Opens the sled database in `sled_dir` with `options`. Drop the backend before the
/// [`LockRelease`]: waiting for the lock is what makes the directory reusable at once.
pub(crate) fn open_sled(
    sled_dir: &Path,
    options: &SledOptions,
) -> Result<(SledBackend, LockRelease), StoreError> {
    let db = sled::Config::new()
        .path(sled_dir)
        .cache_capacity(options.cache_capacity)
        .flush_every_ms(
            options
                .background_flush
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
        )
        .open()?;
    let backend = SledBackend::new(db, sled_dir)?;
    let released = LockRelease {
        log_path: sled_dir.join("db"),
    };
    Ok((backend, released))
}

/// Waits, on drop, until sled's exclusive lock on its log file is gone. sled's background
/// thread pool can hold a clone of the file for a few milliseconds after `Db` is dropped.
pub(crate) struct LockRelease {
    log_path: PathBuf,
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

/// sled, plus what is needed to fsync its files.
pub(crate) struct SledBackend {
    db: sled::Db,
    log_file: File,
    blobs_dir: PathBuf,
    /// Blob file name -> length when last fsynced (blobs are write-once; a changed length means
    /// it was still being written).
    synced_blobs: Mutex<HashMap<OsString, u64>>,
}

impl SledBackend {
    pub(crate) fn new(db: sled::Db, sled_dir: &Path) -> Result<Self, StoreError> {
        // fsync works on any descriptor of the file; write access keeps it portable.
        let log_file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(sled_dir.join("db"))?;
        Ok(SledBackend {
            db,
            log_file,
            blobs_dir: sled_dir.join("blobs"),
            synced_blobs: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
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

impl Backend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.db.get(key)?.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        for pair in self.db.scan_prefix(prefix) {
            let (k, v) = pair?;
            visit(&k, &v)?;
        }
        Ok(())
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        for pair in self.db.range(start..) {
            let (k, v) = pair?;
            if !k.starts_with(prefix) || !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.db.iter().next().transpose()?.is_none())
    }

    fn apply(&self, changes: Changes, atomicity: Atomicity) -> Result<(), StoreError> {
        // A single key is atomic on its own, without the batch's forced log write.
        if atomicity == Atomicity::InOrder || changes.len() == 1 {
            for (key, value) in changes {
                match value {
                    Some(v) => self.db.insert(key, &v[..])?,
                    None => self.db.remove(key)?,
                };
            }
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in changes {
            match value {
                Some(v) => batch.insert(key, &v[..]),
                None => batch.remove(key),
            }
        }
        Ok(self.db.apply_batch(batch)?)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.sync_blobs()?;
        // fdatasync: the log's length is data it persists; its timestamps are not needed.
        self.log_file.sync_data()?;
        Ok(())
    }
}
