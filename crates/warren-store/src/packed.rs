//! [`Packed`]: the store's key space with several messages, or several index entries of one
//! queue, per record of the key space below (sled layout 3, see `format`).
//!
//! Why: sled 0.34 splits a leaf above 16 records and keeps page-table and cache state per
//! node, so what an open holds follows the number of records, not their bytes. One record per
//! message and one per index entry held 613 MiB (749 MiB peak) after opening 10 M × 100 B
//! messages; four messages per record and sixteen entries per record hold 100 MiB (121 MiB)
//! (`examples/sled_records.rs`, `docs/decisions.md` "Several messages per sled record").
//!
//! The engine above sees the logical keys of `keys` unchanged: a message key `0x06, id` lives
//! in block `0x16, id >> 2` at slot `id & 3` (in block `id >> 4` at slot `id & 15` in key
//! layout 4, whose message values are the message log's twelve-byte locations, see `msglog`
//! and [`Packed::for_locations`]); an index key `0x07, names, seq` in block
//! `0x17, names, seq >> 4` at slot `seq & 15`. Block keys sort as the logical keys they hold
//! (the names are length-prefixed, so no queue's names are a prefix of another's), so scans
//! visit logical keys in order. A block's value is its entries in slot order, each
//! `slot u8, length u32 BE, bytes`; an empty block is deleted.
//!
//! Writes read, change and write back each block they touch, under [`Packed::write`]: callers
//! apply concurrently (hand-overs, definition batches), and two read-modify-writes of one block
//! must not interleave. A batch stays atomic (its blocks go in one batch below). Changes
//! applied in order keep their crash promise, "no index entry without its message", by going
//! in four steps: the blocks of messages put, then the index blocks, then the other keys in
//! their order (extents after the entries they count, a `DROPPING` key removed after its
//! entries), then the blocks of messages deleted. A crash between two steps leaves at most
//! messages without entries, which the open scan sweeps, as before packing; the write-ahead log
//! replays the rest.
//!
//! Lock order: [`Packed::write`] before any lock of the key space below.

use std::collections::BTreeMap;
use std::ops::Deref;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::StoreError;
use crate::backend::{Atomicity, Backend, Changes, Visit, VisitWhile};
use crate::keys::{INDEX, MESSAGE};

/// The block tag of message keys.
pub(crate) const MESSAGE_BLOCK: u8 = 0x16;
/// The block tag of index keys.
pub(crate) const INDEX_BLOCK: u8 = 0x17;

/// One packed key space: its logical tag, its block tag and how many low bits of the number
/// pick the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Space {
    tag: u8,
    block_tag: u8,
    shift: u32,
}

/// Four messages per block: a block of 1 KiB messages stays 4 KiB, and a sled leaf of 16 such
/// blocks under the 128 KiB above which sled writes a page image as a separate blob file.
const MESSAGES: Space = Space {
    tag: MESSAGE,
    block_tag: MESSAGE_BLOCK,
    shift: 2,
};
/// Sixteen index entries (14 bytes each packed) per block.
const ENTRIES: Space = Space {
    tag: INDEX,
    block_tag: INDEX_BLOCK,
    shift: 4,
};

impl Space {
    fn of_tag(tag: u8) -> Option<Space> {
        match tag {
            MESSAGE => Some(MESSAGES),
            INDEX => Some(ENTRIES),
            _ => None,
        }
    }

    /// Where the number starts in `key` (one of this space's keys or a prefix of one): the
    /// end of the names, if `key` holds them whole.
    fn head_end(self, key: &[u8]) -> Option<usize> {
        if self.tag == MESSAGE {
            return Some(1);
        }
        let vhost = usize::from(*key.get(1)?);
        let queue = usize::from(*key.get(2 + vhost)?);
        let end = 3 + vhost + queue;
        (key.len() >= end).then_some(end)
    }

    /// The block key and slot of a whole logical key; `None` if `key` is not one.
    fn locate(self, key: &[u8]) -> Option<(Vec<u8>, u8)> {
        let head = self.head_end(key)?;
        let number = u64::from_be_bytes(key.get(head..)?.try_into().ok()?);
        let mut block = Vec::with_capacity(key.len());
        block.push(self.block_tag);
        block.extend_from_slice(&key[1..head]);
        block.extend_from_slice(&(number >> self.shift).to_be_bytes());
        Some((block, (number & ((1 << self.shift) - 1)) as u8))
    }

