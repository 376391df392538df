//! [`FaultyStore`] over the real disk store: injected faults fail calls, and what is on disk
//! stays exactly what the successful calls wrote, also after reopening.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TempDir, enqueue, entries, put, remove};
use warren_store::{
    DefinitionStore, FaultyStore, MemoryStore, MessageStore, QueueRecord, SledStore,
};

fn queue(name: &str) -> QueueRecord {
    QueueRecord {
        name: common::b(name),
        auto_delete: false,
        arguments: bytes::Bytes::new(),
    }
}

#[test]
fn writes_after_the_budget_fail_and_the_disk_holds_exactly_the_successful_ones() {
    let dir = TempDir::new("faulty");
    let s = FaultyStore::new(SledStore::open(dir.path()).unwrap());
    s.fail_after(3);
    let mut succeeded = 0;
    for i in 0..6u64 {
        match s.write(&[put(i + 1, &format!("m{i}")), enqueue("/", "q", i, i + 1)]) {
            Ok(()) => succeeded += 1,
            Err(e) => assert!(e.is_io(), "{e}"),
        }
    }
    assert_eq!((succeeded, s.injected_faults()), (3, 3));
    assert!(s.sync().unwrap_err().is_io());
    assert!(s.write(&[remove("/", "q", 0, 1)]).unwrap_err().is_io());
    assert_eq!(entries(&s, "/", "q").len(), 3);
    s.heal();
    s.sync().unwrap();
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    let loaded: Vec<u64> = entries(&s, "/", "q").iter().map(|e| e.0).collect();
    assert_eq!(loaded, [0, 1, 2]);
    // Counts come from the background open scan after a clean close.
    s.finish_open_scan().unwrap();
    let stats = s.stats();
    assert_eq!((stats.messages, stats.queue_entries), (3, 3));
}

#[test]
fn failed_definition_changes_change_nothing() {
    let dir = TempDir::new("faulty-defs");
    let s = FaultyStore::new(SledStore::open(dir.path()).unwrap());
    s.put_queue(b"/", &queue("kept")).unwrap();
    s.write(&[put(1, "m"), enqueue("/", "kept", 1, 1)]).unwrap();
    s.set_failing(true);
    assert!(s.put_queue(b"/", &queue("lost")).unwrap_err().is_io());
    assert!(s.delete_queue(b"/", b"kept").unwrap_err().is_io());
    // Reads still work while writes fail: the broker can keep serving what it has.
    assert_eq!(s.load_definitions().unwrap().queues.len(), 1);
    s.set_failing(false);
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    let names: Vec<_> = s
        .load_definitions()
        .unwrap()
        .queues
        .into_iter()
        .map(|(_, q)| q.name)
        .collect();
    assert_eq!(names, [common::b("kept")]);
    assert_eq!(entries(&s, "/", "kept").len(), 1);
}

#[test]
fn a_failed_sync_keeps_the_writes_applied_and_a_later_sync_makes_them_durable() {
    let dir = TempDir::new("faulty-sync");
    let s = FaultyStore::new(SledStore::open(dir.path()).unwrap());
    s.set_sync_failing(true);
    s.write(&[put(1, "m"), enqueue("/", "q", 1, 1)]).unwrap();
    assert!(s.sync().unwrap_err().is_io());
    assert_eq!(entries(&s, "/", "q").len(), 1);
    s.set_sync_failing(false);
    s.sync().unwrap();
    let flushes = s.stats().flushes;
    drop(s);
    assert!(flushes >= 1);
    assert_eq!(
        entries(&SledStore::open(dir.path()).unwrap(), "/", "q").len(),
        1
    );
}

#[test]
fn the_wrapper_is_usable_behind_a_trait_object() {
    let s: Box<dyn MessageStore> = Box::new(FaultyStore::new(MemoryStore::new()));
    s.write(&[put(1, "m"), enqueue("/", "q", 1, 1)]).unwrap();
    s.sync().unwrap();
    assert_eq!(s.load_queue(b"/", b"q").unwrap().len(), 1);
}
