//! Turning one mutation (a `write` batch or a definition change) into one atomic batch of key
//! changes, checked against the store before anything is applied.
//!
//! A [`Plan`] reads through its own pending changes, so an op sees the ops before it in the same
//! batch (`Put` then `Enqueue`, `Enqueue` then `Remove`). Reference counts change in a private
//! overlay and reach the shared table only after the backend applied the batch: a refused or
//! failed write leaves both untouched.
//!
//! While the background open scan counts (see `engine::scan`), a message stored before the
//! open may have index entries the scan has not reached: its count here is partial, so a
//! plan counts only the entries the scan has passed and never deletes such a message at a
//! count of zero (the scan's sweep does, once counts are exact). It also keeps each queue's
//! [`QueueExtent`](crate::QueueExtent) up to date (`extents`).

mod table;

use bytes::Bytes;

use crate::backend::Backend;
use crate::engine::{Planned, ScanState};
use crate::keys::{self, IndexValue};
use crate::refs::RefTable;
use crate::{MessageId, MessageOp, StoreError};

use table::{IdMap, KeyChange, KeyChanges};

/// Pending changes of one mutation.
pub(crate) struct Plan<'a, B> {
    backend: &'a B,
    refs: &'a RefTable,
    /// The background open scan, while it runs.
    scan: Option<&'a ScanState>,
    /// Each key's change, and whether the key was absent before this plan (see `Planned`).
    changes: KeyChanges,
    /// Reference counts touched by this plan; `None` means deleted.
    counts: IdMap<Option<u32>>,
    /// Holds touched by this plan (their new number).
    held: IdMap<u32>,
    entries_delta: i64,
    max_put: Option<MessageId>,
    /// Per queue index prefix: change of its entry count, and its new end_seq floor (a
    /// buffer the engine reuses from plan to plan).
    extents: &'a mut ExtentDeltas,
    /// Index prefixes (a queue or a vhost) whose entries this plan deleted all of.
    dropped: Vec<Vec<u8>>,
}

/// Each queue's change of entry count and new end_seq floor in one plan, by index prefix. The
/// engine keeps one and reuses it (prefix vectors included), so a write allocates nothing for
/// it: a publish or an ack touches one or a few queues, searched linearly, the last one used
/// first (a queue deletion's entries come one queue after the other).
#[derive(Default)]
pub(crate) struct ExtentDeltas {
    slots: Vec<(Vec<u8>, i64, u64)>,
    /// Slots in use by the current plan.
    len: usize,
    /// The slot used last.
    last: usize,
}

impl ExtentDeltas {
    /// The slot of `prefix`, added if absent.
    fn slot(&mut self, prefix: &[u8]) -> &mut (Vec<u8>, i64, u64) {
        let found =
            if self.slots.get(self.last).is_some_and(|s| s.0 == prefix) && self.last < self.len {
                Some(self.last)
            } else {
                self.slots[..self.len].iter().position(|s| s.0 == prefix)
            };
        let i = match found {
            Some(i) => i,
            None => {
                let i = self.len;
                match self.slots.get_mut(i) {
                    Some(s) => {
                        s.0.clear();
                        s.0.extend_from_slice(prefix);
                        s.1 = 0;
                        s.2 = 0;
                    }
                    None => self.slots.push((prefix.to_vec(), 0, 0)),
                }
                self.len += 1;
                i
            }
        };
        self.last = i;
        &mut self.slots[i]
    }

    /// The changes of the current plan.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], i64, u64)> {
        self.slots[..self.len]
            .iter()
            .map(|(p, d, e)| (p.as_slice(), *d, *e))
    }

    /// Forgets the current plan's changes, keeping the buffers.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.last = 0;
    }
}

