//! Queue behaviour driven synchronously, without sockets.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use warren_codec::{RawProperties, ReplyCode, ShortStr};

use super::*;

/// A sink that keeps what it is given (shared with `utilisation_tests`).
#[derive(Default)]
pub(super) struct Recorder {
    deliveries: Mutex<Vec<Delivery>>,
    cancelled: Mutex<Vec<ShortStr>>,
}

impl DeliverySink for Recorder {
    fn deliver(&self, d: Delivery) {
        self.deliveries.lock().push(d);
    }
    fn cancelled(&self, _channel: u16, tag: ShortStr) {
        self.cancelled.lock().push(tag);
    }
}

impl Recorder {
    /// The deliveries so far, emptied.
    pub(super) fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.deliveries.lock())
    }
}

/// A transient message with `body`, routed to `q` (also used by `utilisation_tests`).
pub(super) fn msg(body: &'static str) -> Arc<Message> {
    Arc::new(Message {
        exchange: ShortStr::default(),
        routing_key: "q".into(),
        properties: RawProperties::EMPTY,
        body: Bytes::from_static(body.as_bytes()),
        persistent: false,
        priority: 0,
        expiration_ms: None,
        timestamp_ms: 0,
        store_id: None,
    })
}

/// A queue without arguments.
pub(super) fn queue() -> Arc<Queue> {
    Queue::new(
        "q".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    )
}

/// Consumer `id` (tag `c{id}`) on channel 1 of connection 1.
pub(super) fn consumer(id: u64, sink: &Arc<Recorder>, prefetch: u32, no_ack: bool) -> Consumer {
    Consumer::new(
        id,
        format!("c{id}").as_str().into(),
        1,
        1,
        sink.clone(),
        no_ack,
        false,
        prefetch,
        Arc::new(ChannelLimit::default()),
    )
}

fn bodies(ds: &[Delivery]) -> Vec<String> {
    ds.iter()
        .map(|d| String::from_utf8_lossy(&d.message.body).into_owned())
        .collect()
}

#[test]
fn messages_wait_until_a_consumer_comes_then_arrive_in_order() {
    let q = queue();
    for b in ["a", "b", "c"] {
        q.publish(msg(b));
    }
    assert_eq!(q.message_count(), 3);
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 0, false)).unwrap();
    assert_eq!(bodies(&sink.take()), ["a", "b", "c"]);
    assert_eq!(q.message_count(), 0);
}

#[test]
fn competing_consumers_are_served_round_robin() {
    let q = queue();
    let s1 = Arc::new(Recorder::default());
    let s2 = Arc::new(Recorder::default());
    q.consume(consumer(1, &s1, 0, true)).unwrap();
    q.consume(consumer(2, &s2, 0, true)).unwrap();
    for b in ["1", "2", "3", "4"] {
        q.publish(msg(b));
    }
    assert_eq!(bodies(&s1.take()), ["1", "3"]);
    assert_eq!(bodies(&s2.take()), ["2", "4"]);
}

#[test]
fn prefetch_limits_unacked_deliveries_and_ack_frees_credit() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 2, false)).unwrap();
    for b in ["a", "b", "c", "d"] {
        q.publish(msg(b));
    }
    let first = sink.take();
    assert_eq!(bodies(&first), ["a", "b"]);
    q.settle(&[first[0].seq], Settle::Ack);
    assert_eq!(bodies(&sink.take()), ["c"]);
    assert_eq!(q.message_count(), 1);
}

#[test]
fn requeued_messages_come_back_first_in_original_order_marked_redelivered() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 2, false)).unwrap();
    for b in ["a", "b", "c"] {
        q.publish(msg(b));
    }
    let got = sink.take();
    assert_eq!(bodies(&got), ["a", "b"]);
    // Requeue in reverse order: they must still come back a, b, ahead of c.
    q.settle(&[got[1].seq, got[0].seq], Settle::Requeue);
    let again = sink.take();
    assert_eq!(bodies(&again), ["a", "b"]);
    assert!(again.iter().all(|d| d.redelivered));
    q.settle(&[again[0].seq, again[1].seq], Settle::Ack);
    let last = sink.take();
    assert_eq!(bodies(&last), ["c"]);
    assert!(!last[0].redelivered);
}

#[test]
fn discarded_messages_are_gone() {
    let q = queue();
    q.publish(msg("x"));
    let got = q.get(false).unwrap();
    q.settle(&[got.seq], Settle::Discard);
    assert!(q.get(false).is_none());
}

#[test]
fn basic_get_reports_remaining_count() {
    let q = queue();
    q.publish(msg("a"));
    q.publish(msg("b"));
    let got = q.get(true).unwrap();
    assert_eq!(
        (bodies_of(&got.message), got.remaining),
        ("a".to_string(), 1)
    );
}

fn bodies_of(m: &Message) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

#[test]
fn exclusive_consumer_locks_out_others_and_needs_an_empty_queue() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    let mut excl = consumer(1, &sink, 0, true);
    excl.exclusive = true;
    q.consume(excl).unwrap();
    let e = q.consume(consumer(2, &sink, 0, true)).unwrap_err();
    assert_eq!(e.code, ReplyCode::AccessRefused);

    let q2 = queue();
    q2.consume(consumer(3, &sink, 0, true)).unwrap();
    let mut late = consumer(4, &sink, 0, true);
    late.exclusive = true;
    assert_eq!(q2.consume(late).unwrap_err().code, ReplyCode::AccessRefused);
}

#[test]
fn channel_wide_prefetch_spans_consumers() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    let limit = Arc::new(ChannelLimit::default());
    limit
        .global_prefetch
        .store(1, std::sync::atomic::Ordering::Relaxed);
    for id in [1, 2] {
        let mut c = consumer(id, &sink, 0, false);
        c.channel_limit = limit.clone();
        q.consume(c).unwrap();
    }
    q.publish(msg("a"));
    q.publish(msg("b"));
    assert_eq!(sink.take().len(), 1);
    limit.release(1);
    q.redispatch();
    assert_eq!(sink.take().len(), 1);
}

#[test]
fn deleting_a_queue_cancels_its_consumers() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 0, true)).unwrap();
    q.publish(msg("a"));
    let _ = sink.take();
    q.publish(msg("b"));
    q.delete();
    assert!(q.is_deleted());
    assert_eq!(sink.cancelled.lock().len(), 1);
}

#[test]
fn auto_delete_fires_when_the_last_consumer_leaves() {
    let opts = QueueOptions {
        auto_delete: true,
        ..Default::default()
    };
    let q = Queue::new("q".into(), "/", opts, QueueArgs::default());
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 0, true)).unwrap();
    q.consume(consumer(2, &sink, 0, true)).unwrap();
    assert!(!q.cancel(1));
    assert!(q.cancel(2));
}

#[test]
fn a_deleted_queue_keeps_nothing() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 0, false)).unwrap();
    q.publish(msg("a"));
    let d = sink.take();
    q.delete();
    q.settle(&[d[0].seq], Settle::Requeue);
    q.publish(msg("late"));
    assert_eq!(q.message_count(), 0);
}
