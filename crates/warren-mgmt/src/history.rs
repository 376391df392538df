//! Rate history: what the API answers to RabbitMQ's `msg_rates_age`/`msg_rates_incr` and
//! `lengths_age`/`lengths_incr` query parameters. With them, every `*_details` object of the
//! matching kind gets `samples` (`[{"sample": value, "timestamp": ms}, ...]`, newest first, one
//! per `incr` seconds back to `age`, at multiples of `incr`), `avg` (their mean) and `avg_rate`
//! (newest minus oldest over the span, per second), as RabbitMQ's `rabbit_mgmt_stats` formats
//! them.
//!
//! Connections answer `data_rates_age`/`data_rates_incr` (their `recv_oct_details` and
//! `send_oct_details`, RabbitMQ's `coarse_conn_stats`), channels `msg_rates_*` (their
//! `message_stats`).
//!
//! Retention follows RabbitMQ's `sample_retention_policies` defaults: [`GLOBAL`] for the node and
//! each vhost, [`BASIC`] for queues, exchanges, channels and connections. The first tier keeps
//! every sample the sampler takes (every `collect_statistics_interval`) for 605 s, at most 121
//! of them; each coarser tier keeps one sample per step. Memory stays bounded, and an idle
//! object costs one sample per tier: a sample equal to the one before it is not stored again,
//! because the latest sample at or before a time answers the same without it.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value, json};

use crate::ApiError;
use crate::counters::CHANNEL_COUNTERS;
use crate::listing::Params;
use crate::stats::{AGG, DEPTHS, Sampled};

/// One tier of a retention policy: keep samples `step_ms` apart (0: every sample) for
/// `keep_ms`, at most `max` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// The spacing of kept samples, in milliseconds (0 keeps every sample).
    pub step_ms: u64,
    /// How far back the tier answers, in milliseconds.
    pub keep_ms: u64,
    /// The most samples the tier holds.
    pub max: usize,
}

/// The finest tier, `{605, 5}` in RabbitMQ's policies: every sample, 121 at most.
const FINE: Tier = Tier {
    step_ms: 0,
    keep_ms: 605_000,
    max: 121,
};

/// A tier of one sample per `step_s` seconds over `keep_s` seconds.
const fn coarse(keep_s: u64, step_s: u64) -> Tier {
    Tier {
        step_ms: step_s * 1000,
        keep_ms: keep_s * 1000,
        max: (keep_s / step_s) as usize + 1,
    }
}

/// RabbitMQ's default `global` policy (the node and vhosts):
/// `[{605, 5}, {3660, 60}, {29400, 600}, {86400, 1800}]`.
pub const GLOBAL: &[Tier] = &[
    FINE,
    coarse(3660, 60),
    coarse(29400, 600),
    coarse(86400, 1800),
];
/// RabbitMQ's default `basic` policy (queues, exchanges, channels, connections):
/// `[{605, 5}, {3600, 60}]`.
pub const BASIC: &[Tier] = &[FINE, coarse(3600, 60)];

/// One tier's samples: `(timestamp ms, values)`, oldest first.
#[derive(Debug, Clone)]
struct Kept<const N: usize> {
    tier: Tier,
    /// The step bucket of the last sample offered (`ts / step_ms`).
    last_bucket: Option<u64>,
    samples: VecDeque<(u64, [u64; N])>,
}

impl<const N: usize> Kept<N> {
    fn push(&mut self, ts: u64, values: [u64; N]) {
        // A step of 0 keeps every sample.
        if let Some(bucket) = ts.checked_div(self.tier.step_ms) {
            if self.last_bucket.is_some_and(|b| b >= bucket) {
                return;
            }
            self.last_bucket = Some(bucket);
        }
        if self.samples.back().is_none_or(|(_, v)| *v != values) {
            self.samples.push_back((ts, values));
        }
        // The oldest sample stays while the next one is within reach: it is the value of
        // every time between the two.
        let horizon = ts.saturating_sub(self.tier.keep_ms);
        while self.samples.len() > self.tier.max
            || self.samples.get(1).is_some_and(|(t, _)| *t <= horizon)
        {
            self.samples.pop_front();
        }
    }

