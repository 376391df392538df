//! The message log's space: what each segment holds live, and giving back what it does not.
//!
//! Counts (`State::counts`) are per segment, in records and bytes: a put counts its new
//! location; a delete reads the location it removes and uncounts it once the write
//! succeeded, so a failed write leaves counts too high, never too low. A put does not read
//! what it may overwrite (the engine never puts a stored id but in a replay of its
//! write-ahead log, which happens while the recount below runs): an overwrite would leave
//! the old location counted, too high, until the next open. They start unknown at
//! every open and after a reopen: the *recount* reads the locations in key order, one step
//! per flush; a write counts a key the recount has passed and leaves the others to it. An
//! idle store's drain thread flushes while this layer has work ([`State::has_work`]), so the
//! recount, reclaims and relocations also advance with nothing written.
//!
//! **Reclaim.** Once counts are exact, a segment that is not being written and counts nothing
//! is unlinked, but only after a flush of the key space below made the deletes that emptied
//! it durable: the state a crash or a reopen goes back to never points into a removed file.
//!
//! **Relocation.** When the segments hold more than twice the live bytes (and two segments
//! more), the segments less than half live become *victims*: a pass walks the locations in
//! key order, a step per flush, copies each victim's live records to the current segment,
//! fsyncs it, and only then points the keys at the copies (a key deleted or changed meanwhile
//! keeps its state, the copy is garbage). The victims then count nothing and are reclaimed.
//! A FIFO drain needs no relocation (segments empty in order); a few long-lived messages
//! among many short-lived ones do.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use super::segments::{self, HEADER, Location};
use super::{Log, MessageLog};
use crate::StoreError;
use crate::backend::{Atomicity, Backend, Changes};
use crate::keys::{self, MESSAGE};

/// Live records and their bytes in one segment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Count {
    pub(super) records: u64,
    pub(super) bytes: u64,
}

/// Bytes a record at `at` takes in its segment.
pub(super) fn record_bytes(at: Location) -> u64 {
    HEADER as u64 + u64::from(at.len)
}

/// A relocation pass: its victims, the next message key to look at and the greatest id any
/// victim may hold.
#[derive(Debug)]
pub(super) struct Pass {
    victims: BTreeSet<u32>,
    pos: Vec<u8>,
    last_id: u64,
}

/// What appends, counts, reclaims and relocations share (`Log::state`).
pub(super) struct State {
    /// The segment being appended to, its file and length.
    pub(super) current: u32,
    pub(super) writer: Arc<std::fs::File>,
    pub(super) len: u64,
    /// Segments written since the last flush's fsync.
    pub(super) dirty: HashMap<u32, Arc<std::fs::File>>,
    /// Whether a segment was created or unlinked since the directory was last fsynced.
    pub(super) dir_dirty: bool,
    /// Live locations per segment (exact once `recount` is `None`, unless a write failed).
    pub(super) counts: HashMap<u32, Count>,
    /// Bytes on disk per segment (the current one's is `len`).
    pub(super) sizes: HashMap<u32, u64>,
    /// The least and greatest message id ever counted in each segment: where a relocation
    /// pass looks for a victim's records.
    pub(super) ids: HashMap<u32, (u64, u64)>,
    /// While counting: the message keys below this one are counted, the others not yet.
    pub(super) recount: Option<Vec<u8>>,
    /// Bumped whenever `counts` start over: a step decided before must not act after.
    pub(super) epoch: u64,
    /// The relocation pass running, if any.
    pub(super) pass: Option<Pass>,
    /// The records of one apply, written with one `pwrite`.
    pub(super) buf: Vec<u8>,
}

impl State {
    /// Whether a write of `key` keeps its count (rather than leaving it to the recount).
    pub(super) fn counts_key(&self, key: &[u8]) -> bool {
        self.recount.as_ref().is_none_or(|pos| key < pos.as_slice())
    }

