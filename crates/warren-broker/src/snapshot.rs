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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Messages ready for delivery.
    pub ready: u64,
    /// Messages delivered and not yet settled.
    pub unacked: u64,
    /// Attached consumers.
    pub consumers: Vec<ConsumerSnapshot>,
}
