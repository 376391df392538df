//! Point-in-time views of broker objects for the management API (filled in by the objects
//! themselves under their own locks; see `Queue::snapshot`).

use warren_codec::ShortStr;

/// A consumer as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSnapshot {
    /// The tag the client knows it by.
    pub tag: ShortStr,
    /// Its channel number.
    pub channel: u16,
    /// Its connection's id.
    pub connection: u64,
    /// Deliveries need an acknowledgement.
    pub ack_required: bool,
    /// Exclusive consumer.
    pub exclusive: bool,
    /// Per-consumer prefetch, 0 for none.
    pub prefetch: u32,
    /// `x-priority`.
    pub priority: i32,
}

/// A queue's counts at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSnapshot {
    /// Messages ready for delivery.
    pub ready: u64,
    /// Messages delivered and not yet settled.
    pub unacked: u64,
    /// Attached consumers.
    pub consumers: Vec<ConsumerSnapshot>,
    /// Body bytes of the ready messages.
    pub ready_bytes: u64,
    /// Body bytes of the delivered, unsettled messages.
    pub unacked_bytes: u64,
    /// Message counters since the queue was declared.
    pub counters: QueueCounters,
    /// Consumer utilisation between 0 and 1 (RabbitMQ's `consumer_utilisation`), whatever the
    /// consumer count; the API shows 0 without consumers, as RabbitMQ does.
    pub consumer_utilisation: f64,
}

/// A queue's message counters since it was declared (RabbitMQ's queue `message_stats`).
///
/// Plain integers kept inside the queue's state and bumped by the operations that already hold
/// its lock: counting costs an add on a cache line the operation has just written, no atomic
/// and no extra lock. Readers copy them under that lock ([`crate::Queue::snapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Messages enqueued (refused publishes are not counted, as in RabbitMQ).
    pub publish: u64,
    /// Deliveries to consumers that acknowledge.
    pub deliver: u64,
    /// Deliveries to `no_ack` consumers.
    pub deliver_no_ack: u64,
    /// `basic.get` answers that need an acknowledgement.
    pub get: u64,
    /// `basic.get` answers with `no_ack`.
    pub get_no_ack: u64,
    /// `basic.get` that found the queue empty.
    pub get_empty: u64,
    /// Acknowledgements.
    pub ack: u64,
    /// Deliveries and gets of messages delivered before.
    pub redeliver: u64,
}

impl QueueCounters {
    /// Adds `other` field by field (vhost and node aggregates).
    pub fn add(&mut self, other: &QueueCounters) {
        self.publish += other.publish;
        self.deliver += other.deliver;
        self.deliver_no_ack += other.deliver_no_ack;
        self.get += other.get;
        self.get_no_ack += other.get_no_ack;
        self.get_empty += other.get_empty;
        self.ack += other.ack;
        self.redeliver += other.redeliver;
    }
}