    pub(super) fn count(&mut self, id: u64, at: Location) {
        let c = self.counts.entry(at.segment).or_default();
        c.records += 1;
        c.bytes += record_bytes(at);
        let range = self.ids.entry(at.segment).or_insert((id, id));
        *range = (range.0.min(id), range.1.max(id));
    }

    pub(super) fn uncount(&mut self, at: Location) {
        if let Some(c) = self.counts.get_mut(&at.segment) {
            c.records = c.records.saturating_sub(1);
            c.bytes = c.bytes.saturating_sub(record_bytes(at));
        }
    }

    /// Forgets every count: the recount starts from the first message key, a pass stops.
    pub(super) fn restart_count(&mut self) {
        self.counts.clear();
        self.ids.clear();
        self.recount = Some(vec![MESSAGE]);
        self.pass = None;
        self.epoch += 1;
    }

    /// Whether a flush would advance something with nothing new written: a recount or a
    /// relocation pass running or due, or a segment of `known` to reclaim.
    pub(super) fn has_work(&self, known: &BTreeSet<u32>, segment_bytes: u64) -> bool {
        self.recount.is_some()
            || self.pass.is_some()
            || known
                .iter()
                .any(|n| *n != self.current && self.live(*n).records == 0)
            || !self.victims(segment_bytes).is_empty()
    }

    fn live(&self, n: u32) -> Count {
        self.counts.get(&n).copied().unwrap_or_default()
    }

    /// The segments to relocate now, if the log holds more than twice its live bytes and
    /// relocating would give back at least two segments' worth (so the one segment a FIFO
    /// drain is emptying is left to the drain).
    fn victims(&self, segment_bytes: u64) -> BTreeSet<u32> {
        let on_disk: u64 = self.sizes.values().sum();
        let live: u64 = self.counts.values().map(|c| c.bytes).sum();
        if on_disk <= live.saturating_mul(2).saturating_add(2 * segment_bytes) {
            return BTreeSet::new();
        }
        let victims: BTreeSet<u32> = self
            .sizes
            .iter()
            .filter(|(n, size)| {
                let c = self.live(**n);
                **n != self.current && c.records > 0 && c.bytes.saturating_mul(2) < **size
            })
            .map(|(n, _)| *n)
            .collect();
        let gain: u64 = victims
            .iter()
            .map(|n| {
                self.sizes
                    .get(n)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(self.live(*n).bytes)
            })
            .sum();
        if gain < 2 * segment_bytes {
            return BTreeSet::new();
        }
        victims
    }

    /// The id range a pass over `victims` must look at.
    fn id_range(&self, victims: &BTreeSet<u32>) -> (u64, u64) {
        victims
            .iter()
            .filter_map(|n| self.ids.get(n))
            .fold((u64::MAX, 0), |(lo, hi), (a, b)| (lo.min(*a), hi.max(*b)))
    }
}

/// What a relocation step copied: the moves, the file to fsync before pointing keys at the
/// copies, and the count epoch they belong to.
pub(super) struct Copied {
    moves: Vec<Move>,
    pub(super) writer: Arc<std::fs::File>,
    epoch: u64,
}

/// One relocated record: its key, where it was, where its copy is.
struct Move {
    key: Vec<u8>,
    from: Location,
    to: Location,
}

