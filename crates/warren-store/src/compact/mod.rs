//! Compaction: sled 0.34 never gives space back to the file system (a store that held
//! 1,000,000 messages keeps the files of its peak after 900,000 are acked), so the store copies
//! its live records into a fresh sled database beside the old one and swaps the two
//! directories. This module is the offline way, with no broker serving the directory: from
//! `warren compact`, or at startup before recovery when [`CompactPolicy`] says the files are far
//! larger than the data. The `online` module does it while the store serves, with the same
//! directory names and the same rules at open.
//!
//! # The swap, and what a crash leaves
//!
//! Inside the store directory (`<dir>/FORMAT` is locked throughout, see `format::DirLock`):
//!
//! 1. copy every record of `sled/` into a new database in `sled.building/`, flush it, read it
//!    back and compare (count, bytes, checksum), close it, fsync all its files and directories;
//! 2. close `sled/`; fsync `<dir>`;
//! 3. **commit**: rename `sled.building/` to `sled.compact/`, fsync `<dir>`;
//! 4. rename `sled/` to `sled.old/`, fsync `<dir>`;
//! 5. rename `sled.compact/` to `sled/`, fsync `<dir>`;
//! 6. remove `sled.old/`, fsync `<dir>`.
//!
//! Every open first runs [`finish_interrupted`], which reads the state the names describe: a
//! `sled.building/` was never committed and is deleted (the old database is untouched); a
//! `sled.compact/` is committed and complete, so the swap is finished (steps 4 and 5); a
//! `sled.old/` beside a `sled/` is a finished swap whose clean-up was cut short. A crash at any
//! point therefore leaves the old database or the new one complete, and the next open uses it.
//! Both hold the same records, since nothing writes the old database once the copy starts.
//!
//! The format marker is untouched: `FORMAT` stays where it is, and the copy carries the
//! `format_version` meta key like every other record, except that a store of the unpacked key
//! layout (made by an older build) is repacked by the copy, whose key layout is then 3 (see
//! `packed`).

pub(crate) mod online;
#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::hash::Hasher;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::backend::{Atomicity, Backend, Changes};
use crate::format::{self, DirLock, MetaState, SLED_DIR, sync_dir};
use crate::keys;
use crate::keys::FORMAT_VERSION_KEY;
use crate::packed::Packed;
use crate::sled_backend::{SledBackend, open_sled};
use crate::{SledOptions, SledStore, StoreError};

/// Where the copy is written until it is complete.
pub(crate) const BUILDING: &str = "sled.building";
/// The complete copy, committed, until it replaces `sled/`.
pub(crate) const COMPACT: &str = "sled.compact";
/// The replaced database, until it is removed.
pub(crate) const OLD: &str = "sled.old";

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Apparent size of the database's files before, in bytes (as `du -sb`).
    pub disk_before: u64,
    /// Apparent size of the database's files after, in bytes.
    pub disk_after: u64,
    /// Records copied: meta keys, definitions, messages and queue index entries.
    pub records: u64,
    /// Bytes of the copied records' keys and values.
    pub live_bytes: u64,
    /// Time to copy, check and swap (opening the old store is not included).
    pub elapsed: Duration,
}

/// sled's own cost per record, beyond its key and value, in bytes: fitted to compacted stores
/// of 1 KiB and of 100-byte messages, which took about 1.7 × (key and value bytes + 83 bytes
/// per record) on disk (`docs/performance.md`). Without it a store of small messages looks
/// amplified even when freshly compacted, and would be compacted, in vain, at every start.
pub const RECORD_OVERHEAD: u64 = 80;

/// When [`SledStore::compact_if`] compacts: the files are more than `ratio` times what the
/// live data needs (key and value bytes plus [`RECORD_OVERHEAD`] per record) and at least
/// `min_disk_bytes` large. A freshly compacted store is at about 1.7.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactPolicy {
    /// Files-to-live-data ratio above which to compact; 0 or less never compacts.
    pub ratio: f64,
    /// Smaller files are left alone: there, sled's fixed overhead is most of the size.
    pub min_disk_bytes: u64,
}

