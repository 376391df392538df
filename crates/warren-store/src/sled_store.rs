//! [`SledStore`]: the durable store, sled 0.34 under a versioned directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::backend::{Atomicity, Backend};
use crate::compact::online::{self, OnlineStep};
use crate::engine::wal::WAL_DIR;
use crate::engine::{Engine, delegate_to_engine};
use crate::format::{self, DirLock, MetaState, SLED_DIR};
use crate::keys::FORMAT_VERSION_KEY;
use crate::msglog::{MESSAGES_DIR, MessageLog};
use crate::packed::Packed;
use crate::sled_backend::{SledBackend, open_sled};
use crate::sled_db::LockRelease;
use crate::{CompactPolicy, CompactReport, StoreError, compact};

/// The key space a sled store's engine runs on: sled, packed or not, under the message log
/// (on or off).
pub(crate) type StoreBackend = MessageLog<Packed<SledBackend>>;

/// Tuning of a [`SledStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct SledOptions {
    /// sled's page cache, in bytes (sled's own default is 1 GiB). Pages it holds count in the
    /// broker's resident memory, on top of the messages the queues hold; a small cache costs
    /// little because the broker reads the store only at startup.
    pub cache_capacity: u64,
    /// sled's background flush period. It bounds how long an unsynced write stays in memory,
    /// but promises nothing: only [`MessageStore::sync`](crate::MessageStore::sync) does.
    /// `None` disables it, leaving the store's own flushes (its checkpoints) as the only ones.
    pub background_flush: Option<Duration>,
    /// When the running store compacts itself (see the `compact::online` module): the files
    /// against the live data, checked every `online_check_every`. `None` never does.
    pub online_compaction: Option<CompactPolicy>,
    /// How often the compactor thread compares the files with the live data.
    pub online_check_every: Duration,
    /// Whether a store created with these options (and without `log_messages`) packs several
    /// messages, and several index entries of one queue, into one sled record (key layout 3,
    /// see `packed`), and whether an offline compaction repacks an unpacked store. Off by
    /// default: at high write rates the packed layout ran into sled 0.34.7's IO thread-pool
    /// deadlock (`docs/decisions.md`, "Several messages per sled record"). A store keeps the
    /// layout it was created with.
    pub pack_new_store: bool,
    /// Whether a store created with these options keeps message bodies in the message log,
    /// append-only segment files beside sled, and only their locations in sled, sixteen per
    /// record (key layout 4, see `msglog`). On by default (it takes precedence over
    /// `pack_new_store`). A store keeps the layout it was created with.
    pub log_messages: bool,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_capacity: 64 * 1024 * 1024,
            background_flush: Some(Duration::from_millis(500)),
            online_compaction: Some(CompactPolicy {
                ratio: 2.0,
                min_disk_bytes: 64 * 1024 * 1024,
            }),
            online_check_every: Duration::from_secs(5),
            pack_new_store: false,
            log_messages: true,
        }
    }
}

