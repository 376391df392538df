//! `queue.purge` of a durable queue whose backlog spilled (issue 16): listing the stored
//! messages of the spilled segments reads them back, which it does without the queue's lock, so
//! the queue's publishers and consumers go on meanwhile; every purged message leaves the store.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{body, declare, message, publish_to, queue};
use warren_broker::Broker;
use warren_broker::spill::SpillArea;
use warren_codec::FieldTable;
use warren_store::{MemoryStore, MessageStore};

/// A persistent message of about 1 KiB numbered `i`.
fn kib(i: usize) -> warren_broker::Message {
    message(&format!("m{i} {}", ".".repeat(1000)), true, None)
}

#[test]
fn a_purge_reads_spilled_segments_without_holding_up_the_queue() {
    let dir = std::env::temp_dir().join(format!("warren-purge-spilled-{}", std::process::id()));
    // Every packed segment past the first spills.
    let area = SpillArea::open(&dir, 1, 0).unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut broker = Broker::with_store(store.clone());
    broker.set_spill(area.clone());
    broker.recover().unwrap();
    let vhost = broker.vhost("/").unwrap();
    declare(&vhost, "q", FieldTable::new());
    let n = 3000;
    for i in 0..n {
        assert!(publish_to(&vhost, "q", kib(i)));
    }
    store.sync().unwrap();
    let q = queue(&vhost, "q");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !q.purge_may_block() || area.pending_bytes() > 0 {
        assert!(std::time::Instant::now() < deadline, "nothing spilled");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store.stats().queue_entries, n as u64);

    // Each segment read back now takes 100 ms: the purge takes seconds.
    area.set_read_delay(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let purging = {
        let q = q.clone();
        std::thread::spawn(move || {
            let n = q.purge();
            (n, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    // Meanwhile the queue takes a publish and hands it out: the purge does not hold its lock
    // while it reads. (Holding it, the publish waits for the whole purge: answered within a
    // millisecond of its end, where here it is answered seconds before.)
    assert!(publish_to(&vhost, "q", message("new", true, None)));
    let got = q.get(true).expect("the message published during the purge");
    let answered = started.elapsed();
    assert_eq!(body(&got.message), "new");
    let (purged, took) = purging.join().unwrap();
    assert_eq!(purged as usize, n);
    assert!(
        took > Duration::from_secs(1),
        "the purge read no slow segment ({took:?}): the test proves nothing"
    );
    assert!(
        answered < took / 2,
        "the publish and get waited for the purge: answered after {answered:?}, purge {took:?}"
    );
    assert_eq!(q.message_count(), 0);
    // Every purged message left the store (the new one was taken with auto-ack).
    store.sync().unwrap();
    assert_eq!(store.stats().queue_entries, 0);
    assert_eq!(store.stats().messages, 0);
    drop((q, vhost, broker));
    area.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
