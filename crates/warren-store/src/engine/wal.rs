//! The write-ahead log of message writes: what makes a `sync` (a publisher confirm) durable
//! without handing the pending list to sled.
//!
//! A `sync` appends the pending key changes not yet logged (physical changes: a key and its new
//! value, or a delete) to the log as one record, then one `fdatasync` of the log. The pending
//! list keeps collecting and cancelling (see `pending`): a message acked before the next
//! checkpoint never reaches sled, although its put and its delete are both in the log. A
//! *checkpoint* logs what is left, hands the whole pending list to sled, flushes sled, and only
//! then deletes the log files it covered. It runs before an online compaction and at close; a
//! definition change, a queue read or the pending-size bound logs and hands over without the
//! flush (the log stays). The store's drain thread (every `background_flush`,
//! 500 ms by default) runs an *aged* checkpoint instead.
//!
//! **Aged checkpoints.** A full checkpoint every 500 ms handed to sled every message published
//! in the last moments before it and not yet acked: under a steady consumer a few thousand per
//! checkpoint, each costing sled an insert and a delete of its bytes and of its index entry
//! (the checkpoint thread and sled's threads were 7 % of the persistent path's CPU). An aged
//! checkpoint logs the pending list, closes the log file, hands to sled only the changes
//! logged before the *previous* aged checkpoint closed its file (a prefix of the list:
//! `Pending::take_aged`), flushes sled, and deletes the log files up to that previous one.
//! A change therefore stays pending, and cancellable, for one to two intervals, and the log
//! holds up to two intervals. Why replay stays right: the files deleted hold only changes
//! that are now in sled (the prefix just handed over and flushed, or changes an earlier
//! hand-over took), or that were cancelled or overwritten later, in which case the later
//! delete or value is in a file that stays; the files kept hold every change still pending.
//! So the live files plus sled still hold the whole history since the state sled was flushed
//! at, and the argument below holds unchanged.
//!
//! ```text
//! <store>/wal/<generation:020>.log   "WRNWAL1\n", then records:
//!   record  = len: u32 LE | crc32(body): u32 LE | body (len bytes)
//!   body    = change*,  change = 1 | klen: u32 LE | key | vlen: u32 LE | value   (set)
//!                                 0 | klen: u32 LE | key                        (delete)
//! ```
//!
//! **Why replay is right.** Every change the pending list ever holds goes to the log before
//! sled can see it (a change cancelled or overwritten after it was logged is logged again as
//! its delete or new value), so the live log files hold, in order, the whole history since the
//! last checkpoint that completed, and sled holds the state at that checkpoint plus a prefix
//! (in the crash-safe order of `plan`) of the net effect of that history. Replaying the history
//! as plain sets and deletes over such a state gives the history's final state: each key it
//! touches ends at its last logged value, each key it does not touch was not changed. Replay is
//! therefore idempotent, and a crash anywhere leaves a state it can finish:
//! - during a `sync`'s append: a torn last record, detected (length or checksum) and dropped;
//!   the confirms waiting for it were not sent;
//! - after a checkpoint handed some changes to sled, before sled's flush: sled holds a prefix;
//!   replay completes it;
//! - after sled's flush, before the log files went: replay rewrites what sled holds.
//!
//! A checkpoint holds the store's `order` lock from taking the list to deleting the files, so
//! no other hand-over interleaves. Recovery replays before the engine opens, deletes the
//! clean-close marker with the first replayed change (extents must be rebuilt by the crash
//! scan), flushes sled, and then deletes the files.
//!
//! **Locks.** The log is a `Mutex<Wal>` in the engine; order is `order`, then the log, then
//! `shared`. The log lock is held across its own `fdatasync` (it is what orders the log's
//! writes): only group-committed syncs, hand-overs and checkpoints take it, so at most one
//! waits. `shared` is released before the fsync, except in the background open scan's step,
//! in close and in a definition change's own record, which are rare. A definition change
//! holds the log lock from its hand-over until its batch is logged and applied, so the log's
//! order is sled's.
//!
//! **Definition changes** are logged too: a definition change hands the pending list to sled
//! (logged first, as every hand-over: its plan reads sled), then appends its batch as one
//! record and `fdatasync`s it before sled sees the batch, and does not flush sled (the next
//! checkpoint does, then deletes the record, as for any hand-over). The change is made once
//! that record is durable: a sled write of the batch that fails, or the flush that follows
//! later, suspends the engine (the resume replays the record into a reopened sled) instead of
//! failing it, and an append that fails refuses the change and drops the record. Replay keeps
//! the history's order, so no record written before a `queue.delete` is replayed after it.
//! (Until session 17 the batch was not logged: a definition change ran a full checkpoint first
//! and flushed sled after its batch, and a failure of that flush failed the store.)
//!
//! **Failures.** A failed log append or fsync (a full disk) is cut back to the last good
//! length and its record kept for the next commit: the confirms waiting get a nack, a later
//! `sync` may succeed, and nothing confirmed is lost. A failed sled write or flush after a
//! hand-over (everything it took is logged) suspends the store (see the engine's module doc):
//! the log files stay, so the log is never deleted on the strength of a later flush that may
//! not cover the pages an earlier failed one dropped, and the resume replays them into a
//! reopened sled exactly as an open after a crash does. A hand-over whose second append
//! fails (it took the list, which it cannot put back), or an append that cannot be cut back,
//! fails the store (every later call refused until reopened; the log is kept for the next
//! open).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, IoSlice, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::StoreError;
use crate::backend::{Atomicity, Backend, Changes};
use crate::format::sync_dir;
use crate::keys;