/// The durable store: definitions and messages in one sled database.
///
/// Dropping it flushes and closes sled, and returns only once sled's lock on the directory
/// is released, so the directory can be opened again at once (by a restarted broker in the
/// same process, or a test).
pub struct SledStore {
    // Field order is drop order: the open scan stops, the compactor stops (abandoning a copy in progress), sled
    // closes, then `released` waits for its lock, then the directory lock goes.
    pub(crate) scanner: Scanner,
    pub(crate) compactor: Compactor,
    pub(crate) drainer: Drainer,
    pub(crate) engine: Arc<Engine<StoreBackend>>,
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
        let (packed, logged) = match format::check_meta(meta.as_deref(), backend.is_empty()?)? {
            MetaState::Fresh => {
                let layout = if options.log_messages {
                    format::SLED_LAYOUT_LOGGED
                } else if options.pack_new_store {
                    format::SLED_LAYOUT_VERSION
                } else {
                    format::SLED_LAYOUT_UNPACKED
                };
                let version = Bytes::copy_from_slice(&layout.to_be_bytes());
                backend.apply(
                    vec![(FORMAT_VERSION_KEY.to_vec(), Some(version))],
                    Atomicity::Batch,
                )?;
                backend.flush()?;
                (
                    options.pack_new_store || options.log_messages,
                    options.log_messages,
                )
            }
            MetaState::Current { packed, logged } => (packed, logged),
        };
        // The log's replay goes through the packing (and the message log) too: it holds
        // logical keys.
        let backend = if logged {
            MessageLog::open(Packed::for_locations(backend), &dir.join(MESSAGES_DIR))?
        } else {
            MessageLog::off(Packed::new(backend, packed))
        };
        let engine = Arc::new(Engine::open_logged(backend, &dir.join(WAL_DIR))?);
        // What the open's own writes (the layout key, an upgrade's extents) counted is in
        // the open's count, or in the background scan's, which adds it when it ends.
        let (live, records) = engine.live_at_open().unwrap_or_default();
        engine.backend().set_live(live, records);
        Ok(SledStore {
            scanner: Scanner::start(Arc::downgrade(&engine))?,
            compactor: Compactor::start(Arc::downgrade(&engine), dir, options)?,
            drainer: Drainer::start(Arc::downgrade(&engine), options.background_flush)?,
            engine,
            released,
            lock,
            dir: dir.to_path_buf(),
            options: options.clone(),
        })
    }

    /// Creates an empty store in `dir` with the unpacked key layout of format 3 (one record
    /// per message and per index entry), as an older build made it. For tests.
    #[cfg(test)]
    pub(crate) fn create_unpacked(dir: &Path) -> Result<(), StoreError> {
        format::prepare(dir)?;
        let (backend, released) = open_sled(&dir.join(SLED_DIR), &SledOptions::default())?;
        let layout = Bytes::copy_from_slice(&format::SLED_LAYOUT_UNPACKED.to_be_bytes());
        backend.apply(
            vec![(FORMAT_VERSION_KEY.to_vec(), Some(layout))],
            Atomicity::Batch,
        )?;
        backend.flush()?;
        drop(backend);
        drop(released);
        Ok(())
    }

    /// Whether the store packs messages and index entries into blocks (key layout 3: a store
    /// created by this build; an older store keeps one record per message).
    pub fn is_packed(&self) -> bool {
        self.engine.backend().is_packed()
    }

    /// Whether message bodies live in the message log (key layout 4, see `msglog`), sled
    /// holding their locations.
    pub fn logs_messages(&self) -> bool {
        self.engine.backend().is_logged()
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// sled's estimate of its files' size, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.engine.backend().current()?.db().size_on_disk()?)
    }

    /// The apparent size of the database's files (as `du -sb`), in bytes.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        compact::disk_usage(&self.dir.join(SLED_DIR))
    }

    /// Bytes of keys and values of the messages and queue index entries found when the store
    /// was opened: the data a compaction would keep (definitions, always small, aside).
    /// Waits for the background open scan to end.
    pub fn live_bytes_at_open(&self) -> u64 {
        let _ = self.engine.finish_scan();
        self.engine.live_at_open().unwrap_or_default().0
    }

    /// The number of messages and queue index entries found when the store was opened.
    /// Waits for the background open scan to end.
    pub fn live_records_at_open(&self) -> u64 {
        let _ = self.engine.finish_scan();
        self.engine.live_at_open().unwrap_or_default().1
    }

    /// Bytes of keys and values, and number, of the messages and queue index entries the open
    /// scan found; `None` while the background scan runs (see `open_scan_done`).
    pub fn live_at_open(&self) -> Option<(u64, u64)> {
        self.engine.live_at_open()
    }

    /// Whether the background open scan is over: reference counts exact, crash leftovers
    /// deleted (see the `engine::scan` module).
    pub fn open_scan_done(&self) -> bool {
        self.engine.scan_done()
    }

    /// Waits for the background open scan to end.
    pub fn finish_open_scan(&self) -> Result<(), StoreError> {
        self.engine.finish_scan()
    }

    /// Runs one step of the open scan here, reading at most `keys` keys (the background
    /// thread runs its own); answers whether it is over. For tests.
    pub fn open_scan_step(&self, keys: usize) -> Result<bool, StoreError> {
        self.engine.scan_step_of(keys)
    }

    /// Closes as a crash after the last write reached sled would leave the directory:
    /// writes still pending are lost and no extents are recorded, so the next open counts
    /// the index before it returns. For tests.
    pub fn close_as_crash(self) {
        self.engine.abandon();
    }

    /// Hands every pending message write to sled, flushes sled and deletes the write-ahead
    /// log it covered (see `engine::wal`). The drain thread runs the aged form
    /// ([`SledStore::checkpoint_aged`]) every `background_flush`.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.engine.checkpoint()
    }

    /// The drain thread's checkpoint: hands to sled only the writes logged before the
    /// previous one, flushes sled and deletes the log files they covered (see `engine::wal`,
    /// "Aged checkpoints").
    pub fn checkpoint_aged(&self) -> Result<(), StoreError> {
        self.engine.checkpoint_aged()
    }

    /// Closes as a crash in the middle of an aged checkpoint would leave the directory: every
    /// pending write logged, the first `applied` of those it took in sled, the log still there.
    /// For tests.
    #[doc(hidden)]
    pub fn crash_in_aged_checkpoint(self, applied: usize) -> Result<(), StoreError> {
        self.engine.crash_in_aged_checkpoint(applied)
    }

    /// Closes as a crash in the middle of a checkpoint would leave the directory: every
    /// pending write logged, the first `applied` of them in sled, the log still there. For
    /// tests.
    #[doc(hidden)]
    pub fn crash_in_checkpoint(self, applied: usize) -> Result<(), StoreError> {
        self.engine.crash_in_checkpoint(applied)
    }

    /// Closes as a crash in the middle of `count` puts would leave the directory: every
    /// earlier write synced, then the bytes of `count` messages at fresh ids that no index
    /// entry references. Answers their ids. For tests.
    #[doc(hidden)]
    pub fn crash_leaving_orphans(self, count: usize) -> Result<Vec<u64>, StoreError> {
        self.engine.crash_leaving_orphans(count)
    }

    /// The number of messages in sled, once every pending write is handed to it. For tests.
    #[doc(hidden)]
    pub fn stored_messages(&self) -> Result<usize, StoreError> {
        self.engine.stored_messages()
    }

    /// Closes as a crash in the middle of deleting queue `name` would leave the directory:
    /// its record deleted, its entries removed for `chunks` chunks of `chunk` only (see
    /// `engine::drop_entries`). For tests.
    #[doc(hidden)]
    pub fn crash_in_queue_delete(
        self,
        vhost: &[u8],
        name: &[u8],
        chunk: usize,
        chunks: usize,
    ) -> Result<(), StoreError> {
        self.engine
            .crash_in_queue_delete(vhost, name, chunk, chunks)
    }

    /// Bytes of keys and values, and number of records, stored now (definitions created
    /// since the store opened included).
    pub fn live_now(&self) -> (u64, u64) {
        self.engine.backend().live()
    }

    /// Compacts the database now while it serves (see the `compact::online` module),
    /// whatever the policy says; `None` if the store is closing.
    pub fn compact_online(&self) -> Result<Option<CompactReport>, StoreError> {
        self.compact_online_until(None)
    }

    /// Online compactions done by the compactor thread since the store opened.
    pub fn online_compactions(&self) -> Vec<CompactReport> {
        self.compactor.done.lock().clone()
    }

    /// An online compaction stopped after `step`, as a crash there would (tests).
    pub(crate) fn compact_online_until(
        &self,
        step: Option<OnlineStep>,
    ) -> Result<Option<CompactReport>, StoreError> {
        let Some(_one) = Busy::take(&self.compactor.running, true) else {
            return Ok(None);
        };
        // The copy reads sled: the log's changes go there first (later ones are mirrored).
        self.engine.checkpoint()?;
        match step {
            None => online::compact_online(
                self.engine.backend(),
                &self.dir,
                &self.options,
                &self.compactor.stop,
            ),
            Some(step) => {
                let mut c =
                    online::Compaction::begin(self.engine.backend(), &self.dir, &self.options)?;
                while !c.copy_some(online::CHUNK)? {}
                c.finish(Some(step)).map(Some)
            }
        }
    }
}

