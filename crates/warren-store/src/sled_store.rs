//! [`SledStore`]: the durable store, sled 0.34 under a versioned directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::StoreError;
use crate::backend::{Atomicity, Backend};
use crate::engine::{Engine, delegate_to_engine};
use crate::format::{self, MetaState};
use crate::keys::FORMAT_VERSION_KEY;
use crate::sled_backend::SledBackend;

/// Tuning of a [`SledStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledOptions {
    /// sled's page cache, in bytes (sled's own default is 1 GiB).
    pub cache_capacity: u64,
    /// sled's background flush period. It bounds how long an unsynced write stays in memory,
    /// but promises nothing: only [`MessageStore::sync`](crate::MessageStore::sync) does.
    /// `None` disables it, leaving `sync` and definition changes as the only flushes.
    pub background_flush: Option<Duration>,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_capacity: 256 * 1024 * 1024,
            background_flush: Some(Duration::from_millis(500)),
        }
    }
}

/// The durable store: definitions and messages in one sled database.
///
/// Dropping it flushes and closes sled, and returns only once sled's lock on the directory
/// is released, so the directory can be opened again at once (by a restarted broker in the
/// same process, or a test).
pub struct SledStore {
    // Field order is drop order: sled closes first, then `released` waits for its lock.
    engine: Engine<SledBackend>,
    _released: LockRelease,
    dir: PathBuf,
}

/// Waits, on drop, until sled's exclusive lock on its log file is gone. sled's background
/// thread pool can hold a clone of the file for a few milliseconds after `Db` is dropped.
struct LockRelease {
    log_path: PathBuf,
}

impl Drop for LockRelease {
    fn drop(&mut self) {
        use fs2::FileExt;
        let deadline = Instant::now() + Duration::from_secs(2);
        let Ok(file) = std::fs::File::open(&self.log_path) else {
            return;
        };
        while file.try_lock_exclusive().is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = FileExt::unlock(&file);
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, &SledOptions::default())
    }

    /// Opens (or creates) the store in `dir`. A directory that is not empty and holds no store
    /// of this format version is refused with [`StoreError::UnsupportedFormat`], untouched.
    pub fn open_with(dir: &Path, options: &SledOptions) -> Result<Self, StoreError> {
        format::prepare(dir)?;
        let sled_dir = dir.join("sled");
        let db = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(
                options
                    .background_flush
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
            )
            .open()?;
        let backend = SledBackend::new(db, &sled_dir)?;
        let meta = backend.get(FORMAT_VERSION_KEY)?;
        if format::check_meta(meta.as_deref(), backend.is_empty()?)? == MetaState::Fresh {
            let version = Bytes::copy_from_slice(&format::FORMAT_VERSION.to_be_bytes());
            backend.apply(
                vec![(FORMAT_VERSION_KEY.to_vec(), Some(version))],
                Atomicity::Batch,
            )?;
            backend.flush()?;
        }
        let released = LockRelease {
            log_path: sled_dir.join("db"),
        };
        Ok(SledStore {
            engine: Engine::open(backend)?,
            _released: released,
            dir: dir.to_path_buf(),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// sled's estimate of its files' size, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.engine.backend().db().size_on_disk()?)
    }
}

delegate_to_engine!(SledStore);
