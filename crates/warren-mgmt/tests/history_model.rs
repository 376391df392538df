//! Rate history against a model: generated retention policies (a fine tier and up to two
//! coarser ones), sequences of samples (irregular intervals, values going up and down or
//! repeating) and queries (`age`, `incr`, now) on a bounded [`Ring`], compared with a naive
//! model that keeps every sample and works out at query time what each tier retains.

use proptest::prelude::*;
use serde_json::{Value, json};
use warren_mgmt::history::{Range, Ring, Tier, annotate};

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
        2 => (0u64..12_000, 0u64..1_000).prop_map(|(dt, value)| Op::Sample { dt, value }),
        // Few distinct values: runs of equal samples, which the ring stores once.
        2 => (0u64..12_000, 0u64..3).prop_map(|(dt, value)| Op::Sample { dt, value }),
        1 => (1u64..120, 1u64..30, 0u64..15_000, any::<bool>())
            .prop_map(|(age_s, incr_s, ahead, ceil)| Op::Query { age_s, incr_s, ahead, ceil }),
    ]
}

fn tier(step_ms: u64) -> impl Strategy<Value = Tier> {
    (1u64..200, 1usize..30).prop_map(move |(keep_s, max)| Tier {
        step_ms,
        keep_ms: keep_s * 1000,
        max,
    })
}

/// A fine tier, then up to two coarser ones with growing steps.
fn policy() -> impl Strategy<Value = Vec<Tier>> {
    (
        tier(0),
        proptest::collection::vec((1u64..30, 1u64..200, 1usize..30), 0..3),
    )
        .prop_map(|(fine, coarse)| {
            let mut tiers = vec![fine];
            let mut step = 0;
            for (s, keep_s, max) in coarse {
                step += s * 1000;
                tiers.push(Tier {
                    step_ms: step,
                    keep_ms: keep_s * 1000,
                    max,
                });
            }
            tiers
        })
}

/// Every sample ever taken, and the policy.
struct Model {
    policy: Vec<Tier>,
    all: Vec<(u64, u64)>,
}

impl Model {
    /// What `tier` retains, as runs `(first timestamp, value)`: the samples it accepts (all,
    /// or the first of each step), equal neighbours merged, the last `max` runs, then the
    /// oldest dropped while the next one is not after `keep` before the last accepted sample.
    fn kept(&self, tier: &Tier) -> Vec<(u64, u64)> {
        let mut accepted: Vec<(u64, u64)> = Vec::new();
        let mut bucket = None;
        for &(ts, v) in &self.all {
            if let Some(b) = ts.checked_div(tier.step_ms) {
                if bucket.is_some_and(|x| x >= b) {
                    continue;
                }
                bucket = Some(b);
            }
            accepted.push((ts, v));
        }
        let Some(&(latest, _)) = accepted.last() else {
            return Vec::new();
        };
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (ts, v) in accepted {
            if runs.last().is_none_or(|r| r.1 != v) {
                runs.push((ts, v));
            }
        }
        let max = tier.max.max(1);
        let mut kept = runs.split_off(runs.len().saturating_sub(max));
        let horizon = latest.saturating_sub(tier.keep_ms);
        while kept.len() >= 2 && kept[1].0 <= horizon {
            kept.remove(0);
        }
        kept
    }

    fn at(&self, t: u64) -> Option<u64> {
        for tier in &self.policy {
            let kept = self.kept(tier);
            if kept.first().is_some_and(|r| r.0 <= t) {
                return kept.iter().rev().find(|r| r.0 <= t).map(|r| r.1);
            }
        }
        None
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
    fn history_matches_the_model(policy in policy(), ops in proptest::collection::vec(op(), 1..120)) {
        let mut ring = Ring::<1>::new(&policy);
        let mut model = Model { policy, all: Vec::new() };
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