/// The log's directory inside a store directory.
pub(crate) const WAL_DIR: &str = "wal";
const MAGIC: &[u8; 8] = b"WRNWAL1\n";
/// Bytes of a record's header (length and checksum).
const RECORD_HEADER: usize = 8;
const SET: u8 = 1;
/// Values from this size on are written from their own `Bytes` rather than copied into the
/// record (a message's stored form; index entries and extents are a few bytes).
const SHARED_MIN: usize = 256;
const DELETE: u8 = 0;

/// The log being written.
pub(crate) struct Wal {
    dir: PathBuf,
    /// Generation of the file being written, or of the next one created.
    generation: u64,
    file: Option<File>,
    /// Bytes of `file` known durable: a failed append is cut back to this length.
    good_len: u64,
    /// An append failed and could not be taken back: the store must fail.
    poisoned: bool,
    /// The record being built: a header placeholder, then its changes (reused: no allocation
    /// per sync once it has grown), values of [`SHARED_MIN`] bytes or more left out (they are
    /// in `shared`). A failed append keeps it, so the next commit writes it again, whole, with
    /// what was staged since.
    record: Vec<u8>,
    /// The values left out of `record`, each with the offset in `record` it goes at: a
    /// message's bytes are written from the pending list's own `Bytes` by one vectored write,
    /// never copied into the record (a copy per message, under the store's `shared` lock).
    shared: Vec<(usize, Bytes)>,
    /// The generation the last aged checkpoint closed (see `rotate_aged`).
    aged: Option<u64>,
    /// Appends still to fail as a failed `fdatasync` does, after their write reached the
    /// file (tests inject them).
    #[cfg(test)]
    pub(crate) fail_syncs: u32,
}

impl Wal {
    /// A log in `dir` whose first file has generation `generation`. The directory is created
    /// with the first file, so a store that never logs keeps its old layout.
    pub(crate) fn new(dir: PathBuf, generation: u64) -> Result<Wal, StoreError> {
        Ok(Wal {
            dir,
            generation,
            file: None,
            good_len: 0,
            poisoned: false,
            record: Vec::new(),
            shared: Vec::new(),
            aged: None,
            #[cfg(test)]
            fail_syncs: 0,
        })
    }

