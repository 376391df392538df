//! A queue's enqueue → deliver → ack cycle without sockets (issue 7): what one message costs the
//! broker's domain alone, for comparison with the end-to-end figures of `warren-perf`.
//!
//! Each iteration publishes a batch of 1,000 messages of 16 bytes into a transient queue with
//! one consumer; the sink only records what an acknowledging channel would need (the position),
//! so its cost is a `Vec` push per delivery. Three shapes: no-ack, manual ack of the batch in
//! groups of 100 (as `basic.ack multiple` settles them), and a backlog published with no consumer
//! and then drained by one.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parking_lot::Mutex;
use warren_broker::{
    ChannelLimit, Consumer, Delivery, DeliverySink, Message, Queue, QueueArgs, QueueOptions, Settle,
};
use warren_codec::{RawProperties, ShortStr};

const BATCH: u64 = 1_000;
const ACK_GROUP: usize = 100;
/// Large enough for a queue to treat it as a backlog rather than messages passing through.
const BACKLOG: u64 = 10_000;

/// Records delivered positions; the queue calls it with its lock held, as it does the server's.
#[derive(Default)]
struct Sink {
    seqs: Mutex<Vec<u64>>,
}

impl DeliverySink for Sink {
    fn deliver(&self, d: Delivery) {
        self.seqs.lock().push(d.seq);
    }
    fn cancelled(&self, _channel: u16, _tag: ShortStr) {}
}

fn message(body: &Bytes) -> Arc<Message> {
    let m = Message::new(
        ShortStr::default(),
        ShortStr::from("q"),
        RawProperties::EMPTY,
        body.clone(),
        0,
    );
    match m {
        Ok(m) => Arc::new(m),
        Err(e) => panic!("a plain message is valid: {e}"),
    }
}

fn queue_with_consumer(no_ack: bool, prefetch: u32) -> (Arc<Queue>, Arc<Sink>) {
    let q = Queue::new(
        "q".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    );
    let sink = Arc::new(Sink::default());
    let consumer = Consumer::new(
        1,
        "c".into(),
        1,
        1,
        sink.clone(),
        no_ack,
        false,
        prefetch,
        Arc::new(ChannelLimit::default()),
    );
    if let Err(e) = q.consume(consumer) {
        panic!("consume on a fresh queue: {e}");
    }
    (q, sink)
}

fn cycle(c: &mut Criterion) {
    let body = Bytes::from_static(&[7u8; 16]);
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(BATCH));

    g.bench_function("publish_deliver_noack", |b| {
        let (q, sink) = queue_with_consumer(true, 0);
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(q.publish(message(&body)));
            }
            sink.seqs.lock().clear();
        });
    });

    g.bench_function("publish_deliver_ack", |b| {
        let (q, sink) = queue_with_consumer(false, BATCH as u32);
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(q.publish(message(&body)));
            }
            let seqs = std::mem::take(&mut *sink.seqs.lock());
            for group in seqs.chunks(ACK_GROUP) {
                q.settle(group, Settle::Ack);
            }
        });
    });

    g.finish();

    let mut g = c.benchmark_group("queue_backlog");
    g.throughput(Throughput::Elements(BACKLOG));
    g.bench_function("fill_then_drain", |b| {
        let q = Queue::new(
            "q".into(),
            "/",
            QueueOptions::default(),
            QueueArgs::default(),
        );
        b.iter(|| {
            for _ in 0..BACKLOG {
                black_box(q.publish(message(&body)));
            }
            let sink = Arc::new(Sink::default());
            let consumer = Consumer::new(
                1,
                "c".into(),
                1,
                1,
                sink.clone(),
                true,
                false,
                0,
                Arc::new(ChannelLimit::default()),
            );
            if let Err(e) = q.consume(consumer) {
                panic!("consume: {e}");
            }
            assert_eq!(sink.seqs.lock().len() as u64, BACKLOG);
            q.cancel(1);
        });
    });
    g.finish();
}

criterion_group!(benches, cycle);
criterion_main!(benches);