impl<B: Backend> MessageLog<B> {
    /// Flushes the log and the key space below, then reclaims, recounts and relocates a
    /// step (see the module doc).
    pub(super) fn flush_logged(&self, log: &Log) -> Result<(), StoreError> {
        // What to make durable, and what may go once it is: segments counting nothing.
        let (dirty, dir_dirty, candidates, epoch) = {
            let mut st = log.state.lock();
            let candidates: Vec<u32> = if st.recount.is_none() {
                log.files
                    .read()
                    .known
                    .iter()
                    .copied()
                    .filter(|n| *n != st.current && st.live(*n).records == 0)
                    .collect()
            } else {
                Vec::new()
            };
            let dirty = std::mem::take(&mut st.dirty);
            let dir_dirty = std::mem::replace(&mut st.dir_dirty, false);
            (dirty, dir_dirty, candidates, st.epoch)
        };
        let synced = (|| {
            for file in dirty.values() {
                file.sync_data()?;
            }
            if dir_dirty {
                crate::format::sync_dir(&log.dir)?;
            }
            Ok::<(), StoreError>(())
        })();
        if let Err(e) = synced {
            let mut st = log.state.lock();
            for (n, file) in dirty {
                st.dirty.entry(n).or_insert(file);
            }
            st.dir_dirty |= dir_dirty;
            return Err(e);
        }
        self.inner.flush()?;
        // The flush's promise is kept; what follows only gives space back, and its failure
        // (a segment that cannot be unlinked, a victim's record that cannot be read) must not
        // fail the flush, which would suspend the store: it is tried again at the next one.
        let space = (|| {
            if !candidates.is_empty() {
                Self::reclaim(log, candidates, epoch)?;
            }
            self.recount_step(log)?;
            self.relocate_step(log)
        })();
        if let Err(e) = space {
            // The unit tests' key spaces never fail here: an error is a bug they must see.
            if cfg!(test) {
                panic!("the message log's space work failed: {e}");
            }
            log.warn_space(&e);
        }
        Ok(())
    }