    /// The log's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds one change to the record being built.
    pub(crate) fn stage(&mut self, key: &[u8], value: Option<&Bytes>) {
        if self.record.is_empty() {
            self.record.extend_from_slice(&[0; RECORD_HEADER]);
        }
        self.record.push(if value.is_some() { SET } else { DELETE });
        push_bytes(&mut self.record, key);
        match value {
            Some(v) if v.len() >= SHARED_MIN => {
                // Keys and values are far below 4 GiB (see `push_bytes`).
                self.record
                    .extend_from_slice(&(v.len() as u32).to_le_bytes());
                self.shared.push((self.record.len(), v.clone()));
            }
            Some(v) => push_bytes(&mut self.record, v),
            None => {}
        }
    }

    /// The record's pieces in order (its own bytes between the shared values), from `from`.
    fn pieces(&self, from: usize) -> impl Iterator<Item = &[u8]> {
        let mut at = from;
        self.shared
            .iter()
            .flat_map(move |(off, value)| {
                let own = self.record.get(at..*off).unwrap_or_default();
                at = *off;
                [own, value.as_ref()]
            })
            .chain(std::iter::once_with(move || {
                let last = self.shared.last().map_or(from, |(off, _)| *off);
                self.record.get(last..).unwrap_or_default()
            }))
            .filter(|piece| !piece.is_empty())
    }

    /// Appends the record built so far, if any, and makes it durable (`fdatasync`).
    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        if self.record.is_empty() {
            return Ok(());
        }
        let body_len = self.record.len() - RECORD_HEADER
            + self.shared.iter().map(|(_, v)| v.len()).sum::<usize>();
        let len = u32::try_from(body_len)
            .map_err(|_| StoreError::Engine("a log record over 4 GiB".into()))?;
        let mut crc = crc32fast::Hasher::new();
        self.pieces(RECORD_HEADER)
            .for_each(|piece| crc.update(piece));
        let crc = crc.finalize();
        if let Some(header) = self.record.get_mut(..RECORD_HEADER) {
            header[..4].copy_from_slice(&len.to_le_bytes());
            header[4..].copy_from_slice(&crc.to_le_bytes());
        }
        let outcome = self.append(RECORD_HEADER + body_len);
        if outcome.is_ok() {
            self.record.clear();
            self.shared.clear();
        }
        outcome
    }

    /// Drops the record staged since the last good commit: for a definition batch whose
    /// append failed (the change is refused, so no later commit may write it). Only a batch
    /// staged alone, right after a good commit, may be discarded.
    pub(crate) fn discard(&mut self) {
        self.record.clear();
        self.shared.clear();
    }

    /// Whether a failed append left the file in a state it could not take back (the store
    /// must fail: a torn record may sit before later ones).
    pub(crate) fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// Writes the record (`len` bytes, header included) at the end of the file and syncs it.
    fn append(&mut self, len: usize) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Failed);
        }
        if self.file.is_none() {
            self.open_next()?;
        }
        #[cfg(test)]
        let injected = {
            let left = self.fail_syncs;
            self.fail_syncs = left.saturating_sub(1);
            left > 0
        };
        #[cfg(not(test))]
        let injected = false;
        let Some(mut file) = self.file.as_ref() else {
            return Err(StoreError::Failed);
        };
        let mut pieces: Vec<IoSlice<'_>> = self.pieces(0).map(IoSlice::new).collect();
        let synced = write_all_vectored(&mut file, &mut pieces).and_then(|()| {
            if injected {
                return Err(std::io::Error::other("injected fdatasync failure"));
            }
            file.sync_data()
        });
        match synced {
            Ok(()) => {
                self.good_len += len as u64;
                Ok(())
            }
            Err(e) => {
                // Take back whatever reached the file (a full disk, a failed fsync): the
                // record is written again by the next commit, so the sync that failed is
                // nacked and a later one may succeed, as with a failed sled flush.
                if file.set_len(self.good_len).is_err() {
                    self.poisoned = true;
                }
                Err(e.into())
            }
        }
    }

    /// Creates the file of the current generation (its magic is made durable by the first
    /// record's fsync). A failure removes what it created, so a later attempt can create it
    /// again.
    fn open_next(&mut self) -> Result<(), StoreError> {
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir)?;
            if let Some(parent) = self.dir.parent() {
                sync_dir(parent)?;
            }
        }
        let path = file_path(&self.dir, self.generation);
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // The new name must survive a crash before anything in it is relied on.
        let created = f
            .write_all(MAGIC)
            .map_err(StoreError::from)
            .and_then(|()| sync_dir(&self.dir));
        if let Err(e) = created {
            if fs::remove_file(&path).is_err() {
                self.poisoned = true;
            }
            return Err(e);
        }
        self.good_len = MAGIC.len() as u64;
        self.file = Some(f);
        Ok(())
    }

    /// Closes the file being written, if any, and answers the newest generation a full
    /// checkpoint deletes once sled's flush returned: that file's, or else the one the last
    /// aged checkpoint closed and left (a full checkpoint hands its changes over too). The next
    /// record starts a new file.
    pub(crate) fn rotate(&mut self) -> Option<u64> {
        let done = self.close_file();
        let left = self.aged.take();
        done.or(left)
    }

    /// [`Wal::rotate`] for an aged checkpoint: closes the file being written and answers the
    /// generation the *previous* aged checkpoint closed, whose files the checkpoint may delete
    /// once it handed the changes logged before it to sled and flushed sled. The files kept are
    /// at most that one and the file just closed.
    pub(crate) fn rotate_aged(&mut self) -> Option<u64> {
        let done = self.close_file();
        std::mem::replace(&mut self.aged, done)
    }

    /// Closes the file being written, if any, and answers its generation.
    fn close_file(&mut self) -> Option<u64> {
        let done = self.file.take().map(|_| self.generation);
        if done.is_some() {
            self.generation += 1;
        }
        done
    }
}

