//! A running durable queue whose backlog passed its window leaves the persistent messages that
//! follow in the store (issue 16: they are on disk already; the spill area is for the rest):
//! it keeps about a window in memory, counts everything, and hands every message out in order
//! as its consumers drain it, the stored ones read back by the loader, transient ones held
//! behind them. Loading is driven from the test (`Loader::step`), as after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{body, declare, drain, message, publish_to, queue};
use warren_broker::{Broker, FirstBoot, LoadWindow, Loader, VHost};
use warren_codec::FieldTable;
use warren_store::{MemoryStore, MessageStore};

const WINDOW: LoadWindow = LoadWindow {
    high: 4,
    high_bytes: u64::MAX,
    low: 2,
};

/// A fresh broker over a memory store whose durable queues keep a window of four.
fn broker() -> (Arc<MemoryStore>, Broker, Arc<VHost>, Loader) {
    let store = Arc::new(MemoryStore::new());
    let mut broker = Broker::with_store(store.clone());
    broker.set_load_window(WINDOW);
    let (_, loader) = broker.recover_definitions(&FirstBoot::default()).unwrap();
    let vhost = broker.vhost("/").unwrap();
    declare(&vhost, "q", FieldTable::new());
    // The restart fixture expects the two queues of `common::stored_with`.
    declare(&vhost, "dlq", FieldTable::new());
    (store, broker, vhost, loader.with_batch(2))
}

/// Publishes persistent `<prefix><i>` to `q` for each `i` of `range`: stored, not rejected.
fn publish_persistent(vhost: &VHost, prefix: &str, range: std::ops::RangeInclusive<usize>) {
    for i in range {
        assert!(publish_to(
            vhost,
            "q",
            message(&format!("{prefix}{i}"), true, None)
        ));
    }
}

#[test]
fn a_deep_durable_backlog_stays_in_the_store_and_comes_back_in_order() {
    let (store, _broker, vhost, mut loader) = broker();
    let q = queue(&vhost, "q");
    publish_persistent(&vhost, "m", 1..=20);
    // A transient message and more persistent ones after it: held in memory behind the
    // stored region, in order.
    assert!(!publish_to(&vhost, "q", message("t", false, None)));
    publish_persistent(&vhost, "m", 21..=22);
    assert_eq!(q.message_count(), 23);
    assert!(q.loading(), "the queue left its backlog in the store");
    assert_eq!(q.messages_in_memory(), 4, "a window in memory");
    assert_eq!(store.stats().queue_entries, 22);

    // Consumers drain the window; the queue asks the loader, which reads on.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(body(&q.get(true).unwrap().message));
    }
    loader.run_windowed().unwrap();
    assert!(q.messages_in_memory() >= 3, "the loader read on");
    got.extend(drain(&q));
    let mut want: Vec<String> = (1..=20).map(|i| format!("m{i}")).collect();
    want.push("t".into());
    want.extend(["m21".into(), "m22".into()]);
    assert_eq!(got, want);
    assert_eq!(q.message_count(), 0);
    assert!(!q.loading());
    assert_eq!(store.stats().queue_entries, 0);

    // Deep again later: it leaves the backlog in the store once more.
    publish_persistent(&vhost, "n", 1..=10);
    assert!(q.loading());
    assert_eq!(q.messages_in_memory(), 4);
    loader.run_windowed().unwrap();
    let want: Vec<String> = (1..=10).map(|i| format!("n{i}")).collect();
    assert_eq!(drain(&q), want);
}

#[test]
fn a_restart_brings_back_a_backlog_left_in_the_store() {
    let (store, broker, vhost, _loader) = broker();
    publish_persistent(&vhost, "m", 1..=12);
    assert!(queue(&vhost, "q").loading());
    store.sync().unwrap();
    drop((vhost, broker));
    let (_store, _broker, vhost, loader) = common::restart(&store);
    loader.run().unwrap();
    let want: Vec<String> = (1..=12).map(|i| format!("m{i}")).collect();
    assert_eq!(drain(&queue(&vhost, "q")), want);
}

#[test]
fn a_purge_removes_the_stored_backlog_and_the_queue_may_leave_the_next_one_in_the_store() {
    let (store, _broker, vhost, _loader) = broker();
    let q = queue(&vhost, "q");
    publish_persistent(&vhost, "m", 1..=12);
    assert!(q.loading());
    assert_eq!(q.purge(), 12);
    assert!(!q.loading());
    assert_eq!(
        store.stats().queue_entries,
        0,
        "the stored region was swept"
    );
    // The sweep is over: a deep backlog is left in the store again.
    publish_persistent(&vhost, "n", 1..=12);
    assert!(q.loading());
    assert_eq!(q.messages_in_memory(), 4);
    assert_eq!(q.message_count(), 12);
}
