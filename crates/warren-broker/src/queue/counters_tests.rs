//! The queue's statistics counters against a model: generated sequences of publishes, gets,
//! consumes, cancels, acks, requeues and rejects; after every step each counter equals what a
//! client observed, and the byte gauges equal the bodies still held.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use proptest::prelude::*;
use warren_codec::{RawProperties, ShortStr};

use super::*;
use crate::QueueCounters;

#[derive(Default)]
struct Sink(Mutex<Vec<Delivery>>);

impl DeliverySink for Sink {
    fn deliver(&self, d: Delivery) {
        self.0.lock().push(d);
    }
    fn cancelled(&self, _channel: u16, _tag: ShortStr) {}
}

fn msg(len: usize) -> Arc<Message> {
    Arc::new(Message {
        exchange: ShortStr::default(),
        routing_key: "q".into(),
        properties: RawProperties::EMPTY,
        body: Bytes::from(vec![b'x'; len]),
        persistent: false,
        priority: 0,
        expiration_ms: None,
        timestamp_ms: 0,
        store_id: None,
    })
}

#[derive(Debug, Clone)]
enum Op {
    Publish(usize),
    Get(bool),
    Consume {
        prefetch: u32,
        no_ack: bool,
    },
    Cancel,
    /// Settles the n-th outstanding delivery (modulo their number).
    Settle(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..40).prop_map(Op::Publish),
        2 => any::<bool>().prop_map(Op::Get),
        1 => (0u32..4, any::<bool>()).prop_map(|(prefetch, no_ack)| Op::Consume { prefetch, no_ack }),
        1 => Just(Op::Cancel),
        4 => (any::<usize>(), 0u8..3).prop_map(|(n, how)| Op::Settle(n, how)),
    ]
}

/// What a client saw, and so what the counters must say.
#[derive(Debug, Default)]
struct Model {
    counters: QueueCounters,
    /// Delivered, unsettled: seq -> body length.
    outstanding: BTreeMap<u64, u64>,
    /// Messages in the queue (ready or unacked) and their bytes.
    held: u64,
    held_bytes: u64,
}

impl Model {
    fn saw(&mut self, seq: u64, len: u64, redelivered: bool, no_ack: bool) {
        if redelivered {
            self.counters.redeliver += 1;
        }
        if no_ack {
            self.held -= 1;
            self.held_bytes -= len;
        } else {
            self.outstanding.insert(seq, len);
        }
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let q = Queue::new(
        "q".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    );
    let sink = Arc::new(Sink::default());
    let mut m = Model::default();
    let mut consumer: Option<(u64, bool)> = None;
    let mut next_id = 1;
    for op in ops {
        match op {
            Op::Publish(len) => {
                q.publish(msg(*len));
                m.counters.publish += 1;
                m.held += 1;
                m.held_bytes += *len as u64;
            }
            Op::Get(no_ack) => match q.get(*no_ack) {
                Some(g) => {
                    if *no_ack {
                        m.counters.get_no_ack += 1;
                    } else {
                        m.counters.get += 1;
                    }
                    m.saw(g.seq, g.message.body.len() as u64, g.redelivered, *no_ack);
                }
                None => m.counters.get_empty += 1,
            },
            Op::Consume { prefetch, no_ack } => {
                if consumer.is_none() {
                    let c = Consumer::new(
                        next_id,
                        "c".into(),
                        1,
                        1,
                        sink.clone(),
                        *no_ack,
                        false,
                        *prefetch,
                        Arc::new(ChannelLimit::default()),
                    );
                    q.consume(c)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    consumer = Some((next_id, *no_ack));
                    next_id += 1;
                }
            }
            Op::Cancel => {
                if let Some((id, _)) = consumer.take() {
                    q.cancel(id);
                }
            }
            Op::Settle(n, how) => {
                if m.outstanding.is_empty() {
                    continue;
                }
                let seq = *m
                    .outstanding
                    .keys()
                    .nth(n % m.outstanding.len())
                    .unwrap_or(&0);
                let len = m.outstanding.remove(&seq).unwrap_or(0);
                let how = [Settle::Ack, Settle::Requeue, Settle::Discard][usize::from(*how)];
                q.settle(&[seq], how);
                match how {
                    Settle::Ack => m.counters.ack += 1,
                    Settle::Requeue => {}
                    Settle::Discard => {}
                }
                if how != Settle::Requeue {
                    m.held -= 1;
                    m.held_bytes -= len;
                }
            }
        }
        for d in std::mem::take(&mut *sink.0.lock()) {
            if d.no_ack {
                m.counters.deliver_no_ack += 1;
            } else {
                m.counters.deliver += 1;
            }
            m.saw(d.seq, d.message.body.len() as u64, d.redelivered, d.no_ack);
        }
        let s = q.snapshot();
        prop_assert_eq!(s.counters, m.counters, "after {:?}", op);
        prop_assert_eq!(s.ready + s.unacked, m.held);
        prop_assert_eq!(s.unacked, m.outstanding.len() as u64);
        prop_assert_eq!(s.unacked_bytes, m.outstanding.values().sum::<u64>());
        prop_assert_eq!(s.ready_bytes + s.unacked_bytes, m.held_bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WARREN_COUNTER_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200),
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5747_4154),
        ..ProptestConfig::default()
    })]

    #[test]
    fn counters_match_what_clients_observed(ops in proptest::collection::vec(op(), 1..120)) {
        run(&ops)?;
    }
}

#[test]
fn requeued_message_counts_a_redelivery_and_its_ack() {
    let ops = [
        Op::Publish(5),
        Op::Get(false),
        Op::Settle(0, 1),
        Op::Get(false),
        Op::Settle(0, 0),
        Op::Get(true),
    ];
    run(&ops).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn consumer_deliveries_count_by_ack_mode() {
    let ops = [
        Op::Publish(3),
        Op::Publish(4),
        Op::Consume {
            prefetch: 1,
            no_ack: false,
        },
        Op::Settle(0, 0),
        Op::Cancel,
        Op::Consume {
            prefetch: 0,
            no_ack: true,
        },
        Op::Publish(1),
    ];
    run(&ops).unwrap_or_else(|e| panic!("{e}"));
    let q = Queue::new(
        "q".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    );
    q.publish(msg(2));
    assert_eq!(q.snapshot().counters.publish, 1);
    assert_eq!(q.snapshot().ready_bytes, 2);
}