/// Writes every piece, in order, with as few `writev` calls as the kernel allows (std caps each
/// at `IOV_MAX` pieces; a short write resumes where it stopped).
fn write_all_vectored(file: &mut &File, mut pieces: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !pieces.is_empty() {
        match file.write_vectored(pieces) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut pieces, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values are far below 4 GiB (a message is at most the frame size limit).
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn file_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}.log"))
}

/// The log files in `dir`, by generation.
fn files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let generation = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| {
                StoreError::corrupt(format!(
                    "unexpected file {} in the write-ahead log directory",
                    entry.path().display()
                ))
            })?;
        found.push((generation, entry.path()));
    }
    found.sort_unstable_by_key(|(g, _)| *g);
    Ok(found)
}

/// Whether the filesystem of the log in `dir` has room to replay it into sled: twice the
/// log's bytes (sled writes more than the log holds) and 8 MiB. A resume checks it before
/// reopening sled, which reads sled's whole log: no reopen every few seconds while the disk
/// stays full.
pub(crate) fn room_to_replay(dir: &Path) -> Result<bool, StoreError> {
    let found = files(dir)?;
    if found.is_empty() {
        return Ok(true); // nothing to replay (the directory may not even exist yet)
    }
    let mut bytes = 0u64;
    for (_, path) in found {
        bytes += fs::metadata(path)?.len();
    }
    Ok(room_for(fs2::available_space(dir)?, bytes))
}

/// Whether `free` bytes hold the replay of `log` bytes (see [`room_to_replay`]).
fn room_for(free: u64, log: u64) -> bool {
    free >= log.saturating_mul(2).saturating_add(8 << 20)
}