impl Default for CompactPolicy {
    /// Ratio 4, at least 64 MiB (see `docs/decisions.md`).
    fn default() -> Self {
        CompactPolicy {
            ratio: 4.0,
            min_disk_bytes: 64 * 1024 * 1024,
        }
    }
}

impl CompactPolicy {
    /// Whether files of `disk_bytes` holding `records` records of `live_bytes` (keys and
    /// values) are worth compacting.
    pub fn wants(&self, disk_bytes: u64, live_bytes: u64, records: u64) -> bool {
        let needed = live_bytes.saturating_add(records.saturating_mul(RECORD_OVERHEAD));
        self.ratio > 0.0
            && disk_bytes >= self.min_disk_bytes
            && disk_bytes as f64 > self.ratio * needed as f64
    }
}

/// Compacts the closed store in `dir` (see the module docs for the steps). A directory
/// without a store, or with a store of another format version, is refused untouched.
pub fn compact(dir: &Path, options: &SledOptions) -> Result<CompactReport, StoreError> {
    require_store(dir)?;
    let store = SledStore::open_with(dir, options)?;
    match run(store, None)? {
        Outcome::Done(done) => Ok(done.report),
        Outcome::Stopped => Err(StoreError::Engine("compaction stopped".into())),
    }
}

impl SledStore {
    /// Compacts this store (see [`compact`]) and returns it reopened on the compacted files.
    /// Meant for startup, before anything is served: the store is closed in between.
    pub fn compact(self) -> Result<(SledStore, CompactReport), StoreError> {
        match run(self, None)? {
            Outcome::Done(done) => {
                let store = SledStore::open_locked(&done.dir, &done.options, done.lock)?;
                Ok((store, done.report))
            }
            Outcome::Stopped => Err(StoreError::Engine("compaction stopped".into())),
        }
    }

    /// Compacts when `policy` wants it for this store's file size and live data.
    pub fn compact_if(
        self,
        policy: &CompactPolicy,
    ) -> Result<(SledStore, Option<CompactReport>), StoreError> {
        // Unknown until the background open scan ends: no reason to compact yet.
        let Some((live, records)) = self.engine.live_at_open() else {
            return Ok((self, None));
        };
        let records = self.engine.backend().sled_records(records);
        if !policy.wants(self.disk_bytes()?, live, records) {
            return Ok((self, None));
        }
        let (store, report) = self.compact()?;
        Ok((store, Some(report)))
    }
}

/// A compaction that swapped its databases: what is needed to reopen the directory.
pub(crate) struct Done {
    pub(crate) lock: DirLock,
    pub(crate) dir: PathBuf,
    pub(crate) options: SledOptions,
    pub(crate) report: CompactReport,
}

/// How [`run`] ended.
pub(crate) enum Outcome {
    Done(Done),
    /// Stopped after the step asked for (tests simulate crashes this way).
    Stopped,
}

/// The points between the steps of the swap, where tests stop a compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The copy is complete and synced, not committed (steps 1 and 2).
    Built,
    /// `sled.compact` exists (step 3).
    Committed,
    /// `sled.old` exists, `sled` does not (step 4).
    OldAside,
    /// `sled` is the copy, `sled.old` still exists (step 5).
    Swapped,
}

