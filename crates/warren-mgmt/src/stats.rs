//! The statistics sampler: every `collect_statistics_interval` (RabbitMQ's name, 5 s by
//! default) it reads the counters that queues, channels and connections keep themselves and
//! turns the difference since the previous sample into rates (RabbitMQ's `*_details.rate`,
//! per second over the last interval, its `basic` rates mode).
//!
//! The hot path never sees this module: it only bumps its own counters. The sampler takes each
//! queue's lock once per interval (a copy of a few integers) and reads the connections'
//! atomics; it keeps its windows in one mutex of its own ([`Statistics`]), which API handlers
//! take briefly to read rates. Lock order: the sampler holds no broker lock while it holds this
//! one (it reads all counters first, then locks), and handlers read rates under it without
//! taking any other lock (an exchange listing may hold a vhost's topology read lock while it
//! reads: topology, then this lock, never the reverse). Each channel's exchange list is a leaf
//! lock the sampler takes before this one.
//!
//! Counts of channels that closed are kept per vhost ("retired"), so a vhost's and the node's
//! `message_stats` do not go down when a channel closes, as in RabbitMQ; what a channel counted
//! after the last sample before it closed is lost (at most one interval's worth).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use warren_broker::{Broker, QueueCounters};

use crate::Connections;
use crate::counters::CHANNEL_COUNTERS;
use crate::exchange_stats::ExchangeWindows;
use crate::history::Histories;

/// The keys of a queue's `message_stats`, in [`queue_values`] order.
pub const QUEUE_COUNTERS: [&str; 8] = [
    "publish",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "ack",
    "redeliver",
];

/// The queue depths whose rates RabbitMQ shows (`messages_details`, ...), after the counters.
pub const DEPTHS: [&str; 3] = ["messages", "messages_ready", "messages_unacknowledged"];

/// The counters of a queue, then its depths: `[QUEUE_COUNTERS..., DEPTHS...]`.
pub fn queue_values(c: &QueueCounters, ready: u64, unacked: u64) -> [u64; 11] {
    [
        c.publish,
        c.deliver,
        c.deliver_no_ack,
        c.get,
        c.get_no_ack,
        c.get_empty,
        c.ack,
        c.redeliver,
        ready + unacked,
        ready,
        unacked,
    ]
}

/// Last values and rates of one object's counters.
#[derive(Debug, Clone, Copy)]
pub struct Window<const N: usize> {
    /// The values at the last sample.
    pub last: [u64; N],
    /// Per-second change over the last interval.
    pub rate: [f64; N],
}

impl<const N: usize> Default for Window<N> {
    fn default() -> Self {
        Window {
            last: [0; N],
            rate: [0.0; N],
        }
    }
}

impl<const N: usize> Window<N> {
    /// A window whose first sample is `now` (rates 0 until the next one).
    pub(crate) fn first(now: [u64; N]) -> Self {
        Window {
            last: now,
            rate: [0.0; N],
        }
    }

    /// Takes a new sample `secs` after the last one.
    pub(crate) fn update(&mut self, now: [u64; N], secs: f64) {
        for ((rate, new), old) in self.rate.iter_mut().zip(&now).zip(&self.last) {
            *rate = if secs > 0.0 {
                (*new as f64 - *old as f64) / secs
            } else {
                0.0
            };
        }
        self.last = now;
    }
}

/// Vhost and node aggregates: channel counters, then queue depths, then socket bytes.
pub const AGG: usize = CHANNEL_COUNTERS.len() + DEPTHS.len() + 2;