/// What a plan produced: the key changes and the in-memory updates to install once applied.
pub(crate) struct Outcome {
    pub(crate) changes: Vec<Planned>,
    pub(crate) counts: Vec<(MessageId, Option<u32>)>,
    pub(crate) held: Vec<(MessageId, u32)>,
    pub(crate) entries_delta: i64,
    pub(crate) max_put: Option<MessageId>,
    /// The new value of the `max_message_id` meta key, when this plan writes it.
    pub(crate) reserved: Option<MessageId>,
    /// Index prefixes whose extents go (deleted queues or vhosts), after `extents` applied.
    pub(crate) dropped: Vec<Vec<u8>>,
}

/// How many ids beyond the highest one put the `max_message_id` meta key reserves.
pub(crate) const ID_RESERVATION: MessageId = 4096;

impl<'a, B: Backend> Plan<'a, B> {
    pub(crate) fn new(
        backend: &'a B,
        refs: &'a RefTable,
        scan: Option<&'a ScanState>,
        extents: &'a mut ExtentDeltas,
    ) -> Self {
        extents.clear();
        Plan {
            backend,
            refs,
            scan,
            changes: KeyChanges::default(),
            counts: IdMap::default(),
            held: IdMap::default(),
            entries_delta: 0,
            max_put: None,
            extents,
            dropped: Vec::new(),
        }
    }

    /// Sizes the plan's tables for a write of `ops` message ops (at most two key changes and
    /// one reference count each, bar the meta key).
    pub(crate) fn expect_ops(&mut self, ops: usize) {
        if ops > 1 {
            self.changes.expect(2 * ops + 1);
            self.counts.expect(ops);
        }
    }

    /// Whether `id`'s count is partial: the open scan may not have reached all its entries.
    fn partial(&self, id: MessageId) -> bool {
        self.scan.is_some_and(|s| s.partial(id))
    }

    /// Whether this plan counts the index entry `key` of `id` (else the open scan will).
    fn counts_entry(&self, key: &[u8], id: MessageId) -> bool {
        self.scan.is_none_or(|s| s.counts_entry(key, id))
    }

    /// `id`'s count, or `Some(0)` for a message stored before the open whose entries the
    /// scan has not counted yet (read from the backend: old messages are not deleted while
    /// the scan counts, so the backend answers whether it is stored).
    fn count_or_stored(&self, id: MessageId) -> Result<Option<u32>, StoreError> {
        match self.count(id) {
            Some(n) => Ok(Some(n)),
            None if self.partial(id) => Ok(self.backend.get(&keys::message(id))?.map(|_| 0)),
            None => Ok(None),
        }
    }

    /// Records an entry more (`delta` 1, at `seq`) or less (-1) in the queue of index `key`.
    fn extent(&mut self, key: &[u8], delta: i64, seq: Option<u64>) {
        let prefix = key.get(..key.len().saturating_sub(8)).unwrap_or_default();
        let e = self.extents.slot(prefix);
        e.1 += delta;
        if let Some(seq) = seq {
            e.2 = e.2.max(seq.saturating_add(1));
        }
    }

    /// What this plan already did to `key`: `Some(None)` deleted it, `Some(Some(v))` set it,
    /// `None` left it alone. Only pending changes are consulted: message ops never read the
    /// backend (see [`MessageOp`] for what callers promise instead).
    fn pending(&self, key: &[u8]) -> Option<Option<&Bytes>> {
        self.changes.get(key)
    }

    fn count(&self, id: MessageId) -> Option<u32> {
        match self.counts.get(id) {
            Some(pending) => pending,
            None => self.refs.get(id),
        }
    }

    fn holds(&self, id: MessageId) -> u32 {
        match self.held.get(id) {
            Some(pending) => pending,
            None => self.refs.holds(id),
        }
    }

    /// Records a change of `key`; its freshness is decided by the first change of this plan.
    fn change(&mut self, key: Vec<u8>, value: Option<Bytes>, fresh: bool) {
        self.changes.change(key, value, fresh);
    }

    /// Sets `key` to `value`.
    pub(crate) fn set(&mut self, key: Vec<u8>, value: Bytes) {
        self.change(key, Some(value), false);
    }