/// Deletes the log files up to generation `through` (a checkpoint covered them), then makes
/// the deletions durable: a file left behind would be replayed over a later checkpoint.
pub(crate) fn remove_through(dir: &Path, through: u64) -> Result<(), StoreError> {
    if !dir.exists() {
        return Ok(());
    }
    for (generation, path) in files(dir)? {
        if generation <= through {
            fs::remove_file(path)?;
        }
    }
    sync_dir(dir)
}

/// Replays every log file in `dir` into `backend` (see the module doc), flushes it, deletes
/// the files, and answers the generation the next log file should use. A torn or corrupt
/// record at the end of the last file is what a crash during an append leaves: it and what
/// follows are dropped. One anywhere else is corruption.
pub(crate) fn recover(dir: &Path, backend: &impl Backend) -> Result<u64, StoreError> {
    let found = files(dir)?;
    let Some(&(last, _)) = found.last() else {
        return Ok(1);
    };
    let mut replayed = false;
    for (generation, path) in &found {
        let data = fs::read(path)?;
        let is_last = *generation == last;
        let torn = |what: &str| {
            if is_last {
                Ok(())
            } else {
                Err(StoreError::corrupt(format!(
                    "{what} in {}, which is not the last log file",
                    path.display()
                )))
            }
        };
        let Some(mut rest) = data.strip_prefix(MAGIC.as_slice()) else {
            // A crash right after creating the file leaves it shorter than its magic.
            if data.len() < MAGIC.len() && MAGIC.starts_with(&data) {
                torn("a torn header")?;
                continue;
            }
            return Err(StoreError::corrupt(format!(
                "{} is not a write-ahead log file",
                path.display()
            )));
        };
        while !rest.is_empty() {
            let Some((body, after)) = next_record(rest) else {
                torn("a torn or corrupt record")?;
                break;
            };
            let changes = decode_body(body)?;
            if !replayed {
                // The crash scan must rebuild the extents a clean close recorded.
                backend.apply(
                    vec![(keys::CLEAN_EXTENTS_KEY.to_vec(), None)],
                    Atomicity::Batch,
                )?;
                replayed = true;
            }
            backend.apply(changes, Atomicity::InOrder)?;
            rest = after;
        }
    }
    if replayed {
        backend.flush()?;
    }
    remove_through(dir, last)?;
    remove_dir(dir)?;
    Ok(last.saturating_add(1))
}

/// Removes the log's directory once it holds no file (recovery and a clean close), so a
/// closed store keeps the layout of a store without a log.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// The body of the record at the start of `data` and what follows it, or `None` if the record
/// is cut short or its checksum does not match.
fn next_record(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(data.get(4..RECORD_HEADER)?.try_into().ok()?);
    let end = RECORD_HEADER.checked_add(len)?;
    let body = data.get(RECORD_HEADER..end)?;
    (crc32fast::hash(body) == crc).then(|| (body, data.get(end..).unwrap_or_default()))
}

/// The changes of a record whose checksum matched.
fn decode_body(mut body: &[u8]) -> Result<Changes, StoreError> {
    let bad = || StoreError::corrupt("a write-ahead log record with a valid checksum is malformed");
    let mut changes = Vec::new();
    while let Some((&tag, rest)) = body.split_first() {
        let (key, rest) = take_bytes(rest).ok_or_else(bad)?;
        let (value, rest) = match tag {
            SET => {
                let (v, rest) = take_bytes(rest).ok_or_else(bad)?;
                (Some(Bytes::copy_from_slice(v)), rest)
            }
            DELETE => (None, rest),
            _ => return Err(bad()),
        };
        changes.push((key.to_vec(), value));
        body = rest;
    }
    Ok(changes)
}

