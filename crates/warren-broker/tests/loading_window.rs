//! Windowed loading (issue 16): after a restart a durable queue keeps at most a window of its
//! stored backlog in memory; the rest stays in the store until consumers come near it. These
//! examples drive the loader from the test (`Loader::step`, `run_windowed`) with a window of
//! four messages, read two at a time, and check that the windowed queue answers as a loaded
//! one would: counts, order (recovered, then new), get, requeue, purge, TTL with
//! dead-lettering, length limits, priorities, delete and another restart.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{Recorder, body, consumer, dlx_args, drain, names, publish_to, queue, stored_with};
use warren_broker::{Broker, LoadWindow, Loader, Message, Queue, Settle, VHost};
use warren_codec::{FieldTable, FieldValue};
use warren_store::{MemoryStore, MessageStore};

const WINDOW: LoadWindow = LoadWindow {
    high: 4,
    high_bytes: u64::MAX,
    low: 2,
};

/// A message for `q` at `priority`.
fn message(body: &str, persistent: bool, priority: u8) -> Message {
    common::message(body, persistent, Some(priority))
}

/// Publishes `body` to `q` (not rejected).
fn send(vhost: &VHost, body: &str, persistent: bool, priority: u8) {
    publish_to(vhost, "q", message(body, persistent, priority));
}

/// A store whose queue `q` holds persistent `m1..=mN` at priority `i % 3`, and `dlq`, bound
/// to `amq.direct`.
fn stored(n: usize, arguments: FieldTable) -> Arc<MemoryStore> {
    stored_with(n, arguments, |i| Some((i % 3) as u8))
}

/// Restarts over `store` with a four-message window: definitions back, nothing loaded.
fn restart(store: &MemoryStore) -> (Arc<MemoryStore>, Broker, Arc<VHost>, Loader) {
    let (store, broker, vhost, loader) = common::restart(store);
    (store, broker, vhost, loader.with_window(WINDOW))
}

fn publish(vhost: &VHost, body: &str, persistent: bool) {
    send(vhost, body, persistent, 0);
}

#[test]
fn a_deep_backlog_loads_one_window_and_reads_on_as_consumers_drain_it() {
    let (_store, _broker, vhost, mut loader) = restart(&stored(40, FieldTable::new()));
    let q = queue(&vhost, "q");
    loader.run_windowed().unwrap();
    assert!(loader.is_idle() && !loader.is_done());
    assert!(q.loading());
    assert_eq!(
        q.messages_in_memory(),
        4,
        "one window, the rest in the store"
    );
    assert_eq!(q.message_count(), 40);
    // Taking two leaves two: not below the low mark, nothing asked.
    assert_eq!(drain_n(&q, 2), names(1..=2));
    assert!(!loader.step().unwrap());
    assert_eq!(q.messages_in_memory(), 2);
    // One more goes below it: the queue asks, and the loader fills the window again.
    assert_eq!(drain_n(&q, 1), names(3..=3));
    loader.run_windowed().unwrap();
    assert_eq!(q.messages_in_memory(), 5);
    assert_eq!(q.message_count(), 37);
    // A consumer drains the rest through the loader, in order, never holding more than a
    // window (and the batch that crossed it).
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(sink.clone())).unwrap();
    while !loader.is_done() {
        loader.step().unwrap();
        assert!(q.messages_in_memory() <= 5);
    }
    let got: Vec<String> = sink.bodies();
    assert_eq!(got, names(4..=40));
    assert!(!q.loading());
    assert_eq!(q.message_count(), 0);
}

fn drain_n(q: &Arc<Queue>, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| body(&q.get(true).unwrap().message))
        .collect()
}

