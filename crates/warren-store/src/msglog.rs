//! [`MessageLog`]: the store's message bodies in append-only segment files, with only a
//! twelve-byte location per message in the key space below (sled key layout 4, see `format`).
//!
//! Why: sled 0.34.7 holds state per record and per node, and every message body it stores
//! costs it a page rewrite when written and another when freed; at a deep backlog's write
//! rates its IO thread pool deadlocked (`docs/decisions.md`, "Message bodies in a log of our
//! own"). Here a body is copied once into the current segment (one `pwrite` per
//! [`Backend::apply`]), and the key space below keeps the message key with its
//! [`Location`](segments::Location): packed sixteen to a sled record, 10 M messages are
//! 625 k small records instead of 2.5 M of 4 KiB.
//!
//! The engine above sees the logical key space unchanged: a message key's value is its body.
//!
//! **Durability.** [`Backend::flush`] fsyncs every segment written since the last flush (and
//! the directory when a segment was created) before it flushes the key space below, so a
//! location the last flush made durable points at durable bytes. A location sled makes
//! durable on its own, ahead of our fsync, belongs to a write the engine's write-ahead log
//! still holds (the log is deleted only after a checkpoint's flush), so a crash replays it.
//!
//! **Space.** Segments are counted, emptied ones unlinked once that is durable, and sparse
//! ones relocated (`space`).
//!
//! Lock order: `state`, then the key space below's locks, then `files`. `state` is held
//! across a segment's `pwrite` and the key space's apply, never across an fsync.

mod segments;
mod space;

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};

use crate::StoreError;
use crate::backend::{Atomicity, Backend, Changes, SizeVisit, Visit, VisitWhile};
use crate::format::sync_dir;
use crate::keys::{self, MESSAGE};

pub(crate) use segments::MESSAGES_DIR;
use segments::{LOCATION_LEN, Location};
use space::State;

/// A scan visitor answering `T` (`()` for [`Visit`], `bool` for [`VisitWhile`]).
type AnyVisit<'a, T> = dyn FnMut(&[u8], &[u8]) -> Result<T, StoreError> + 'a;

/// A segment is closed for appending once it holds this much.
pub(crate) const SEGMENT_BYTES: u64 = 64 << 20;

/// Locations counted per recount step (one step per flush): 16 Ki sled records, some
/// milliseconds.
const RECOUNT_STEP: usize = 1 << 18;

/// Read handles kept open at most (a segment is 64 MiB: 16 GiB of backlog).
const OPEN_SEGMENTS: usize = 256;

/// The message keys of a key space `B` kept as locations into segment files, or `B`
/// unchanged (a store of a layout without the log).
pub(crate) struct MessageLog<B> {
    inner: B,
    log: Option<Log>,
}

impl<B> Deref for MessageLog<B> {
    type Target = B;

    /// The key space below, for what is not a key operation (packing, compaction, counts).
    fn deref(&self) -> &B {
        &self.inner
    }
}

/// The segments of one store.
struct Log {
    dir: PathBuf,
    segment_bytes: u64,
    recount_step: usize,
    state: Mutex<State>,
    /// The segments on disk and the read handles open.
    files: RwLock<Files>,
    /// When a failure to give space back was last logged.
    warned: Mutex<Option<std::time::Instant>>,
}

/// The segments of a log and a bounded set of open read handles: a backlog of many segments
/// must not hold a file descriptor per segment. A handle cloned out stays readable after
/// it is dropped from the set, or its file unlinked.
#[derive(Default)]
struct Files {
    known: BTreeSet<u32>,
    open: HashMap<u32, Arc<File>>,
}

impl Files {
    fn insert(&mut self, n: u32, file: Arc<File>) {
        self.known.insert(n);
        self.keep(n, file);
    }

    /// Keeps `file` open as `n`'s handle, closing others past [`OPEN_SEGMENTS`].
    fn keep(&mut self, n: u32, file: Arc<File>) {
        if self.open.len() >= OPEN_SEGMENTS {
            let old: Vec<u32> = self
                .open
                .keys()
                .copied()
                .filter(|o| *o != n)
                .take(OPEN_SEGMENTS / 4)
                .collect();
            for o in old {
                self.open.remove(&o);
            }
        }
        self.open.insert(n, file);
    }