/// Everything the sampler keeps between samples.
#[derive(Debug, Default)]
pub struct Sampled {
    /// When the last sample was taken.
    pub at: Option<Instant>,
    /// By (vhost, queue name).
    pub queues: HashMap<(String, String), Window<11>>,
    /// By (connection id, channel number).
    pub channels: HashMap<(u64, u16), Window<{ CHANNEL_COUNTERS.len() }>>,
    /// By connection id: `recv_oct`, `recv_cnt`, `send_oct`, `send_cnt`.
    pub connections: HashMap<u64, Window<4>>,
    /// By vhost name.
    pub vhosts: HashMap<String, Window<AGG>>,
    /// The whole node.
    pub node: Window<AGG>,
    /// Channel counters of closed channels and socket bytes of closed connections, by vhost.
    retired: HashMap<String, [u64; AGG]>,
    /// The vhost of each channel and connection seen at the last sample, for retiring them.
    owners: HashMap<u64, String>,
    /// Exchanges' `publish_in` and `publish_out`.
    pub exchanges: ExchangeWindows,
    /// The last samples of everything, for `?msg_rates_age=` and `?lengths_age=`.
    pub history: Histories,
    /// Publishes made in confirm mode, node-wide (Prometheus' `received_confirm_total`).
    pub publish_confirm: crate::retiring::RetiringSum,
}

/// The sampler's state, shared with the API.
#[derive(Debug)]
pub struct Statistics {
    /// How often the sampler runs.
    pub interval: Duration,
    sampled: Mutex<Sampled>,
    /// What the API itself published and got, by vhost, in [`CHANNEL_COUNTERS`] order (RabbitMQ
    /// counts them on the management plugin's own channel). Its own lock, taken per API
    /// request, never on the AMQP path.
    api: Mutex<HashMap<String, [u64; CHANNEL_COUNTERS.len()]>>,
    /// What the API published per exchange since the last sample: `[publish_in, publish_out]`
    /// by (vhost, exchange). Its own lock, as `api`; never taken with `api`.
    api_exchanges: Mutex<HashMap<(String, String), [u64; 2]>>,
}

impl Default for Statistics {
    fn default() -> Self {
        Statistics::new(Duration::from_secs(5))
    }
}