#[test]
fn new_messages_follow_the_stored_ones_persistent_from_the_store_transient_held() {
    let (store, _broker, vhost, mut loader) = restart(&stored(10, FieldTable::new()));
    let q = queue(&vhost, "q");
    loader.run_windowed().unwrap();
    let entries = store.stats().queue_entries;
    // Persistent ones join the stored region: stored, not kept in memory.
    publish(&vhost, "p1", true);
    publish(&vhost, "p2", true);
    assert_eq!(store.stats().queue_entries, entries + 2);
    assert_eq!(q.messages_in_memory(), 4);
    // A transient one waits behind them, and so does every message after it.
    publish(&vhost, "t1", false);
    publish(&vhost, "p3", true);
    assert_eq!(q.message_count(), 14);
    let mut want = names(1..=10);
    want.extend(["p1", "p2", "t1", "p3"].map(String::from));
    assert_eq!(drain(&q), want);
    loader.run_windowed().unwrap();
    assert!(loader.is_done() && !q.loading());
    assert_eq!(store.stats().queue_entries, 0);
}

#[test]
fn get_and_requeue_on_a_windowed_queue_keep_the_order() {
    let (_store, _broker, vhost, mut loader) = restart(&stored(12, FieldTable::new()));
    let q = queue(&vhost, "q");
    loader.run_windowed().unwrap();
    let first = q.get(false).unwrap();
    let second = q.get(false).unwrap();
    let third = q.get(false).unwrap();
    assert_eq!(third.remaining, 9);
    q.settle(&[first.seq, third.seq], Settle::Requeue);
    loader.run_windowed().unwrap();
    let got = q.get(true).unwrap();
    assert!(got.redelivered);
    assert_eq!(body(&got.message), "m1");
    q.settle(&[second.seq], Settle::Ack);
    let mut want = vec!["m3".to_string()];
    want.extend(names(4..=12));
    assert_eq!(drain(&q), want);
}

#[test]
fn purge_of_a_windowed_queue_removes_the_unread_entries_from_the_store() {
    let (store, _broker, vhost, mut loader) = restart(&stored(30, FieldTable::new()));
    let q = queue(&vhost, "q");
    loader.run_windowed().unwrap();
    publish(&vhost, "p", true);
    publish(&vhost, "t", false);
    assert_eq!(q.purge(), 32);
    assert_eq!(q.message_count(), 0);
    assert_eq!(store.stats().queue_entries, 0);
    publish(&vhost, "after", true);
    loader.run_windowed().unwrap();
    assert!(loader.is_done());
    let (_store, _broker, vhost, loader) = restart(&store);
    loader.run().unwrap();
    assert_eq!(drain(&queue(&vhost, "q")), vec!["after".to_string()]);
}

#[test]
fn unread_entries_that_expired_are_dead_lettered_as_the_window_moves() {
    let args = dlx_args(&[("x-message-ttl", FieldValue::I64(50))]);
    let store = stored(20, args);
    std::thread::sleep(std::time::Duration::from_millis(80));
    let (store, _broker, vhost, mut loader) = restart(&store);
    let q = queue(&vhost, "q");
    assert_eq!(q.message_count(), 20);
    // Each window expires at once, so the queue asks again until nothing is left.
    loader.run_windowed().unwrap();
    assert!(loader.is_done());
    assert_eq!(q.message_count(), 0);
    assert_eq!(drain(&queue(&vhost, "dlq")), names(1..=20));
    assert_eq!(store.stats().queue_entries, 0);
}

#[test]
fn a_length_limit_applies_to_the_whole_backlog_of_a_windowed_queue() {
    let args = dlx_args(&[("x-max-length", FieldValue::I64(10))]);
    let (_store, _broker, vhost, mut loader) = restart(&stored(10, args));
    let q = queue(&vhost, "q");
    loader.run_windowed().unwrap();
    assert_eq!(q.messages_in_memory(), 4);
    publish(&vhost, "new", true);
    assert_eq!(q.message_count(), 10);
    assert_eq!(drain(&queue(&vhost, "dlq")), names(1..=1));
    let mut want = names(2..=10);
    want.push("new".into());
    assert_eq!(drain(&q), want);
}