/// Compacts `store`, stopping after `stop` if given.
pub(crate) fn run(store: SledStore, stop: Option<Step>) -> Result<Outcome, StoreError> {
    let started = Instant::now();
    let SledStore {
        scanner,
        compactor,
        drainer,
        engine,
        released,
        lock,
        dir,
        options,
    } = store;
    // The copy reads sled: every deferred write must be there, and none may come later.
    drop(scanner);
    drop(compactor);
    drop(drainer);
    // Closing hands pending writes to sled and records the extents, which the copy carries
    // so the compacted store opens without scanning.
    engine.close()?;
    let sled = dir.join(SLED_DIR);
    let disk_before = disk_usage(&sled)?;
    let building = dir.join(BUILDING);
    remove_dir_if_present(&building)?; // opening removed any; a leftover here would be a bug
    let tally = match copy_into(engine.backend(), &building, &options) {
        Ok(tally) => tally,
        Err(e) => {
            // Not committed: the old database stands. Tidy up now rather than at next open.
            let _ = fs::remove_dir_all(&building);
            return Err(e);
        }
    };
    // Nothing writes the old database from here on.
    drop(engine);
    drop(released);
    sync_dir(&dir)?;
    if stop == Some(Step::Built) {
        return Ok(Outcome::Stopped);
    }
    fs::rename(&building, dir.join(COMPACT))?;
    sync_dir(&dir)?;
    if stop == Some(Step::Committed) {
        return Ok(Outcome::Stopped);
    }
    fs::rename(&sled, dir.join(OLD))?;
    sync_dir(&dir)?;
    if stop == Some(Step::OldAside) {
        return Ok(Outcome::Stopped);
    }
    fs::rename(dir.join(COMPACT), &sled)?;
    sync_dir(&dir)?;
    if stop == Some(Step::Swapped) {
        return Ok(Outcome::Stopped);
    }
    fs::remove_dir_all(dir.join(OLD))?;
    sync_dir(&dir)?;
    let report = CompactReport {
        disk_before,
        disk_after: disk_usage(&sled)?,
        records: tally.records,
        live_bytes: tally.bytes,
        elapsed: started.elapsed(),
    };
    Ok(Outcome::Done(Done {
        lock,
        dir,
        options,
        report,
    }))
}

