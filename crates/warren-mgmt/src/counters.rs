//! Counters that a connection task keeps for the statistics: one writer (the task that owns the
//! connection or channel counted), any number of readers (the sampler, the API, Prometheus).
//!
//! A [`Counter`] is an `AtomicU64` written with a relaxed load and store rather than a
//! read-modify-write: with a single writer nothing is lost, and the add compiles to plain moves
//! (no locked instruction) on the hot path. Readers may see a value a few increments old.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

/// One channel's counters and gauges (RabbitMQ's channel `message_stats` and state fields).
#[derive(Debug, Default)]
pub struct ChannelStats {
    /// Messages published on the channel.
    pub publish: Counter,
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
}
