//! Rate history against a model: generated sequences of samples (irregular intervals, values
//! going up and down) and queries (`age`, `incr`, now) on a bounded [`Ring`], compared with a
//! naive model that keeps every sample and knows only the ring's capacity.

use proptest::prelude::*;
use serde_json::{Value, json};
use warren_mgmt::history::{Range, Ring, annotate};

#[derive(Debug, Clone)]
enum Op {
    /// A sample `dt` ms after the previous one.
    Sample { dt: u64, value: u64 },
    /// A query `ahead` ms after the last sample.
    Query {
        age_s: u64,
        incr_s: u64,
        ahead: u64,
        ceil: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..12_000, 0u64..1_000).prop_map(|(dt, value)| Op::Sample { dt, value }),
        1 => (1u64..120, 1u64..30, 0u64..15_000, any::<bool>())
            .prop_map(|(age_s, incr_s, ahead, ceil)| Op::Query { age_s, incr_s, ahead, ceil }),
    ]
}

/// Every sample ever taken; the ring keeps the last `cap`.
struct Model {
    cap: usize,
    all: Vec<(u64, u64)>,
}

impl Model {
    fn at(&self, t: u64) -> Option<u64> {
        let latest = self.all.iter().rposition(|(ts, _)| *ts <= t)?;
        // Older than what the ring keeps: unknown.
        (latest + self.cap >= self.all.len()).then(|| self.all[latest].1)
    }

    fn details(&self, age_s: u64, incr_s: u64, now: u64, ceil: bool) -> Value {
        let incr = incr_s * 1000;
        let mut last = now - now % incr;
        if ceil && now % incr != 0 {
            last += incr;
        }
        let mut points = Vec::new();
        for k in 0..=age_s / incr_s {
            if k * incr > last {
                break;
            }
            let t = last - k * incr;
            if let Some(v) = self.at(t) {
                points.push((t, v));
            }
        }
        let avg = if points.is_empty() {
            0.0
        } else {
            points.iter().map(|p| p.1 as f64).sum::<f64>() / points.len() as f64
        };
        let avg_rate = if points.len() >= 2 {
            let (new, old) = (points[0], points[points.len() - 1]);
            (new.1 as f64 - old.1 as f64) * 1000.0 / (new.0 - old.0) as f64
        } else {
            0.0
        };
        json!({
            "rate": 0.0,
            "samples": points.iter().map(|(t, v)| json!({"sample": v, "timestamp": t})).collect::<Vec<_>>(),
            "avg": avg,
            "avg_rate": avg_rate,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn history_matches_the_model(cap in 1usize..30, ops in proptest::collection::vec(op(), 1..120)) {
        let mut ring = Ring::<1>::new(cap);
        let mut model = Model { cap, all: Vec::new() };
        let mut now = 1_000_000u64;
        for op in ops {
            match op {
                Op::Sample { dt, value } => {
                    now += dt;
                    ring.push(now, [value]);
                    model.all.push((now, value));
                }
                Op::Query { age_s, incr_s, ahead, ceil } => {
                    let at = now + ahead;
                    let mut got = json!({"x_details": {"rate": 0.0}});
                    let q = Range { age_s, incr_s, ceil };
                    annotate(&mut got, Some(&ring), &[("x", &[0])], Some(q), at);
                    prop_assert_eq!(&got["x_details"], &model.details(age_s, incr_s, at, ceil));
                }
            }
        }
    }
}
