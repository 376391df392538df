//! Cost of routing one message, per exchange kind, at 10, 1,000 and 100,000 bindings.
//!
//! Queue handles are `Arc`s, as the broker's will be, so fan-out pays for reference counting.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warren_codec::{FieldTable, FieldValue};
use warren_router::{ExchangeDef, ExchangeKind, Router};

const SIZES: [usize; 3] = [10, 1_000, 100_000];

type Handle = Arc<usize>;

fn router(kind: ExchangeKind, n: usize) -> Router<Handle> {
    let mut r = Router::new();
    let declared = r.declare_exchange(ExchangeDef::new("x", kind));
    assert!(declared.is_ok());
    for i in 0..n {
        let q = format!("q{i}");
        r.add_queue(q.as_str().into(), Arc::new(i));
        let (key, args) = match kind {
            ExchangeKind::Direct => (format!("key.{i}"), FieldTable::new()),
            ExchangeKind::Fanout => (String::new(), FieldTable::new()),
            ExchangeKind::Topic => (
                match i % 3 {
                    0 => format!("stock.{i}.*"),
                    1 => format!("stock.{i}.#"),
                    _ => format!("*.{i}.nyse"),
                },
                FieldTable::new(),
            ),
            ExchangeKind::Headers => (
                String::new(),
                [
                    ("x-match", FieldValue::from("all")),
                    ("id", FieldValue::I64(i64::try_from(i).unwrap_or(0))),
                    ("type", FieldValue::from("order")),
                ]
                .into_iter()
                .collect(),
            ),
        };
        let bound = r.bind_queue(b"x", q.as_bytes(), key.as_str().into(), args);
        assert!(bound.is_ok());
    }
    r
}

fn bench(c: &mut Criterion) {
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        let mut group = c.benchmark_group(format!("route/{}", kind.as_str()));
        for n in SIZES {
            let r = router(kind, n);
            let mid = n / 2;
            let key = match kind {
                ExchangeKind::Topic => format!("stock.{mid}.nyse"),
                _ => format!("key.{mid}"),
            };
            let headers: FieldTable = [
                ("type", FieldValue::from("order")),
                ("id", FieldValue::I32(i32::try_from(mid).unwrap_or(0))),
                ("region", FieldValue::from("eu")),
            ]
            .into_iter()
            .collect();
            let mut out: Vec<Handle> = Vec::with_capacity(n);
            let routed = r.route(b"x", &[key.as_bytes()], Some(&headers), &mut out);
            assert!(
                routed.is_ok() && !out.is_empty(),
                "{kind} at {n} routed nowhere"
            );
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| {
                    out.clear();
                    let routed =
                        r.route(b"x", &[key.as_bytes()], Some(black_box(&headers)), &mut out);
                    black_box(routed.is_ok());
                    black_box(out.len())
                })
            });
        }
        group.finish();
    }
    let r = router(ExchangeKind::Direct, 10);
    let mut out: Vec<Handle> = Vec::with_capacity(4);
    c.bench_function("route/default/10", |b| {
        b.iter(|| {
            out.clear();
            let routed = r.route(b"", &[black_box(b"q5")], None, &mut out);
            black_box(routed.is_ok());
        })
    });
}

/// A direct exchange bound with the empty key, published to with the empty key: a common shape.
fn direct_empty_key(c: &mut Criterion) {
    let mut r: Router<Handle> = Router::new();
    r.add_queue("q".into(), Arc::new(0));
    let bound = r.bind_queue(b"amq.direct", b"q", "".into(), FieldTable::new());
    assert!(bound.is_ok());
    let mut out: Vec<Handle> = Vec::with_capacity(4);
    c.bench_function("route/direct_empty_key/1", |b| {
        b.iter(|| {
            out.clear();
            let routed = r.route(b"amq.direct", &[black_box(b"")], None, &mut out);
            black_box(routed.is_ok());
        })
    });
}

criterion_group!(benches, bench, direct_empty_key);
criterion_main!(benches);