    /// The latest sample at or before `at`, if this tier reaches back that far.
    fn at(&self, at: u64) -> Option<Option<&[u64; N]>> {
        let (first, _) = self.samples.front()?;
        if *first > at {
            return None;
        }
        let i = self.samples.partition_point(|(ts, _)| *ts <= at);
        Some(self.samples.get(i.checked_sub(1)?).map(|(_, v)| v))
    }
}

/// An object's history: its values sampled over time, kept by a retention policy.
#[derive(Debug, Clone)]
pub struct Ring<const N: usize> {
    tiers: Vec<Kept<N>>,
}

impl<const N: usize> Ring<N> {
    /// An empty history kept by `policy` (finest tier first).
    pub fn new(policy: &[Tier]) -> Self {
        Ring {
            tiers: policy
                .iter()
                .map(|t| Kept {
                    tier: Tier {
                        max: t.max.max(1),
                        ..*t
                    },
                    last_bucket: None,
                    samples: VecDeque::new(),
                })
                .collect(),
        }
    }

    /// Records `values` taken at `ts` (milliseconds, not before the last one).
    pub fn push(&mut self, ts: u64, values: [u64; N]) {
        for t in &mut self.tiers {
            t.push(ts, values);
        }
    }

    /// The value of `index` at `at`: the latest sample taken at or before it, from the finest
    /// tier that reaches back that far.
    fn at(&self, at: u64, index: usize) -> Option<u64> {
        let v = self.tiers.iter().find_map(|t| t.at(at))??;
        v.get(index).copied()
    }

    /// The samples held in all tiers (for tests and memory accounting).
    pub fn held(&self) -> usize {
        self.tiers.iter().map(|t| t.samples.len()).sum()
    }

    /// `(timestamp, value)` points for `q` ending at `now`, newest first.
    pub fn points(&self, q: Range, now: u64, index: usize) -> Vec<(u64, u64)> {
        self.sum_points(q, now, &[index])
    }

    /// As [`Ring::points`], of the sum of the values at `indices`.
    pub fn sum_points(&self, q: Range, now: u64, indices: &[usize]) -> Vec<(u64, u64)> {
        let incr = q.incr_s.saturating_mul(1000);
        let mut last = now / incr * incr;
        if q.ceil && last != now {
            last = last.saturating_add(incr);
        }
        (0..=q.age_s / q.incr_s)
            .map_while(|k| last.checked_sub(k.saturating_mul(incr)))
            .filter_map(|t| {
                let v = indices
                    .iter()
                    .map(|&i| self.at(t, i))
                    .sum::<Option<u64>>()?;
                Some((t, v))
            })
            .collect()
    }
}

/// One `*_age` / `*_incr` pair, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// How far back.
    pub age_s: u64,
    /// The step between samples.
    pub incr_s: u64,
    /// Whether the newest point is `now` rounded up to a step (RabbitMQ's `range_ceil`, for
    /// queue lengths) rather than down.
    pub ceil: bool,
}

/// The history a request asked for: message rates, queue lengths, or neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query {
    /// `msg_rates_age` and `msg_rates_incr`.
    pub msg_rates: Option<Range>,
    /// `lengths_age` and `lengths_incr`.
    pub lengths: Option<Range>,
    /// `data_rates_age` and `data_rates_incr` (a connection's socket bytes).
    pub data_rates: Option<Range>,
}

/// RabbitMQ's `?MAX_RANGE`: at most this many steps in one range.
const MAX_STEPS: i64 = 500;

/// RabbitMQ's `rabbit_mgmt_util:range/3`: a pair that is not two integers is ignored; two
/// integers must be positive with at most [`MAX_STEPS`] steps, or the request is refused.
fn range(p: &Params, kind: &str) -> Result<Option<Range>, ApiError> {
    let int = |k: String| p.get(&k).and_then(|v| v.parse::<i64>().ok());
    let (Some(age), Some(incr)) = (int(format!("{kind}_age")), int(format!("{kind}_incr"))) else {
        return Ok(None);
    };
    if age > 0 && incr > 0 && age / incr <= MAX_STEPS {
        Ok(Some(Range {
            age_s: age.unsigned_abs(),
            incr_s: incr.unsigned_abs(),
            ceil: false,
        }))
    } else {
        Err(ApiError::BadRequest(format!(
            "Invalid range parameters: age {age}, incr {incr}"
        )))
    }
}

