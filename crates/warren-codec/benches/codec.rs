//! Criterion benchmarks for the hot frames: basic.publish and basic.deliver, each with a content
//! header and a 1 KiB body. Throughput is reported in frames (3 per message); bytes per message
//! are printed once so bytes/s can be derived.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use warren_codec::{
    BasicDeliver, BasicProperties, BasicPublish, FieldTable, FrameDecoder, Method, encode_content,
};

const MESSAGES: usize = 100;

fn properties() -> BasicProperties {
    BasicProperties {
        content_type: Some("application/json".into()),
        delivery_mode: Some(2),
        headers: Some(FieldTable::from_iter([("trace-id", "0af7651916cd43dd")])),
        ..Default::default()
    }
}

fn publish() -> Method {
    Method::BasicPublish(BasicPublish {
        exchange: "orders".into(),
        routing_key: "orders.created.eu".into(),
        mandatory: false,
        immediate: false,
    })
}

fn deliver() -> Method {
    Method::BasicDeliver(BasicDeliver {
        consumer_tag: "amq.ctag-Xc9eF1a2b3c4d5e6f7g8h9".into(),
        delivery_tag: 123_456,
        redelivered: false,
        exchange: "orders".into(),
        routing_key: "orders.created.eu".into(),
    })
}

fn stream(method: &Method) -> BytesMut {
    let props = properties().to_raw();
    let body = vec![0x5a; 1024];
    let mut buf = BytesMut::new();
    for _ in 0..MESSAGES {
        encode_content(&mut buf, 1, method, &props, &body, 131_072);
    }
    buf
}

fn bench(c: &mut Criterion) {
    for (name, method) in [("publish", publish()), ("deliver", deliver())] {
        let wire = stream(&method);
        println!(
            "{name}: {} bytes per message (3 frames)",
            wire.len() / MESSAGES
        );
        let mut g = c.benchmark_group(format!("{name}_1KiB"));
        g.throughput(Throughput::Elements((3 * MESSAGES) as u64));
        let dec = FrameDecoder::new(131_072);
        g.bench_function("decode", |b| {
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    while let Ok(Some(f)) = dec.decode(&mut buf) {
                        black_box(f);
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let props = properties().to_raw();
        let body = vec![0x5a; 1024];
        let mut out = BytesMut::with_capacity(wire.len());
        g.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                for _ in 0..MESSAGES {
                    encode_content(&mut out, 1, black_box(&method), &props, &body, 131_072);
                }
                black_box(out.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