    /// Sets `key`, which the caller knows the backend does not hold (a new message id, a new
    /// queue position), so a later delete may cancel both before they reach the backend.
    fn create(&mut self, key: Vec<u8>, value: Bytes) {
        self.change(key, Some(value), true);
    }

    /// Deletes `key`.
    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.change(key, None, false);
    }

    /// Applies one message op.
    pub(crate) fn op(&mut self, op: &MessageOp) -> Result<(), StoreError> {
        match op {
            MessageOp::Put { id, message } => self.put(*id, message),
            MessageOp::Enqueue {
                vhost,
                queue,
                seq,
                id,
            } => self.enqueue(vhost, queue, *seq, *id),
            MessageOp::Remove {
                vhost,
                queue,
                seq,
                id,
            } => {
                let key = keys::index(vhost, queue, *seq)?;
                self.check_entry(&key, vhost, queue, *seq, *id)?;
                self.remove_entry(key, *id)
            }
            MessageOp::Hold { id } => {
                let Some(count) = self.count_or_stored(*id)? else {
                    return Err(StoreError::UnknownMessage { id: *id });
                };
                self.counts.insert(*id, Some(count + 1));
                self.held.insert(*id, self.holds(*id) + 1);
                Ok(())
            }
            MessageOp::Release { id } => {
                let holds = self.holds(*id);
                if holds == 0 {
                    return Err(StoreError::NotHeld { id: *id });
                }
                self.held.insert(*id, holds - 1);
                self.drop_reference(*id)
            }
            MessageOp::MarkRedelivered {
                vhost,
                queue,
                seq,
                id,
            } => {
                let key = keys::index(vhost, queue, *seq)?;
                self.check_entry(&key, vhost, queue, *seq, *id)?;
                let marked = IndexValue {
                    id: *id,
                    redelivered: true,
                };
                self.set(key, Bytes::copy_from_slice(&marked.encode()));
                Ok(())
            }
        }
    }

    /// The checks a blind `Remove` or `MarkRedelivered` can afford without a read: the message
    /// is stored, and this write did not already remove the entry or enqueue another message
    /// there.
    fn check_entry(
        &self,
        key: &[u8],
        vhost: &Bytes,
        queue: &Bytes,
        seq: u64,
        id: MessageId,
    ) -> Result<(), StoreError> {
        let not_found = || StoreError::EntryNotFound {
            vhost: vhost.clone(),
            queue: queue.clone(),
            seq,
        };
        match self.pending(key) {
            Some(None) => return Err(not_found()),
            Some(Some(v)) if IndexValue::decode(v)?.id != id => return Err(not_found()),
            _ => {}
        }
        if self.count_or_stored(id)?.is_none() {
            return Err(StoreError::UnknownMessage { id });
        }
        Ok(())
    }

    fn put(&mut self, id: MessageId, message: &Bytes) -> Result<(), StoreError> {
        // An id up to the open's high-water mark may be stored (the scan has not said), and
        // the store never hands such ids out again.
        if self.count(id).is_some() || self.partial(id) {
            return Err(StoreError::DuplicateMessage { id });
        }
        self.counts.insert(id, Some(0));
        self.create(keys::message(id).to_vec(), message.clone());
        self.max_put = Some(self.max_put.map_or(id, |m| m.max(id)));
        Ok(())
    }

    fn enqueue(
        &mut self,
        vhost: &Bytes,
        queue: &Bytes,
        seq: u64,
        id: MessageId,
    ) -> Result<(), StoreError> {
        let key = keys::index(vhost, queue, seq)?;
        let Some(count) = self.count_or_stored(id)? else {
            return Err(StoreError::UnknownMessage { id });
        };
        // Positions are never reused by the broker; only this write's own ops are checked.
        if matches!(self.pending(&key), Some(Some(_))) {
            return Err(StoreError::DuplicateEntry {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq,
            });
        }
        if self.counts_entry(&key, id) {
            self.counts.insert(id, Some(count + 1));
            self.entries_delta += 1;
        }
        self.extent(&key, 1, Some(seq));
        self.create(
            key,
            Bytes::copy_from_slice(
                &IndexValue {
                    id,
                    redelivered: false,
                }
                .encode(),
            ),
        );
        Ok(())
    }

    /// Deletes one index entry of message `id`, and the message with its last reference.
    fn remove_entry(&mut self, key: Vec<u8>, id: MessageId) -> Result<(), StoreError> {
        let counted = self.counts_entry(&key, id);
        self.extent(&key, -1, None);
        self.delete(key);
        if !counted {
            return Ok(()); // the open scan will not find it either
        }
        self.entries_delta -= 1;
        self.drop_reference(id)
    }

    /// Counts one reference to `id` less, deleting the message with its last one.
    fn drop_reference(&mut self, id: MessageId) -> Result<(), StoreError> {
        match self.count(id) {
            Some(n) if n > 1 => {
                self.counts.insert(id, Some(n - 1));
            }
            Some(_) => {
                self.counts.insert(id, None);
                // A partial count may reach zero with entries still unscanned: the sweep
                // deletes the message if none turns up.
                if !self.partial(id) {
                    self.delete(keys::message(id).to_vec());
                }
            }
            None => {
                return Err(StoreError::corrupt(format!(
                    "index entry references message {id}, which is not stored"
                )));
            }
        }
        Ok(())
    }

    /// Deletes at most `limit` index entries under `prefix` (and the messages only they
    /// held), the first ones in key order; answers whether entries may remain (else its
    /// `DROPPING` key goes too). Its extents are dropped again (see `engine::drop_entries`).
    pub(crate) fn delete_entries_chunk(
        &mut self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<bool, StoreError> {
        let limit = limit.max(1);
        let mut found = Vec::with_capacity(limit.min(4096));
        self.backend.scan_from(prefix, prefix, &mut |k, v| {
            found.push((k.to_vec(), IndexValue::decode(v)?.id));
            Ok(found.len() < limit)
        })?;
        let more = found.len() == limit;
        for (key, id) in found {
            self.remove_entry(key, id)?;
        }
        if !more {
            self.delete(keys::dropping(prefix));
            // The commit point deleted them, but a write racing the deletion may have kept
            // an extent since (see `engine::extents`).
            self.delete_prefix(&keys::extent(prefix))?;
        }
        self.dropped.push(prefix.to_vec());
        Ok(more)
    }

    /// Marks the entries under `prefix` as going (a deleted queue or vhost): its extents go
    /// now, in memory and their `EXTENT` keys (see `engine::extents`), its `DROPPING` key
    /// tells an open to finish removing them (see `engine::drop_entries`).
    pub(crate) fn start_dropping(&mut self, prefix: &[u8]) -> Result<(), StoreError> {
        self.set(keys::dropping(prefix), Bytes::new());
        self.delete_prefix(&keys::extent(prefix))?;
        self.dropped.push(prefix.to_vec());
        Ok(())
    }

    /// Deletes every key starting with `prefix` (definition records and extents only, never
    /// index entries).
    pub(crate) fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StoreError> {
        let mut found = Vec::new();
        self.backend.scan_prefix(prefix, &mut |k, _| {
            found.push(k.to_vec());
            Ok(())
        })?;
        for key in found {
            self.delete(key);
        }
        Ok(())
    }

    /// Checks the invariants that must hold after the batch, and yields what to apply.
    pub(crate) fn finish(
        mut self,
        persisted_max: Option<MessageId>,
    ) -> Result<Outcome, StoreError> {
        // Every stored message is referenced: a Put must be enqueued by the same batch, or it
        // would be stored forever with nothing to remove it.
        if let Some((id, _)) = self.counts.iter().find(|(_, c)| *c == Some(0)) {
            return Err(StoreError::UnreferencedMessage { id });
        }
        let mut reserved = None;
        if let Some(max) = self.max_put
            && persisted_max.is_none_or(|p| max > p)
        {
            // Reserve ids ahead: the meta key is written once per ID_RESERVATION new ids
            // rather than with every put (ids skipped by a restart are never missed).
            let high = max.saturating_add(ID_RESERVATION);
            self.set(
                keys::MAX_ID_KEY.to_vec(),
                Bytes::copy_from_slice(&high.to_be_bytes()),
            );
            reserved = Some(high);
        }
        Ok(Outcome {
            changes: crash_safe_order(self.changes.into_vec()),
            counts: self.counts.into_vec(),
            held: self.held.into_vec(),
            entries_delta: self.entries_delta,
            max_put: self.max_put,
            reserved,
            dropped: self.dropped,
        })
    }
}

