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

/// One pending change.
struct Change {
    key: Vec<u8>,
    /// The new value, or `None` to delete.
    value: Option<Bytes>,
    /// For the log only (see the module doc).
    log_only: bool,
    /// `created` holds this change's position (a fresh key not cancelled).
    tracked: bool,
    /// The key's hash, kept so `created` never hashes a key twice (it rebuilds its positions
    /// after each compaction, and grows, from these).
    hash: u64,
}

type Slot = Option<Change>;
type Slots = [Slot];

/// Matches a position in `changes` that holds a change of `key`.
fn holds<'a>(changes: &'a Slots, key: &'a [u8]) -> impl Fn(&usize) -> bool + 'a {
    move |&pos| {
        changes
            .get(pos)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.key.as_slice() == key)
    }
}

/// The stored hash of the change at `pos` (for `created`'s growth and rebuild).
fn hash_at(changes: &Slots) -> impl Fn(&usize) -> u64 + '_ {
    move |&pos| {
        changes
            .get(pos)
            .and_then(Option::as_ref)
            .map_or(0, |c| c.hash)
    }
}

/// Slots of cancelled or logged log-only changes below which the list is not compacted: a
/// compaction rebuilds `created` from the changes left, so it waits until what it reclaims
/// outweighs that.
const COMPACT_MIN: usize = 1024;

/// Changes waiting for the backend, in order; cancelled ones are holes until the next
/// compaction.
///
/// **Compaction.** Under a steady consumer nearly every change is cancelled (a put and its
/// enqueue by the ack's deletes) or is a log-only change, useless once logged. Left in place
/// they made the list grow by four slots per message between checkpoints (tens of MB at
/// 200 k msg/s, regrown from empty after every checkpoint: fresh pages and reallocation copies
/// were 8 % of the persistent path's CPU). So once the reclaimable slots outnumber the live
/// ones twice over (and [`COMPACT_MIN`]), the list drops them, keeping the order of the rest,
/// and `created` is rebuilt from the stored hashes: the list stays about as long as the
/// changes in flight, and in cache.
pub(crate) struct Pending {
    changes: Vec<Slot>,
    /// `changes[..logged]` are in the write-ahead log (always 0 without one).
    logged: usize,
    /// `changes[..aged]` were logged before the last aged checkpoint closed the log file (see
    /// `take_aged`); `aged <= logged`.
    aged: usize,
    /// Positions in `changes` of the fresh keys still pending, found by their key.
    created: HashTable<usize>,
    hasher: RandomState,
    /// Changes not cancelled, log-only ones left out.
    live: usize,
    /// Log-only changes not logged yet (they must stay until logged).
    unlogged_log_only: usize,
    /// Bytes of the values not cancelled (a bound on memory held).
    bytes: usize,
    /// Changes cancelled since the store opened (observability and tests).
    cancelled: u64,
    /// Compactions since the store opened (tests).
    compactions: u64,
    /// [`COMPACT_MIN`], except in tests.
    compact_min: usize,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            changes: Vec::new(),
            logged: 0,
            aged: 0,
            created: HashTable::new(),
            hasher: RandomState::new(),
            live: 0,
            unlogged_log_only: 0,
            bytes: 0,
            cancelled: 0,
            compactions: 0,
            compact_min: COMPACT_MIN,
        }
    }
}

impl Pending {
    /// Compacts as soon as anything is reclaimable, for tests that need compactions to happen
    /// in a few writes.
    #[cfg(test)]
    pub(crate) fn compact_eagerly(&mut self) {
        self.compact_min = 0;
    }

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

    fn push(&mut self, key: Vec<u8>, value: Option<Bytes>, tracked: bool, hash: u64) -> usize {
        self.live += 1;
        self.bytes += value.as_ref().map_or(0, Bytes::len);
        self.changes.push(Some(Change {
            key,
            value,
            log_only: false,
            tracked,
            hash,
        }));
        self.changes.len() - 1
    }

    /// Appends a change for the log only (see the module doc).
    fn push_log_only(&mut self, key: Vec<u8>, value: Option<Bytes>) {
        self.unlogged_log_only += 1;
        self.changes.push(Some(Change {
            key,
            value,
            log_only: true,
            tracked: false,
            hash: 0,
        }));
    }

