//! The store itself, generic over its [`Backend`]: every rule (key layout, reference counts,
//! cascades, validation, group commit) lives here once, so [`SledStore`](crate::SledStore) and
//! [`MemoryStore`](crate::MemoryStore) cannot drift apart.
//!
//! One mutex serialises mutations (plan, install counts). Message writes stop there: their
//! changes wait in a [`Pending`] list, where an acknowledged message cancels its own writes,
//! until a `sync`, a definition change, a read of a queue, the pending-size bound, or the
//! store's drain timer hands them to the backend (see `pending`). A second mutex keeps those
//! hand-overs in order; lock order is `order`, then `shared`. Definition changes drain the list
//! and apply their own batch under both, so they see every earlier message write.
//!
//! Message writes are applied [`Atomicity::InOrder`] in a crash-safe order (see `plan`), so a
//! crash may leave messages no entry references; [`Engine::open`] deletes them. If applying
//! fails part-way, memory and counts may disagree: the engine refuses every later mutation
//! with [`StoreError::Failed`] until reopened (sled is in a failed state by then anyway).

mod definitions;
mod messages;
mod pending;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::backend::{Atomicity, Backend, Changes};
use crate::group_commit::GroupCommit;
use crate::keys::{self, IndexValue};
use crate::plan::Plan;
use crate::refs::RefTable;
use crate::{MessageId, QueueExtent, StoreError};

/// Each queue's [`QueueExtent`] as the open scan found it, by index prefix.
type Extents = ahash::AHashMap<Vec<u8>, QueueExtent>;

use pending::Pending;
pub(crate) use pending::Planned;

/// Pending changes beyond which a write hands them to the backend itself.
const MAX_PENDING_CHANGES: usize = 16 * 1024;
/// Pending value bytes beyond which a write hands them to the backend itself.
const MAX_PENDING_BYTES: usize = 32 * 1024 * 1024;

/// State changed only under the mutation lock.
struct Shared {
    refs: RefTable,
    /// The value of the `max_message_id` meta key on disk: no id above it was ever stored.
    persisted_max: Option<MessageId>,
    /// Message writes the backend has not seen yet.
    pending: Pending,
}

/// A store over a backend.
pub(crate) struct Engine<B: Backend> {
    backend: B,
    shared: Mutex<Shared>,
    /// Held while pending changes go to the backend, so hand-overs keep the order of writes.
    order: Mutex<()>,
    next_id: AtomicU64,
    commit: GroupCommit,
    /// An apply failed part-way: refuse further mutations.
    failed: AtomicBool,
    /// Bytes of keys and values, and number, of the messages and index entries found at open.
    live_at_open: (u64, u64),
    /// Each queue's extent as the open scan counted it, so a broker can declare its queues
    /// with their message counts before loading them; dropped by the first mutation, after
    /// which `queue_extent` reads the index (see `messages`).
    extents_at_open: Mutex<Option<Extents>>,
    /// False once `extents_at_open` is dropped: the check a write pays.
    extents_valid: AtomicBool,
}

