//! Consumers, and the sink through which a queue hands them deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use warren_codec::ShortStr;

use super::Queue;
use crate::Message;

/// A process-wide unique consumer id (tags are only unique per channel).
pub type ConsumerId = u64;

/// One message handed to a consumer (or returned by `basic.get`).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The consumer's channel.
    pub channel: u16,
    /// The consumer's tag.
    pub consumer_tag: ShortStr,
    /// The queue it came from, to settle it later.
    pub queue: Arc<Queue>,
    /// The message's position in that queue.
    pub seq: u64,
    /// The message.
    pub message: Arc<Message>,
    /// True when it was delivered before.
    pub redelivered: bool,
    /// True when no acknowledgement is expected.
    pub no_ack: bool,
}

/// Where a consumer's deliveries go: the server's connection task, in practice.
pub trait DeliverySink: Send + Sync {
    /// Takes one delivery. Must not block: it is called with the queue locked.
    fn deliver(&self, delivery: Delivery);
    /// The queue cancelled the consumer (the queue was deleted).
    fn cancelled(&self, channel: u16, consumer_tag: ShortStr);
    /// True while the sink holds as many undelivered messages as it wants: queues then keep
    /// messages (even for no-ack consumers) until the sink drains and asks them to dispatch
    /// again. This is what keeps a slow consumer's backlog in its queue, not in memory
    /// between the queue and the socket.
    fn saturated(&self) -> bool {
        false
    }
}

/// A channel's prefetch state, shared by all its consumers across queues.
#[derive(Debug)]
pub struct ChannelLimit {
    /// `basic.qos` with `global=true`: unacked deliveries allowed on the channel, 0 for no limit.
    pub global_prefetch: AtomicU32,
    /// Unacked consumer deliveries on the channel, counted by queues at dispatch and released by
    /// the channel when it settles them.
    pub unacked: AtomicU32,
    /// False after `channel.flow(active=false)`.
    pub active: AtomicBool,
}

impl Default for ChannelLimit {
    fn default() -> Self {
        ChannelLimit {
            global_prefetch: AtomicU32::new(0),
            unacked: AtomicU32::new(0),
            active: AtomicBool::new(true),
        }
    }
}

impl ChannelLimit {
    /// True when the channel may take one more consumer delivery.
    pub fn has_credit(&self) -> bool {
        if !self.active.load(Ordering::Acquire) {
            return false;
        }
        let limit = self.global_prefetch.load(Ordering::Relaxed);
        limit == 0 || self.unacked.load(Ordering::Relaxed) < limit
    }

    /// Releases `n` settled deliveries.
    pub fn release(&self, n: u32) {
        let _ = self
            .unacked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

/// A consumer attached to a queue.
pub struct Consumer {
    /// Unique id.
    pub id: ConsumerId,
    /// The tag the client knows it by.
    pub tag: ShortStr,
    /// Its channel.
    pub channel: u16,
    /// Its connection.
    pub connection: u64,
    /// Where deliveries go.
    pub sink: Arc<dyn DeliverySink>,
    /// Deliveries need no acknowledgement.
    pub no_ack: bool,
    /// Requested exclusive access to the queue.
    pub exclusive: bool,
    /// Per-consumer prefetch (`basic.qos` with `global=false`), 0 for no limit.
    pub prefetch: u32,
    /// The channel's shared limit.
    pub channel_limit: Arc<ChannelLimit>,
    /// `x-priority`: consumers of a higher priority are served first while they have credit.
    pub priority: i32,
    /// Unacked deliveries to this consumer from this queue.
    pub(crate) unacked: u32,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("id", &self.id)
            .field("tag", &self.tag)
            .field("channel", &self.channel)
            .field("no_ack", &self.no_ack)
            .field("prefetch", &self.prefetch)
            .field("priority", &self.priority)
            .field("unacked", &self.unacked)
            .finish()
    }
}

impl Consumer {
    /// A consumer with no unacked deliveries yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ConsumerId,
        tag: ShortStr,
        channel: u16,
        connection: u64,
        sink: Arc<dyn DeliverySink>,
        no_ack: bool,
        exclusive: bool,
        prefetch: u32,
        channel_limit: Arc<ChannelLimit>,
    ) -> Self {
        Consumer {
            id,
            tag,
            channel,
            connection,
            sink,
            no_ack,
            exclusive,
            prefetch,
            channel_limit,
            priority: 0,
            unacked: 0,
        }
    }

    /// The same consumer with `x-priority` set.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub(crate) fn has_credit(&self) -> bool {
        if self.sink.saturated() {
            return false;
        }
        if self.no_ack {
            return self.channel_limit.active.load(Ordering::Acquire);
        }
        (self.prefetch == 0 || self.unacked < self.prefetch) && self.channel_limit.has_credit()
    }
}