impl Statistics {
    /// Statistics sampled every `interval`.
    pub fn new(interval: Duration) -> Self {
        Statistics {
            interval,
            sampled: Mutex::new(Sampled::default()),
            api: Mutex::new(HashMap::new()),
            api_exchanges: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one API publish into `exchange` of `vhost` that reached `queues` queues.
    pub fn count_api_exchange(&self, vhost: &str, exchange: &str, queues: usize) {
        let mut m = self.api_exchanges.lock();
        let e = m
            .entry((vhost.to_string(), exchange.to_string()))
            .or_default();
        e[0] += 1;
        e[1] += queues as u64;
    }

    /// Counts `n` of the channel counter `name` done by the API in `vhost`.
    pub fn count_api(&self, vhost: &str, name: &str, n: u64) {
        let Some(i) = CHANNEL_COUNTERS.iter().position(|c| *c == name) else {
            return;
        };
        let mut api = self.api.lock();
        match api.get_mut(vhost) {
            Some(v) => v[i] += n,
            None => {
                let mut v = [0; CHANNEL_COUNTERS.len()];
                v[i] = n;
                api.insert(vhost.to_string(), v);
            }
        }
    }

    /// Reads the rates under the sampler's lock (hold it briefly; take no other lock inside).
    pub fn read<R>(&self, f: impl FnOnce(&Sampled) -> R) -> R {
        f(&self.sampled.lock())
    }

    /// Takes one sample of every queue, channel and connection.
    pub fn sample(&self, broker: &Broker, connections: &dyn Connections) {
        // Read every counter first, without the sampler's lock.
        let mut queues = Vec::new();
        let mut existing = HashSet::new();
        for vh in broker.vhosts() {
            existing.extend(
                vh.topology()
                    .exchanges()
                    .map(|x| (vh.name.clone(), x.name.to_string())),
            );
            let list: Vec<_> = vh.topology().queues().cloned().collect();
            for q in list {
                let (c, ready, unacked) = q.counters();
                queues.push((
                    (vh.name.clone(), q.name.to_string()),
                    queue_values(&c, ready, unacked),
                ));
            }
        }
        let conns = connections.list();
        let mut live_x = Vec::new();
        let mut confirm_publishes = Vec::new();
        for c in &conns {
            for (n, st) in c.channels.iter().zip(&c.channel_stats) {
                live_x.push(((c.id, *n), (c.vhost.clone(), st.exchange_counts())));
                confirm_publishes.push(((c.id, *n), st.publish_confirm.get()));
            }
        }
        let api_x = std::mem::take(&mut *self.api_exchanges.lock());
        let api = self.api.lock().clone();
        let now = Instant::now();
        let mut s = self.sampled.lock();
        let secs = s.at.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        let first = s.at.is_none();
        s.at = Some(now);
        s.exchanges.sample(live_x, api_x, &existing, secs);
        s.publish_confirm.sample(confirm_publishes);
        let mut totals: HashMap<String, [u64; AGG]> = s.retired.clone();
        let nc = CHANNEL_COUNTERS.len();
        for (v, counts) in api {
            let t = totals.entry(v).or_insert([0; AGG]);
            add_into(&mut t[..nc], &counts);
        }
        let mut seen_q = HashMap::with_capacity(queues.len());
        for (key, v) in queues {
            let t = totals.entry(key.0.clone()).or_insert([0; AGG]);
            add_into(&mut t[nc..], &v[QUEUE_COUNTERS.len()..]);
            let w = match s.queues.remove(&key) {
                Some(mut w) if w.last.iter().zip(&v).take(8).all(|(a, b)| a <= b) => {
                    w.update(v, secs);
                    w
                }
                // New, or deleted and declared again since the last sample.
                _ => Window::first(v),
            };
            seen_q.insert(key, w);
        }
        s.queues = seen_q;
        let mut seen_ch = HashMap::new();
        let mut seen_conn = HashMap::new();
        let mut owners = HashMap::new();
        for c in &conns {
            owners.insert(c.id, c.vhost.clone());
            let t = totals.entry(c.vhost.clone()).or_insert([0; AGG]);
            let io = c.stats.counters();
            t[AGG - 2] += io[0];
            t[AGG - 1] += io[2];
            let w = match s.connections.remove(&c.id) {
                Some(mut w) => {
                    w.update(io, secs);
                    w
                }
                None => Window::first(io),
            };
            seen_conn.insert(c.id, w);
            for (n, st) in c.channels.iter().zip(&c.channel_stats) {
                let v = st.counters();
                add_into(&mut t[..nc], &v);
                let w = match s.channels.remove(&(c.id, *n)) {
                    Some(mut w) if w.last.iter().zip(&v).all(|(a, b)| a <= b) => {
                        w.update(v, secs);
                        w
                    }
                    // Closed and opened again under the same number since the last sample:
                    // the old channel's counts are retired, the new one starts afresh.
                    Some(old) => {
                        let r = s.retired.entry(c.vhost.clone()).or_insert([0; AGG]);
                        add_into(&mut r[..nc], &old.last);
                        add_into(&mut t[..nc], &old.last);
                        Window::first(v)
                    }
                    None => Window::first(v),
                };
                seen_ch.insert((c.id, *n), w);
            }
        }
        // Channels and connections gone since the last sample: their last counts stay in
        // their vhost's totals.
        let gone_ch: Vec<_> = s.channels.drain().collect();
        let gone_conn: Vec<_> = s.connections.drain().collect();
        for ((conn, _), w) in gone_ch {
            if let Some(v) = s.owners.get(&conn).cloned() {
                let r = s.retired.entry(v.clone()).or_insert([0; AGG]);
                let t = totals.entry(v).or_insert([0; AGG]);
                add_into(&mut r[..nc], &w.last);
                add_into(&mut t[..nc], &w.last);
            }
        }
        for (conn, w) in gone_conn {
            if let Some(v) = s.owners.get(&conn).cloned() {
                let r = s.retired.entry(v.clone()).or_insert([0; AGG]);
                let t = totals.entry(v).or_insert([0; AGG]);
                r[AGG - 2] += w.last[0];
                r[AGG - 1] += w.last[2];
                t[AGG - 2] += w.last[0];
                t[AGG - 1] += w.last[2];
            }
        }
        s.channels = seen_ch;
        s.connections = seen_conn;
        s.owners = owners;
        let mut node = [0u64; AGG];
        let mut vhosts = HashMap::with_capacity(totals.len());
        for (v, t) in totals {
            add_into(&mut node, &t);
            let w = match s.vhosts.remove(&v) {
                Some(mut w) => {
                    w.update(t, secs);
                    w
                }
                None => Window::first(t),
            };
            vhosts.insert(v, w);
        }
        s.vhosts = vhosts;
        if first {
            s.node = Window::first(node);
        } else {
            s.node.update(node, secs);
        }
        let ts = warren_broker::now_ms();
        let mut history = std::mem::take(&mut s.history);
        history.record(&s, ts);
        s.history = history;
    }

    /// Samples every `interval` until the returned task is aborted or `stop` completes.
    pub async fn run(
        self: Arc<Self>,
        broker: Arc<Broker>,
        connections: Arc<dyn Connections>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {
                    let (me, b, c) = (self.clone(), broker.clone(), connections.clone());
                    // A large broker's sample takes milliseconds of locks and copies: off the
                    // async workers.
                    let _ = tokio::task::spawn_blocking(move || me.sample(&b, c.as_ref())).await;
                }
            }
        }
    }
}