/// Resolves what an interrupted compaction left in `dir` (see the module docs), so that
/// `sled/` is the one complete database. Runs under the directory lock, before sled opens.
pub(crate) fn finish_interrupted(dir: &Path) -> Result<(), StoreError> {
    let building = remove_dir_if_present(&dir.join(BUILDING))?;
    let swapped = finish_committed_swap(dir)?;
    if building && !swapped {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The part of [`finish_interrupted`] that completes a swap past its commit point (or the
/// removal of the old database after it); answers whether it changed anything. A resume's
/// reopen runs it alone: a copy still being built there may belong to a running compaction.
pub(crate) fn finish_committed_swap(dir: &Path) -> Result<bool, StoreError> {
    let (sled, compact, old) = (dir.join(SLED_DIR), dir.join(COMPACT), dir.join(OLD));
    let mut changed = false;
    if present(&compact)? {
        if present(&sled)? {
            remove_dir_if_present(&old)?;
            fs::rename(&sled, &old)?;
            sync_dir(dir)?;
        }
        fs::rename(&compact, &sled)?;
        changed = true;
    }
    if present(&old)? {
        if present(&sled)? {
            fs::remove_dir_all(&old)?;
        } else {
            // The protocol never leaves this; should someone else have, keep the only copy.
            fs::rename(&old, &sled)?;
        }
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(changed)
}

/// The apparent size of every file under `path`, in bytes (as `du -sb`); 0 when it is absent.
pub fn disk_usage(path: &Path) -> Result<u64, StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in fs::read_dir(path)? {
        total += disk_usage(&entry?.path())?;
    }
    Ok(total)
}

/// Refuses a directory that holds no store, before opening would create one.
fn require_store(dir: &Path) -> Result<(), StoreError> {
    if !present(dir)? {
        return Err(std::io::Error::new(
            ErrorKind::NotFound,
            format!("{} does not exist", dir.display()),
        )
        .into());
    }
    if !dir.join(format::FORMAT_FILE).is_file() {
        return Err(StoreError::UnsupportedFormat {
            found: None,
            supported: format::FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Records and bytes seen, and a checksum over them in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    records: u64,
    bytes: u64,
    checksum: u64,
}

impl Tally {
    fn add(&mut self, hasher: &mut impl Hasher, key: &[u8], value: &[u8]) {
        self.records += 1;
        self.bytes += (key.len() + value.len()) as u64;
        // Lengths first, so that moving bytes between a key and its value changes the sum.
        hasher.write_usize(key.len());
        hasher.write(key);
        hasher.write_usize(value.len());
        hasher.write(value);
        self.checksum = hasher.finish();
    }
}

/// Messages and index entries per write while repacking: a few hundred blocks.
const REPACK_BATCH: usize = 4096;

/// Copies every record of `old` into a new database in `building`, checks the copy, closes it
/// and makes all of it durable. A store of the unpacked layout (made by an older build) is
/// repacked on the way: its messages and index entries go into blocks (`packed`) and the
/// copy's key layout becomes 3; the check then compares what the engine sees, key by key.
fn copy_into(
    old: &Packed<SledBackend>,
    building: &Path,
    options: &SledOptions,
) -> Result<Tally, StoreError> {
    let options = SledOptions {
        background_flush: None, // one flush at the end is all the copy needs
        ..options.clone()
    };
    let (new, released) = open_sled(building, &options)?;
    let repack = options.pack_new_store && !old.is_packed();
    let new = Packed::new(new, repack || old.is_packed());
    let mut copied = Tally::default();
    let mut hasher = std::hash::DefaultHasher::new();
    if repack {
        let layout = Bytes::copy_from_slice(&format::SLED_LAYOUT_VERSION.to_be_bytes());
        let mut blocks = Changes::new();
        old.scan_logical(&mut |k, v| {
            let v = if k == FORMAT_VERSION_KEY {
                &layout[..]
            } else {
                v
            };
            copied.add(&mut hasher, k, v);
            if matches!(k.first(), Some(&(keys::MESSAGE | keys::INDEX))) {
                blocks.push((k.to_vec(), Some(Bytes::copy_from_slice(v))));
                if blocks.len() >= REPACK_BATCH {
                    new.apply(std::mem::take(&mut blocks), Atomicity::InOrder)?;
                }
            } else {
                new.current()?.db().insert(k, v)?;
            }
            Ok(())
        })?;
        new.apply(blocks, Atomicity::InOrder)?;
    } else {
        old.scan_prefix(&[], &mut |k, v| {
            new.current()?.db().insert(k, v)?;
            copied.add(&mut hasher, k, v);
            Ok(())
        })?;
    }
    new.flush()?;
    let mut read_back = Tally::default();
    let mut hasher = std::hash::DefaultHasher::new();
    let mut add = |k: &[u8], v: &[u8]| {
        read_back.add(&mut hasher, k, v);
        Ok(())
    };
    if repack {
        new.scan_logical(&mut add)?;
    } else {
        new.scan_prefix(&[], &mut add)?;
    }
    if read_back != copied {
        return Err(StoreError::corrupt(format!(
            "the compacted copy reads back as {read_back:?}, not {copied:?}"
        )));
    }
    let meta = new.get(FORMAT_VERSION_KEY)?;
    if !matches!(
        format::check_meta(meta.as_deref(), false)?,
        MetaState::Current { .. }
    ) {
        return Err(StoreError::corrupt(
            "the compacted copy has no format version",
        ));
    }
    drop(new);
    drop(released);
    sync_tree(building)?;
    Ok(copied)
}

/// fsyncs every file and directory under `path` (sled's own flush leaves some unsynced, and
/// the directory entries of its files are never synced by it).
pub(crate) fn sync_tree(path: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        // The online compaction syncs a database that is open: sled may delete a blob file
        // between the listing and the open; a file that is gone needs no fsync.
        let is_dir = match entry.file_type() {
            Ok(t) => t.is_dir(),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if is_dir {
            sync_tree(&entry.path())?;
        } else {
            match File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    sync_dir(path)
}

fn present(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes a directory tree if it exists; whether it did.
pub(crate) fn remove_dir_if_present(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}