impl Query {
    /// Reads the parameters (either pair may be absent; both members of a pair are needed).
    pub fn from_params(p: &Params) -> Result<Query, ApiError> {
        Ok(Query {
            msg_rates: range(p, "msg_rates")?,
            lengths: range(p, "lengths")?,
            data_rates: range(p, "data_rates")?,
        })
    }
}

/// Adds `samples`, `avg` and `avg_rate` to `details` from `points` (newest first).
fn fill(details: &mut Map<String, Value>, points: &[(u64, u64)]) {
    let samples: Vec<Value> = points
        .iter()
        .map(|(t, v)| json!({"sample": v, "timestamp": t}))
        .collect();
    let avg = if points.is_empty() {
        0.0
    } else {
        points.iter().map(|p| p.1 as f64).sum::<f64>() / points.len() as f64
    };
    let avg_rate = match (points.first(), points.last()) {
        (Some(new), Some(old)) if new.0 > old.0 => {
            (new.1 as f64 - old.1 as f64) * 1000.0 / (new.0 - old.0) as f64
        }
        _ => 0.0,
    };
    details.insert("samples".into(), Value::Array(samples));
    details.insert("avg".into(), json!(avg));
    details.insert("avg_rate".into(), json!(avg_rate));
}

/// For each `(name, indices)` whose `{name}_details` object is in `obj`, adds the history of
/// the sum of the ring's values at `indices` over `q` (nothing when `q` is `None`).
pub fn annotate<const N: usize>(
    obj: &mut Value,
    ring: Option<&Ring<N>>,
    names: &[(&str, &[usize])],
    q: Option<Range>,
    now: u64,
) {
    let (Some(q), Value::Object(o)) = (q, obj) else {
        return;
    };
    for (name, indices) in names {
        if let Some(Value::Object(d)) = o.get_mut(&format!("{name}_details")) {
            let points = ring
                .map(|r| r.sum_points(q, now, indices))
                .unwrap_or_default();
            fill(d, &points);
        }
    }
}

/// `(name, [index])` for names in ring order starting at `first`, then `deliver_get` as the
/// sum of `deliver`, `deliver_no_ack`, `get` and `get_no_ack` where those are among them.
pub fn series<'a>(names: &[&'a str], first: usize) -> Vec<(&'a str, Vec<usize>)> {
    let mut out: Vec<(&str, Vec<usize>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, vec![first + i]))
        .collect();
    let dg: Vec<usize> = ["deliver", "deliver_no_ack", "get", "get_no_ack"]
        .iter()
        .filter_map(|k| names.iter().position(|n| n == k).map(|i| first + i))
        .collect();
    if dg.len() == 4 {
        out.push(("deliver_get", dg));
    }
    out
}

/// Adds the history `q` asks for to an object's JSON: to `obj.message_stats`, the series
/// `rates` (names of the ring's values from index `first_rate`, with `deliver_get`); to the
/// depth details in `obj` (or in `obj[depths_in]`), [`DEPTHS`] from index `first_depth`.
pub fn apply<const N: usize>(
    obj: &mut Value,
    ring: Option<&Ring<N>>,
    q: &Query,
    now: u64,
    rates: (&[&str], usize),
    depths: Option<(Option<&str>, usize)>,
) {
    if q.msg_rates.is_some()
        && let Some(ms) = obj.get_mut("message_stats")
    {
        let names = series(rates.0, rates.1);
        let refs: Vec<(&str, &[usize])> = names.iter().map(|(n, i)| (*n, &i[..])).collect();
        annotate(ms, ring, &refs, q.msg_rates, now);
    }
    if let (Some((inside, first)), Some(_)) = (depths, q.lengths) {
        let target = match inside {
            Some(k) => obj.get_mut(k),
            None => Some(obj),
        };
        if let Some(t) = target {
            let idx: Vec<[usize; 1]> = (0..DEPTHS.len()).map(|i| [first + i]).collect();
            let refs: Vec<(&str, &[usize])> =
                DEPTHS.iter().zip(&idx).map(|(n, i)| (*n, &i[..])).collect();
            annotate(t, ring, &refs, q.lengths, now);
        }
    }
}