/// Adds `src` to `dst` element by element (as far as both go).
fn add_into(dst: &mut [u64], src: &[u64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// `{"name": count, "name_details": {"rate": r}, ...}` for the given names; an object that
/// counted nothing yet gets `{}`, as in RabbitMQ.
pub fn message_stats(names: &[&str], values: &[u64], rates: &[f64]) -> Value {
    let mut o = Map::new();
    if values.iter().take(names.len()).all(|v| *v == 0) {
        return Value::Object(o);
    }
    for (i, n) in names.iter().enumerate() {
        o.insert((*n).to_string(), json!(values.get(i).copied().unwrap_or(0)));
        o.insert(
            format!("{n}_details"),
            json!({"rate": rates.get(i).copied().unwrap_or(0.0)}),
        );
    }
    Value::Object(o)
}

/// Adds `deliver_get` (deliver + deliver_no_ack + get + get_no_ack) to a `message_stats`
/// object that has those keys, as RabbitMQ does.
pub fn add_deliver_get(stats: &mut Value) {
    let Value::Object(o) = stats else { return };
    let keys = ["deliver", "deliver_no_ack", "get", "get_no_ack"];
    if !keys.iter().all(|k| o.contains_key(*k)) {
        return;
    }
    let sum: u64 = keys
        .iter()
        .filter_map(|k| o.get(*k).and_then(Value::as_u64))
        .sum();
    let rate: f64 = keys
        .iter()
        .filter_map(|k| o.get(&format!("{k}_details"))?.get("rate")?.as_f64())
        .sum();
    o.insert("deliver_get".into(), json!(sum));
    o.insert("deliver_get_details".into(), json!({"rate": rate}));
}

/// `{"rate": r}`.
pub fn details(rate: f64) -> Value {
    json!({ "rate": rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rates_are_per_second_over_the_interval() {
        let mut w = Window::first([10u64, 4]);
        w.update([30, 2], 2.0);
        assert_eq!(w.rate, [10.0, -1.0]);
        assert_eq!(w.last, [30, 2]);
    }

    #[test]
    fn message_stats_is_empty_until_something_is_counted() {
        assert_eq!(message_stats(&["publish"], &[0], &[0.0]), json!({}));
        let mut v = message_stats(
            &["deliver", "deliver_no_ack", "get", "get_no_ack"],
            &[1, 2, 3, 4],
            &[0.5, 0.0, 0.0, 1.0],
        );
        add_deliver_get(&mut v);
        assert_eq!(v["deliver_get"], json!(10));
        assert_eq!(v["deliver_get_details"]["rate"], json!(1.5));
        assert_eq!(v["get_details"], json!({"rate": 0.0}));
    }
}

/// The indices of a channel's publishing counters and its delivery counters in
/// [`CHANNEL_COUNTERS`]: RabbitMQ shows each group once the channel counted in it.
const PUBLISHING: [usize; 4] = [0, 1, 2, 3];
const DELIVERING: [usize; 7] = [4, 5, 6, 7, 8, 9, 10];

/// A channel's (or vhost's, or the node's) `message_stats` from channel counters.
pub fn channel_message_stats(values: &[u64], rates: &[f64], all: bool) -> Value {
    let mut o = Map::new();
    for group in [&PUBLISHING[..], &DELIVERING[..]] {
        if !all
            && group
                .iter()
                .all(|&i| values.get(i).copied().unwrap_or(0) == 0)
        {
            continue;
        }
        for &i in group {
            let n = CHANNEL_COUNTERS[i];
            o.insert(n.to_string(), json!(values.get(i).copied().unwrap_or(0)));
            o.insert(
                format!("{n}_details"),
                details(rates.get(i).copied().unwrap_or(0.0)),
            );
        }
    }
    let mut v = Value::Object(o);
    add_deliver_get(&mut v);
    v
}

/// A vhost's or the node's `message_stats`: every channel counter once anything was counted.
pub fn aggregate_message_stats(w: &Window<AGG>) -> Value {
    let nc = CHANNEL_COUNTERS.len();
    if w.last[..nc].iter().all(|v| *v == 0) {
        return json!({});
    }
    channel_message_stats(&w.last[..nc], &w.rate[..nc], true)
}

/// Rate of one of an aggregate's queue depths (`messages`, `messages_ready`, ...).
pub fn depth_rate(w: Option<&Window<AGG>>, depth: usize) -> f64 {
    w.map_or(0.0, |w| w.rate[CHANNEL_COUNTERS.len() + depth])
}

#[cfg(test)]
mod sampler_tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;
    use crate::{ChannelStats, ConnectionInfo, ConnectionStats};

    #[derive(Default)]
    struct Fake(Mutex<Vec<ConnectionInfo>>);

    impl Connections for Fake {
        fn list(&self) -> Vec<ConnectionInfo> {
            self.0.lock().clone()
        }
        fn close(&self, _: &str, _: &str) -> bool {
            false
        }
    }

    fn conn(id: u64, channels: Vec<(u16, Arc<ChannelStats>)>) -> ConnectionInfo {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], 1).into();
        ConnectionInfo {
            id,
            name: format!("c{id}"),
            user: "guest".into(),
            vhost: "/".into(),
            peer: addr,
            local: addr,
            connected_at_ms: 0,
            channels: channels.iter().map(|c| c.0).collect(),
            channel_stats: channels.into_iter().map(|c| c.1).collect(),
            stats: Arc::new(ConnectionStats::default()),
        }
    }

    fn vhost_publish(s: &Statistics) -> (u64, f64) {
        s.read(|s| {
            s.vhosts
                .get("/")
                .map_or((0, 0.0), |w| (w.last[0], w.rate[0]))
        })
    }

    #[test]
    fn closed_and_reopened_channels_keep_their_counts_in_the_vhost() {
        let broker = Broker::new();
        let stats = Statistics::default();
        let fake = Fake::default();
        let first = Arc::new(ChannelStats::default());
        first.publish.add(5);
        *fake.0.lock() = vec![conn(1, vec![(1, first.clone())])];
        stats.sample(&broker, &fake);
        assert_eq!(vhost_publish(&stats).0, 5);
        first.publish.add(2);
        stats.sample(&broker, &fake);
        let (count, rate) = vhost_publish(&stats);
        assert_eq!(count, 7);
        assert!(rate > 0.0);
        // Channel 1 closed and opened again: the new one starts at 0.
        let second = Arc::new(ChannelStats::default());
        second.publish.add(1);
        *fake.0.lock() = vec![conn(1, vec![(1, second)])];
        stats.sample(&broker, &fake);
        assert_eq!(vhost_publish(&stats).0, 8);
        // The connection closed: its channels' counts stay.
        fake.0.lock().clear();
        stats.sample(&broker, &fake);
        assert_eq!(vhost_publish(&stats).0, 8);
        stats.sample(&broker, &fake);
        assert_eq!(vhost_publish(&stats).0, 8);
        assert_eq!(stats.read(|s| s.node.last[0]), 8);
    }

    #[test]
    fn api_operations_count_in_their_vhost() {
        let broker = Broker::new();
        let stats = Statistics::default();
        stats.count_api("/", "publish", 3);
        stats.count_api("/", "no-such-counter", 3);
        stats.sample(&broker, &Fake::default());
        assert_eq!(vhost_publish(&stats).0, 3);
    }
}
