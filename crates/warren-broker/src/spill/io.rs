//! The spill area's I/O thread: appends segments to the current file, reads them back, and
//! deletes files nothing points into any more. Jobs run in the order they were sent.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak, mpsc};

use super::{FILE_BYTES, Location, Slot, SlotState, SpillFile, Waker, Writes};

/// Work for the thread.
pub(super) enum Job {
    /// Append `bytes` and record where they went in the slot (unless it is gone: its queue
    /// consumed or dropped the segment meanwhile).
    Write {
        slot: Weak<Slot>,
        bytes: Arc<Vec<u8>>,
        owner: Arc<Writes>,
    },
    /// Read the slot's bytes back, then wake its queue.
    Read {
        slot: Weak<Slot>,
        at: Location,
        wake: Option<Waker>,
    },
    /// Delete a file.
    Delete(PathBuf),
    /// Finish.
    Stop,
}

/// The file being appended to.
pub(super) struct Writer {
    dir: PathBuf,
    jobs: mpsc::Sender<Job>,
    pending: Arc<AtomicU64>,
    writers: Arc<AtomicUsize>,
    lost: Arc<AtomicU64>,
    /// Test hooks: microseconds each write and each read is slowed by.
    delay_us: [Arc<AtomicU64>; 2],
    current: Option<(Arc<SpillFile>, u64)>,
    next_name: u64,
    /// Segments whose write failed (a full disk), with their bytes (also still in their slots,
    /// `Writing`, so readable and counted in the process's memory), oldest first.
    failed: Vec<(Weak<Slot>, Arc<Vec<u8>>)>,
    /// Test hook: every write fails as on a full disk.
    fail_writes: Arc<AtomicBool>,
}

impl Writer {
    pub(super) fn new(
        dir: PathBuf,
        jobs: mpsc::Sender<Job>,
        pending: Arc<AtomicU64>,
        writers: Arc<AtomicUsize>,
        lost: Arc<AtomicU64>,
        delay_us: [Arc<AtomicU64>; 2],
        fail_writes: Arc<AtomicBool>,
    ) -> Writer {
        Writer {
            dir,
            jobs,
            pending,
            writers,
            lost,
            delay_us,
            current: None,
            next_name: 0,
            failed: Vec::new(),
            fail_writes,
        }
    }

    /// The file to append `len` bytes to, and where they go.
    fn file_for(&mut self, len: u64) -> std::io::Result<(Arc<SpillFile>, u64)> {
        if let Some((f, end)) = &self.current
            && *end + len <= FILE_BYTES.max(len)
        {
            return Ok((f.clone(), *end));
        }
        let path = self.dir.join(format!("{:08}.seg", self.next_name));
        self.next_name += 1;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        let f = Arc::new(SpillFile {
            path,
            file,
            jobs: self.jobs.clone(),
        });
        self.current = Some((f.clone(), 0));
        Ok((f, 0))
    }

    /// Test hook: sleeps as long as hook `which` (0: writes, 1: reads) says.
    fn slow(&self, which: usize) {
        let delay = self.delay_us[which].load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
    }

    /// Appends `bytes` to the current file (or a new one).
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<Location> {
        if self.fail_writes.load(Ordering::Relaxed) {
            // Test hook: a full disk.
            return Err(std::io::Error::from_raw_os_error(28));
        }
        let len = bytes.len() as u64;
        let (f, offset) = self.file_for(len)?;
        if let Err(e) = (&f.file).write_all(bytes) {
            // Whatever part was written is garbage: the next segment starts a new file.
            self.current = None;
            return Err(e);
        }
        if let Some((_, end)) = &mut self.current {
            *end = offset + len;
        }
        Ok(Location {
            file: f,
            offset,
            len: bytes.len(),
        })
    }

