//! Message writes not yet handed to the backend, and the writes they cancel.
//!
//! A persistent message that is consumed and acknowledged before its write reaches the backend
//! never needs to: its `Put` and `Enqueue` are dropped together with the `Remove` that ends them,
//! as RabbitMQ's message store does with messages acked before they are written. Under a steady
//! consumer this removes most of the backend's work (four of a persistent message's five sled
//! operations are its writes and the deletes that undo them).
//!
//! Cancelling is only sound for keys the backend does not hold: a change is *fresh* when its key
//! was absent from the backend and from every earlier pending change. Deleting a fresh key drops
//! its pending write and the delete; overwriting one replaces the pending value in place. Every
//! other change is kept in order, so the list stays a sequence whose every prefix is consistent
//! (see `plan::crash_safe_order`): removing a create together with its later delete, or changing
//! a created value before it is written, keeps that true.
//!
//! With a write-ahead log (`wal`), `sync` writes the changes not yet logged to the log and
//! leaves them here (`logged` marks how far). A change already logged can still be cancelled or
//! overwritten for the backend, but the log holds its old value: the cancelling delete or the
//! new value is then appended as a *log-only* change, which goes to the log at the next sync and
//! never to the backend. So the log holds the whole history since the last checkpoint, in order,
//! and the backend only what survives it.

use ahash::RandomState;
use bytes::Bytes;
use hashbrown::HashTable;

use crate::backend::Changes;

/// One planned key change: `Some(value)` sets, `None` deletes; `fresh` when the key was absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    /// The key.
    pub(crate) key: Vec<u8>,
    /// The new value, or `None` to delete.
    pub(crate) value: Option<Bytes>,
    /// The key was absent from the backend and from every earlier pending change.
    pub(crate) fresh: bool,
}

/// One pending change: key, value, and whether it is for the log only.
type Slot = Option<(Vec<u8>, Option<Bytes>, bool)>;
type Slots = [Slot];

/// Matches a position in `changes` that holds a change of `key`.
fn holds<'a>(changes: &'a Slots, key: &'a [u8]) -> impl Fn(&usize) -> bool + 'a {
    move |&pos| {
        changes
            .get(pos)
            .and_then(Option::as_ref)
            .is_some_and(|(k, _, _)| k.as_slice() == key)
    }
}

/// Changes waiting for the backend, in order; cancelled ones are holes.
#[derive(Default)]
pub(crate) struct Pending {
    changes: Vec<Slot>,
    /// `changes[..logged]` are in the write-ahead log (always 0 without one).
    logged: usize,
    /// Positions in `changes` of the fresh keys still pending, found by their key.
    created: HashTable<usize>,
    hasher: RandomState,
    /// Changes not cancelled.
    live: usize,
    /// Bytes of the values not cancelled (a bound on memory held).
    bytes: usize,
    /// Changes cancelled since the store opened (observability and tests).
    cancelled: u64,
}

impl Pending {
    /// Changes waiting, not counting cancelled ones.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Bytes of the values waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Changes cancelled so far, each counted once (a write and its delete count two).
    pub(crate) fn cancelled(&self) -> u64 {
        self.cancelled
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.created.find(hash, holds(&self.changes, key)).copied()
    }

    fn forget(&mut self, key: &[u8]) {
        let hash = self.hasher.hash_one(key);
        if let Ok(entry) = self.created.find_entry(hash, holds(&self.changes, key)) {
            entry.remove();
        }
    }

    fn push(&mut self, key: Vec<u8>, value: Option<Bytes>) -> usize {
        self.live += 1;
        self.bytes += value.as_ref().map_or(0, Bytes::len);
        self.changes.push(Some((key, value, false)));
        self.changes.len() - 1
    }

    /// Appends a change for the log only (see the module doc).
    fn push_log_only(&mut self, key: Vec<u8>, value: Option<Bytes>) {
        self.changes.push(Some((key, value, true)));
    }

    /// Adds the changes of one write, cancelling what they undo.
    pub(crate) fn absorb(&mut self, planned: Vec<Planned>) {
        for Planned { key, value, fresh } in planned {
            match (value, fresh) {
                // Created and deleted by the same write: nothing for the backend.
                (None, true) => {}
                (Some(value), true) => {
                    let hash = self.hasher.hash_one(key.as_slice());
                    let pos = self.push(key, Some(value));
                    let changes = &self.changes;
                    let hasher = &self.hasher;
                    self.created.insert_unique(hash, pos, |&p| {
                        changes
                            .get(p)
                            .and_then(Option::as_ref)
                            .map_or(0, |(k, _, _)| hasher.hash_one(k.as_slice()))
                    });
                }
                (value, false) => match self.find(&key) {
                    Some(pos) => self.update_created(pos, &key, value),
                    None => {
                        self.push(key, value);
                    }
                },
            }
        }
    }

    /// Overwrites (`Some`) or cancels (`None`) the pending creation of `key` at `pos`. When
    /// that creation is in the log already, the change is also appended for the log.
    fn update_created(&mut self, pos: usize, key: &[u8], value: Option<Bytes>) {
        let in_log = pos < self.logged;
        let Some(Some((_, old, _))) = self.changes.get_mut(pos) else {
            return;
        };
        let old_len = old.as_ref().map_or(0, Bytes::len);
        match value {
            Some(v) => {
                self.bytes = self.bytes - old_len + v.len();
                *old = Some(v.clone());
                if in_log {
                    self.push_log_only(key.to_vec(), Some(v));
                }
            }
            None => {
                self.forget(key);
                let slot = self.changes.get_mut(pos).and_then(Option::take);
                self.live -= 1;
                self.bytes -= old_len;
                self.cancelled += 2;
                if let (true, Some((key, _, _))) = (in_log, slot) {
                    self.push_log_only(key, None);
                }
            }
        }
    }

