//! [`SledStore`]: the durable store, sled 0.34 under a versioned directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::backend::{Atomicity, Backend};
use crate::engine::{Engine, delegate_to_engine};
use crate::format::{self, DirLock, MetaState, SLED_DIR};
use crate::keys::FORMAT_VERSION_KEY;
use crate::sled_backend::{LockRelease, SledBackend, open_sled};
use crate::{StoreError, compact};

/// Tuning of a [`SledStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledOptions {
    /// sled's page cache, in bytes (sled's own default is 1 GiB). Pages it holds count in the
    /// broker's resident memory, on top of the messages the queues hold; a small cache costs
    /// little because the broker reads the store only at startup.
    pub cache_capacity: u64,
    /// sled's background flush period. It bounds how long an unsynced write stays in memory,
    /// but promises nothing: only [`MessageStore::sync`](crate::MessageStore::sync) does.
    /// `None` disables it, leaving `sync` and definition changes as the only flushes.
    pub background_flush: Option<Duration>,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_capacity: 64 * 1024 * 1024,
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
    // Field order is drop order: sled closes first, then `released` waits for its lock, then
    // the directory lock goes.
    pub(crate) drainer: Drainer,
    pub(crate) engine: Arc<Engine<SledBackend>>,
    pub(crate) released: LockRelease,
    pub(crate) lock: DirLock,
    pub(crate) dir: PathBuf,
    pub(crate) options: SledOptions,
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
    /// A compaction that a crash interrupted is finished or rolled back first (see
    /// [`SledStore::compact`]).
    pub fn open_with(dir: &Path, options: &SledOptions) -> Result<Self, StoreError> {
        format::prepare(dir)?;
        let lock = format::lock(dir)?;
        Self::open_locked(dir, options, lock)
    }

    /// Opens a directory already checked by `format::prepare` and locked by this process.
    pub(crate) fn open_locked(
        dir: &Path,
        options: &SledOptions,
        lock: DirLock,
    ) -> Result<Self, StoreError> {
        compact::finish_interrupted(dir)?;
        let (backend, released) = open_sled(&dir.join(SLED_DIR), options)?;
        let meta = backend.get(FORMAT_VERSION_KEY)?;
        if format::check_meta(meta.as_deref(), backend.is_empty()?)? == MetaState::Fresh {
            let version = Bytes::copy_from_slice(&format::FORMAT_VERSION.to_be_bytes());
            backend.apply(
                vec![(FORMAT_VERSION_KEY.to_vec(), Some(version))],
                Atomicity::Batch,
            )?;
            backend.flush()?;
        }
        let engine = Arc::new(Engine::open(backend)?);
        Ok(SledStore {
            drainer: Drainer::start(Arc::downgrade(&engine), options.background_flush)?,
            engine,
            released,
            lock,
            dir: dir.to_path_buf(),
            options: options.clone(),
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

    /// The apparent size of the database's files (as `du -sb`), in bytes.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        compact::disk_usage(&self.dir.join(SLED_DIR))
    }

    /// Bytes of keys and values of the messages and queue index entries found when the store
    /// was opened: the data a compaction would keep (definitions, always small, aside).
    pub fn live_bytes_at_open(&self) -> u64 {
        self.engine.live_at_open().0
    }

    /// The number of messages and queue index entries found when the store was opened.
    pub fn live_records_at_open(&self) -> u64 {
        self.engine.live_at_open().1
    }
}

delegate_to_engine!(SledStore);

/// Hands deferred message writes to sled at sled's own flush cadence, so that writes nobody
/// syncs (persistent publishes without confirms) reach the log as soon as they did before
/// writes were deferred. Dropping it stops the thread before the store closes.
pub(crate) struct Drainer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Drainer {
    fn start(
        engine: Weak<Engine<SledBackend>>,
        every: Option<Duration>,
    ) -> Result<Drainer, StoreError> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let Some(every) = every else {
            return Ok(Drainer { stop, thread: None });
        };
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("warren-store-drain".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut stopped = stopped.lock();
                while !*stopped {
                    wake.wait_for(&mut stopped, every);
                    if *stopped {
                        break;
                    }
                    let Some(engine) = engine.upgrade() else {
                        break;
                    };
                    // A failure fails the store; writers and `sync` report it from then on.
                    if engine.drain().is_err() {
                        break;
                    }
                }
            })?;
        Ok(Drainer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use super::*;
    use crate::keys;
    use crate::{MessageOp, MessageStore};

    #[test]
    fn the_drainer_hands_unsynced_writes_to_sled() {
        let dir = std::env::temp_dir().join(format!("warren-drainer-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = SledOptions {
            background_flush: Some(Duration::from_millis(10)),
            ..SledOptions::default()
        };
        let store = SledStore::open_with(&dir, &options).unwrap();
        let (vhost, queue) = (Bytes::from_static(b"/"), Bytes::from_static(b"q"));
        store
            .write(&[
                MessageOp::Put {
                    id: 1,
                    message: Bytes::from_static(b"m"),
                },
                MessageOp::Enqueue {
                    vhost,
                    queue,
                    seq: 0,
                    id: 1,
                },
            ])
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store
            .engine
            .backend()
            .get(&keys::message(1))
            .unwrap()
            .is_none()
        {
            assert!(Instant::now() < deadline, "never drained");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
