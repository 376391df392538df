//! The spill area: where queues put packed segments of their backlog that are over their memory
//! budget, and take them back before consumers reach them. It owns the directory
//! (`<data_dir>/spill/`), the append-only segment files in it and the one I/O thread that writes
//! and reads them; it does not know what a segment holds (that is `queue::packed`).
//!
//! A segment handed to the area stays readable from memory until the thread has written it
//! ([`SlotState::Writing`]); afterwards only its location remains ([`SlotState::OnDisk`]). A
//! queue asks for it back ahead of need ([`SpillArea::load`]); the thread reads it, stores it in
//! the slot and calls the queue's waker, so a consumer that reached it resumes. Nothing is ever
//! fsynced: the area is a cache of transient bytes (persistent messages are in the store too),
//! emptied when the broker starts. Files are deleted when the last segment in them is dropped.
//!
//! Lock order: a queue's state lock, then a slot's lock. The I/O thread takes a slot's lock
//! alone, and never holds it across a read or a write.

mod io;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use parking_lot::Mutex;

/// Wakes a queue whose segment arrived.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Bytes per segment file before the writer starts another.
const FILE_BYTES: u64 = 16 << 20;
/// Bytes handed to the writer and not written yet that the queues writing share: a queue whose
/// own unwritten bytes pass its share (this over the number of queues with bytes unwritten)
/// presses its publishers ([`SpillArea::pressing`]) until enough of them are written.
const PRESS_BYTES: u64 = 16 << 20;
/// Bytes not written yet beyond which queues keep new segments in memory (and spill them later):
/// only publishers that back-pressure does not reach (dead-lettering, many connections at once)
/// get this far, and the memory alarm then blocks them.
const MAX_PENDING_BYTES: u64 = 64 << 20;

/// One queue's part of the writer's work: its bytes not written yet, and the publishers waiting
/// for them to be. Shared by the queue and the write jobs of its segments.
#[derive(Default)]
pub struct Writes {
    unwritten: AtomicU64,
    /// Run (once) when the queue's unwritten bytes come back within its share. Lock order:
    /// alone (the I/O thread takes it after a write; `wait_written` under nothing else).
    waiters: Mutex<Vec<Waker>>,
}

impl std::fmt::Debug for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writes")
            .field("unwritten", &self.unwritten.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Writes {
    /// Bytes of this queue's segments not written yet.
    pub fn unwritten(&self) -> u64 {
        self.unwritten.load(Ordering::Relaxed)
    }
}

/// True when `own` unwritten bytes are over one queue's share while `writers` queues have some.
fn over_share(own: u64, writers: usize) -> bool {
    own > 0 && own > PRESS_BYTES / writers.max(1) as u64
}

/// Takes `len` written (or abandoned) bytes of `owner` off the counts, and wakes the publishers
/// that waited for the queue to be back within its share.
fn unpend(pending: &AtomicU64, writers: &AtomicUsize, owner: &Writes, len: u64) {
    pending.fetch_sub(len, Ordering::Relaxed);
    let own = owner.unwritten.fetch_sub(len, Ordering::Relaxed) - len;
    if own == 0 {
        writers.fetch_sub(1, Ordering::Relaxed);
    }
    // Cheap when nobody waits: the lock is the queue's own and rarely contended.
    let woken = {
        let mut waiters = owner.waiters.lock();
        if waiters.is_empty() || over_share(own, writers.load(Ordering::Relaxed)) {
            return;
        }
        std::mem::take(&mut *waiters)
    };
    for wake in woken {
        wake();
    }
}

/// A segment file; deleted (by the I/O thread) when the last segment in it is dropped.
#[derive(Debug)]
pub struct SpillFile {
    path: PathBuf,
    file: File,
    jobs: mpsc::Sender<io::Job>,
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        // The thread may be gone at shutdown; the next start empties the directory anyway.
        let _ = self
            .jobs
            .send(io::Job::Delete(std::mem::take(&mut self.path)));
    }
}

/// Where a written segment is.
#[derive(Debug, Clone)]
pub struct Location {
    file: Arc<SpillFile>,
    offset: u64,
    len: usize,
}

/// Where a spilled segment's bytes are now.
#[derive(Debug)]
pub enum SlotState {
    /// Handed to the writer; still readable here.
    Writing(Arc<Vec<u8>>),
    /// Written, not in memory.
    OnDisk(Location),
    /// Asked for; the thread is reading it.
    Loading(Location),
    /// Read back.
    Loaded(Vec<u8>),
    /// Writing or reading it failed: its messages are lost (logged and counted).
    Failed,
}

/// One spilled segment, shared by its queue and the I/O thread.
#[derive(Debug)]
pub struct Slot {
    /// Its state; lock order: after the queue's state lock.
    pub state: Mutex<SlotState>,
}

/// What a queue can take from a slot right now.
pub enum Taken {
    /// The bytes.
    Ready(Vec<u8>),
    /// Not in memory yet: asked for, the waker will run when it is.
    Pending,
    /// Lost to an I/O error.
    Failed,
}

