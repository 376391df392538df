//! [`FaultyStore`]: a wrapper that makes mutating calls fail with [`StoreError::Io`] on demand,
//! for disk-fault tests of the broker.
//!
//! A refused call never reaches the wrapped store, so it changes nothing, exactly like a real
//! failed write (all-or-nothing) or a failed flush (written data stays, not durable). Reads
//! (`load_queue`, `load_definitions`, `next_message_id`, `stats`) always pass through.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{
    BindingRecord, DefinitionStore, Definitions, ExchangeRecord, MessageId, MessageOp,
    MessageStore, ParameterRecord, QueueExtent, QueueRecord, StoreError, StoreStats, StoredEntry,
    UserRecord,
};

const UNLIMITED: u64 = u64::MAX;

/// Wraps a store and injects I/O errors into its mutating calls.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    /// Mutating calls still allowed before faults start; `UNLIMITED` when not counting.
    budget: AtomicU64,
    failing: AtomicBool,
    syncs_failing: AtomicBool,
    /// `sync` waits while set: a disk that has not answered yet.
    syncs_held: AtomicBool,
    /// `read_queue` fails with [`StoreError::Suspended`] while set: a store that met a full
    /// disk and has not resumed yet.
    reads_suspended: AtomicBool,
    /// `read_queue` calls refused so far.
    reads_refused: AtomicU64,
    injected: AtomicU64,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`; no faults until told.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            budget: AtomicU64::new(UNLIMITED),
            failing: AtomicBool::new(false),
            syncs_failing: AtomicBool::new(false),
            syncs_held: AtomicBool::new(false),
            reads_suspended: AtomicBool::new(false),
            reads_refused: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// Makes `sync` wait (`true`) until released (`false`): a slow disk, for back-pressure tests.
    /// `sync` runs on blocking threads, so the wait holds one of those, not the async runtime.
    pub fn set_syncs_held(&self, on: bool) {
        self.syncs_held.store(on, Ordering::SeqCst);
    }

    /// Lets the next `n` mutating calls (`write`, `sync`, definition puts and deletes) through,
    /// then fails every one until [`FaultyStore::heal`].
    pub fn fail_after(&self, n: u64) {
        self.budget.store(n.min(UNLIMITED - 1), Ordering::SeqCst);
    }

    /// Fails every mutating call from now on (`true`), or stops doing so (`false`).
    pub fn set_failing(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Makes `read_queue` fail as a suspended store's does (`true`), or stops doing so.
    pub fn set_reads_suspended(&self, on: bool) {
        self.reads_suspended.store(on, Ordering::SeqCst);
    }

    /// How many `read_queue` calls [`FaultyStore::set_reads_suspended`] refused so far.
    pub fn reads_refused(&self) -> u64 {
        self.reads_refused.load(Ordering::SeqCst)
    }

    /// Fails only `sync` (an fsync error after successful writes), or stops doing so.
    pub fn set_sync_failing(&self, on: bool) {
        self.syncs_failing.store(on, Ordering::SeqCst);
    }

    /// Stops every fault: clears `fail_after`, `set_failing` and `set_sync_failing`.
    pub fn heal(&self) {
        self.budget.store(UNLIMITED, Ordering::SeqCst);
        self.failing.store(false, Ordering::SeqCst);
        self.syncs_failing.store(false, Ordering::SeqCst);
    }

    /// How many calls were failed so far.
    pub fn injected_faults(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// The wrapped store, to inspect what actually got stored.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn fault(&self, call: &str) -> StoreError {
        self.injected.fetch_add(1, Ordering::SeqCst);
        StoreError::from(io::Error::other(format!("injected fault in {call}")))
    }

    /// Admits or refuses one mutating call.
    fn admit(&self, call: &str) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(self.fault(call));
        }
        let counted = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| match b {
                UNLIMITED => Some(UNLIMITED),
                0 => None,
                b => Some(b - 1),
            });
        counted.map(|_| ()).map_err(|_| self.fault(call))
    }
}

impl<S: MessageStore> MessageStore for FaultyStore<S> {
    fn write(&self, ops: &[MessageOp]) -> Result<(), StoreError> {
        self.admit("write")?;
        self.inner.write(ops)
    }

    fn sync(&self) -> Result<(), StoreError> {
        while self.syncs_held.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if self.syncs_failing.load(Ordering::SeqCst) {
            return Err(self.fault("sync"));
        }
        self.admit("sync")?;
        self.inner.sync()
    }

    fn load_queue(&self, vhost: &[u8], queue: &[u8]) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.load_queue(vhost, queue)
    }

    fn visit_queue(
        &self,
        vhost: &[u8],
        queue: &[u8],
        visit: &mut dyn FnMut(StoredEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner.visit_queue(vhost, queue, visit)
    }

    fn read_queue(
        &self,
        vhost: &[u8],
        queue: &[u8],
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        if self.reads_suspended.load(Ordering::SeqCst) {
            self.reads_refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Suspended);
        }
        self.inner.read_queue(vhost, queue, from, max)
    }

    fn queue_extent(&self, vhost: &[u8], queue: &[u8]) -> Result<QueueExtent, StoreError> {
        self.inner.queue_extent(vhost, queue)
    }

    fn next_message_id(&self) -> Result<MessageId, StoreError> {
        self.inner.next_message_id()
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

impl<S: DefinitionStore> DefinitionStore for FaultyStore<S> {
    fn put_vhost(&self, name: &[u8]) -> Result<(), StoreError> {
        self.admit("put_vhost")?;
        self.inner.put_vhost(name)
    }
    fn delete_vhost(&self, name: &[u8]) -> Result<(), StoreError> {
        self.admit("delete_vhost")?;
        self.inner.delete_vhost(name)
    }
    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.admit("put_user")?;
        self.inner.put_user(user)
    }
    fn delete_user(&self, name: &[u8]) -> Result<(), StoreError> {
        self.admit("delete_user")?;
        self.inner.delete_user(name)
    }
    fn put_exchange(&self, vhost: &[u8], x: &ExchangeRecord) -> Result<(), StoreError> {
        self.admit("put_exchange")?;
        self.inner.put_exchange(vhost, x)
    }
    fn delete_exchange(&self, vhost: &[u8], name: &[u8]) -> Result<(), StoreError> {
        self.admit("delete_exchange")?;
        self.inner.delete_exchange(vhost, name)
    }
    fn put_queue(&self, vhost: &[u8], q: &QueueRecord) -> Result<(), StoreError> {
        self.admit("put_queue")?;
        self.inner.put_queue(vhost, q)
    }
    fn delete_queue(&self, vhost: &[u8], name: &[u8]) -> Result<(), StoreError> {
        self.admit("delete_queue")?;
        self.inner.delete_queue(vhost, name)
    }
    fn put_binding(&self, vhost: &[u8], b: &BindingRecord) -> Result<(), StoreError> {
        self.admit("put_binding")?;
        self.inner.put_binding(vhost, b)
    }
    fn delete_binding(&self, vhost: &[u8], b: &BindingRecord) -> Result<(), StoreError> {
        self.admit("delete_binding")?;
        self.inner.delete_binding(vhost, b)
    }
    fn put_vhost_limits(&self, vhost: &[u8], limits: &[u8]) -> Result<(), StoreError> {
        self.admit("put_vhost_limits")?;
        self.inner.put_vhost_limits(vhost, limits)
    }
    fn delete_vhost_limits(&self, vhost: &[u8]) -> Result<(), StoreError> {
        self.admit("delete_vhost_limits")?;
        self.inner.delete_vhost_limits(vhost)
    }
    fn put_parameter(&self, vhost: &[u8], p: &ParameterRecord) -> Result<(), StoreError> {
        self.admit("put_parameter")?;
        self.inner.put_parameter(vhost, p)
    }
    fn delete_parameter(
        &self,
        vhost: &[u8],
        component: &[u8],
        name: &[u8],
    ) -> Result<(), StoreError> {
        self.admit("delete_parameter")?;
        self.inner.delete_parameter(vhost, component, name)
    }
    fn put_global_parameter(&self, name: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.admit("put_global_parameter")?;
        self.inner.put_global_parameter(name, value)
    }
    fn delete_global_parameter(&self, name: &[u8]) -> Result<(), StoreError> {
        self.admit("delete_global_parameter")?;
        self.inner.delete_global_parameter(name)
    }
    fn load_definitions(&self) -> Result<Definitions, StoreError> {
        self.inner.load_definitions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn fail_after_counts_mutating_calls_only_and_heal_restores() {
        let s = FaultyStore::new(MemoryStore::new());
        s.fail_after(2);
        s.put_vhost(b"a").unwrap();
        s.load_definitions().unwrap();
        s.sync().unwrap();
        assert!(s.put_vhost(b"b").unwrap_err().is_io());
        assert!(s.sync().unwrap_err().is_io());
        assert_eq!(s.injected_faults(), 2);
        s.heal();
        s.put_vhost(b"c").unwrap();
        assert_eq!(s.load_definitions().unwrap().vhosts, [&b"a"[..], &b"c"[..]]);
    }

    #[test]
    fn sync_only_faults_leave_writes_working() {
        let s = FaultyStore::new(MemoryStore::new());
        s.set_sync_failing(true);
        s.put_vhost(b"a").unwrap();
        assert!(s.sync().is_err());
        s.set_sync_failing(false);
        s.sync().unwrap();
    }
}
