//! Counters that a connection task keeps for the statistics: one writer (the task that owns the
//! connection or channel counted), any number of readers (the sampler, the API, Prometheus).
//!
//! A [`Counter`] is an `AtomicU64` written with a relaxed load and store rather than a
//! read-modify-write: with a single writer nothing is lost, and the add compiles to plain moves
//! (no locked instruction) on the hot path. Readers may see a value a few increments old.
//!
//! Per-exchange publish counts ([`ExchangeCounters`]) are kept per channel the same way: the
//! channel finds its counters for an exchange in its own [`ExchangeTable`] (no lock) and
//! registers a new exchange in the shared list once, under [`ChannelStats::exchanges`]' lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// A monotonic counter or a gauge with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning task may call it (single writer).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Sets a gauge. Only the owning task may call it.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Socket traffic of one connection (RabbitMQ's `recv_oct`, `recv_cnt`, `send_oct`, `send_cnt`):
/// added once per socket read and once per socket write, not per frame.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Bytes read from the socket.
    pub recv_oct: Counter,
    /// Socket reads that returned data.
    pub recv_cnt: Counter,
    /// Bytes written to the socket.
    pub send_oct: Counter,
    /// Socket writes.
    pub send_cnt: Counter,
    /// 1 while a resource alarm holds the connection (its socket unread), else 0: RabbitMQ's
    /// connection `state` `blocked` (`blocking` while an alarm is set and it is not held).
    pub blocked: Counter,
}

/// One channel's counters and gauges (RabbitMQ's channel `message_stats` and state fields).
#[derive(Debug, Default)]
pub struct ChannelStats {
    /// Messages published on the channel.
    pub publish: Counter,
    /// Of those, the ones published in confirm mode (RabbitMQ's
    /// `rabbitmq_global_messages_received_confirm_total`; not in [`CHANNEL_COUNTERS`]: no
    /// `message_stats` field shows it).
    pub publish_confirm: Counter,
    /// Publishes confirmed (`basic.ack` to the publisher).
    pub confirm: Counter,
    /// Mandatory publishes returned as unroutable.
    pub return_unroutable: Counter,
    /// Non-mandatory publishes dropped as unroutable.
    pub drop_unroutable: Counter,
    /// Deliveries to consumers that acknowledge.
    pub deliver: Counter,
    /// Deliveries to `no_ack` consumers.
    pub deliver_no_ack: Counter,
    /// `basic.get` answers that need an acknowledgement.
    pub get: Counter,
    /// `basic.get` answers with `no_ack`.
    pub get_no_ack: Counter,
    /// `basic.get` on an empty queue.
    pub get_empty: Counter,
    /// Messages acknowledged by the client.
    pub ack: Counter,
    /// Deliveries and gets flagged redelivered.
    pub redeliver: Counter,
    /// Gauge: per-consumer prefetch (`basic.qos global=false`).
    pub prefetch_count: Counter,
    /// Gauge: channel-wide prefetch (`basic.qos global=true`).
    pub global_prefetch_count: Counter,
    /// Gauge: delivered and not yet settled.
    pub messages_unacknowledged: Counter,
    /// Gauge: published and not yet confirmed.
    pub messages_unconfirmed: Counter,
    /// Gauge: consumers on the channel.
    pub consumer_count: Counter,
    /// Counters per exchange published to. Lock order: a leaf; taken by the channel's task
    /// once per new exchange and by the sampler once per sample, never per message.
    pub exchanges: Mutex<Vec<Arc<ExchangeCounters>>>,
}

/// What one channel published into one exchange (RabbitMQ's `exchange_stats` `publish` of the
/// channel, and its `queue_exchange_stats` summed over the queues).
#[derive(Debug)]
pub struct ExchangeCounters {
    /// The exchange's name as published to (`""` for the default exchange).
    pub exchange: Box<[u8]>,
    /// Publishes into the exchange (`publish_in`), routed or not.
    pub publish_in: Counter,
    /// Queues the exchange's publishes reached, one per queue per message (`publish_out`).
    pub publish_out: Counter,
}