    /// Adds the changes of one write, cancelling what they undo.
    pub(crate) fn absorb(&mut self, planned: Vec<Planned>) {
        for Planned { key, value, fresh } in planned {
            match (value, fresh) {
                // Created and deleted by the same write: nothing for the backend.
                (None, true) => {}
                (Some(value), true) => {
                    let hash = self.hasher.hash_one(key.as_slice());
                    let pos = self.push(key, Some(value), true, hash);
                    self.created
                        .insert_unique(hash, pos, hash_at(&self.changes));
                }
                (value, false) => {
                    // One hash and one probe find the creation and, for a delete, forget it.
                    let hash = self.hasher.hash_one(key.as_slice());
                    match self.created.find_entry(hash, holds(&self.changes, &key)) {
                        Ok(entry) => {
                            let pos = *entry.get();
                            if value.is_none() {
                                entry.remove();
                            }
                            self.update_created(pos, key, value);
                        }
                        Err(_) => {
                            self.push(key, value, false, 0);
                        }
                    }
                }
            }
        }
        self.maybe_compact();
    }

    /// Sets a kept key (a queue's extent, see `engine::extents`): overwritten in place while
    /// an earlier value of it waits (the log still gets the new value, in order), else appended
    /// and tracked like a creation, so the next value finds it. Such a key is never deleted
    /// through the list (only by definition batches), so it is never cancelled, although the
    /// backend may hold it.
    pub(crate) fn set_kept(&mut self, key: Vec<u8>, value: Bytes) {
        let hash = self.hasher.hash_one(key.as_slice());
        match self.created.find(hash, holds(&self.changes, &key)) {
            Some(&pos) => self.update_created(pos, key, Some(value)),
            None => {
                let pos = self.push(key, Some(value), true, hash);
                self.created
                    .insert_unique(hash, pos, hash_at(&self.changes));
            }
        }
    }

    /// Overwrites (`Some`) or cancels (`None`, its position already forgotten by `created`)
    /// the pending creation of `key` at `pos`. When that creation is in the log already, the
    /// change is also appended for the log.
    fn update_created(&mut self, pos: usize, key: Vec<u8>, value: Option<Bytes>) {
        let in_log = pos < self.logged;
        let Some(Some(change)) = self.changes.get_mut(pos) else {
            return;
        };
        let old_len = change.value.as_ref().map_or(0, Bytes::len);
        match value {
            Some(v) => {
                self.bytes = self.bytes - old_len + v.len();
                change.value = Some(v.clone());
                if in_log {
                    self.push_log_only(key, Some(v));
                }
            }
            None => {
                let slot = self.changes.get_mut(pos).and_then(Option::take);
                self.live -= 1;
                self.bytes -= old_len;
                self.cancelled += 2;
                if let (true, Some(change)) = (in_log, slot) {
                    self.push_log_only(change.key, None);
                }
            }
        }
    }

    /// Calls `log` with every change not yet in the log, in order, and counts them as logged.
    pub(crate) fn log_new(&mut self, log: impl FnMut(&[u8], Option<&Bytes>)) {
        self.log_new_uncompacted(log);
        self.maybe_compact();
    }

    /// [`Pending::log_new`] without the compaction that drops the log-only changes just
    /// logged: for a resume, whose [`Pending::take_all`] must hand them to the backend.
    pub(crate) fn log_new_uncompacted(&mut self, mut log: impl FnMut(&[u8], Option<&Bytes>)) {
        for change in self.changes.iter().skip(self.logged).flatten() {
            log(&change.key, change.value.as_ref());
        }
        self.logged = self.changes.len();
        self.unlogged_log_only = 0;
    }

    /// Compacts the list when what it would reclaim is worth a rebuild of `created` (see
    /// [`Pending`]).
    fn maybe_compact(&mut self) {
        let reclaimable = self.changes.len() - self.live - self.unlogged_log_only;
        if reclaimable > 0 && reclaimable >= self.compact_min.max(2 * self.live) {
            self.compact();
        }
    }