impl<B: Backend> Engine<B> {
    /// Rebuilds the in-memory state from the backend: reference counts from one scan of the
    /// queue indexes, the id high-water mark from its meta key, and deletes messages that a
    /// crash in the middle of a write left without index entries (one scan of the messages).
    /// The same scans count the live bytes that decide whether compaction is worth it.
    pub(crate) fn open(backend: B) -> Result<Self, StoreError> {
        let mut refs = RefTable::default();
        let (mut live, mut records) = (0u64, 0u64);
        let mut extents = Extents::default();
        backend.scan_prefix(&[keys::INDEX], &mut |k, v| {
            refs.add_reference(IndexValue::decode(v)?.id);
            let seq = keys::index_seq(k)?;
            let prefix = k.get(..k.len() - 8).unwrap_or_default();
            // Keys come in order, so a queue's entries are contiguous: one lookup per entry.
            let extent = match extents.get_mut(prefix) {
                Some(e) => e,
                None => extents.entry(prefix.to_vec()).or_default(),
            };
            extent.count += 1;
            extent.end_seq = seq.saturating_add(1);
            live += (k.len() + v.len()) as u64;
            records += 1;
            Ok(())
        })?;
        let mut orphans = Vec::new();
        let mut last_stored = None;
        backend.scan_prefix(&[keys::MESSAGE], &mut |k, v| {
            let id = keys::message_id(k)?;
            last_stored = Some(id); // keys are in id order
            if refs.get(id).is_none() {
                orphans.push((k.to_vec(), None));
            } else {
                live += (k.len() + v.len()) as u64;
                records += 1;
            }
            Ok(())
        })?;
        if !orphans.is_empty() {
            backend.apply(orphans, Atomicity::InOrder)?;
        }
        let persisted_max = match backend.get(keys::MAX_ID_KEY)? {
            Some(v) => {
                Some(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                    StoreError::corrupt("max_message_id is not 8 bytes")
                })?))
            }
            None => None,
        };
        // The meta key is rewritten (reserving ids ahead) whenever a put passes it, after the
        // message itself: the last message key (orphans included) covers a crash between the
        // two.
        let high = persisted_max.max(last_stored);
        let next = high.map_or(Ok(1), |h| {
            h.checked_add(1)
                .ok_or_else(|| StoreError::corrupt("message ids exhausted"))
        })?;
        Ok(Engine {
            backend,
            shared: Mutex::new(Shared {
                refs,
                persisted_max,
                pending: Pending::default(),
            }),
            order: Mutex::new(()),
            next_id: AtomicU64::new(next),
            commit: GroupCommit::default(),
            failed: AtomicBool::new(false),
            live_at_open: (live, records),
            extents_at_open: Mutex::new(Some(extents)),
            extents_valid: AtomicBool::new(true),
        })
    }

    /// A store over a backend known to be empty (nothing to scan).
    pub(crate) fn empty(backend: B) -> Self {
        Engine {
            backend,
            shared: Mutex::new(Shared {
                refs: RefTable::default(),
                persisted_max: None,
                pending: Pending::default(),
            }),
            order: Mutex::new(()),
            next_id: AtomicU64::new(1),
            commit: GroupCommit::default(),
            failed: AtomicBool::new(false),
            live_at_open: (0, 0),
            extents_at_open: Mutex::new(None),
            extents_valid: AtomicBool::new(false),
        }
    }

    /// The backend, for store-specific operations.
    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    /// Bytes of keys and values, and number, of the messages and index entries found by
    /// [`Engine::open`] (definitions are left out: they are few and small).
    pub(crate) fn live_at_open(&self) -> (u64, u64) {
        self.live_at_open
    }

    /// Drops the extents counted at open: a mutation may change them.
    #[cold]
    fn forget_extents(&self) {
        let mut extents = self.extents_at_open.lock();
        self.extents_valid.store(false, Ordering::Release);
        *extents = None;
    }

    /// The extent of a queue as counted at open, while no mutation has happened since.
    pub(crate) fn extent_at_open(&self, prefix: &[u8]) -> Option<QueueExtent> {
        let extents = self.extents_at_open.lock();
        let extents = extents.as_ref()?;
        Some(extents.get(prefix).copied().unwrap_or_default())
    }

    /// Plans a mutation with `build` and installs its counts. Message writes
    /// ([`Atomicity::InOrder`]) join the pending list; definition changes
    /// ([`Atomicity::Batch`]) first hand the pending list to the backend, because their plans
    /// read the backend (a queue's entries), then apply their own batch.
    fn mutate(
        &self,
        atomicity: Atomicity,
        build: impl FnOnce(&mut Plan<'_, B>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let batch = atomicity == Atomicity::Batch;
        if self.extents_valid.load(Ordering::Relaxed) {
            self.forget_extents();
        }
        let _order = batch.then(|| self.order.lock());
        let mut shared = self.shared.lock();
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed);
        }
        if batch {
            let earlier = shared.pending.take();
            self.hand_over(earlier)?;
        }
        let outcome = {
            let mut plan = Plan::new(&self.backend, &shared.refs);
            build(&mut plan)?;
            plan.finish(shared.persisted_max)?
        };
        // A hold or a release that is not the last reference changes counts only.
        if outcome.changes.is_empty() && outcome.counts.is_empty() {
            return Ok(());
        }
        let mut over_bound = false;
        if batch {
            let changes: Changes = outcome
                .changes
                .into_iter()
                .map(|p| (p.key, p.value))
                .collect();
            self.backend.apply(changes, atomicity)?;
        } else {
            shared.pending.absorb(outcome.changes);
            over_bound = shared.pending.len() > MAX_PENDING_CHANGES
                || shared.pending.bytes() > MAX_PENDING_BYTES;
        }
        shared
            .refs
            .commit(outcome.counts, outcome.held, outcome.entries_delta);
        if let Some(reserved) = outcome.reserved {
            shared.persisted_max = shared.persisted_max.max(Some(reserved));
        }
        if let Some(max) = outcome.max_put {
            self.next_id
                .fetch_max(max.saturating_add(1), Ordering::Relaxed);
        }
        drop(shared);
        if over_bound {
            self.drain()?;
        }
        Ok(())
    }

    /// Applies pending changes taken from the list; a failure fails the store (a prefix of
    /// them may have reached the backend).
    fn hand_over(&self, changes: Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.backend
            .apply(changes, Atomicity::InOrder)
            .inspect_err(|_| self.failed.store(true, Ordering::Release))
    }

    /// Hands every pending message write to the backend (not a flush: see `sync`).
    pub(crate) fn drain(&self) -> Result<(), StoreError> {
        let _order = self.order.lock();
        let changes = {
            let mut shared = self.shared.lock();
            if self.failed.load(Ordering::Acquire) {
                return Err(StoreError::Failed);
            }
            shared.pending.take()
        };
        self.hand_over(changes)
    }

    /// Group-committed drain and flush of the backend.
    fn sync_backend(&self) -> Result<(), StoreError> {
        self.commit.sync(|| {
            self.drain()?;
            self.backend.flush()
        })
    }

    /// A mutation followed by a flush: how definitions change.
    fn mutate_durably(
        &self,
        build: impl FnOnce(&mut Plan<'_, B>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.mutate(Atomicity::Batch, build)?;
        self.sync_backend()
    }
}

