//! The chunked removal of a deleted queue's entries (see `drop_entries`): what it leaves,
//! and what the next open does after a crash in the middle of it.

use bytes::Bytes;

use crate::engine::Engine;
use crate::keys;
use crate::memory::MemoryBackend;
use crate::{DefinitionStore, MessageOp, MessageStore, QueueRecord};

const DEEP: u64 = 50_000;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn queue(name: &'static str) -> QueueRecord {
    QueueRecord {
        name: b(name),
        auto_delete: false,
        arguments: Bytes::new(),
    }
}

fn enqueue(queue: &'static str, seq: u64, id: u64) -> MessageOp {
    MessageOp::Enqueue {
        vhost: b("/"),
        queue: b(queue),
        seq,
        id,
    }
}

/// Queue `deep` holds messages 1..=DEEP; every 10th is also in queue `other`.
fn fill(engine: &Engine<MemoryBackend>) {
    engine.put_vhost(b"/").unwrap();
    engine.put_queue(b"/", &queue("deep")).unwrap();
    engine.put_queue(b"/", &queue("other")).unwrap();
    for id in 1..=DEEP {
        let mut ops = vec![
            MessageOp::Put {
                id,
                message: b("m"),
            },
            enqueue("deep", id, id),
        ];
        if id % 10 == 0 {
            ops.push(enqueue("other", id, id));
        }
        engine.write(&ops).unwrap();
    }
    engine.sync().unwrap();
}

/// Only `other`'s entries and messages are left, in the backend and in the counts.
fn assert_only_other_left(engine: &Engine<MemoryBackend>) {
    let shared = DEEP / 10;
    let stats = engine.stats();
    assert_eq!(stats.messages, shared);
    assert_eq!(stats.queue_entries, shared);
    let (mut messages, mut entries) = (0u64, 0u64);
    let backend = engine.backend();
    backend
        .scan_prefix(&[keys::MESSAGE], &mut |_, _| {
            messages += 1;
            Ok(())
        })
        .unwrap();
    backend
        .scan_prefix(&[keys::INDEX], &mut |_, _| {
            entries += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!((messages, entries), (shared, shared));
    assert_eq!(engine.queue_extent(b"/", b"deep").unwrap().count, 0);
    assert_eq!(engine.queue_extent(b"/", b"other").unwrap().count, shared);
    let other = engine.load_queue(b"/", b"other").unwrap();
    assert!(other.iter().all(|e| e.id % 10 == 0));
    assert!(engine.load_queue(b"/", b"deep").unwrap().is_empty());
    let defs = engine.load_definitions().unwrap();
    assert_eq!(defs.queues.len(), 1);
}

use crate::backend::Backend;

#[test]
fn deleting_a_deep_queue_leaves_only_the_messages_other_queues_hold() {
    let engine = Engine::empty(MemoryBackend::default());
    fill(&engine);
    engine.delete_queue(b"/", b"deep").unwrap();
    assert_only_other_left(&engine);
    // A queue of the same name starts empty.
    engine.put_queue(b"/", &queue("deep")).unwrap();
    assert!(engine.load_queue(b"/", b"deep").unwrap().is_empty());
}

#[test]
fn a_crash_inside_the_chunked_removal_is_finished_by_the_next_open() {
    let backend = MemoryBackend::default();
    let engine = Engine::empty(backend.clone());
    fill(&engine);
    let prefix = keys::queue_index_prefix(b"/", b"deep").unwrap();
    // The record goes, then three chunks of 1000 entries, then the crash.
    let more = engine
        .drop_chunks_after(
            &prefix,
            || engine.delete_queue_record(b"/", b"deep"),
            1000,
            3,
        )
        .unwrap();
    assert!(more);
    assert_eq!(engine.queue_extent(b"/", b"deep").unwrap().count, 0);
    engine.crash();
    let mut left = 0;
    backend
        .scan_prefix(&prefix, &mut |_, _| {
            left += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(left, DEEP - 3000, "the crash left the rest of the entries");
    let engine = Engine::open(backend).unwrap();
    assert_only_other_left(&engine);
}

#[test]
fn a_close_during_a_removal_leaves_the_rest_to_the_next_open() {
    let backend = MemoryBackend::default();
    let engine = Engine::empty(backend.clone());
    fill(&engine);
    let prefix = keys::queue_index_prefix(b"/", b"deep").unwrap();
    // The close happens between the commit point and the first chunk.
    let outcome = engine.drop_chunks_after(
        &prefix,
        || {
            engine.delete_queue_record(b"/", b"deep")?;
            engine.close()
        },
        1000,
        usize::MAX,
    );
    assert!(
        matches!(outcome, Err(crate::StoreError::Failed)),
        "a closed store removes nothing more: {outcome:?}"
    );
    assert!(backend.get(&keys::dropping(&prefix)).unwrap().is_some());
    drop(engine);
    let engine = Engine::open(backend.clone()).unwrap();
    engine.finish_scan().unwrap();
    assert_only_other_left(&engine);
    assert!(backend.get(&keys::dropping(&prefix)).unwrap().is_none());
}

#[test]
fn a_deleted_vhost_s_entries_go_in_chunks_too() {
    let backend = MemoryBackend::default();
    let engine = Engine::empty(backend.clone());
    fill(&engine);
    engine.delete_vhost(b"/").unwrap();
    let stats = engine.stats();
    assert_eq!((stats.messages, stats.queue_entries), (0, 0));
    let mut left = 0;
    backend
        .scan_prefix(&[], &mut |k, _| {
            left += usize::from(k.first() != Some(&0));
            Ok(())
        })
        .unwrap();
    assert_eq!(left, 0, "nothing but meta keys is left");
}