/// Slice equality without a `memcmp` call for the default exchange's empty name: a profile of
/// the auto-ack path showed `<[u8]>::eq`'s call there costing ~9 % of the broker's CPU.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// A channel's own index of its [`ExchangeCounters`], owned by the channel's task: the publish
/// path looks an exchange up here without a lock (the last one used first, then a hash).
#[derive(Debug, Default)]
pub struct ExchangeTable {
    entries: Vec<Arc<ExchangeCounters>>,
    index: HashMap<Box<[u8]>, usize, ahash::RandomState>,
    last: usize,
}

impl ExchangeTable {
    /// Counts one publish into `exchange` that reached `queues` queues. Allocates only the
    /// first time this channel publishes into that exchange.
    #[inline]
    pub fn count(&mut self, shared: &ChannelStats, exchange: &[u8], queues: usize) {
        let i = match self.entries.get(self.last) {
            Some(e) if same_name(&e.exchange, exchange) => self.last,
            _ => match self.index.get(exchange) {
                Some(&i) => i,
                None => self.register(shared, exchange),
            },
        };
        self.last = i;
        if let Some(e) = self.entries.get(i) {
            e.publish_in.add(1);
            e.publish_out.add(queues as u64);
        }
    }

    #[cold]
    fn register(&mut self, shared: &ChannelStats, exchange: &[u8]) -> usize {
        let e = Arc::new(ExchangeCounters {
            exchange: exchange.into(),
            publish_in: Counter::default(),
            publish_out: Counter::default(),
        });
        shared.exchanges.lock().push(e.clone());
        self.entries.push(e);
        let i = self.entries.len() - 1;
        self.index.insert(exchange.into(), i);
        i
    }
}

/// The names of [`ChannelStats`]' monotonic counters, in RabbitMQ's `message_stats` keys.
pub const CHANNEL_COUNTERS: [&str; 11] = [
    "publish",
    "confirm",
    "return_unroutable",
    "drop_unroutable",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "ack",
    "redeliver",
];

impl ChannelStats {
    /// The monotonic counters, in [`CHANNEL_COUNTERS`] order.
    pub fn counters(&self) -> [u64; 11] {
        [
            self.publish.get(),
            self.confirm.get(),
            self.return_unroutable.get(),
            self.drop_unroutable.get(),
            self.deliver.get(),
            self.deliver_no_ack.get(),
            self.get.get(),
            self.get_no_ack.get(),
            self.get_empty.get(),
            self.ack.get(),
            self.redeliver.get(),
        ]
    }
}

impl ChannelStats {
    /// `(exchange, publish_in, publish_out)` for every exchange the channel published into.
    pub fn exchange_counts(&self) -> Vec<(String, [u64; 2])> {
        self.exchanges
            .lock()
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.exchange).into_owned(),
                    [e.publish_in.get(), e.publish_out.get()],
                )
            })
            .collect()
    }
}

/// The names of [`ConnectionStats`]' counters, as RabbitMQ's connection fields.
pub const CONNECTION_COUNTERS: [&str; 4] = ["recv_oct", "recv_cnt", "send_oct", "send_cnt"];

impl ConnectionStats {
    /// The counters, in [`CONNECTION_COUNTERS`] order.
    pub fn counters(&self) -> [u64; 4] {
        [
            self.recv_oct.get(),
            self.recv_cnt.get(),
            self.send_oct.get(),
            self.send_cnt.get(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_adds_sets_and_reads() {
        let c = Counter::default();
        c.add(3);
        c.add(4);
        assert_eq!(c.get(), 7);
        c.set(2);
        assert_eq!(c.get(), 2);
    }

    #[test]
    fn channel_counters_follow_the_names_order() {
        let s = ChannelStats::default();
        s.confirm.add(2);
        s.redeliver.add(5);
        let v = s.counters();
        assert_eq!(
            v[CHANNEL_COUNTERS
                .iter()
                .position(|n| *n == "confirm")
                .unwrap_or(99)],
            2
        );
        assert_eq!(v[10], 5);
    }

    #[test]
    fn exchange_table_counts_per_exchange_and_registers_each_once() {
        let shared = ChannelStats::default();
        let mut t = ExchangeTable::default();
        t.count(&shared, b"x", 3);
        t.count(&shared, b"", 1);
        t.count(&shared, b"x", 0);
        t.count(&shared, b"x", 2);
        let mut got = shared.exchange_counts();
        got.sort();
        assert_eq!(
            got,
            vec![(String::new(), [1, 1]), ("x".to_string(), [3, 5])]
        );
    }
}
