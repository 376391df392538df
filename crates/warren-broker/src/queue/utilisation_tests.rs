//! The queue's consumer-utilisation transitions, driven through [`Queue`]: which operations make
//! it active or inactive (the average itself is tested with a controlled clock in
//! `utilisation`).

use std::sync::Arc;

use parking_lot::Mutex;
use warren_codec::ShortStr;

use super::*;

#[derive(Default)]
struct Sink(Mutex<Vec<Delivery>>);

impl DeliverySink for Sink {
    fn deliver(&self, d: Delivery) {
        self.0.lock().push(d);
    }
    fn cancelled(&self, _channel: u16, _tag: ShortStr) {}
}

fn msg() -> Arc<Message> {
    super::tests::msg("x")
}

fn queue() -> Arc<Queue> {
    Queue::new(
        "q".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    )
}

fn consumer(sink: &Arc<Sink>, no_ack: bool, prefetch: u32) -> Consumer {
    Consumer::new(
        1,
        "c".into(),
        1,
        1,
        sink.clone(),
        no_ack,
        false,
        prefetch,
        Arc::new(ChannelLimit::default()),
    )
}

fn inactive(q: &Queue) -> bool {
    q.state.lock().utilisation.is_inactive()
}

#[test]
fn a_full_prefetch_makes_the_queue_inactive_and_an_ack_active_again() {
    let q = queue();
    let sink = Arc::new(Sink::default());
    q.consume(consumer(&sink, false, 1)).unwrap();
    q.publish(msg());
    assert!(!inactive(&q), "the one delivery fits the prefetch");
    q.publish(msg());
    assert!(inactive(&q), "the second message waits for credit");
    let seq = sink.0.lock()[0].seq;
    q.settle(&[seq], Settle::Ack);
    assert!(!inactive(&q), "the ack gave credit back");
    // The freed credit took the waiting message, and a third one waits again.
    q.publish(msg());
    assert!(inactive(&q));
}

#[test]
fn credit_back_on_an_empty_queue_is_active() {
    let q = queue();
    let sink = Arc::new(Sink::default());
    q.consume(consumer(&sink, false, 1)).unwrap();
    q.publish(msg());
    q.publish(msg());
    let seqs: Vec<u64> = sink.0.lock().iter().map(|d| d.seq).collect();
    assert_eq!(seqs.len(), 1);
    let first = q.get(true).map(|g| g.seq);
    assert!(first.is_some(), "basic.get takes the waiting message");
    assert!(inactive(&q), "nothing retried delivery yet");
    q.settle(&seqs, Settle::Ack);
    assert!(
        !inactive(&q),
        "a consumer with credit makes it active with nothing ready"
    );
}

#[test]
fn a_fast_consumer_keeps_it_active_and_near_one() {
    let q = queue();
    let sink = Arc::new(Sink::default());
    q.consume(consumer(&sink, true, 0)).unwrap();
    for _ in 0..100 {
        q.publish(msg());
    }
    assert!(!inactive(&q));
    assert_eq!(sink.0.lock().len(), 100);
    assert!(q.snapshot().consumer_utilisation > 0.99);
}

#[test]
fn without_consumers_a_publish_is_inactive_and_a_consumer_makes_it_active() {
    let q = queue();
    q.publish(msg());
    assert!(inactive(&q), "no consumer could take it");
    let sink = Arc::new(Sink::default());
    q.consume(consumer(&sink, true, 0)).unwrap();
    assert!(!inactive(&q));
}

#[test]
fn cancelling_the_only_consumer_with_messages_waiting_is_inactive() {
    let q = queue();
    let sink = Arc::new(Sink::default());
    q.consume(consumer(&sink, false, 1)).unwrap();
    q.publish(msg());
    assert!(!inactive(&q));
    q.cancel(1);
    q.publish(msg());
    assert!(inactive(&q));
}