/// The rings the sampler keeps, replaced object by object at each sample; an object gone
/// since the last sample loses its ring.
#[derive(Debug)]
pub struct Histories {
    /// The node's aggregate values.
    pub node: Ring<AGG>,
    /// By vhost.
    pub vhosts: HashMap<String, Ring<AGG>>,
    /// By (vhost, queue): the queue's counters, then its depths.
    pub queues: HashMap<(String, String), Ring<11>>,
    /// By (vhost, exchange): `publish_in`, `publish_out`.
    pub exchanges: HashMap<(String, String), Ring<2>>,
    /// By (connection id, channel number): the channel's counters.
    pub channels: HashMap<(u64, u16), Ring<{ CHANNEL_COUNTERS.len() }>>,
    /// By connection id: `recv_oct`, `recv_cnt`, `send_oct`, `send_cnt`.
    pub connections: HashMap<u64, Ring<4>>,
}

impl Default for Histories {
    fn default() -> Self {
        Histories {
            node: Ring::new(GLOBAL),
            vhosts: HashMap::new(),
            queues: HashMap::new(),
            exchanges: HashMap::new(),
            channels: HashMap::new(),
            connections: HashMap::new(),
        }
    }
}

/// Moves each object's ring from `old` into a new map with its new sample.
fn advance<K: Eq + std::hash::Hash, const N: usize>(
    old: &mut HashMap<K, Ring<N>>,
    now: impl Iterator<Item = (K, [u64; N])>,
    policy: &[Tier],
    ts: u64,
) -> HashMap<K, Ring<N>> {
    now.map(|(k, v)| {
        let mut r = old.remove(&k).unwrap_or_else(|| Ring::new(policy));
        r.push(ts, v);
        (k, r)
    })
    .collect()
}

