//! Engine rules that need a hand-made backend: crash leftovers and part-way failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;

use crate::backend::{Atomicity, Backend, Changes, Visit, VisitWhile};
use crate::engine::Engine;
use crate::keys;
use crate::memory::MemoryBackend;
use crate::{DefinitionStore, MessageOp, MessageStore, StoreError};

/// A memory backend whose `apply` can be made to fail after its first change, and that counts
/// the changes it was given.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryBackend,
    fail: Arc<AtomicBool>,
    applied: Arc<AtomicUsize>,
}

impl Backend for Flaky {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key)
    }
    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        self.inner.scan_prefix(prefix, visit)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError> {
        self.inner.scan_from(prefix, start, visit)
    }
    fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty()
    }
    fn apply(&self, mut changes: Changes, a: Atomicity) -> Result<(), StoreError> {
        self.applied.fetch_add(changes.len(), Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            changes.truncate(1); // a prefix reaches the key space, then the disk fails
            self.inner.apply(changes, a)?;
            return Err(std::io::Error::other("disk gone").into());
        }
        self.inner.apply(changes, a)
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

pub(super) fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// A message `m` stored as `id` and enqueued at `seq` in queue `q` of vhost `/`.
pub(super) fn put_enqueue(id: u64, seq: u64) -> [MessageOp; 2] {
    [
        MessageOp::Put {
            id,
            message: b("m"),
        },
        MessageOp::Enqueue {
            vhost: b("/"),
            queue: b("q"),
            seq,
            id,
        },
    ]
}

#[test]
fn open_after_a_crash_counts_first_and_sweeps_crash_leftovers_in_the_background() {
    let backend = Flaky::default();
    let engine = Engine::open(backend.clone()).unwrap();
    engine.write(&put_enqueue(1, 1)).unwrap();
    // A crash after the bytes of message 2 reached the log but before its entry did.
    backend
        .inner
        .apply(
            vec![(keys::message(2).to_vec(), Some(b("orphan")))],
            Atomicity::InOrder,
        )
        .unwrap();
    engine.drain().unwrap();
    engine.crash();
    let engine = Engine::open(backend.clone()).unwrap();
    assert!(
        !engine.scan_done(),
        "after a crash the sweep of the messages is left to the background"
    );
    assert_eq!(
        engine
            .extent(&keys::queue_index_prefix(b"/", b"q").unwrap())
            .count,
        1
    );
    assert!(
        engine.next_message_id().unwrap() > 2,
        "ids of orphans are not reused, even before the sweep"
    );
    assert!(backend.get(&keys::message(2)).unwrap().is_some());
    engine.finish_scan().unwrap();
    assert!(engine.scan_done());
    assert_eq!(engine.stats().messages, 1);
    assert!(backend.get(&keys::message(2)).unwrap().is_none());
    assert!(backend.get(&keys::message(1)).unwrap().is_some());
}

#[test]
fn a_write_failing_part_way_fails_the_store_until_reopened() {
    let backend = Flaky::default();
    let engine = Engine::open(backend.clone()).unwrap();
    backend.fail.store(true, Ordering::SeqCst);
    // The write waits in memory; the sync that hands it to the backend meets the failure.
    engine.write(&put_enqueue(1, 1)).unwrap();
    assert!(engine.sync().unwrap_err().is_io());
    backend.fail.store(false, Ordering::SeqCst);
    assert!(matches!(
        engine.write(&put_enqueue(2, 2)),
        Err(StoreError::Failed)
    ));
    drop(engine);
    // Only the message bytes made it: reopening deletes them and the store works again.
    let engine = Engine::open(backend).unwrap();
    assert_eq!(engine.stats().messages, 0);
    engine.write(&put_enqueue(3, 3)).unwrap();
    assert_eq!(engine.load_queue(b"/", b"q").unwrap().len(), 1);
}

fn mark(id: u64, seq: u64) -> MessageOp {
    MessageOp::MarkRedelivered {
        vhost: b("/"),
        queue: b("q"),
        seq,
        id,
    }
}

fn remove(id: u64, seq: u64) -> MessageOp {
    MessageOp::Remove {
        vhost: b("/"),
        queue: b("q"),
        seq,
        id,
    }
}

#[test]
fn writes_wait_for_a_sync_and_a_message_acked_before_it_is_never_written() {
    let backend = Flaky::default();
    let engine = Engine::open(backend.clone()).unwrap();
    engine.write(&put_enqueue(1, 1)).unwrap();
    engine.write(&put_enqueue(2, 2)).unwrap();
    engine.write(&[mark(1, 1)]).unwrap();
    engine.write(&[remove(1, 1)]).unwrap();
    assert_eq!(
        backend.applied.load(Ordering::SeqCst),
        0,
        "nothing before a sync"
    );
    assert_eq!(engine.stats().messages, 1, "counts are current at once");
    engine.sync().unwrap();
    // Message 2, its entry and the id reservation; message 1 never reached the backend.
    assert_eq!(backend.applied.load(Ordering::SeqCst), 3);
    assert!(backend.get(&keys::message(1)).unwrap().is_none());
    assert!(backend.get(&keys::message(2)).unwrap().is_some());
    assert_eq!(engine.stats().cancelled_changes, 4);
    // Once written, an ack is a real delete.
    engine.write(&[remove(2, 2)]).unwrap();
    engine.sync().unwrap();
    assert!(backend.get(&keys::message(2)).unwrap().is_none());
    drop(engine);
    let engine = Engine::open(backend).unwrap();
    assert_eq!(engine.stats().messages, 0);
    assert!(engine.load_queue(b"/", b"q").unwrap().is_empty());
}

#[test]
fn a_redelivered_mark_on_a_pending_entry_reaches_the_backend_with_it() {
    let backend = Flaky::default();
    let engine = Engine::open(backend.clone()).unwrap();
    engine.write(&put_enqueue(1, 1)).unwrap();
    engine.write(&[mark(1, 1)]).unwrap();
    engine.sync().unwrap();
    drop(engine);
    let engine = Engine::open(backend).unwrap();
    let entries = engine.load_queue(b"/", b"q").unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].redelivered);
}

