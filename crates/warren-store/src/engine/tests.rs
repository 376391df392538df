//! Engine rules that need a hand-made backend: crash leftovers and part-way failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use crate::backend::{Atomicity, Backend, Changes, Visit};
use crate::engine::Engine;
use crate::keys;
use crate::memory::MemoryBackend;
use crate::{MessageOp, MessageStore, StoreError};

/// A memory backend whose `apply` can be made to fail after its first change.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryBackend,
    fail: Arc<AtomicBool>,
}

impl Backend for Flaky {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key)
    }
    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        self.inner.scan_prefix(prefix, visit)
    }
    fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty()
    }
    fn apply(&self, mut changes: Changes, a: Atomicity) -> Result<(), StoreError> {
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

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn put_enqueue(id: u64, seq: u64) -> [MessageOp; 2] {
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
fn open_deletes_message_bytes_a_crash_left_without_entries() {
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
    drop(engine);
    let engine = Engine::open(backend.clone()).unwrap();
    assert_eq!(engine.stats().messages, 1);
    assert!(backend.get(&keys::message(2)).unwrap().is_none());
    assert!(
        engine.next_message_id().unwrap() > 2,
        "ids of orphans are not reused"
    );
}

#[test]
fn a_write_failing_part_way_fails_the_store_until_reopened() {
    let backend = Flaky::default();
    let engine = Engine::open(backend.clone()).unwrap();
    backend.fail.store(true, Ordering::SeqCst);
    assert!(engine.write(&put_enqueue(1, 1)).unwrap_err().is_io());
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
