//! The open scan, run in the background while the store serves: all of it after a clean
//! shutdown, the sweep after a crash.
//!
//! A clean close writes every queue's extent under the `clean_extents` meta key (see
//! [`encode_extents`]); an open that finds it deletes it (durably, before any mutation) and
//! needs nothing else before serving: the extents are exact, the id high-water mark is the
//! `max_message_id` key. Reference counts and the orphan sweep follow in steps
//! ([`Engine::scan_step`]), each under the mutation lock, while writes go on:
//!
//! 1. **Counting.** The index is read in key order from a position `pos`. Ids above
//!    `boundary` (the high-water mark at open) are counted by the writes that made them and
//!    skipped by the scan. For an id at or below it, a write counts an index entry whose key
//!    is below `pos` (the scan has passed it) and leaves one at or above `pos` to the scan,
//!    so every entry is counted once. Such a message's count is partial until the scan ends:
//!    when it drops to zero the message is *not* deleted (an entry not yet scanned may hold
//!    it); the sweep decides.
//! 2. **Sweeping.** Counts are exact now. The messages at or below `boundary` are read in id
//!    order; one without a count (a crash leftover, or a message whose last reference went
//!    during counting) is deleted.
//!
//! A crash during either phase leaves no `clean_extents` key. An open without it counts the
//! whole index before serving (the extents need it) and starts here at the sweep, with
//! `boundary` the highest id stored or reserved. Writes are not slowed by the scan beyond the lock it
//! holds for one step; a step hands pending writes to the backend first, so the backend it
//! reads holds every write decided so far.

use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};

use crate::backend::{Atomicity, Backend, Changes};
use crate::engine::{Engine, Extents, Tracked};
use crate::keys::{self, IndexValue};
use crate::{MessageId, MessageStore, QueueExtent, StoreError};

/// Where the background scan stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanState {
    /// Counting index entries from this key on (ids up to `boundary` only).
    Counting { boundary: MessageId, pos: Vec<u8> },
    /// Deleting unreferenced messages from this id on, up to `boundary`.
    Sweeping {
        boundary: MessageId,
        next: MessageId,
    },
}

impl ScanState {
    /// Whether writes must treat `id`'s count as partial: it may have index entries the
    /// scan has not reached.
    pub(crate) fn partial(&self, id: MessageId) -> bool {
        matches!(self, ScanState::Counting { boundary, .. } if id <= *boundary)
    }

    /// Whether the index entry `key` of message `id` is counted by writes (rather than left
    /// to the scan, which has yet to reach it).
    pub(crate) fn counts_entry(&self, key: &[u8], id: MessageId) -> bool {
        match self {
            ScanState::Counting { boundary, pos } => id > *boundary || key < pos.as_slice(),
            ScanState::Sweeping { .. } => true,
        }
    }
}

/// Keys one scan step reads at most: the mutation lock is held that long.
pub(crate) const STEP_KEYS: usize = 4096;

/// The `clean_extents` value: per queue, its index prefix (u16 BE length, bytes), count and
/// end_seq (u64 BE each).
pub(crate) fn encode_extents(extents: &Extents) -> Bytes {
    let mut buf = BytesMut::new();
    for (prefix, e) in extents {
        // Prefixes are at most 2 + 255 + 1 + 255 bytes long (see `keys`).
        buf.put_u16(prefix.len() as u16);
        buf.put_slice(prefix);
        buf.put_u64(e.extent.count);
        buf.put_u64(e.extent.end_seq);
    }
    buf.freeze()
}

/// Reads back [`encode_extents`]'s output.
pub(crate) fn decode_extents(mut v: &[u8]) -> Result<Extents, StoreError> {
    let bad = || StoreError::corrupt("clean_extents is malformed");
    let mut extents = Extents::default();
    while !v.is_empty() {
        let len = usize::from(u16::from_be_bytes(
            v.get(..2).and_then(|r| r.try_into().ok()).ok_or_else(bad)?,
        ));
        let prefix = v.get(2..2 + len).ok_or_else(bad)?.to_vec();
        let u64_at = |at: usize| -> Result<u64, StoreError> {
            Ok(u64::from_be_bytes(
                v.get(at..at + 8)
                    .and_then(|r| r.try_into().ok())
                    .ok_or_else(bad)?,
            ))
        };
        let (count, end_seq) = (u64_at(2 + len)?, u64_at(10 + len)?);
        let extent = QueueExtent { count, end_seq };
        extents.insert(
            prefix,
            Tracked {
                extent,
                unstaged: false,
            },
        );
        v = v.get(18 + len..).ok_or_else(bad)?;
    }
    Ok(extents)
}