delegate_to_engine!(SledStore);

/// The thread that compacts the running store when its policy asks (see `compact::online`).
/// Dropping it abandons a compaction in progress and stops the thread.
pub(crate) struct Compactor {
    stop: Arc<AtomicBool>,
    wake: Arc<(Mutex<()>, Condvar)>,
    /// Set by whoever compacts: one compaction at a time (a flag, not a lock held across the
    /// compaction's fsyncs).
    running: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<CompactReport>>>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    fn start(
        engine: Weak<Engine<StoreBackend>>,
        dir: &Path,
        options: &SledOptions,
    ) -> Result<Compactor, StoreError> {
        let mut compactor = Compactor {
            stop: Arc::new(AtomicBool::new(false)),
            wake: Arc::new((Mutex::new(()), Condvar::new())),
            running: Arc::new(AtomicBool::new(false)),
            done: Arc::new(Mutex::new(Vec::new())),
            thread: None,
        };
        let Some(policy) = options.online_compaction else {
            return Ok(compactor);
        };
        let (stop, wake, running, done) = (
            compactor.stop.clone(),
            compactor.wake.clone(),
            compactor.running.clone(),
            compactor.done.clone(),
        );
        let (dir, options) = (dir.to_path_buf(), options.clone());
        let sled = dir.join(SLED_DIR);
        compactor.thread = Some(
            std::thread::Builder::new()
                .name("warren-store-compact".into())
                .spawn(move || {
                    let mut last = None;
                    loop {
                        {
                            let mut guard = wake.0.lock();
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            wake.1.wait_for(&mut guard, options.online_check_every);
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Some(engine) = engine.upgrade() else {
                            break;
                        };
                        let backend = engine.backend();
                        // The live figures are known once the open scan is over.
                        if !engine.scan_done() {
                            continue;
                        }
                        let Ok(disk) = compact::disk_usage(&sled) else {
                            continue;
                        };
                        let (live, records) = backend.live();
                        let live = (live, backend.sled_records(records));
                        if !online::wanted(&policy, disk, live, last) {
                            continue;
                        }
                        let Some(_one) = Busy::take(&running, false) else {
                            continue;
                        };
                        // A failed compaction leaves the database in use standing (or, if the
                        // swap's reopen failed, the store failed: writers report it).
                        if engine.checkpoint().is_err() {
                            if engine.has_failed() {
                                break; // writers report it
                            }
                            continue; // suspended, or a log append failed: later
                        }
                        if let Ok(Some(report)) =
                            online::compact_online(backend, &dir, &options, &stop)
                        {
                            last = Some(online::LastCompaction {
                                ended: std::time::Instant::now(),
                                took: report.elapsed,
                                live_bytes: report.live_bytes,
                            });
                            done.lock().push(report);
                        }
                    }
                })?,
        );
        Ok(compactor)
    }
}

/// The compactor's "running" flag while set.
struct Busy<'a>(&'a AtomicBool);