    /// Drops the holes and the logged log-only changes, keeping the order of the rest, and
    /// rebuilds `created`'s positions.
    fn compact(&mut self) {
        let (logged, aged) = (self.logged, self.aged);
        let (mut at, mut kept_logged, mut kept_aged) = (0usize, 0usize, 0usize);
        self.changes.retain(|slot| {
            let keep = slot.as_ref().is_some_and(|c| !c.log_only || at >= logged);
            if keep && at < logged {
                kept_logged += 1;
            }
            if keep && at < aged {
                kept_aged += 1;
            }
            at += 1;
            keep
        });
        self.logged = kept_logged;
        self.aged = kept_aged;
        self.rebuild_created();
        self.compactions += 1;
    }

    /// Rebuilds `created` from the tracked changes' stored hashes, after positions moved. A
    /// table a burst left far larger than what it holds is shrunk: its probes would spread
    /// over cache lines the few changes in flight never share.
    fn rebuild_created(&mut self) {
        self.created.clear();
        let tracked = self.live.max(COMPACT_MIN);
        if self.created.capacity() > 8 * tracked {
            self.created.shrink_to(2 * tracked, hash_at(&self.changes));
        }
        for (pos, change) in self.changes.iter().enumerate() {
            if let Some(change) = change
                && change.tracked
            {
                self.created
                    .insert_unique(change.hash, pos, hash_at(&self.changes));
            }
        }
    }

    /// Takes, for the backend, the changes logged before the previous call (or the last
    /// `take`), in order, and marks every change logged so far as the next call's share (the
    /// aged checkpoint: see `wal`). What is taken is a prefix of the list, so it is
    /// consistent on its own (see `plan::crash_safe_order`); its keys are no longer fresh.
    pub(crate) fn take_aged(&mut self) -> Changes {
        let aged = self.aged.min(self.changes.len());
        let mut taken = Vec::new();
        for change in self.changes.drain(..aged).flatten() {
            if change.log_only {
                continue;
            }
            self.live -= 1;
            self.bytes -= change.value.as_ref().map_or(0, Bytes::len);
            taken.push((change.key, change.value));
        }
        self.logged -= aged;
        self.aged = self.logged;
        if aged > 0 {
            self.rebuild_created();
        }
        taken
    }

    /// Takes every change, those kept for the log only included, in order, leaving the list
    /// empty: for a backend into which the log was just replayed (a resume), where a change
    /// the log holds but the list cancelled must be undone again.
    pub(crate) fn take_all(&mut self) -> Changes {
        for change in self.changes.iter_mut().flatten() {
            change.log_only = false;
        }
        self.take()
    }

    /// Takes every waiting change for the backend, in order, leaving the list empty (log-only
    /// changes are dropped: the caller has logged what needs logging). The list keeps its
    /// capacity (its next growth allocates nothing) unless a burst left it far larger than
    /// what it held.
    pub(crate) fn take(&mut self) -> Changes {
        self.created.clear();
        if self.created.capacity() > 8 * COMPACT_MIN {
            self.created.shrink_to(0, hash_at(&self.changes));
        }
        let held = self.live;
        self.live = 0;
        self.bytes = 0;
        self.logged = 0;
        self.aged = 0;
        self.unlogged_log_only = 0;
        let taken: Changes = self
            .changes
            .drain(..)
            .flatten()
            .filter(|c| !c.log_only)
            .map(|c| (c.key, c.value))
            .collect();
        let keep = 4 * held.max(COMPACT_MIN);
        if self.changes.capacity() > 4 * keep {
            self.changes.shrink_to(keep);
        }
        taken
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

    /// One step of the compaction property: a write of `(key, Some(value) | None)` changes,
    /// a sync's logging, a hand-over, or an explicit compaction.
    #[derive(Debug, Clone)]
    enum Step {
        Write(Vec<(u8, Option<u8>)>),
        Log,
        Take,
        TakeAged,
        Compact,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => proptest::collection::vec((0u8..12, proptest::option::of(any::<u8>())), 1..4)
                .prop_map(Step::Write),
            2 => Just(Step::Log),
            1 => Just(Step::Take),
            2 => Just(Step::TakeAged),
            2 => Just(Step::Compact),
        ]
    }