/// Orders changes so that every prefix of them is a consistent store: message bytes are
/// written before the index entries that reference them, and deleted after the entries that
/// referenced them. A crash can then leave a message without entries (deleted at open) but
/// never an entry without its message.
/// Within each group, changes keep the order they were first made in.
fn crash_safe_order(changes: Vec<KeyChange>) -> Vec<Planned> {
    let is_message = |k: &[u8]| k.first() == Some(&keys::MESSAGE);
    // The common write (a publish: one message put, one entry) needs no regrouping.
    let grouped = |c: &KeyChange| match (is_message(&c.0), c.1.is_some()) {
        (true, true) => 0,
        (false, _) => 1,
        (true, false) => 2,
    };
    if changes.is_sorted_by_key(grouped) {
        return changes
            .into_iter()
            .map(|(key, value, fresh)| Planned { key, value, fresh })
            .collect();
    }
    let mut puts = Vec::with_capacity(changes.len());
    let mut rest = Vec::new();
    let mut deletes = Vec::new();
    for (key, value, fresh) in changes {
        let sets = value.is_some();
        let planned = Planned { key, value, fresh };
        match (is_message(&planned.key), sets) {
            (true, true) => puts.push(planned),
            (true, false) => deletes.push(planned),
            (false, _) => rest.push(planned),
        }
    }
    puts.extend(rest);
    puts.extend(deletes);
    puts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bytes_are_written_first_and_deleted_last() {
        let index = |seq| keys::index(b"/", b"q", seq).unwrap_or_default();
        let changes: Vec<KeyChange> = vec![
            (keys::message(1).to_vec(), None, false),
            (index(2), Some(Bytes::new()), true),
            (
                keys::message(2).to_vec(),
                Some(Bytes::from_static(b"m")),
                true,
            ),
            (index(1), None, false),
            (keys::MAX_ID_KEY.to_vec(), Some(Bytes::new()), false),
        ];
        let order: Vec<(u8, bool)> = crash_safe_order(changes)
            .iter()
            .map(|p| (p.key[0], p.value.is_some()))
            .collect();
        let (msg, idx) = (keys::MESSAGE, keys::INDEX);
        // Message puts first, message deletes last, the rest in the order they were made.
        assert_eq!(
            order,
            [
                (msg, true),
                (idx, true),
                (idx, false),
                (0, true),
                (msg, false)
            ]
        );
    }

    #[test]
    fn an_already_grouped_write_keeps_its_order() {
        let changes: Vec<KeyChange> = vec![
            (
                keys::message(5).to_vec(),
                Some(Bytes::from_static(b"m")),
                true,
            ),
            (
                keys::index(b"/", b"q", 9).unwrap_or_default(),
                Some(Bytes::new()),
                true,
            ),
        ];
        let planned = crash_safe_order(changes.clone());
        let back: Vec<KeyChange> = planned
            .into_iter()
            .map(|p| (p.key, p.value, p.fresh))
            .collect();
        assert_eq!(back, changes);
    }
}
