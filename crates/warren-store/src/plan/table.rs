//! The two lookup tables a [`Plan`](super::Plan) keeps, sized for the common case.
//!
//! A message write plans two to a few hundred changes (a publish: a message and its index entry;
//! an ack batch: one entry per message), and is planned once per publish on the connection's
//! thread. An ordered map or a hash map per write cost an allocation per node and a rehash for
//! every write (14 % of the connection's time in the persistent profile). These tables are
//! vectors searched linearly while small, with a hash index built only when a plan grows past
//! [`SMALL`] entries (definition changes that delete a whole queue's entries).

use ahash::{AHashMap, RandomState};
use bytes::Bytes;
use hashbrown::HashTable;

use crate::MessageId;

/// Entries up to which a linear search beats hashing.
const SMALL: usize = 16;

/// One key change: `Some(value)` sets, `None` deletes; `fresh` when the key was absent before
/// the plan's first change of it.
pub(crate) type KeyChange = (Vec<u8>, Option<Bytes>, bool);

/// A plan's key changes in the order first made, one per key.
#[derive(Default)]
pub(crate) struct KeyChanges {
    changes: Vec<KeyChange>,
    /// Positions in `changes` by key hash, once there are more than [`SMALL`].
    index: Option<(HashTable<usize>, RandomState)>,
    /// Changes the plan expects (see `expect`).
    expected: usize,
}

impl KeyChanges {
    /// Sizes the table for `n` changes: an ack batch of a hundred messages plans two hundred,
    /// and growing the vector and the hash index step by step rehashed it several times.
    pub(crate) fn expect(&mut self, n: usize) {
        self.expected = n;
        self.changes.reserve(n);
    }

    /// The position of `key`'s change, if this plan changed it.
    fn find(&self, key: &[u8]) -> Option<usize> {
        match &self.index {
            None => self
                .changes
                .iter()
                .position(|(k, _, _)| k.as_slice() == key),
            Some((table, hasher)) => {
                let changes = &self.changes;
                table
                    .find(hasher.hash_one(key), |&p| {
                        changes.get(p).is_some_and(|(k, _, _)| k.as_slice() == key)
                    })
                    .copied()
            }
        }
    }

    /// What this plan did to `key`: `Some(None)` deleted it, `Some(Some(v))` set it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&Bytes>> {
        self.find(key)
            .and_then(|p| self.changes.get(p))
            .map(|(_, v, _)| v.as_ref())
    }

    /// Records a change of `key`; its freshness is decided by the plan's first change of it.
    pub(crate) fn change(&mut self, key: Vec<u8>, value: Option<Bytes>, fresh: bool) {
        if let Some(slot) = self.find(&key).and_then(|p| self.changes.get_mut(p)) {
            slot.1 = value;
            return;
        }
        let pos = self.changes.len();
        self.changes.push((key, value, fresh));
        if let Some((table, hasher)) = &mut self.index {
            index_one(table, hasher, &self.changes, pos);
        } else if self.changes.len() > SMALL {
            let hasher = RandomState::new();
            let mut table = HashTable::with_capacity((self.changes.len() * 2).max(self.expected));
            for p in 0..self.changes.len() {
                index_one(&mut table, &hasher, &self.changes, p);
            }
            self.index = Some((table, hasher));
        }
    }

    /// The changes, in the order first made.
    pub(crate) fn into_vec(self) -> Vec<KeyChange> {
        self.changes
    }
}

/// Adds the change at `pos` to the hash index.
fn index_one(
    table: &mut HashTable<usize>,
    hasher: &RandomState,
    changes: &[KeyChange],
    pos: usize,
) {
    let hash_at = |p: &usize| {
        changes
            .get(*p)
            .map_or(0, |(k, _, _)| hasher.hash_one(k.as_slice()))
    };
    table.insert_unique(hash_at(&pos), pos, hash_at);
}

/// A plan's per-message values (reference counts, holds), by message id.
#[derive(Debug)]
pub(crate) struct IdMap<V> {
    entries: Vec<(MessageId, V)>,
    /// Positions in `entries` by id, once there are more than [`SMALL`].
    index: Option<AHashMap<MessageId, usize>>,
    /// Ids the plan expects (see `expect`).
    expected: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            entries: Vec::new(),
            index: None,
            expected: 0,
        }
    }
}

impl<V: Copy> IdMap<V> {
    /// Sizes the map for `n` ids (as `KeyChanges::expect`).
    pub(crate) fn expect(&mut self, n: usize) {
        self.expected = n;
        self.entries.reserve(n);
    }

    fn position(&self, id: MessageId) -> Option<usize> {
        match &self.index {
            None => self.entries.iter().position(|(i, _)| *i == id),
            Some(index) => index.get(&id).copied(),
        }
    }

    /// The value for `id`, if set.
    pub(crate) fn get(&self, id: MessageId) -> Option<V> {
        self.position(id)
            .and_then(|p| self.entries.get(p))
            .map(|(_, v)| *v)
    }

    /// Sets the value for `id`.
    pub(crate) fn insert(&mut self, id: MessageId, value: V) {
        if let Some(slot) = self.position(id).and_then(|p| self.entries.get_mut(p)) {
            slot.1 = value;
            return;
        }
        self.entries.push((id, value));
        let len = self.entries.len();
        match &mut self.index {
            Some(index) => {
                index.insert(id, len - 1);
            }
            None if len > SMALL => {
                let mut index = AHashMap::with_capacity(len.max(self.expected));
                index.extend(self.entries.iter().enumerate().map(|(p, (i, _))| (*i, p)));
                self.index = Some(index);
            }
            None => {}
        }
    }

    /// Every id and its value, in the order first set.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (MessageId, V)> + '_ {
        self.entries.iter().copied()
    }

    /// Every id and its value, in the order first set.
    pub(crate) fn into_vec(self) -> Vec<(MessageId, V)> {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_keep_one_change_per_key_past_the_index_threshold() {
        let mut c = KeyChanges::default();
        for round in 0..3u8 {
            for i in 0..40u8 {
                // The first change of a key decides its freshness; later ones replace the value.
                c.change(vec![i], Some(Bytes::from(vec![round])), i % 2 == 0);
            }
        }
        c.change(vec![7], None, true);
        assert_eq!(c.get(&[7]), Some(None));
        assert_eq!(
            c.get(&[8]).map(|v| v.cloned()),
            Some(Some(Bytes::from(vec![2])))
        );
        assert_eq!(c.get(&[200]), None);
        let all = c.into_vec();
        assert_eq!(all.len(), 40);
        for (i, (k, _, fresh)) in all.iter().enumerate() {
            assert_eq!(k, &vec![i as u8]);
            assert_eq!(*fresh, i % 2 == 0);
        }
    }

    #[test]
    fn id_maps_agree_with_a_hash_map_below_and_above_the_threshold() {
        let mut m = IdMap::default();
        let mut model = std::collections::HashMap::new();
        for step in 0..200u64 {
            let id = (step * 7919) % 50;
            m.insert(id, step);
            model.insert(id, step);
            for probe in 0..55 {
                assert_eq!(m.get(probe), model.get(&probe).copied());
            }
        }
        assert_eq!(m.iter().count(), model.len());
    }
}