impl<'a> Busy<'a> {
    /// Sets the flag; if it is set already, waits for it (`wait`) or answers `None`.
    fn take(flag: &'a AtomicBool, wait: bool) -> Option<Busy<'a>> {
        while flag
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            if !wait {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(Busy(flag))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        {
            let _guard = self.wake.0.lock();
            self.wake.1.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checkpoints the write-ahead log (see `engine::wal`) at sled's own flush cadence, *aged*:
/// every pending write is logged (and fsynced), the writes logged before the previous run
/// reach sled, sled is flushed, and the log files they covered go, so the log stays within two
/// intervals and writes nobody syncs (persistent publishes without confirms) become durable as
/// soon as they did before writes were deferred. Dropping it stops the thread before the store
/// closes.
pub(crate) struct Drainer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Drainer {
    fn start(
        engine: Weak<Engine<StoreBackend>>,
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
                let mut resume = Backoff::default();
                while !*stopped {
                    wake.wait_for(&mut stopped, every);
                    if *stopped {
                        break;
                    }
                    let Some(engine) = engine.upgrade() else {
                        break;
                    };
                    if engine.has_failed() {
                        break; // writers and `sync` report it from now on
                    }
                    // A failure suspends the engine (or fails it); a log append that failed
                    // leaves it running, and the next checkpoint tries again.
                    if engine.checkpoint_aged().is_ok() {
                        continue;
                    }
                    if resume.due() {
                        match engine.resume() {
                            Ok(true) => resume = Backoff::default(),
                            Ok(false) => {}
                            Err(e) => {
                                resume.failed();
                                tracing::debug!(error = %e, "the store cannot resume yet");
                            }
                        }
                    }
                }
            })?;
        Ok(Drainer {
            stop,
            thread: Some(thread),
        })
    }
}

/// When a suspended store tries to resume next: after a second, then twice as long after each
/// failed try, up to 16 s (a try reopens sled, which reads its whole log).
struct Backoff {
    next: std::time::Instant,
    wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: std::time::Instant::now() + Duration::from_secs(1),
            wait: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// Whether the next try is due.
    fn due(&self) -> bool {
        std::time::Instant::now() >= self.next
    }

    /// A try failed: the next waits twice as long.
    fn failed(&mut self) {
        self.wait = (self.wait * 2).min(Duration::from_secs(16));
        self.next = std::time::Instant::now() + self.wait;
    }
}

/// Runs the open scan of a store opened after a clean close (see `engine::scan`) in the
/// background, then starts the live-data count from what it found. Dropping it stops the
/// thread (between steps) before the store closes.
pub(crate) struct Scanner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Scanner {
    fn start(engine: Weak<Engine<StoreBackend>>) -> Result<Scanner, StoreError> {
        let stop = Arc::new(AtomicBool::new(false));
        let done = engine.upgrade().is_none_or(|e| e.scan_done());
        if done {
            return Ok(Scanner { stop, thread: None });
        }
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("warren-store-scan".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                while !stopping.load(Ordering::Relaxed) {
                    let Some(engine) = engine.upgrade() else {
                        break;
                    };
                    match engine.scan_step() {
                        Ok(false) => {}
                        Ok(true) => {
                            let stats = crate::MessageStore::stats(&*engine);
                            tracing::info!(
                                messages = stats.messages,
                                entries = stats.queue_entries,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "store open scan done"
                            );
                            break;
                        }
                        // The store failed: writers and `sync` report it.
                        Err(_) if engine.has_failed() => break,
                        // Suspended: it goes on once the drain thread resumed the store.
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            })?;
        Ok(Scanner {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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

    #[test]
    fn a_synced_write_is_in_the_log_not_in_sled_and_a_crash_keeps_it() {
        let dir = std::env::temp_dir().join(format!("warren-wal-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = SledOptions {
            background_flush: None,
            ..SledOptions::default()
        };
        let store = SledStore::open_with(&dir, &options).unwrap();
        let (vhost, queue) = (Bytes::from_static(b"/"), Bytes::from_static(b"q"));
        let put = |id: u64, seq: u64| {
            [
                MessageOp::Put {
                    id,
                    message: Bytes::from_static(b"m"),
                },
                MessageOp::Enqueue {
                    vhost: vhost.clone(),
                    queue: queue.clone(),
                    seq,
                    id,
                },
            ]
        };
        store.write(&put(1, 0)).unwrap();
        store.write(&put(2, 1)).unwrap();
        store.sync().unwrap();
        // Durable in the log only: sled never saw either write.
        let in_sled = |s: &SledStore, id| s.engine.backend().get(&keys::message(id)).unwrap();
        assert!(in_sled(&store, 1).is_none());
        assert!(dir.join(WAL_DIR).read_dir().unwrap().count() == 1);
        // Message 1 acked after it was logged: the ack is logged at the next sync.
        store
            .write(&[MessageOp::Remove {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq: 0,
                id: 1,
            }])
            .unwrap();
        store.sync().unwrap();
        store.close_as_crash();
        let store = SledStore::open_with(&dir, &options).unwrap();
        let ids: Vec<u64> = store
            .load_queue(b"/", b"q")
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [2]);
        assert!(!dir.join(WAL_DIR).exists(), "recovery deletes the log");
        // A checkpoint puts the writes in sled and deletes the log; a clean close leaves none.
        // New ids come from the store, as the broker's do: below its high-water mark an id's
        // count is not known until the background scan has counted it.
        let id = store.next_message_id().unwrap();
        store.write(&put(id, 2)).unwrap();
        store.sync().unwrap();
        store.checkpoint().unwrap();
        assert!(in_sled(&store, id).is_some());
        assert_eq!(dir.join(WAL_DIR).read_dir().unwrap().count(), 0);
        store
            .write(&put(store.next_message_id().unwrap(), 3))
            .unwrap();
        store.sync().unwrap();
        drop(store);
        assert!(!dir.join(WAL_DIR).exists());
        let store = SledStore::open_with(&dir, &options).unwrap();
        assert_eq!(store.load_queue(b"/", b"q").unwrap().len(), 3);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
