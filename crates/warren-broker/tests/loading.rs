//! A durable queue still loading its stored messages after a restart (issue 16) answers as the
//! loaded queue would. Loading is driven from the test (`Loader::step`, `Queue::load_batch`),
//! so "while loading" is deterministic: nothing loads unless the test says so.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{
    Recorder, body, consumer, declare, dlx_args, drain, names, publish_to, queue, restart,
    stored_with,
};
use warren_broker::{QueueDeclare, Settle, VHost};
use warren_codec::{FieldTable, FieldValue};
use warren_store::{MemoryStore, MessageStore};

/// A persistent message for `q`, without a priority.
fn message(body: &str) -> warren_broker::Message {
    common::message(body, true, None)
}

/// Publishes persistent `body` to `queue`: stored, not rejected.
fn publish(vhost: &VHost, queue: &str, body: &str) {
    assert!(publish_to(vhost, queue, message(body)));
}

/// A store whose queue `q` holds `m1..=mN` (and `dlq`, bound to `amq.direct`, is empty).
fn stored(n: usize, arguments: FieldTable) -> Arc<MemoryStore> {
    stored_with(n, arguments, |_| None)
}

#[test]
fn declare_counts_stored_messages_before_any_is_loaded() {
    let (_store, _broker, vhost, loader) = restart(&stored(10, FieldTable::new()));
    let q = queue(&vhost, "q");
    assert!(q.loading());
    assert_eq!(q.message_count(), 10);
    // Redeclared, and passively: the same count, nothing loaded by either.
    assert_eq!(declare(&vhost, "q", FieldTable::new()), 10);
    let passive = vhost
        .declare_queue(QueueDeclare {
            name: "q".into(),
            passive: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(passive.message_count, 10);
    assert!(q.loading());
    loader.run().unwrap();
    assert!(!q.loading());
    assert_eq!(q.message_count(), 10);
}

#[test]
fn a_consumer_gets_recovered_messages_in_order_then_those_published_while_loading() {
    let (_store, _broker, vhost, mut loader) = restart(&stored(7, FieldTable::new()));
    let q = queue(&vhost, "q");
    let sink = Arc::new(Recorder::default());
    let consumer = consumer(sink.clone());
    q.consume(consumer).unwrap();
    assert!(
        sink.0.lock().is_empty(),
        "nothing loaded, nothing delivered"
    );
    publish(&vhost, "q", "new1");
    assert_eq!(q.message_count(), 8);
    loader.step().unwrap();
    let first: Vec<String> = sink.bodies();
    assert_eq!(first, names(1..=2), "the first batch goes out at once");
    publish(&vhost, "q", "new2");
    loader.run().unwrap();
    let all: Vec<String> = sink.bodies();
    let mut want = names(1..=7);
    want.extend(["new1".to_string(), "new2".to_string()]);
    assert_eq!(all, want);
    assert_eq!(q.message_count(), 0);
}

#[test]
fn basic_get_while_loading_loads_the_head_and_counts_the_rest() {
    let (store, _broker, vhost, loader) = restart(&stored(5, FieldTable::new()));
    let q = queue(&vhost, "q");
    publish(&vhost, "q", "new");
    let got = q.get(false).unwrap();
    assert_eq!(body(&got.message), "m1");
    assert_eq!(got.remaining, 5, "four stored and the new one");
    // Acknowledging a recovered message removes its store entry.
    let before = store.stats().queue_entries;
    q.settle(&[got.seq], Settle::Ack);
    assert_eq!(store.stats().queue_entries, before - 1);
    loader.run().unwrap();
    let mut want = names(2..=5);
    want.push("new".into());
    assert_eq!(drain(&q), want);
}

/// A connection's `basic.get` never reads the store itself: `try_get` answers `Load` while
/// the head is stored and not loaded, the caller loads it (off the async runtime), and the
/// next try gets it.
#[test]
fn try_get_while_the_head_is_not_loaded_asks_the_caller_to_load_it() {
    let (_store, _broker, vhost, loader) = restart(&stored(5, FieldTable::new()));
    let q = queue(&vhost, "q");
    let never: warren_broker::spill::Waker = Arc::new(|| panic!("nothing to wake for"));
    assert!(matches!(
        q.try_get(false, || never.clone()),
        warren_broker::GetResult::Load
    ));
    assert_eq!(q.messages_in_memory(), 0, "try_get read nothing");
    q.load_head().unwrap();
    match q.try_get(true, || never.clone()) {
        warren_broker::GetResult::Got(got) => {
            assert_eq!(body(&got.message), "m1");
            assert_eq!(got.remaining, 4);
        }
        other => panic!("after load_head: {other:?}"),
    }
    loader.run().unwrap();
    assert_eq!(drain(&q), names(2..=5));
}

#[test]
fn purge_while_loading_drops_what_is_not_loaded_too() {
    let (store, _broker, vhost, mut loader) = restart(&stored(9, FieldTable::new()));
    let q = queue(&vhost, "q");
    loader.step().unwrap();
    publish(&vhost, "q", "held");
    assert_eq!(q.purge(), 10);
    assert_eq!(q.message_count(), 0);
    // A publish after the purge is the only message, at once.
    publish(&vhost, "q", "after");
    assert_eq!(q.message_count(), 1);
    loader.run().unwrap();
    assert_eq!(drain(&q), vec!["after".to_string()]);
    // The loader removed the purged entries from the store as it read them.
    assert_eq!(store.stats().queue_entries, 0);
    let (_store, _broker, vhost, loader) = restart(&store);
    loader.run().unwrap();
    assert_eq!(queue(&vhost, "q").message_count(), 0);
}

#[test]
fn a_queue_deleted_while_loading_stops_loading_and_leaves_nothing() {
    let (store, _broker, vhost, loader) = restart(&stored(6, FieldTable::new()));
    let q = queue(&vhost, "q");
    publish(&vhost, "q", "held");
    assert_eq!(vhost.delete_queue(&"q".into(), false, false, 1).unwrap(), 7);
    loader.run().unwrap();
    assert!(!q.loading());
    assert_eq!(store.stats().queue_entries, 0);
}

#[test]
fn messages_that_expired_while_down_are_dead_lettered_as_they_load() {
    let args = dlx_args(&[("x-message-ttl", FieldValue::I64(50))]);
    let store = stored(4, args);
    std::thread::sleep(std::time::Duration::from_millis(80));
    let (store, _broker, vhost, loader) = restart(&store);
    let q = queue(&vhost, "q");
    // Counted until loaded, as with RabbitMQ until its queue process expires them.
    assert_eq!(q.message_count(), 4);
    loader.run().unwrap();
    assert_eq!(q.message_count(), 0);
    assert_eq!(drain(&queue(&vhost, "dlq")), names(1..=4));
    assert_eq!(store.stats().queue_entries, 0);
}

#[test]
fn drop_head_while_loading_drops_the_oldest_stored_message() {
    let args = dlx_args(&[("x-max-length", FieldValue::I64(3))]);
    let (_store, _broker, vhost, loader) = restart(&stored(3, args));
    let q = queue(&vhost, "q");
    publish(&vhost, "q", "new");
    assert_eq!(q.message_count(), 3);
    assert_eq!(drain(&queue(&vhost, "dlq")), names(1..=1));
    loader.run().unwrap();
    assert_eq!(drain(&q), vec!["m2".into(), "m3".into(), "new".to_string()]);
}

#[test]
fn reject_publish_while_loading_counts_the_stored_messages() {
    let mut args = FieldTable::new();
    args.insert("x-max-length", FieldValue::I64(3));
    args.insert("x-overflow", FieldValue::LongStr("reject-publish".into()));
    let (_store, _broker, vhost, loader) = restart(&stored(3, args));
    let mut queues = vec![queue(&vhost, "q")];
    assert!(vhost.publish(message("new"), &mut queues).rejected);
    loader.run().unwrap();
    assert_eq!(drain(&queue(&vhost, "q")), names(1..=3));
}