impl Histories {
    /// Records one sample of everything the sampler just computed, taken at `ts`.
    pub fn record(&mut self, s: &Sampled, ts: u64) {
        self.node.push(ts, s.node.last);
        self.vhosts = advance(
            &mut self.vhosts,
            s.vhosts.iter().map(|(k, w)| (k.clone(), w.last)),
            GLOBAL,
            ts,
        );
        self.queues = advance(
            &mut self.queues,
            s.queues.iter().map(|(k, w)| (k.clone(), w.last)),
            BASIC,
            ts,
        );
        self.exchanges = advance(
            &mut self.exchanges,
            s.exchanges.all().map(|(k, w)| (k, w.last)),
            BASIC,
            ts,
        );
        self.channels = advance(
            &mut self.channels,
            s.channels.iter().map(|(k, w)| (*k, w.last)),
            BASIC,
            ts,
        );
        self.connections = advance(
            &mut self.connections,
            s.connections.iter().map(|(k, w)| (*k, w.last)),
            BASIC,
            ts,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single tier that keeps the last `max` samples.
    fn every(max: usize) -> Tier {
        Tier {
            step_ms: 0,
            keep_ms: u64::MAX,
            max,
        }
    }

    /// Samples every 5 s from 0 to `until_s`, the value being the time in seconds.
    fn counting(policy: &[Tier], until_s: u64) -> Ring<1> {
        let mut r = Ring::new(policy);
        for t in (0..=until_s).step_by(5) {
            r.push(t * 1000, [t]);
        }
        r
    }

    #[test]
    fn older_points_come_from_the_coarser_tiers() {
        let r = counting(BASIC, 3600);
        // The fine tier keeps 121 samples (600 s); beyond it the 60 s tier answers.
        let q = |age_s, incr_s| Range {
            age_s,
            incr_s,
            ceil: false,
        };
        let points = r.points(q(3600, 600), 3_600_000, 0);
        let times: Vec<u64> = points.iter().map(|p| p.0 / 1000).collect();
        assert_eq!(times, vec![3600, 3000, 2400, 1800, 1200, 600, 0]);
        assert!(points.iter().all(|(t, v)| *v == t / 1000), "{points:?}");
        // Within the fine tier, 5 s resolution; 800 s back (steps are multiples of 700 s from
        // the epoch), the 60 s tier's sample.
        assert_eq!(
            r.points(q(5, 5), 3_600_000, 0),
            vec![(3_600_000, 3600), (3_595_000, 3595)]
        );
        assert_eq!(r.points(q(700, 700), 3_600_000, 0)[1], (2_800_000, 2760));
        assert!(r.held() <= 121 + 61, "{}", r.held());
    }

    #[test]
    fn global_keeps_a_day_and_basic_an_hour() {
        let day = 86_400;
        let g = counting(GLOBAL, day);
        let b = counting(BASIC, day);
        let q = Range {
            age_s: day,
            incr_s: day,
            ceil: false,
        };
        let now = day * 1000;
        assert_eq!(g.points(q, now, 0).len(), 2);
        assert_eq!(
            b.points(q, now, 0).len(),
            1,
            "basic keeps no point a day back"
        );
        assert!(g.held() <= 121 + 62 + 50 + 49, "{}", g.held());
    }

    #[test]
    fn an_idle_object_keeps_one_sample_per_tier() {
        let mut r = Ring::<2>::new(GLOBAL);
        for t in 0..10_000u64 {
            r.push(t * 5000, [7, 9]);
        }
        assert_eq!(r.held(), 4);
        let q = Range {
            age_s: 3600,
            incr_s: 60,
            ceil: false,
        };
        let points = r.points(q, 10_000 * 5000, 1);
        assert_eq!(points.len(), 61);
        assert!(points.iter().all(|p| p.1 == 9));
    }

    #[test]
    fn points_are_the_latest_sample_at_each_step_newest_first() {
        let mut r = Ring::<1>::new(&[every(10)]);
        r.push(1_000, [1]);
        r.push(6_000, [2]);
        r.push(11_000, [4]);
        let q = Range {
            age_s: 10,
            incr_s: 5,
            ceil: false,
        };
        // No sample at or before 0: that point is left out.
        assert_eq!(r.points(q, 12_300, 0), vec![(10_000, 2), (5_000, 1)]);
        let mut d = Map::new();
        fill(&mut d, &r.points(q, 16_000, 0));
        assert_eq!(
            d["samples"],
            json!([{"sample": 4, "timestamp": 15_000},
                                        {"sample": 2, "timestamp": 10_000},
                                        {"sample": 1, "timestamp": 5_000}])
        );
        assert_eq!(d["avg"], json!(7.0 / 3.0));
        assert_eq!(d["avg_rate"], json!(0.3));
    }

    #[test]
    fn the_ring_keeps_only_its_capacity() {
        let mut r = Ring::<1>::new(&[every(2)]);
        for t in 1..=5 {
            r.push(t * 1000, [t]);
        }
        let q = Range {
            age_s: 10,
            incr_s: 1,
            ceil: false,
        };
        assert_eq!(r.points(q, 5_000, 0), vec![(5_000, 5), (4_000, 4)]);
    }

    #[test]
    fn query_needs_both_members_of_a_pair_and_positive_numbers() {
        let p = |pairs: &[(&str, &str)]| -> Params {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            Query::from_params(&p(&[("msg_rates_age", "60"), ("msg_rates_incr", "5")])).ok(),
            Some(Query {
                msg_rates: Some(Range {
                    age_s: 60,
                    incr_s: 5,
                    ceil: false
                }),
                lengths: None,
                data_rates: None
            })
        );
        assert_eq!(
            Query::from_params(&p(&[("lengths_age", "60")])).ok(),
            Some(Query::default())
        );
        // Not integers: ignored, as RabbitMQ.
        assert_eq!(
            Query::from_params(&p(&[("lengths_age", "x"), ("lengths_incr", "5")])).ok(),
            Some(Query::default())
        );
        let refused = |pairs: &[(&str, &str)]| match Query::from_params(&p(pairs)) {
            Err(ApiError::BadRequest(t)) => t,
            other => format!("{other:?}"),
        };
        assert_eq!(
            refused(&[("lengths_age", "60"), ("lengths_incr", "0")]),
            "Invalid range parameters: age 60, incr 0"
        );
        assert_eq!(
            refused(&[("msg_rates_age", "501"), ("msg_rates_incr", "1")]),
            "Invalid range parameters: age 501, incr 1"
        );
    }
}