    fn remove(&mut self, n: u32) -> bool {
        self.open.remove(&n);
        self.known.remove(&n)
    }
}

impl Log {
    /// Logs a failure to give space back, at most once a minute.
    fn warn_space(&self, e: &StoreError) {
        let now = std::time::Instant::now();
        let mut last = self.warned.lock();
        if last.is_none_or(|at| now.duration_since(at) >= std::time::Duration::from_secs(60)) {
            *last = Some(now);
            tracing::warn!(error = %e, "the message log cannot give space back yet; it tries again at every checkpoint");
        }
    }

    /// A read handle of segment `n`, opened if none is.
    fn handle(&self, n: u32) -> Result<Arc<File>, StoreError> {
        let gone =
            || StoreError::corrupt(format!("message segment {n} is gone but still referenced"));
        {
            let files = self.files.read();
            if let Some(file) = files.open.get(&n) {
                return Ok(file.clone());
            }
            if !files.known.contains(&n) {
                return Err(gone());
            }
        }
        let file = Arc::new(
            segments::open_for_reading(&self.dir, n).map_err(|e| match e {
                StoreError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => gone(),
                other => other,
            })?,
        );
        let mut files = self.files.write();
        if !files.known.contains(&n) {
            return Err(gone());
        }
        files.keep(n, file.clone());
        Ok(file)
    }
}

impl<B> MessageLog<B> {
    /// `inner` as it is: message keys hold their bodies.
    pub(crate) fn off(inner: B) -> Self {
        MessageLog { inner, log: None }
    }

    /// Whether message bodies live in segment files.
    pub(crate) fn is_logged(&self) -> bool {
        self.log.is_some()
    }
}

impl<B: Backend> MessageLog<B> {
    /// `inner` with message bodies in the segments of `dir` (created if missing): a new
    /// segment is started, older ones are read as the locations below point into them.
    pub(crate) fn open(inner: B, dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(inner, dir, SEGMENT_BYTES, RECOUNT_STEP)
    }