#[test]
fn a_priority_queue_is_not_windowed_so_its_highest_priority_goes_first() {
    let args = dlx_args(&[("x-max-priority", FieldValue::I64(2))]);
    let (_store, _broker, vhost, mut loader) = restart(&stored(9, args));
    let q = queue(&vhost, "q");
    loader.run_windowed().unwrap();
    assert!(loader.is_done());
    assert_eq!(q.messages_in_memory(), 9);
    // Priority i % 3: 2 first (m2, m5, m8), then 1, then 0.
    let want: Vec<String> = [2, 5, 8, 1, 4, 7, 3, 6, 9]
        .iter()
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(drain(&q), want);
}

/// Found by `crash_spill` (a consumer on a priority queue that was still loading got a
/// priority-0 message before a priority-4 one read in a later batch): a priority queue
/// delivers nothing until every stored entry is in, as RabbitMQ recovers a queue first.
#[test]
fn a_priority_queue_still_loading_delivers_nothing_until_its_backlog_is_in() {
    let args = dlx_args(&[("x-max-priority", FieldValue::I64(2))]);
    let (_store, _broker, vhost, mut loader) = restart(&stored(9, args));
    let q = queue(&vhost, "q");
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(sink.clone())).unwrap();
    // One batch (two entries) in: m1 (priority 1) and m2 (priority 2) are loaded, but m5 and
    // m8 (priority 2) are not, so nothing may go out yet.
    assert!(loader.step().unwrap());
    assert!(q.loading());
    assert!(
        sink.0.lock().is_empty(),
        "delivered before the backlog was in"
    );
    while !loader.is_done() {
        loader.step().unwrap();
    }
    let got: Vec<String> = sink.bodies();
    let want: Vec<String> = [2, 5, 8, 1, 4, 7, 3, 6, 9]
        .iter()
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn deleting_a_windowed_queue_drops_its_unread_entries() {
    let (store, _broker, vhost, mut loader) = restart(&stored(30, FieldTable::new()));
    let q = queue(&vhost, "q");
    loader.run_windowed().unwrap();
    publish(&vhost, "t", false);
    assert_eq!(
        vhost.delete_queue(&"q".into(), false, false, 1).unwrap(),
        31
    );
    assert_eq!(store.stats().queue_entries, 0);
    // The parked queue never asks again, and the loader forgets it once it is dropped.
    drop(q);
    loader.run_windowed().unwrap();
    assert!(!loader.step().unwrap());
}

#[test]
fn a_restart_of_a_windowed_queue_keeps_what_was_not_consumed() {
    let (store, _broker, vhost, mut loader) = restart(&stored(25, FieldTable::new()));
    let q = queue(&vhost, "q");
    loader.run_windowed().unwrap();
    assert_eq!(drain_n(&q, 6), names(1..=6));
    let unacked = q.get(false).unwrap();
    assert_eq!(body(&unacked.message), "m7");
    publish(&vhost, "p", true);
    publish(&vhost, "t", false);
    let (_store, _broker, vhost, mut loader) = restart(&store);
    let q = queue(&vhost, "q");
    assert_eq!(q.message_count(), 20, "m7..m25 and p; t was transient");
    loader.run_windowed().unwrap();
    let got = q.get(true).unwrap();
    assert!(got.redelivered, "m7 was delivered before the restart");
    let mut want = names(8..=25);
    want.push("p".into());
    assert_eq!(drain(&q), want);
}

#[test]
fn a_window_of_bytes_sizes_the_reads_by_the_bodies_seen() {
    let (_store, _broker, vhost, loader) = restart(&stored(40, FieldTable::new()));
    let window = LoadWindow {
        high: 100,
        high_bytes: 12,
        low: 50,
    };
    let mut loader = loader.with_batch(16).with_window(window);
    let q = queue(&vhost, "q");
    // Sizes unknown: one batch (m1..m16, 39 bytes), over the window's bytes: parked.
    loader.run_windowed().unwrap();
    assert_eq!(q.messages_in_memory(), 16);
    assert_eq!(drain_n(&q, 16), names(1..=16));
    // Now a mean of 2 bytes: 12 bytes of room is 6 messages, not another batch of 16.
    loader.run_windowed().unwrap();
    assert_eq!(q.messages_in_memory(), 6);
    assert_eq!(drain(&q), names(17..=40));
}
