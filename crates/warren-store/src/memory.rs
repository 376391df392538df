//! [`MemoryStore`]: the same engine over a `BTreeMap`, for tests and transient brokers.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::StoreError;
use crate::backend::{Atomicity, Backend, Changes, Visit, VisitWhile};
use crate::engine::{Engine, delegate_to_engine};

type Map = BTreeMap<Vec<u8>, Bytes>;

/// The key space in memory; shared between a store and the stores reopened from it.
#[derive(Clone, Default)]
pub(crate) struct MemoryBackend {
    map: Arc<RwLock<Map>>,
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.map.read().get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        // Copy out first so `visit` runs without the lock (a scan never blocks writers long).
        let pairs: Vec<(Vec<u8>, Bytes)> = self
            .map
            .read()
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.iter().try_for_each(|(k, v)| visit(k, v))
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError> {
        // Copied out in slices, so `visit` runs without the lock and a large queue is not
        // copied whole when the caller stops early.
        let mut from = start.to_vec();
        let mut first = true;
        loop {
            let lower = if first {
                Bound::Included(&from[..])
            } else {
                Bound::Excluded(&from[..])
            };
            let pairs: Vec<(Vec<u8>, Bytes)> = self
                .map
                .read()
                .range::<[u8], _>((lower, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(256)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let Some((last, _)) = pairs.last() else {
                return Ok(());
            };
            let last = last.clone();
            for (k, v) in &pairs {
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            from = last;
            first = false;
        }
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.map.read().is_empty())
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.map.read();
        let found = map
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .last()
            .map(|(k, _)| k.clone());
        Ok(found)
    }

    fn apply(&self, changes: Changes, _: Atomicity) -> Result<(), StoreError> {
        let mut map = self.map.write();
        for (key, value) in changes {
            match value {
                Some(v) => {
                    map.insert(key, v);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A store in memory: the same rules as [`SledStore`](crate::SledStore), nothing on disk.
/// `sync` is a counted no-op. [`MemoryStore::reopen`] simulates a restart.
pub struct MemoryStore {
    engine: Engine<MemoryBackend>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            engine: Engine::empty(MemoryBackend::default()),
        }
    }

    /// A new store over the same data, with its in-memory state (reference counts, next id)
    /// rebuilt from the data as a restart would. Use the returned store and drop this one.
    pub fn reopen(&self) -> Result<Self, StoreError> {
        // A clean restart: writes still pending reach the data first, as at a shutdown, and
        // the open scan runs to its end (a test drives it step by step through the engine).
        self.engine.close()?;
        let engine = Engine::open(self.engine.backend().clone())?;
        engine.finish_scan()?;
        Ok(MemoryStore { engine })
    }

    /// A new store over a copy of the data as a restart at this moment would find it (writes
    /// still pending reach the data first, as at a shutdown), leaving this store running: for
    /// tests that look at what a restart would bring back, then go on with this store.
    pub fn fork(&self) -> Result<Self, StoreError> {
        self.engine.drain()?;
        let copy = MemoryBackend {
            map: Arc::new(RwLock::new(self.engine.backend().map.read().clone())),
        };
        let engine = Engine::open(copy)?;
        engine.finish_scan()?;
        Ok(MemoryStore { engine })
    }

    /// As [`MemoryStore::reopen`], but the open scan is left to [`MemoryStore::scan_step`],
    /// as a store that serves while its background scan runs.
    pub fn reopen_scanning(&self) -> Result<Self, StoreError> {
        self.engine.close()?;
        Ok(MemoryStore {
            engine: Engine::open(self.engine.backend().clone())?,
        })
    }

    /// A new store over the data as a crash right after the last write reached it would
    /// leave it (writes still pending are lost, no extents recorded): it opens counting the
    /// index, and leaves the sweep of the messages to [`MemoryStore::scan_step`].
    pub fn reopen_after_crash(&self) -> Result<Self, StoreError> {
        self.engine.abandon();
        Ok(MemoryStore {
            engine: Engine::open(self.engine.backend().clone())?,
        })
    }

    /// A crash in the middle of `count` puts (see `SledStore::crash_leaving_orphans`), and
    /// the store that the next open makes of the data, with the orphans' ids. For tests.
    #[doc(hidden)]
    pub fn crash_leaving_orphans(&self, count: usize) -> Result<(Self, Vec<u64>), StoreError> {
        let ids = self.engine.crash_leaving_orphans(count)?;
        let store = MemoryStore {
            engine: Engine::open(self.engine.backend().clone())?,
        };
        Ok((store, ids))
    }

    /// The number of messages the data holds, once every pending write is handed to it.
    /// For tests.
    #[doc(hidden)]
    pub fn stored_messages(&self) -> Result<usize, StoreError> {
        self.engine.stored_messages()
    }

    /// Deletes queue `name` as a crash after `chunks` chunks of `chunk` of its entries would
    /// leave it (its record gone: see `engine::drop_entries`), and answers the store that the
    /// next open makes of the data, as [`MemoryStore::reopen_after_crash`]. For tests.
    #[doc(hidden)]
    pub fn crash_in_queue_delete(
        &self,
        vhost: &[u8],
        name: &[u8],
        chunk: usize,
        chunks: usize,
    ) -> Result<Self, StoreError> {
        self.engine
            .crash_in_queue_delete(vhost, name, chunk, chunks)?;
        Ok(MemoryStore {
            engine: Engine::open(self.engine.backend().clone())?,
        })
    }

    /// Runs one step of the open scan, reading at most `keys` keys; answers whether it is over.
    pub fn scan_step(&self, keys: usize) -> Result<bool, StoreError> {
        self.engine.scan_step_of(keys)
    }

    /// Whether the open scan is over.
    pub fn open_scan_done(&self) -> bool {
        self.engine.scan_done()
    }
}

delegate_to_engine!(MemoryStore);