impl<B: Backend> Engine<B> {
    /// Whether the background scan is over (counts exact, crash leftovers deleted).
    pub(crate) fn scan_done(&self) -> bool {
        self.scan_over.load(Ordering::Acquire)
    }

    /// Runs one step of the background scan (at most [`STEP_KEYS`] keys); answers whether
    /// the scan is over.
    pub(crate) fn scan_step(&self) -> Result<bool, StoreError> {
        self.scan_step_of(STEP_KEYS)
    }

    /// Runs one step of the background scan, reading at most `step` keys (at least one).
    pub(crate) fn scan_step_of(&self, step: usize) -> Result<bool, StoreError> {
        let step = step.max(1);
        if self.scan_done() {
            return Ok(true);
        }
        let _order = self.order.lock();
        let wal = self.wal.as_ref().map(|w| w.lock());
        let mut shared = self.shared.lock();
        self.running()?;
        // The scan's counts must see every pending write in the backend, so `shared` stays
        // held across the log's fsync here (the background scan after a clean open only).
        self.hand_over_holding(&mut shared, wal)?;
        let shared = &mut *shared;
        let (mut live, mut records) = (0u64, 0u64);
        let next = match &shared.scan {
            None => return Ok(true), // another caller ended it
            Some(ScanState::Counting { boundary, pos }) => {
                let boundary = *boundary;
                let (mut seen, mut last) = (0, None);
                let refs = &mut shared.refs;
                self.backend.scan_from(&[keys::INDEX], pos, &mut |k, v| {
                    let id = IndexValue::decode(v)?.id;
                    if id <= boundary {
                        refs.add_reference(id);
                        live += (k.len() + v.len()) as u64;
                        records += 1;
                    }
                    seen += 1;
                    last = Some(k.to_vec());
                    Ok(seen < step)
                })?;
                Some(match last {
                    Some(mut key) if seen == step => {
                        key.push(0); // the least key after it
                        ScanState::Counting { boundary, pos: key }
                    }
                    _ => ScanState::Sweeping { boundary, next: 0 },
                })
            }
            Some(ScanState::Sweeping { boundary, next }) => {
                let boundary = *boundary;
                let (mut seen, mut last, mut orphans): (usize, Option<MessageId>, Changes) =
                    (0, None, Vec::new());
                let refs = &shared.refs;
                // Sizes only: a layer keeping bodies elsewhere (`msglog`) need not read them.
                self.backend.scan_sizes_from(
                    &[keys::MESSAGE],
                    &keys::message(*next),
                    &mut |k, size| {
                        let id = keys::message_id(k)?;
                        if id > boundary {
                            return Ok(false);
                        }
                        if refs.get(id).is_none() {
                            orphans.push((k.to_vec(), None));
                        } else {
                            live += size;
                            records += 1;
                        }
                        seen += 1;
                        last = Some(id);
                        Ok(seen < step)
                    },
                )?;
                // An orphan's id may be above the reserved high-water mark (a crash between a
                // put and its meta key): the mark goes first, or the next open after a crash,
                // finding neither the orphan nor the mark, would hand its id out again.
                if let Some(max) = orphans
                    .last()
                    .map(|(k, _)| keys::message_id(k))
                    .transpose()?
                    && shared.persisted_max.is_none_or(|p| max > p)
                {
                    let mark = Bytes::copy_from_slice(&boundary.to_be_bytes());
                    orphans.insert(0, (keys::MAX_ID_KEY.to_vec(), Some(mark)));
                    shared.persisted_max = Some(boundary);
                }
                if !orphans.is_empty() {
                    self.hand_over(orphans)?;
                }
                match last {
                    Some(id) if seen == step && id < boundary => Some(ScanState::Sweeping {
                        boundary,
                        next: id.saturating_add(1),
                    }),
                    _ => None,
                }
            }
        };
        let (l, r) = shared.scanned_live;
        shared.scanned_live = (l + live, r + records);
        shared.scan = next;
        if shared.scan.is_none() {
            // Writes since the open counted theirs already (an estimate: see `sled_backend`).
            let (bytes, records) = shared.scanned_live;
            self.backend.add_live(bytes, records);
            self.scan_over.store(true, Ordering::Release);
            return Ok(true);
        }
        Ok(false)
    }