    /// [`MessageLog::open`] closing segments at `segment_bytes` and recounting
    /// `recount_step` locations per flush (both small in tests).
    pub(crate) fn open_with(
        inner: B,
        dir: &Path,
        segment_bytes: u64,
        recount_step: usize,
    ) -> Result<Self, StoreError> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let existing = segments::list(dir)?;
        let mut files = Files {
            known: existing.iter().copied().collect(),
            open: HashMap::new(),
        };
        let mut sizes = HashMap::new();
        for &n in &existing {
            sizes.insert(n, std::fs::metadata(segments::path(dir, n))?.len());
        }
        // Never append to a segment from before: its tail may be torn.
        let current = existing.last().map_or(Ok(0), |&n| {
            n.checked_add(1).ok_or_else(|| {
                StoreError::Engine("the message log ran out of segment numbers".into())
            })
        })?;
        sizes.insert(current, 0);
        let writer = Arc::new(segments::create(dir, current)?);
        files.insert(current, writer.clone());
        let mut state = State {
            current,
            writer,
            len: 0,
            dirty: HashMap::new(),
            dir_dirty: true,
            counts: HashMap::new(),
            sizes,
            ids: HashMap::new(),
            recount: None,
            epoch: 0,
            pass: None,
            buf: Vec::new(),
        };
        state.restart_count();
        Ok(MessageLog {
            inner,
            log: Some(Log {
                dir: dir.to_path_buf(),
                segment_bytes,
                recount_step: recount_step.max(1),
                state: Mutex::new(state),
                files: RwLock::new(files),
                warned: Mutex::new(None),
            }),
        })
    }

    /// The segment numbers on disk now, for tests.
    #[cfg(test)]
    pub(crate) fn segment_numbers(&self) -> Result<Vec<u32>, StoreError> {
        match &self.log {
            Some(log) => segments::list(&log.dir),
            None => Ok(Vec::new()),
        }
    }

    /// The segment being appended to, for tests.
    #[cfg(test)]
    pub(crate) fn current_segment(&self) -> Option<u32> {
        self.log.as_ref().map(|log| log.state.lock().current)
    }

    /// Whether the live counts are exact (the recount after the open ended), for tests.
    #[cfg(test)]
    pub(crate) fn counted(&self) -> bool {
        self.log
            .as_ref()
            .is_none_or(|log| log.state.lock().recount.is_none())
    }

    /// The body of message `key` at the location `raw`. Reads take no lock of the log's, so
    /// a relocation may point the key elsewhere and a flush unlink the old segment between
    /// reading `raw` and opening its segment: then the key's location is read again.
    fn read(&self, log: &Log, key: &[u8], raw: &[u8]) -> Result<Bytes, StoreError> {
        let at = Location::decode(raw)?;
        let id = keys::message_id(key)?;
        let file = match log.handle(at.segment) {
            Ok(file) => file,
            Err(gone) => {
                let moved = self
                    .inner
                    .get(key)?
                    .map(|raw| Location::decode(&raw))
                    .transpose()?;
                match moved {
                    Some(now) if now != at => {
                        return segments::read_record(&*log.handle(now.segment)?, now, id);
                    }
                    _ => return Err(gone),
                }
            }
        };
        segments::read_record(&file, at, id)
    }

    /// A visitor that hands `visit` message bodies instead of their locations.
    fn translating<'a, T>(
        &'a self,
        log: &'a Log,
        visit: &'a mut AnyVisit<'a, T>,
    ) -> impl FnMut(&[u8], &[u8]) -> Result<T, StoreError> + 'a {
        move |k, v| {
            if k.first() == Some(&MESSAGE) {
                let body = self.read(log, k, v)?;
                visit(k, &body)
            } else {
                visit(k, v)
            }
        }
    }

    /// Starts a new segment to append to.
    fn rotate(log: &Log, st: &mut State) -> Result<(), StoreError> {
        let next = st.current.checked_add(1).ok_or_else(|| {
            StoreError::Engine("the message log ran out of segment numbers".into())
        })?;
        let file = Arc::new(segments::create(&log.dir, next)?);
        log.files.write().insert(next, file.clone());
        st.current = next;
        st.writer = file;
        st.len = 0;
        st.sizes.insert(next, 0);
        st.dir_dirty = true;
        Ok(())
    }

    fn apply_logged(
        &self,
        log: &Log,
        changes: Changes,
        atomicity: Atomicity,
    ) -> Result<(), StoreError> {
        let mut st = log.state.lock();
        if st.len >= log.segment_bytes {
            Self::rotate(log, &mut st)?;
        }
        let base = st.len;
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        // Within this apply, what each message id holds after the changes so far: a second
        // change of a key must uncount what the first counted, not what was there before.
        let mut seen: HashMap<u64, Option<Location>> = HashMap::new();
        let mut added: Vec<(u64, Location)> = Vec::new();
        let mut removed: Vec<Location> = Vec::new();
        // Every location of this apply in one buffer, sliced per key: no allocation per message.
        let puts = changes
            .iter()
            .filter(|(k, v)| k.first() == Some(&MESSAGE) && v.is_some())
            .count();
        let mut locations = BytesMut::with_capacity(puts * LOCATION_LEN);
        let mut translated = Changes::with_capacity(changes.len());
        let mut pending: Vec<(usize, usize)> = Vec::with_capacity(puts);
        for (key, value) in changes {
            if key.first() != Some(&MESSAGE) {
                translated.push((key, value));
                continue;
            }
            let id = keys::message_id(&key)?;
            let counted = st.counts_key(&key);
            let before = match (seen.get(&id), &value) {
                (Some(known), _) => *known,
                // A delete reads the location it removes. A put does not read what it may
                // overwrite: the engine never puts a stored id (it refuses to), except when it
                // replays its write-ahead log, which the recount covers; an overwrite would
                // only leave the old location counted, too high.
                (None, None) if counted => self
                    .inner
                    .get(&key)?
                    .map(|raw| Location::decode(&raw))
                    .transpose()?,
                (None, _) => None,
            };
            if counted && let Some(old) = before {
                removed.push(old);
            }
            match value {
                Some(body) => {
                    let offset = base + buf.len() as u64;
                    let (Ok(offset), Ok(len)) = (u32::try_from(offset), u32::try_from(body.len()))
                    else {
                        return Err(StoreError::Engine(
                            "a message log segment would pass 4 GiB".into(),
                        ));
                    };
                    segments::encode_record(&mut buf, id, &body);
                    let at = Location {
                        segment: st.current,
                        offset,
                        len,
                    };
                    if counted {
                        added.push((id, at));
                    }
                    seen.insert(id, Some(at));
                    pending.push((translated.len(), locations.len()));
                    locations.extend_from_slice(&at.encode());
                    translated.push((key, None));
                }
                None => {
                    seen.insert(id, None);
                    translated.push((key, None));
                }
            }
        }
        let locations = locations.freeze();
        for (at, from) in pending {
            if let Some(change) = translated.get_mut(at) {
                change.1 = Some(locations.slice(from..from + LOCATION_LEN));
            }
        }
        if !buf.is_empty() {
            if let Err(e) = st.writer.write_all_at(&buf, base) {
                // Whatever part reached the file is garbage no location points at; the next
                // append starts a fresh segment rather than write after a torn tail.
                let _ = Self::rotate(log, &mut st);
                return Err(e.into());
            }
            st.len = base + buf.len() as u64;
            let (current, writer, len) = (st.current, st.writer.clone(), st.len);
            st.dirty.insert(current, writer);
            st.sizes.insert(current, len);
        }
        st.buf = buf;
        // Counted before the write below: if it fails half-way, a count errs high, not low.
        for (id, at) in added {
            st.count(id, at);
        }
        self.inner.apply(translated, atomicity)?;
        for at in removed {
            st.uncount(at);
        }
        Ok(())
    }
}