#[test]
fn reading_a_queue_and_changing_definitions_see_pending_writes() {
    let backend = Flaky::default();
    let engine = Engine::open(backend.clone()).unwrap();
    engine.write(&put_enqueue(1, 1)).unwrap();
    assert_eq!(engine.load_queue(b"/", b"q").unwrap().len(), 1);
    engine.write(&put_enqueue(2, 2)).unwrap();
    // delete_queue finds the queue's entries on the backend: the pending one must be there.
    engine.delete_queue(b"/", b"q").unwrap();
    assert_eq!(engine.stats().messages, 0);
    assert!(backend.get(&keys::message(2)).unwrap().is_none());
    drop(engine);
    assert_eq!(Engine::open(backend).unwrap().stats().messages, 0);
}

#[test]
fn writes_past_the_pending_bound_reach_the_backend_without_a_sync() {
    let backend = Flaky::default();
    let engine = Engine::open(backend.clone()).unwrap();
    let messages = super::MAX_PENDING_CHANGES as u64 / 2 + 1;
    for id in 1..=messages {
        engine.write(&put_enqueue(id, id)).unwrap();
    }
    assert!(backend.applied.load(Ordering::SeqCst) > super::MAX_PENDING_CHANGES);
    assert!(backend.get(&keys::message(1)).unwrap().is_some());
}

#[test]
fn closing_the_store_keeps_pending_writes() {
    let backend = Flaky::default();
    let engine = Engine::open(backend.clone()).unwrap();
    engine.write(&put_enqueue(1, 1)).unwrap();
    drop(engine);
    let engine = Engine::open(backend).unwrap();
    engine.finish_scan().unwrap();
    assert_eq!(engine.stats().messages, 1);
}

/// A failed `fdatasync` of the write-ahead log fails that sync only (its publishes are
/// nacked); the store goes on, the next sync logs the same writes again, and after a crash the
/// replay brings back each of them once, in order.
#[test]
fn a_failed_log_fsync_fails_its_sync_only_and_the_next_sync_makes_the_writes_durable() {
    let dir = std::env::temp_dir().join(format!("warren-engine-fsync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let backend = MemoryBackend::default();
    let wal = crate::engine::wal::Wal::new(dir.clone(), 1).unwrap();
    let engine = Engine::open(backend.clone()).unwrap().with_wal(wal);
    engine.write(&put_enqueue(1, 1)).unwrap();
    engine.sync().unwrap();
    engine.write(&put_enqueue(2, 2)).unwrap();
    if let Some(wal) = &engine.wal {
        wal.lock().fail_syncs = 1;
    }
    assert!(
        engine.sync().is_err(),
        "the injected fsync failure is reported"
    );
    // Not failed: it takes writes and a later sync succeeds.
    engine.write(&put_enqueue(3, 3)).unwrap();
    engine.sync().unwrap();
    engine.crash();
    let generation = crate::engine::wal::recover(&dir, &backend).unwrap();
    assert!(generation > 1);
    let engine = Engine::open(backend.clone()).unwrap();
    let ids: Vec<u64> = engine
        .load_queue(b"/", b"q")
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let _ = std::fs::remove_dir_all(&dir);
}