    /// Writes a segment for `slot`, unless its queue took it back meanwhile; one that fails
    /// (a full disk) stays in memory and is kept for [`Writer::retry_failed`].
    fn write(&mut self, slot: &Weak<Slot>, bytes: &Arc<Vec<u8>>, owner: &Writes) {
        let len = bytes.len() as u64;
        self.slow(0);
        // Counted as pending until written (or found unneeded), so that `behind` sees a slow disk.
        let _unpend = Unpend(self.pending.clone(), self.writers.clone(), owner, len);
        let Some(slot) = slot.upgrade() else {
            return;
        };
        if self.store(&slot, bytes) && !self.failed.is_empty() {
            // The disk has room again: write what failed before.
            self.retry_failed();
        }
    }

    /// Writes `bytes` for `slot` if it still waits for them; false when the write failed
    /// (logged; the segment stays in memory, in `failed`).
    fn store(&mut self, slot: &Arc<Slot>, bytes: &Arc<Vec<u8>>) -> bool {
        if !matches!(*slot.state.lock(), SlotState::Writing(_)) {
            return true;
        }
        match self.append(bytes) {
            Ok(at) => {
                let mut state = slot.state.lock();
                // Taken back meanwhile (the head reached it): the copy on disk is not needed.
                if matches!(*state, SlotState::Writing(_)) {
                    *state = SlotState::OnDisk(at);
                }
                true
            }
            Err(e) => {
                if self.failed.is_empty() {
                    tracing::error!(error = %e, "cannot write to the spill area; segments stay in memory until it can");
                }
                self.failed.push((Arc::downgrade(slot), bytes.clone()));
                false
            }
        }
    }

    /// Writes again the segments whose write failed, oldest first, until one fails again.
    pub(super) fn retry_failed(&mut self) {
        let failed = std::mem::take(&mut self.failed);
        let mut rest = failed.into_iter();
        for (slot, bytes) in rest.by_ref() {
            let Some(slot) = slot.upgrade() else { continue };
            if !self.store(&slot, &bytes) {
                break;
            }
        }
        self.failed.extend(rest);
        if self.failed.is_empty() {
            tracing::info!(
                "the spill area can be written again; segments kept in memory are written"
            );
        }
    }

    /// Segments kept in memory because their write failed.
    pub(super) fn has_failed(&self) -> bool {
        !self.failed.is_empty()
    }
}

/// How often segments whose write failed are tried again while no other write comes.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Takes `len` bytes off the pending counts when dropped (and wakes who waited for them).
struct Unpend<'a>(Arc<AtomicU64>, Arc<AtomicUsize>, &'a Writes, u64);

impl Drop for Unpend<'_> {
    fn drop(&mut self) {
        super::unpend(&self.0, &self.1, self.2, self.3);
    }
}

/// Reads a segment; `None` (logged) on an I/O error.
pub(super) fn read(at: &Location) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; at.len];
    match at.file.file.read_exact_at(&mut buf, at.offset) {
        Ok(()) => Some(buf),
        Err(e) => {
            tracing::error!(error = %e, file = %at.file.path.display(), "cannot read from the spill area; the segment's messages are lost");
            None
        }
    }
}

/// The thread's loop.
pub(super) fn run(jobs: mpsc::Receiver<Job>, mut writer: Writer) {
    loop {
        let job = if writer.has_failed() {
            match jobs.recv_timeout(RETRY) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    writer.retry_failed();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        match job {
            Job::Write { slot, bytes, owner } => writer.write(&slot, &bytes, &owner),
            Job::Read { slot, at, wake } => {
                let Some(slot) = slot.upgrade() else {
                    continue;
                };
                writer.slow(1);
                let read = read(&at);
                {
                    let mut state = slot.state.lock();
                    if matches!(*state, SlotState::Loading(_)) {
                        *state = match read {
                            Some(bytes) => SlotState::Loaded(bytes),
                            None => {
                                writer.lost.fetch_add(1, Ordering::Relaxed);
                                SlotState::Failed
                            }
                        };
                    }
                }
                drop(slot);
                if let Some(wake) = wake {
                    wake();
                }
            }
            Job::Delete(path) => {
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(error = %e, file = %path.display(), "cannot delete a spill file");
                }
            }
            Job::Stop => return,
        }
    }
}