impl<B: Backend> Backend for MessageLog<B> {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let raw = self.inner.get(key)?;
        match (&self.log, raw) {
            (Some(log), Some(raw)) if key.first() == Some(&MESSAGE) => {
                self.read(log, key, &raw).map(Some)
            }
            (_, raw) => Ok(raw),
        }
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        match &self.log {
            Some(log) if prefix.first().is_none_or(|t| *t == MESSAGE) => {
                let mut visit = self.translating(log, visit);
                self.inner.scan_prefix(prefix, &mut visit)
            }
            _ => self.inner.scan_prefix(prefix, visit),
        }
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError> {
        match &self.log {
            Some(log) if prefix.first().is_none_or(|t| *t == MESSAGE) => {
                let mut visit = self.translating(log, visit);
                self.inner.scan_from(prefix, start, &mut visit)
            }
            _ => self.inner.scan_from(prefix, start, visit),
        }
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.last_key(prefix)
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty()
    }

    fn apply(&self, changes: Changes, atomicity: Atomicity) -> Result<(), StoreError> {
        match &self.log {
            Some(log) => self.apply_logged(log, changes, atomicity),
            None => self.inner.apply(changes, atomicity),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        match &self.log {
            Some(log) => self.flush_logged(log),
            None => self.inner.flush(),
        }
    }

    /// The key space below goes back to what its last flush made durable: the counts start
    /// over, and appends go to a new segment (the current one may end in a torn record).
    fn reopen(&self) -> Result<(), StoreError> {
        let Some(log) = &self.log else {
            return self.inner.reopen();
        };
        let mut st = log.state.lock();
        st.restart_count();
        self.inner.reopen()?;
        Self::rotate(log, &mut st)
    }

    fn add_live(&self, bytes: u64, records: u64) {
        self.inner.add_live(bytes, records);
    }

    fn remove_live(&self, bytes: u64, records: u64) {
        self.inner.remove_live(bytes, records);
    }

    /// Reads no body: the size of a logged message is its key and location.
    fn scan_sizes_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut SizeVisit<'_>,
    ) -> Result<(), StoreError> {
        self.inner
            .scan_from(prefix, start, &mut |k, v| visit(k, self.stored_size(k, v)))
    }

    fn wants_flush(&self) -> bool {
        self.log.as_ref().is_some_and(|log| {
            log.state
                .lock()
                .has_work(&log.files.read().known, log.segment_bytes)
        })
    }

    fn stored_size(&self, key: &[u8], value: &[u8]) -> u64 {
        if self.log.is_some() && key.first() == Some(&MESSAGE) {
            (key.len() + LOCATION_LEN) as u64
        } else {
            self.inner.stored_size(key, value)
        }
    }
}

#[cfg(test)]
mod tests;
