//! The queue's consumer-utilisation transitions, driven through [`Queue`]: which operations make
//! it active or inactive (the average itself is tested with a controlled clock in
//! `utilisation`).

use std::sync::Arc;

use super::tests::{Recorder, consumer, queue};
use super::*;

fn msg() -> Arc<Message> {
    super::tests::msg("x")
}

fn inactive(q: &Queue) -> bool {
    q.state.lock().utilisation.is_inactive()
}

#[test]
fn a_full_prefetch_makes_the_queue_inactive_and_an_ack_active_again() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 1, false)).unwrap();
    q.publish(msg());
    assert!(!inactive(&q), "the one delivery fits the prefetch");
    q.publish(msg());
    assert!(inactive(&q), "the second message waits for credit");
    let seq = sink.take()[0].seq;
    q.settle(&[seq], Settle::Ack);
    assert!(!inactive(&q), "the ack gave credit back");
    // The freed credit took the waiting message, and a third one waits again.
    q.publish(msg());
    assert!(inactive(&q));
}

#[test]
fn credit_back_on_an_empty_queue_is_active() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 1, false)).unwrap();
    q.publish(msg());
    q.publish(msg());
    let seqs: Vec<u64> = sink.take().iter().map(|d| d.seq).collect();
    assert_eq!(seqs.len(), 1);
    assert!(q.get(true).is_some(), "basic.get takes the waiting message");
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
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 0, true)).unwrap();
    for _ in 0..100 {
        q.publish(msg());
    }
    assert!(!inactive(&q));
    assert_eq!(sink.take().len(), 100);
    assert!(q.snapshot().consumer_utilisation > 0.99);
}

#[test]
fn without_consumers_a_publish_is_inactive_and_a_consumer_makes_it_active() {
    let q = queue();
    q.publish(msg());
    assert!(inactive(&q), "no consumer could take it");
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 0, true)).unwrap();
    assert!(!inactive(&q));
}

#[test]
fn cancelling_the_only_consumer_with_messages_waiting_is_inactive() {
    let q = queue();
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(1, &sink, 1, false)).unwrap();
    q.publish(msg());
    assert!(!inactive(&q));
    q.cancel(1);
    q.publish(msg());
    assert!(inactive(&q));
}