impl<B: Backend> Drop for Engine<B> {
    fn drop(&mut self) {
        // A clean close keeps what was written, as it did before writes were deferred; after a
        // failure there is nothing safe to add.
        let changes = self.shared.get_mut().pending.take();
        if !changes.is_empty() && !*self.failed.get_mut() {
            let _ = self.backend.apply(changes, Atomicity::InOrder);
        }
    }
}

/// Implements [`MessageStore`](crate::MessageStore) and
/// [`DefinitionStore`](crate::DefinitionStore) for a wrapper type by delegating to its
/// `engine` field.
macro_rules! delegate_to_engine {
    ($store:ty) => {
        impl $crate::MessageStore for $store {
            fn write(&self, ops: &[$crate::MessageOp]) -> Result<(), $crate::StoreError> {
                self.engine.write(ops)
            }
            fn sync(&self) -> Result<(), $crate::StoreError> {
                self.engine.sync()
            }
            fn load_queue(
                &self,
                vhost: &[u8],
                queue: &[u8],
            ) -> Result<Vec<$crate::StoredEntry>, $crate::StoreError> {
                self.engine.load_queue(vhost, queue)
            }
            fn visit_queue(
                &self,
                vhost: &[u8],
                queue: &[u8],
                visit: &mut dyn FnMut($crate::StoredEntry) -> Result<(), $crate::StoreError>,
            ) -> Result<(), $crate::StoreError> {
                self.engine.visit_queue(vhost, queue, visit)
            }
            fn read_queue(
                &self,
                vhost: &[u8],
                queue: &[u8],
                from: u64,
                max: usize,
            ) -> Result<Vec<$crate::StoredEntry>, $crate::StoreError> {
                self.engine.read_queue(vhost, queue, from, max)
            }
            fn queue_extent(
                &self,
                vhost: &[u8],
                queue: &[u8],
            ) -> Result<$crate::QueueExtent, $crate::StoreError> {
                self.engine.queue_extent(vhost, queue)
            }
            fn next_message_id(&self) -> Result<$crate::MessageId, $crate::StoreError> {
                self.engine.next_message_id()
            }
            fn stats(&self) -> $crate::StoreStats {
                self.engine.stats()
            }
        }

        impl $crate::DefinitionStore for $store {
            fn put_vhost(&self, name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.put_vhost(name)
            }
            fn delete_vhost(&self, name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_vhost(name)
            }
            fn put_user(&self, user: &$crate::UserRecord) -> Result<(), $crate::StoreError> {
                self.engine.put_user(user)
            }
            fn delete_user(&self, name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_user(name)
            }
            fn put_exchange(
                &self,
                vhost: &[u8],
                x: &$crate::ExchangeRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_exchange(vhost, x)
            }
            fn delete_exchange(&self, vhost: &[u8], name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_exchange(vhost, name)
            }
            fn put_queue(
                &self,
                vhost: &[u8],
                q: &$crate::QueueRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_queue(vhost, q)
            }
            fn delete_queue(&self, vhost: &[u8], name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_queue(vhost, name)
            }
            fn put_binding(
                &self,
                vhost: &[u8],
                b: &$crate::BindingRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_binding(vhost, b)
            }
            fn delete_binding(
                &self,
                vhost: &[u8],
                b: &$crate::BindingRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.delete_binding(vhost, b)
            }
            fn put_vhost_limits(
                &self,
                vhost: &[u8],
                limits: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_vhost_limits(vhost, limits)
            }
            fn delete_vhost_limits(&self, vhost: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_vhost_limits(vhost)
            }
            fn put_parameter(
                &self,
                vhost: &[u8],
                p: &$crate::ParameterRecord,
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_parameter(vhost, p)
            }
            fn delete_parameter(
                &self,
                vhost: &[u8],
                component: &[u8],
                name: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.engine.delete_parameter(vhost, component, name)
            }
            fn put_global_parameter(
                &self,
                name: &[u8],
                value: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.engine.put_global_parameter(name, value)
            }
            fn delete_global_parameter(&self, name: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.delete_global_parameter(name)
            }
            fn load_definitions(&self) -> Result<$crate::Definitions, $crate::StoreError> {
                self.engine.load_definitions()
            }
        }
    };
}
pub(crate) use delegate_to_engine;