    /// Unlinks the segments of `candidates` that still count nothing, unless the counts
    /// started over since they were chosen.
    fn reclaim(log: &Log, candidates: Vec<u32>, epoch: u64) -> Result<(), StoreError> {
        let mut st = log.state.lock();
        if st.epoch != epoch || st.recount.is_some() {
            return Ok(());
        }
        for n in candidates {
            // Only the segment being written gains locations, and it is never one; a
            // relocation points keys only at copies in it.
            if st.live(n).records > 0 {
                continue;
            }
            if log.files.write().remove(n) {
                st.counts.remove(&n);
                st.sizes.remove(&n);
                st.dirty.remove(&n);
                match std::fs::remove_file(segments::path(&log.dir, n)) {
                    Ok(()) => st.dir_dirty = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// One step of the recount, if one runs.
    fn recount_step(&self, log: &Log) -> Result<(), StoreError> {
        let mut st = log.state.lock();
        let Some(pos) = st.recount.clone() else {
            return Ok(());
        };
        let (mut seen, mut last) = (0usize, None);
        let mut found: Vec<(u64, Location)> = Vec::new();
        self.inner.scan_from(&[MESSAGE], &pos, &mut |k, v| {
            found.push((keys::message_id(k)?, Location::decode(v)?));
            seen += 1;
            last = Some(k.to_vec());
            Ok(seen < log.recount_step)
        })?;
        for (id, at) in found {
            st.count(id, at);
        }
        st.recount = match last {
            Some(mut key) if seen == log.recount_step => {
                key.push(0); // the least key after it
                Some(key)
            }
            _ => None,
        };
        Ok(())
    }

    /// One step of a relocation pass; starts one when the log holds too much dead data.
    fn relocate_step(&self, log: &Log) -> Result<(), StoreError> {
        match self.relocate_copy(log)? {
            Some(copied) => {
                // The copies are durable before any key points at them.
                copied.writer.sync_data()?;
                self.relocate_point(log, copied)
            }
            None => Ok(()),
        }
    }

    /// A relocation step's first half: copies the victims' live records among the next keys
    /// to the current segment (counted there), starting a pass if one is due.
    pub(super) fn relocate_copy(&self, log: &Log) -> Result<Option<Copied>, StoreError> {
        let (moves, writer, epoch) = {
            let mut st = log.state.lock();
            if st.recount.is_some() {
                return Ok(None);
            }
            if st.pass.is_none() {
                let victims = st.victims(log.segment_bytes);
                if victims.is_empty() {
                    return Ok(None);
                }
                let (first, last_id) = st.id_range(&victims);
                st.pass = Some(Pass {
                    victims,
                    pos: keys::message(first).to_vec(),
                    last_id,
                });
            }
            let Some(pass) = st.pass.as_ref() else {
                return Ok(None);
            };
            let (victims, pos, last_id) = (pass.victims.clone(), pass.pos.clone(), pass.last_id);
            let (mut seen, mut last, mut bytes, mut past) = (0usize, None, 0u64, false);
            let mut found: Vec<(Vec<u8>, Location)> = Vec::new();
            self.inner.scan_from(&[MESSAGE], &pos, &mut |k, v| {
                if keys::message_id(k)? > last_id {
                    past = true;
                    return Ok(false);
                }
                let at = Location::decode(v)?;
                if victims.contains(&at.segment) {
                    bytes += record_bytes(at);
                    found.push((k.to_vec(), at));
                }
                seen += 1;
                last = Some(k.to_vec());
                Ok(seen < log.recount_step && bytes < log.segment_bytes)
            })?;
            let more = !past && (seen == log.recount_step || bytes >= log.segment_bytes);
            match (last, more) {
                (Some(mut key), true) => {
                    key.push(0);
                    if let Some(pass) = st.pass.as_mut() {
                        pass.pos = key;
                    }
                }
                _ => st.pass = None,
            }
            if found.is_empty() {
                return Ok(None);
            }
            if st.len >= log.segment_bytes {
                Self::rotate(log, &mut st)?;
            }
            let base = st.len;
            let mut buf = Vec::with_capacity(bytes as usize);
            let mut moves = Vec::with_capacity(found.len());
            for (key, from) in found {
                let body: Bytes = segments::read_record(
                    &*log.handle(from.segment)?,
                    from,
                    keys::message_id(&key)?,
                )?;
                let offset = u32::try_from(base + buf.len() as u64).map_err(|_| {
                    StoreError::Engine("a message log segment would pass 4 GiB".into())
                })?;
                segments::encode_record(&mut buf, keys::message_id(&key)?, &body);
                let to = Location {
                    segment: st.current,
                    offset,
                    len: from.len,
                };
                moves.push(Move { key, from, to });
            }
            if let Err(e) = st.writer.write_all_at(&buf, base) {
                let _ = Self::rotate(log, &mut st);
                return Err(e.into());
            }
            st.len = base + buf.len() as u64;
            let current = st.current;
            let len = st.len;
            st.sizes.insert(current, len);
            // The copies count until a key turns out to have changed: too high, never low.
            for m in &moves {
                st.count(keys::message_id(&m.key)?, m.to);
            }
            (moves, st.writer.clone(), st.epoch)
        };
        Ok(Some(Copied {
            moves,
            writer,
            epoch,
        }))
    }

    /// A relocation step's second half, once the copies are durable: points each key still
    /// at its old location to its copy; a key deleted or changed meanwhile keeps its state
    /// (its copy is garbage, uncounted).
    pub(super) fn relocate_point(&self, log: &Log, copied: Copied) -> Result<(), StoreError> {
        let Copied { moves, epoch, .. } = copied;
        let mut st = log.state.lock();
        if st.epoch != epoch {
            return Ok(());
        }
        let mut changes = Changes::with_capacity(moves.len());
        let mut moved = Vec::with_capacity(moves.len());
        for m in moves {
            let still = self
                .inner
                .get(&m.key)?
                .map(|raw| Location::decode(&raw))
                .transpose()?;
            if still == Some(m.from) {
                changes.push((m.key, Some(Bytes::copy_from_slice(&m.to.encode()))));
                moved.push(m.from);
            } else {
                st.uncount(m.to);
            }
        }
        if !changes.is_empty() {
            self.inner.apply(changes, Atomicity::InOrder)?;
        }
        for from in moved {
            st.uncount(from);
        }
        Ok(())
    }
}