    /// The logical key of `slot` in the block at `block`.
    fn logical(self, block: &[u8], slot: u8) -> Result<Vec<u8>, StoreError> {
        let split = block
            .len()
            .checked_sub(8)
            .filter(|&s| s >= 1)
            .ok_or_else(|| StoreError::corrupt("a block key is shorter than 9 bytes"))?;
        let raw: [u8; 8] = block[split..]
            .try_into()
            .map_err(|_| StoreError::corrupt("block number"))?;
        let number = (u64::from_be_bytes(raw) << self.shift) | u64::from(slot);
        let mut key = Vec::with_capacity(block.len());
        key.push(self.tag);
        key.extend_from_slice(&block[1..split]);
        key.extend_from_slice(&number.to_be_bytes());
        Ok(key)
    }

    /// The least block key that may hold a logical key at or after `bound`, and the block
    /// prefix every block holding a key that starts with `prefix` has.
    fn bounds(self, prefix: &[u8], bound: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let physical = |key: &[u8]| -> Vec<u8> {
            let mut out = vec![self.block_tag];
            match self.head_end(key) {
                Some(head) => {
                    out.extend_from_slice(&key[1..head]);
                    let mut number = [0u8; 8];
                    let rest = &key[head..];
                    let n = rest.len().min(8);
                    number[..n].copy_from_slice(&rest[..n]);
                    out.extend_from_slice(
                        &(u64::from_be_bytes(number) >> self.shift).to_be_bytes(),
                    );
                }
                None => out.extend_from_slice(key.get(1..).unwrap_or_default()),
            }
            out
        };
        let start = physical(bound);
        let mut block_prefix = vec![self.block_tag];
        let names_end = self.head_end(prefix).unwrap_or(prefix.len()).max(1);
        block_prefix.extend_from_slice(prefix.get(1..names_end).unwrap_or_default());
        (start, block_prefix)
    }
}

/// The entries of a block value, in slot order.
fn entries(block: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), StoreError>> {
    let mut rest = block;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let slot = rest[0];
            let len = rest
                .get(1..5)
                .and_then(|l| <[u8; 4]>::try_from(l).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| StoreError::corrupt("a block entry's length is cut"))?;
            let len = usize::try_from(len).map_err(|_| StoreError::corrupt("block entry"))?;
            let value = rest
                .get(5..5 + len)
                .ok_or_else(|| StoreError::corrupt("a block entry's bytes are cut"))?;
            Ok((slot, value, 5 + len))
        })();
        Some(match parsed {
            Ok((slot, value, used)) => {
                rest = &rest[used..];
                Ok((slot, value))
            }
            Err(e) => {
                rest = &[];
                Err(e)
            }
        })
    })
}

/// A block's entries by slot, to change and encode again.
fn decode(block: Option<&[u8]>) -> Result<BTreeMap<u8, Bytes>, StoreError> {
    let mut out = BTreeMap::new();
    for entry in entries(block.unwrap_or_default()) {
        let (slot, value) = entry?;
        out.insert(slot, Bytes::copy_from_slice(value));
    }
    Ok(out)
}