/// The spill area of one broker.
pub struct SpillArea {
    dir: PathBuf,
    jobs: Mutex<mpsc::Sender<io::Job>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Fixed bytes per queue, or 0 to derive it from `total` and the queue count.
    per_queue: u64,
    /// Memory the queues may use for packed segments, together.
    total: u64,
    queues: AtomicUsize,
    pending: Arc<AtomicU64>,
    /// Queues with bytes not written yet (for their share of [`PRESS_BYTES`]).
    writers: Arc<AtomicUsize>,
    /// Test hook: microseconds every write is slowed by (a disk that cannot keep up).
    write_delay_us: Arc<AtomicU64>,
    /// Test hook: microseconds every read is slowed by (a slow disk under a queue's head).
    read_delay_us: Arc<AtomicU64>,
    /// Test hook: every write fails as on a full disk.
    fail_writes: Arc<AtomicBool>,
    /// Messages dropped because their segment could not be written or read back.
    lost_segments: Arc<AtomicU64>,
}

impl std::fmt::Debug for SpillArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillArea")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Smallest and largest derived per-queue budget.
const MIN_BUDGET: u64 = 1 << 20;
const MAX_BUDGET: u64 = 32 << 20;

impl SpillArea {
    /// Opens the area in `dir`, deleting whatever a previous run left there, and starts its I/O
    /// thread. Each queue may keep `per_queue` bytes of packed segments in memory, or, when
    /// `per_queue` is 0, an even share of `total` (between 1 and 32 MiB).
    pub fn open(dir: &Path, per_queue: u64, total: u64) -> std::io::Result<Arc<SpillArea>> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(dir)?;
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicU64::new(0));
        let lost_segments = Arc::new(AtomicU64::new(0));
        let write_delay_us = Arc::new(AtomicU64::new(0));
        let read_delay_us = Arc::new(AtomicU64::new(0));
        let writers = Arc::new(AtomicUsize::new(0));
        let fail_writes = Arc::new(AtomicBool::new(false));
        let writer = io::Writer::new(
            dir.to_path_buf(),
            tx.clone(),
            pending.clone(),
            writers.clone(),
            lost_segments.clone(),
            [write_delay_us.clone(), read_delay_us.clone()],
            fail_writes.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("warren-spill".into())
            .spawn(move || io::run(rx, writer))?;
        Ok(Arc::new(SpillArea {
            dir: dir.to_path_buf(),
            jobs: Mutex::new(tx),
            thread: Mutex::new(Some(thread)),
            per_queue,
            total,
            queues: AtomicUsize::new(0),
            pending,
            writers,
            write_delay_us,
            read_delay_us,
            fail_writes,
            lost_segments,
        }))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counts a queue that may spill (for the derived budget).
    pub fn register(&self) {
        self.queues.fetch_add(1, Ordering::Relaxed);
    }

    /// Uncounts a queue.
    pub fn unregister(&self) {
        self.queues.fetch_sub(1, Ordering::Relaxed);
    }

    /// The bytes of packed segments a queue keeps in memory before it spills.
    pub fn budget(&self) -> u64 {
        if self.per_queue > 0 {
            return self.per_queue;
        }
        let n = self.queues.load(Ordering::Relaxed).max(1) as u64;
        (self.total / n).clamp(MIN_BUDGET, MAX_BUDGET)
    }

    /// Bytes handed to the writer and not written yet.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// True while more is waiting to be written than the disk should have to catch up with.
    pub fn behind(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > PRESS_BYTES
    }

    /// True while the queue whose writes are `w` has more unwritten than its share of what the
    /// disk should have to catch up with: its publishers are to pause (`Queue::spill_pressure`).
    /// Two loads when the queue has nothing unwritten.
    pub fn pressing(&self, w: &Writes) -> bool {
        let own = w.unwritten.load(Ordering::Relaxed);
        own > 0 && over_share(own, self.writers.load(Ordering::Relaxed))
    }

    /// Runs `wake` once the queue whose writes are `w` is no longer [`SpillArea::pressing`];
    /// false (and `wake` dropped) when it is not now. Checked under the waiters' lock, which
    /// the I/O thread takes after lowering the count, so no wake-up is lost.
    pub fn wait_written(&self, w: &Writes, wake: Waker) -> bool {
        let mut waiters = w.waiters.lock();
        if !self.pressing(w) {
            return false;
        }
        waiters.push(wake);
        true
    }

    /// Test hook: slows every later write by `delay`, as a disk that cannot keep up would.
    pub fn set_write_delay(&self, delay: std::time::Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.write_delay_us.store(us, Ordering::Relaxed);
    }

    /// Test hook: makes every later write fail as on a full disk (`true`) or not.
    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::Relaxed);
    }

    /// Test hook: slows every later read by `delay`, as a slow disk would.
    pub fn set_read_delay(&self, delay: std::time::Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.read_delay_us.store(us, Ordering::Relaxed);
    }

    /// Segments lost to I/O errors so far.
    pub fn lost_segments(&self) -> u64 {
        self.lost_segments.load(Ordering::Relaxed)
    }

    fn send(&self, job: io::Job) -> bool {
        self.jobs.lock().send(job).is_ok()
    }

    /// Hands `bytes` to the writer, or gives them back when too much is waiting to be written
    /// already (the disk is not keeping up) or the thread is gone.
    #[cfg(test)]
    pub fn write(&self, bytes: Vec<u8>) -> Result<Arc<Slot>, Vec<u8>> {
        self.write_for(bytes, &Arc::default())
    }

    /// [`SpillArea::write`] for the queue whose writes are `owner`: counted there until written.
    pub fn write_for(&self, bytes: Vec<u8>, owner: &Arc<Writes>) -> Result<Arc<Slot>, Vec<u8>> {
        let len = bytes.len() as u64;
        if self.pending.load(Ordering::Relaxed) + len > MAX_PENDING_BYTES {
            return Err(bytes);
        }
        let bytes = Arc::new(bytes);
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState::Writing(bytes.clone())),
        });
        self.pending.fetch_add(len, Ordering::Relaxed);
        if owner.unwritten.fetch_add(len, Ordering::Relaxed) == 0 {
            self.writers.fetch_add(1, Ordering::Relaxed);
        }
        let job = io::Job::Write {
            slot: Arc::downgrade(&slot),
            bytes,
            owner: owner.clone(),
        };
        if !self.send(job) {
            unpend(&self.pending, &self.writers, owner, len);
            let state = std::mem::replace(&mut *slot.state.lock(), SlotState::Failed);
            let SlotState::Writing(bytes) = state else {
                return Err(Vec::new());
            };
            return Err(Arc::try_unwrap(bytes).unwrap_or_else(|b| b.to_vec()));
        }
        Ok(slot)
    }

    /// Asks for `slot`'s bytes ahead of need; `wake` runs once they are in memory. Does
    /// nothing unless the slot is only on disk.
    pub fn load(&self, slot: &Arc<Slot>, wake: Option<Waker>) {
        let mut state = slot.state.lock();
        let SlotState::OnDisk(at) = &*state else {
            return;
        };
        let at = at.clone();
        *state = SlotState::Loading(at.clone());
        drop(state);
        let job = io::Job::Read {
            slot: Arc::downgrade(slot),
            at,
            wake,
        };
        if !self.send(job) {
            *slot.state.lock() = SlotState::Failed;
            self.lost_segments.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes `slot`'s bytes if they are in memory; otherwise asks for them (once) and returns
    /// [`Taken::Pending`].
    pub fn take(&self, slot: &Arc<Slot>, wake: Option<Waker>) -> Taken {
        let mut state = slot.state.lock();
        match std::mem::replace(&mut *state, SlotState::Failed) {
            SlotState::Loaded(bytes) => Taken::Ready(bytes),
            // Still with the writer: copy (rare: the head caught up with the newest spills).
            SlotState::Writing(bytes) => Taken::Ready(bytes.to_vec()),
            SlotState::Failed => Taken::Failed,
            SlotState::Loading(at) => {
                *state = SlotState::Loading(at);
                Taken::Pending
            }
            SlotState::OnDisk(at) => {
                *state = SlotState::OnDisk(at);
                drop(state);
                self.load(slot, wake);
                Taken::Pending
            }
        }
    }

    /// Takes `slot`'s bytes, reading them in this thread if they are not in memory (for the
    /// operations that cannot wait: `basic.get`, expiry, purge). A load already asked for is
    /// not waited for but read again here: the I/O thread may be blocked on this very queue's
    /// lock, waking it after an earlier segment; it drops its copy when it sees the slot taken.
    pub fn take_now(&self, slot: &Arc<Slot>) -> Option<Vec<u8>> {
        let mut state = slot.state.lock();
        match std::mem::replace(&mut *state, SlotState::Failed) {
            SlotState::Loaded(bytes) => Some(bytes),
            SlotState::Writing(bytes) => Some(bytes.to_vec()),
            SlotState::Failed => None,
            SlotState::OnDisk(at) | SlotState::Loading(at) => {
                drop(state);
                // The slow-disk test hook covers this thread's reads too.
                let delay = self.read_delay_us.load(Ordering::Relaxed);
                if delay > 0 {
                    std::thread::sleep(std::time::Duration::from_micros(delay));
                }
                let read = io::read(&at);
                if read.is_none() {
                    self.lost_segments.fetch_add(1, Ordering::Relaxed);
                }
                read
            }
        }
    }

    /// Stops the I/O thread after the jobs already sent (the broker is stopping).
    pub fn stop(&self) {
        let _ = self.send(io::Job::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for SpillArea {
    fn drop(&mut self) {
        // Not joined: the last handle may be dropped on the I/O thread itself (by a waker).
        let _ = self.send(io::Job::Stop);
    }
}

#[cfg(test)]
pub(crate) mod tests;