fn take_bytes(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let end = 4usize.checked_add(len)?;
    Some((data.get(4..end)?, data.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("warren-wal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_replay_in_order_and_a_torn_tail_is_dropped() {
        let d = dir("torn");
        let mut wal = Wal::new(d.clone(), 1).unwrap();
        wal.stage(b"a", Some(&Bytes::from_static(b"1")));
        wal.stage(b"b", Some(&Bytes::from_static(b"2")));
        wal.commit().unwrap();
        wal.stage(b"a", None);
        wal.commit().unwrap();
        wal.stage(b"c", Some(&Bytes::from_static(b"3")));
        wal.commit().unwrap();
        drop(wal);
        // Tear the last record: its checksum no longer matches.
        let path = file_path(&d, 1);
        let mut data = fs::read(&path).unwrap();
        let n = data.len();
        data.truncate(n - 1);
        fs::write(&path, &data).unwrap();
        let backend = MemoryBackend::default();
        assert_eq!(recover(&d, &backend).unwrap(), 2);
        assert_eq!(backend.get(b"a").unwrap(), None);
        assert_eq!(backend.get(b"b").unwrap(), Some(Bytes::from_static(b"2")));
        assert_eq!(backend.get(b"c").unwrap(), None);
        assert!(files(&d).unwrap().is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_fsync_is_cut_back_and_its_record_written_again_by_the_next_commit() {
        let d = dir("fsync");
        let mut wal = Wal::new(d.clone(), 1).unwrap();
        wal.stage(b"a", Some(&Bytes::from_static(b"1")));
        wal.commit().unwrap();
        let good = fs::metadata(file_path(&d, 1)).unwrap().len();
        wal.fail_syncs = 2;
        wal.stage(b"b", Some(&Bytes::from_static(b"2")));
        assert!(wal.commit().is_err());
        // The bytes written before the failed fsync are taken back, not left to be synced
        // by a later, successful fsync under records that were never acknowledged.
        assert_eq!(fs::metadata(file_path(&d, 1)).unwrap().len(), good);
        wal.stage(b"a", None);
        assert!(wal.commit().is_err());
        assert_eq!(fs::metadata(file_path(&d, 1)).unwrap().len(), good);
        assert!(!wal.poisoned());
        wal.stage(b"c", Some(&Bytes::from_static(b"3")));
        wal.commit().unwrap();
        drop(wal);
        // One record with everything staged since the last good commit, in order, once.
        let backend = MemoryBackend::default();
        assert_eq!(recover(&d, &backend).unwrap(), 2);
        assert_eq!(backend.get(b"a").unwrap(), None);
        assert_eq!(backend.get(b"b").unwrap(), Some(Bytes::from_static(b"2")));
        assert_eq!(backend.get(b"c").unwrap(), Some(Bytes::from_static(b"3")));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_bad_record_in_an_earlier_file_is_corruption() {
        let d = dir("corrupt");
        let mut wal = Wal::new(d.clone(), 1).unwrap();
        wal.stage(b"a", Some(&Bytes::from_static(b"1")));
        wal.commit().unwrap();
        assert_eq!(wal.rotate(), Some(1));
        wal.stage(b"b", Some(&Bytes::from_static(b"2")));
        wal.commit().unwrap();
        drop(wal);
        let path = file_path(&d, 1);
        let mut data = fs::read(&path).unwrap();
        if let Some(last) = data.last_mut() {
            *last ^= 0xff;
        }
        fs::write(&path, &data).unwrap();
        let backend = MemoryBackend::default();
        assert!(matches!(recover(&d, &backend), Err(StoreError::Corrupt(_))));
        let _ = fs::remove_dir_all(&d);
    }

    /// One step of the generated log test.
    #[derive(Debug, Clone)]
    enum Step {
        /// Stage a set of key `k` to a value of `len` bytes (shared from 256 bytes on).
        Set(u8, usize),
        /// Stage a delete of key `k`.
        Delete(u8),
        /// Commit; `true` makes its `fdatasync` fail.
        Commit(bool),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u8..6, prop_oneof![0usize..8, 250usize..262, 1000usize..1100])
                .prop_map(|(k, len)| Step::Set(k, len)),
            1 => (0u8..6).prop_map(Step::Delete),
            2 => prop::bool::weighted(0.2).prop_map(Step::Commit),
        ]
    }

    type Model = std::collections::BTreeMap<Vec<u8>, Bytes>;

    /// Runs `steps` against a log and against a map; answers the map after each good commit
    /// and the file's length then.
    fn run_steps(d: &Path, steps: &[Step]) -> Vec<(Model, u64)> {
        let mut wal = Wal::new(d.to_path_buf(), 1).unwrap();
        let (mut durable, mut staged) = (Model::new(), Vec::new());
        let mut commits = vec![(Model::new(), MAGIC.len() as u64)];
        for (n, step) in steps.iter().enumerate() {
            match step {
                Step::Set(k, len) => {
                    // A value whose every byte says which step wrote it.
                    let value = Bytes::from(vec![n as u8; *len]);
                    wal.stage(&[*k], Some(&value));
                    staged.push((vec![*k], Some(value)));
                }
                Step::Delete(k) => {
                    wal.stage(&[*k], None);
                    staged.push((vec![*k], None));
                }
                Step::Commit(fail) => {
                    wal.fail_syncs = u32::from(*fail);
                    let staged_any = !staged.is_empty();
                    match wal.commit() {
                        Ok(()) => {
                            for (k, v) in staged.drain(..) {
                                match v {
                                    Some(v) => durable.insert(k, v),
                                    None => durable.remove(&k),
                                };
                            }
                            if staged_any {
                                let len = fs::metadata(file_path(d, 1)).unwrap().len();
                                commits.push((durable.clone(), len));
                            }
                        }
                        // A failed commit keeps its record for the next one.
                        Err(_) => assert!(*fail && staged_any && !wal.poisoned()),
                    }
                }
            }
        }
        commits
    }

    fn replayed(d: &Path) -> Model {
        let backend = MemoryBackend::default();
        recover(d, &backend).unwrap();
        let mut all = Model::new();
        backend
            .scan_prefix(b"", &mut |k, v| {
                all.insert(k.to_vec(), Bytes::copy_from_slice(v));
                Ok(())
            })
            .unwrap();
        all
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: std::env::var("WARREN_WAL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Replay gives exactly what the good commits wrote, in order (small values copied into
        /// the record, large ones written from their own `Bytes`, failed fsyncs retried by the
        /// next commit), and a tail torn anywhere in the last record gives what the commit
        /// before it wrote.
        #[test]
        fn replay_gives_what_the_good_commits_wrote(
            steps in proptest::collection::vec(step(), 1..40),
            tear in 1u64..4096,
        ) {
            let d = dir("generated");
            let commits = run_steps(&d, &steps);
            let (last, _) = commits.last().unwrap();
            proptest::prop_assert_eq!(&replayed(&d), last);
            if let [.., (before, before_len), (_, len)] = commits.as_slice() {
                let d = dir("generated");
                run_steps(&d, &steps);
                let path = file_path(&d, 1);
                let torn = len - 1 - (tear - 1) % (len - before_len);
                let data = fs::read(&path).unwrap();
                fs::write(&path, &data[..torn as usize]).unwrap();
                proptest::prop_assert_eq!(&replayed(&d), before);
            }
            let _ = fs::remove_dir_all(&d);
        }
    }

    #[test]
    fn a_resume_replays_only_with_room_for_twice_the_log() {
        assert!(room_for(8 << 20, 0));
        assert!(!room_for((8 << 20) - 1, 0));
        assert!(room_for(28 << 20, 10 << 20));
        assert!(!room_for(27 << 20, 10 << 20));
        assert!(!room_for(u64::MAX - 1, u64::MAX));
        let dir = std::env::temp_dir().join(format!("warren-wal-room-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(room_to_replay(&dir).unwrap(), "no log: nothing to replay");
    }
}