/// A block value, or `None` (delete the block) when it holds no entry.
fn encode(slots: &BTreeMap<u8, Bytes>) -> Option<Bytes> {
    if slots.is_empty() {
        return None;
    }
    let size = slots.values().map(|v| 5 + v.len()).sum();
    let mut out = Vec::with_capacity(size);
    for (slot, value) in slots {
        out.push(*slot);
        // Values are messages and index entries, far below 4 GiB (frame size limits).
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    Some(Bytes::from(out))
}

/// The last change of each slot of a block: `Some(value)` sets it, `None` empties it.
type SlotChanges = BTreeMap<u8, Option<Bytes>>;

/// Bytes and records for the live-data count.
#[derive(Default)]
struct Live {
    bytes: u64,
    records: u64,
}

impl Live {
    fn count(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.records += 1;
    }
}

/// A key space `B` seen with its message and index keys packed into blocks (when `packed`),
/// or unchanged (a store directory made before layout 3).
pub(crate) struct Packed<B> {
    inner: B,
    packed: bool,
    /// Low bits of a message id that pick its slot: 2 (four bodies per block), or 4 when
    /// the values are twelve-byte locations into the message log (`msglog`, layout 4).
    message_shift: u32,
    /// Held by every write: see the module doc.
    write: Mutex<()>,
}

impl<B> Deref for Packed<B> {
    type Target = B;

    /// The key space below, for what is not a key operation (sizes, compaction, live counts).
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend> Packed<B> {
    /// `inner` with message and index keys packed (`packed`), or passed through unchanged.
    pub(crate) fn new(inner: B, packed: bool) -> Self {
        Packed {
            inner,
            packed,
            message_shift: MESSAGES.shift,
            write: Mutex::new(()),
        }
    }

    /// `inner` packed for the message log's locations: sixteen per block, as index entries.
    pub(crate) fn for_locations(inner: B) -> Self {
        Packed {
            message_shift: ENTRIES.shift,
            ..Self::new(inner, true)
        }
    }

    /// Whether message and index keys are packed.
    pub(crate) fn is_packed(&self) -> bool {
        self.packed
    }

    /// The records sled holds for `records` messages and index entries, as the compaction
    /// policy charges its per-record overhead: packed, a quarter (four messages share a
    /// record; sixteen entries do, counted as four to err on the side of compacting less).
    pub(crate) fn sled_records(&self, records: u64) -> u64 {
        if self.packed {
            records.div_ceil(4)
        } else {
            records
        }
    }

    fn space(&self, key: &[u8]) -> Option<Space> {
        if !self.packed {
            return None;
        }
        key.first()
            .copied()
            .and_then(Space::of_tag)
            .map(|space| match space.tag {
                MESSAGE => Space {
                    shift: self.message_shift,
                    ..space
                },
                _ => space,
            })
    }

    /// Refuses a key the packed layout cannot hold: a malformed message or index key, or a
    /// block key, which only this layer writes.
    fn malformed(key: &[u8]) -> StoreError {
        StoreError::corrupt(format!(
            "key {key:02x?} is not a whole message or index key"
        ))
    }

    /// Applies the changes of packed keys, block by block, and the others, in the steps the
    /// module doc gives (or in one batch).
    fn apply_packed(&self, changes: Changes, atomicity: Atomicity) -> Result<(), StoreError> {
        let _write = self.write.lock();
        // Per block, the last change of each slot: a later change of a key overrides an
        // earlier one, as applying them in order would.
        let mut blocks: BTreeMap<Vec<u8>, (Space, SlotChanges)> = BTreeMap::new();
        let mut others: Changes = Vec::new();
        for (key, value) in changes {
            if let Some(&(MESSAGE_BLOCK | INDEX_BLOCK)) = key.first() {
                return Err(Self::malformed(&key));
            }
            match self.space(&key) {
                Some(space) => {
                    let (block, slot) = space.locate(&key).ok_or_else(|| Self::malformed(&key))?;
                    blocks
                        .entry(block)
                        .or_insert_with(|| (space, BTreeMap::new()))
                        .1
                        .insert(slot, value);
                }
                None => others.push((key, value)),
            }
        }
        let mut puts = Changes::new();
        let mut index = Changes::new();
        let mut deletes = Changes::new();
        // The live-data count, per message and entry (a logical key is as long as its block's).
        let (mut added, mut removed) = (Live::default(), Live::default());
        for (block, (space, slots)) in blocks {
            let old = self.inner.get(&block)?;
            let mut current = decode(old.as_deref())?;
            let before = current.clone();
            for (slot, value) in &slots {
                let size = |v: &Bytes| (block.len() + v.len()) as u64;
                if let Some(old) = before.get(slot) {
                    removed.count(size(old));
                }
                if let Some(new) = value {
                    added.count(size(new));
                }
            }
            if space == ENTRIES || atomicity == Atomicity::Batch {
                for (slot, value) in slots {
                    match value {
                        Some(v) => current.insert(slot, v),
                        None => current.remove(&slot),
                    };
                }
                if current != before {
                    index.push((block, encode(&current)));
                }
                continue;
            }
            // Messages: what is put goes before the index, what is deleted after it.
            let mut put_any = false;
            for (slot, value) in &slots {
                if let Some(v) = value {
                    put_any = true;
                    current.insert(*slot, v.clone());
                }
            }
            if put_any {
                puts.push((block.clone(), encode(&current)));
            }
            let put_state = current.clone();
            for (slot, value) in slots {
                if value.is_none() {
                    current.remove(&slot);
                }
            }
            if current != put_state {
                deletes.push((block, encode(&current)));
            }
        }
        let mut physical = puts;
        physical.append(&mut index);
        physical.append(&mut others);
        physical.append(&mut deletes);
        if !physical.is_empty() {
            self.inner.apply(physical, atomicity)?;
        }
        self.inner.add_live(added.bytes, added.records);
        self.inner.remove_live(removed.bytes, removed.records);
        Ok(())
    }

    /// Visits every key as the engine sees it, in its order: the keys before messages,
    /// messages, index entries, the keys after them; block keys never.
    pub(crate) fn scan_logical(&self, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        self.inner.scan_from(&[], &[], &mut |k, v| {
            if k >= [MESSAGE].as_slice() {
                return Ok(false);
            }
            visit(k, v)?;
            Ok(true)
        })?;
        self.scan_prefix(&[MESSAGE], visit)?;
        self.scan_prefix(&[INDEX], visit)?;
        self.inner.scan_from(&[], &[INDEX + 1], &mut |k, v| {
            if !matches!(k.first(), Some(&(MESSAGE_BLOCK | INDEX_BLOCK))) {
                visit(k, v)?;
            }
            Ok(true)
        })
    }

    fn scan_packed(
        &self,
        space: Space,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError> {
        let (block_start, block_prefix) = space.bounds(prefix, start);
        let mut stopped = false;
        self.inner
            .scan_from(&block_prefix, &block_start, &mut |block, value| {
                for entry in entries(value) {
                    let (slot, bytes) = entry?;
                    let key = space.logical(block, slot)?;
                    if key.as_slice() < start {
                        continue;
                    }
                    if !key.starts_with(prefix) {
                        if key.as_slice() > prefix {
                            stopped = true;
                            return Ok(false);
                        }
                        continue;
                    }
                    if !visit(&key, bytes)? {
                        stopped = true;
                        return Ok(false);
                    }
                }
                Ok(!stopped)
            })
    }
}

impl<B: Backend> Backend for Packed<B> {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let Some(space) = self.space(key) else {
            return self.inner.get(key);
        };
        let Some((block, slot)) = space.locate(key) else {
            return Ok(None);
        };
        let Some(value) = self.inner.get(&block)? else {
            return Ok(None);
        };
        for entry in entries(&value) {
            let (s, bytes) = entry?;
            if s == slot {
                // A copy, not a slice: a message kept in memory must not pin its neighbours.
                return Ok(Some(Bytes::copy_from_slice(bytes)));
            }
        }
        Ok(None)
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        match self.space(prefix) {
            None => self.inner.scan_prefix(prefix, visit),
            Some(space) => self.scan_packed(space, prefix, prefix, &mut |k, v| {
                visit(k, v)?;
                Ok(true)
            }),
        }
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError> {
        match self.space(prefix) {
            None => self.inner.scan_from(prefix, start, visit),
            Some(space) => self.scan_packed(space, prefix, start, visit),
        }
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(space) = self.space(prefix) else {
            return self.inner.last_key(prefix);
        };
        if prefix.len() > 1 {
            let mut last = None;
            self.scan_prefix(prefix, &mut |k, _| {
                last = Some(k.to_vec());
                Ok(())
            })?;
            return Ok(last);
        }
        let Some(block) = self.inner.last_key(&[space.block_tag])? else {
            return Ok(None);
        };
        let value = self.inner.get(&block)?.unwrap_or_default();
        let mut last = None;
        for entry in entries(&value) {
            last = Some(entry?.0);
        }
        last.map(|slot| space.logical(&block, slot)).transpose()
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty()
    }

    fn apply(&self, changes: Changes, atomicity: Atomicity) -> Result<(), StoreError> {
        if !self.packed {
            return self.inner.apply(changes, atomicity);
        }
        self.apply_packed(changes, atomicity)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    fn reopen(&self) -> Result<(), StoreError> {
        self.inner.reopen()
    }

    fn add_live(&self, bytes: u64, records: u64) {
        self.inner.add_live(bytes, records);
    }

    fn remove_live(&self, bytes: u64, records: u64) {
        self.inner.remove_live(bytes, records);
    }

    fn stored_size(&self, key: &[u8], value: &[u8]) -> u64 {
        self.inner.stored_size(key, value)
    }
}

#[cfg(test)]
mod tests;
