//! The ordered key-value space a store runs on, as the [`Engine`](crate::engine::Engine)
//! needs it: point reads, prefix scans, atomic batches and a flush. sled and a `BTreeMap`
//! implement it, so both stores share one implementation of every rule.

use bytes::Bytes;

use crate::StoreError;

/// A batch of changes: `Some(value)` sets the key, `None` deletes it. Applied atomically.
pub(crate) type Changes = Vec<(Vec<u8>, Option<Bytes>)>;

/// How a batch of changes reaches the key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Atomicity {
    /// All changes or none, also across a crash.
    Batch,
    /// One change after the other, in the given order: a crash keeps a prefix. Cheaper (see
    /// `sled_backend`); callers order changes so every prefix is consistent.
    InOrder,
}

/// Visits one key-value pair of a scan.
pub(crate) type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;
/// A visitor that answers whether the scan should go on.
pub(crate) type VisitWhile<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// Visits one key and its stored size; answers whether the scan should go on.
pub(crate) type SizeVisit<'a> = dyn FnMut(&[u8], u64) -> Result<bool, StoreError> + 'a;

/// An ordered key space with atomic batches.
pub(crate) trait Backend: Send + Sync {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    /// Visits every pair whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError>;
    /// Visits the pairs whose key starts with `prefix` and is at or after `start`, in key
    /// order, while `visit` returns `true`: a resumable scan (a queue loading in batches).
    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError>;
    /// The greatest key starting with `prefix` (a one-byte tag), if any.
    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut last = None;
        self.scan_prefix(prefix, &mut |k, _| {
            last = Some(k.to_vec());
            Ok(())
        })?;
        Ok(last)
    }
    /// Whether the key space holds no key at all.
    fn is_empty(&self) -> Result<bool, StoreError>;
    /// Applies the changes; see [`Atomicity`]. On `Err` with `InOrder`, a prefix may be applied.
    fn apply(&self, changes: Changes, atomicity: Atomicity) -> Result<(), StoreError>;
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Closes and opens the key space again after a failed write or flush (sled refuses every
    /// call after one): it then holds what its last good flush made durable, and possibly
    /// more. Nothing to do for a key space that cannot fail.
    fn reopen(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Adds what the background open scan found (bytes of keys and values, records) to the
    /// backend's live-data count, if it keeps one.
    fn add_live(&self, _bytes: u64, _records: u64) {}
    /// Takes bytes and records off the live-data count, if the backend keeps one (a layer
    /// above that counts what it removed, see `packed`).
    fn remove_live(&self, _bytes: u64, _records: u64) {}
    /// Whether a flush would do work of the key space's own even with nothing new written
    /// (the message log's recount, reclaim and relocation advance only with flushes): an
    /// idle store's drain thread then flushes anyway.
    fn wants_flush(&self) -> bool {
        false
    }
    /// What the pair `key`, `value` (as the engine sees it) takes in the key space's live
    /// count: its bytes, unless a layer keeps the value elsewhere (`msglog`).
    fn stored_size(&self, key: &[u8], value: &[u8]) -> u64 {
        (key.len() + value.len()) as u64
    }
    /// [`Backend::scan_from`] for a caller that needs each key and its
    /// [`stored_size`](Backend::stored_size) only, not the value (which a layer may have to
    /// read from elsewhere: the open scan's sweep over every message).
    fn scan_sizes_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut SizeVisit<'_>,
    ) -> Result<(), StoreError> {
        self.scan_from(prefix, start, &mut |k, v| visit(k, self.stored_size(k, v)))
    }
}

/// Scans collected into vectors, for tests comparing key spaces.
#[cfg(test)]
pub(crate) mod collect {
    use super::Backend;

    /// Key-value pairs, in scan order.
    pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    /// Every pair under `prefix`.
    pub(crate) fn scan_prefix(b: &dyn Backend, prefix: &[u8]) -> Pairs {
        let mut out = Vec::new();
        b.scan_prefix(prefix, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    /// At most `max` pairs under `prefix` from `start`.
    pub(crate) fn scan_from(b: &dyn Backend, prefix: &[u8], start: &[u8], max: usize) -> Pairs {
        let mut out = Vec::new();
        b.scan_from(prefix, start, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(out.len() < max)
        })
        .unwrap();
        out
    }
}