    /// Calls `log` with every change not yet in the log, in order, and counts them as logged.
    pub(crate) fn log_new(&mut self, mut log: impl FnMut(&[u8], Option<&Bytes>)) {
        for (key, value, _) in self.changes.iter().skip(self.logged).flatten() {
            log(key, value.as_ref());
        }
        self.logged = self.changes.len();
    }

    /// Takes every waiting change for the backend, in order, leaving the list empty (log-only
    /// changes are dropped: the caller has logged what needs logging).
    pub(crate) fn take(&mut self) -> Changes {
        self.created.clear();
        self.live = 0;
        self.bytes = 0;
        self.logged = 0;
        let changes = std::mem::take(&mut self.changes);
        changes
            .into_iter()
            .flatten()
            .filter(|(_, _, log_only)| !log_only)
            .map(|(k, v, _)| (k, v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str, fresh: bool) -> Planned {
        Planned {
            key: key.as_bytes().to_vec(),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            fresh,
        }
    }

    fn delete(key: &str, fresh: bool) -> Planned {
        Planned {
            key: key.as_bytes().to_vec(),
            value: None,
            fresh,
        }
    }

    fn keys(changes: &Changes) -> Vec<(String, Option<String>)> {
        changes
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn a_created_key_deleted_before_the_backend_saw_it_is_never_written() {
        let mut p = Pending::default();
        p.absorb(vec![set("m1", "body", true), set("i1", "e", true)]);
        p.absorb(vec![set("m2", "body2", true), set("i2", "e", true)]);
        p.absorb(vec![delete("i1", false), delete("m1", false)]);
        assert_eq!(p.len(), 2);
        assert_eq!(p.cancelled(), 4);
        assert_eq!(
            keys(&p.take()),
            [
                ("m2".into(), Some("body2".into())),
                ("i2".into(), Some("e".into()))
            ]
        );
        assert_eq!(p.len(), 0);
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn keys_the_backend_may_hold_are_deleted_in_order() {
        let mut p = Pending::default();
        // "old" is not fresh: the backend may hold it, so its delete must reach the backend,
        // after the changes before it.
        p.absorb(vec![set("a", "1", true)]);
        p.absorb(vec![delete("old", false)]);
        assert_eq!(
            keys(&p.take()),
            [("a".into(), Some("1".into())), ("old".into(), None)]
        );
        // Once taken, "a" is on the backend: deleting it is a real delete.
        p.absorb(vec![delete("a", false)]);
        assert_eq!(keys(&p.take()), [("a".into(), None)]);
    }

    #[test]
    fn overwriting_a_pending_creation_changes_it_in_place() {
        let mut p = Pending::default();
        p.absorb(vec![set("i1", "plain", true), set("i2", "plain", true)]);
        p.absorb(vec![set("i1", "marked", false)]);
        assert_eq!(p.len(), 2);
        assert_eq!(p.bytes(), 11);
        assert_eq!(
            keys(&p.take()),
            [
                ("i1".into(), Some("marked".into())),
                ("i2".into(), Some("plain".into()))
            ]
        );
    }

    #[test]
    fn created_and_deleted_within_one_write_is_dropped() {
        let mut p = Pending::default();
        p.absorb(vec![delete("m", true), set("meta", "7", false)]);
        assert_eq!(keys(&p.take()), [("meta".into(), Some("7".into()))]);
    }

    fn logged(p: &mut Pending) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        p.log_new(|k, v| {
            out.push((
                String::from_utf8_lossy(k).into_owned(),
                v.map(|v| String::from_utf8_lossy(v).into_owned()),
            ))
        });
        out
    }

    #[test]
    fn changes_to_logged_creations_are_logged_but_never_reach_the_backend() {
        let mut p = Pending::default();
        p.absorb(vec![set("m1", "body", true), set("i1", "e", true)]);
        p.absorb(vec![set("i2", "e", true)]);
        assert_eq!(logged(&mut p).len(), 3);
        assert!(logged(&mut p).is_empty(), "each change is logged once");
        // An ack of m1 and a redelivery mark of i2, after both were logged.
        p.absorb(vec![delete("i1", false), delete("m1", false)]);
        p.absorb(vec![set("i2", "marked", false)]);
        assert_eq!(
            logged(&mut p),
            [
                ("i1".into(), None),
                ("m1".into(), None),
                ("i2".into(), Some("marked".into()))
            ]
        );
        assert_eq!(keys(&p.take()), [("i2".into(), Some("marked".into()))]);
        // Not logged yet: cancelled silently, as without a log.
        p.absorb(vec![set("m3", "b", true)]);
        p.absorb(vec![delete("m3", false)]);
        assert!(logged(&mut p).is_empty());
        assert!(p.take().is_empty());
    }

    #[test]
    fn a_key_recreated_after_its_cancellation_is_tracked_again() {
        let mut p = Pending::default();
        p.absorb(vec![set("k", "1", true)]);
        p.absorb(vec![delete("k", false)]);
        p.absorb(vec![set("k", "2", true)]);
        p.absorb(vec![set("k", "3", false)]);
        assert_eq!(keys(&p.take()), [("k".into(), Some("3".into()))]);
    }
}