    proptest::proptest! {
        /// Compaction is invisible: a list that compacts at every chance logs and hands over
        /// exactly what one that never compacts does, and counts the same.
        #[test]
        fn compaction_changes_nothing_observable(steps in proptest::collection::vec(step(), 1..120)) {
            let mut eager = Pending { compact_min: 0, ..Pending::default() };
            let mut never = Pending { compact_min: usize::MAX, ..Pending::default() };
            // Keys the backend or a pending change holds: a set of any other key is fresh.
            let mut present = std::collections::BTreeSet::new();
            for step in steps {
                match step {
                    Step::Write(changes) => {
                        // A plan keeps one change per key, fresh when its first one found
                        // the key absent.
                        let mut planned: Vec<Planned> = Vec::new();
                        for (k, v) in changes {
                            let key = vec![k];
                            let value = v.map(|b| Bytes::from(vec![b; usize::from(b % 5)]));
                            match planned.iter_mut().find(|p| p.key == key) {
                                Some(p) => p.value = value.clone(),
                                None => planned.push(Planned {
                                    key: key.clone(),
                                    value: value.clone(),
                                    fresh: !present.contains(&k),
                                }),
                            }
                            if value.is_some() {
                                present.insert(k);
                            } else {
                                present.remove(&k);
                            }
                        }
                        // A key created and deleted by one write is fresh only if absent.
                        eager.absorb(planned.clone());
                        never.absorb(planned);
                    }
                    Step::Log => proptest::prop_assert_eq!(logged(&mut eager), logged(&mut never)),
                    Step::Take => proptest::prop_assert_eq!(keys(&eager.take()), keys(&never.take())),
                    Step::TakeAged => proptest::prop_assert_eq!(
                        keys(&eager.take_aged()),
                        keys(&never.take_aged())
                    ),
                    Step::Compact => eager.compact(),
                }
                proptest::prop_assert_eq!(eager.len(), never.len());
                proptest::prop_assert_eq!(eager.bytes(), never.bytes());
                proptest::prop_assert_eq!(eager.cancelled(), never.cancelled());
            }
            proptest::prop_assert_eq!(logged(&mut eager), logged(&mut never));
            proptest::prop_assert_eq!(keys(&eager.take()), keys(&never.take()));
            proptest::prop_assert_eq!(never.compactions, 0);
        }
    }

    #[test]
    fn an_aged_take_hands_over_what_was_logged_before_the_previous_one() {
        let mut p = Pending::default();
        p.absorb(vec![set("m1", "a", true), set("i1", "e", true)]);
        logged(&mut p);
        // Nothing was logged before the first aged take.
        assert!(p.take_aged().is_empty());
        p.absorb(vec![set("m2", "b", true), set("i2", "e", true)]);
        // m1 and i1 are acked before the next aged take: both cancelled.
        p.absorb(vec![delete("i1", false), delete("m1", false)]);
        logged(&mut p);
        p.absorb(vec![set("m3", "c", true)]);
        assert!(p.take_aged().is_empty(), "m1 and i1 were cancelled");
        // m2 and i2 were logged before that take: they go now; m3 was not logged yet.
        logged(&mut p);
        assert_eq!(
            keys(&p.take_aged()),
            [
                ("m2".into(), Some("b".into())),
                ("i2".into(), Some("e".into()))
            ]
        );
        // m2 is on the backend now: deleting it is a real delete.
        p.absorb(vec![delete("m2", false)]);
        assert_eq!(p.len(), 2);
        assert_eq!(
            keys(&p.take()),
            [("m3".into(), Some("c".into())), ("m2".into(), None)]
        );
    }

    #[test]
    fn a_steady_stream_of_cancelled_writes_keeps_the_list_short() {
        let mut p = Pending::default();
        for i in 0..100_000u32 {
            let m = format!("m{i}");
            let e = format!("i{i}");
            p.absorb(vec![set(&m, "body", true), set(&e, "e", true)]);
            if i % 50 == 0 {
                logged(&mut p);
            }
            p.absorb(vec![delete(&e, false), delete(&m, false)]);
        }
        logged(&mut p);
        assert_eq!(p.len(), 0);
        assert!(p.compactions > 0);
        assert!(
            p.changes.len() < 4 * COMPACT_MIN,
            "{} slots",
            p.changes.len()
        );
    }
}