    /// Runs the background scan to its end.
    pub(crate) fn finish_scan(&self) -> Result<(), StoreError> {
        while !self.scan_step()? {}
        Ok(())
    }

    /// Bytes and number of the messages and index entries the background scan found (all
    /// of them once [`Engine::scan_done`]).
    pub(crate) fn scanned_live(&self) -> (u64, u64) {
        self.shared.lock().scanned_live
    }

    /// Stops as a crash would: pending writes are lost, nothing more is written.
    #[cfg(test)]
    pub(crate) fn crash(self) {
        self.abandon();
    }

    /// Stops as a crash in the middle of `count` puts would, after each message's bytes
    /// reached the backend and before its index entry did: every earlier write synced, then
    /// `count` messages at fresh ids that no entry references, then nothing more. Answers
    /// their ids. For tests.
    pub(crate) fn crash_leaving_orphans(&self, count: usize) -> Result<Vec<MessageId>, StoreError> {
        self.sync_backend()?;
        let ids = (0..count)
            .map(|_| self.next_message_id())
            .collect::<Result<Vec<_>, _>>()?;
        let changes = ids
            .iter()
            .map(|&id| {
                (
                    keys::message(id).to_vec(),
                    Some(Bytes::from_static(b"left")),
                )
            })
            .collect();
        self.backend.apply(changes, Atomicity::InOrder)?;
        self.backend.flush()?;
        self.abandon();
        Ok(ids)
    }

    /// The number of messages the backend holds, once every pending write is handed to it.
    /// For tests.
    pub(crate) fn stored_messages(&self) -> Result<usize, StoreError> {
        let _order = self.order.lock();
        let wal = self.wal.as_ref().map(|w| w.lock());
        let mut shared = self.shared.lock();
        self.hand_over_holding(&mut shared, wal)?;
        drop(shared);
        let mut n = 0;
        self.backend.scan_prefix(&[keys::MESSAGE], &mut |_, _| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Refuses every later write and leaves the engine's drop nothing to write: with the
    /// writes already handed over, what a crash after them leaves.
    pub(crate) fn abandon(&self) {
        self.health.store(super::FAILED, Ordering::Release);
    }

    /// Closes cleanly: hands pending writes to the backend, records every queue's extent for
    /// the next open and flushes, then deletes the write-ahead log. The engine refuses
    /// mutations afterwards (and its drop writes nothing more).
    pub(crate) fn close(&self) -> Result<(), StoreError> {
        let _order = self.order.lock();
        let mut wal = self.wal.as_ref().map(|w| w.lock());
        let mut shared = self.shared.lock();
        match self.health.swap(super::FAILED, Ordering::AcqRel) {
            super::RUNNING => {}
            super::SUSPENDED => return Err(StoreError::Suspended),
            _ => return Err(StoreError::Failed),
        }
        // Logged first, as in a checkpoint: a crash before the flush below replays the log.
        if let Some(wal) = wal.as_deref_mut() {
            shared.log_new(wal);
            wal.commit()?;
        }
        let mut changes = shared.pending.take();
        // Kept extents went into the list with the rest.
        if !shared.keep_extents {
            changes.push((
                keys::CLEAN_EXTENTS_KEY.to_vec(),
                Some(encode_extents(&shared.extents)),
            ));
        }
        drop(shared);
        // The pending writes first, the marker last: a crash between them leaves no marker.
        self.backend.apply(changes, Atomicity::InOrder)?;
        self.backend.flush()?;
        if let Some(wal) = wal.as_deref_mut() {
            if let Some(generation) = wal.rotate() {
                super::wal::remove_through(wal.dir(), generation)?;
            }
            super::wal::remove_dir(wal.dir())?;
        }
        Ok(())
    }
}
