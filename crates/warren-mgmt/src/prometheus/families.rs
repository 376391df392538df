//! The metric families Warren exposes: RabbitMQ's names, types and HELP texts (those of
//! `deps/rabbitmq_prometheus` in RabbitMQ 3.10), grouped as RabbitMQ groups them for
//! `/metrics/detailed?family=...`.

/// How a metric is scraped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonic total.
    Counter,
    /// RabbitMQ's `untyped` info metrics.
    Untyped,
}

impl Kind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Untyped => "untyped",
        }
    }
}

/// What a per-object metric is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A queue: labels `vhost`, `queue`.
    Queue,
    /// A channel: label `channel`.
    Channel,
    /// A connection: label `channel` (RabbitMQ labels connections' metrics so too).
    Connection,
}

/// One metric family measured per object.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// RabbitMQ's family name for `?family=` (`queue_coarse_metrics`, ...).
    pub group: &'static str,
    /// The metric name without the `rabbitmq_` (or `rabbitmq_detailed_`) prefix.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its HELP text.
    pub help: &'static str,
    /// What it is measured on.
    pub object: Object,
    /// Which value: an index into [`super::QueueRow`], [`super::ChannelRow`] or
    /// [`super::ConnectionRow`] values.
    pub field: usize,
}

const fn f(
    group: &'static str,
    name: &'static str,
    kind: Kind,
    help: &'static str,
    object: Object,
    field: usize,
) -> Family {
    Family {
        group,
        name,
        kind,
        help,
        object,
        field,
    }
}

use Kind::{Counter, Gauge};
use Object::{Channel, Connection, Queue};

/// Every per-object family, in RabbitMQ's order.
pub const FAMILIES: &[Family] = &[
    f(
        "queue_coarse_metrics",
        "queue_messages_ready",
        Gauge,
        "Messages ready to be delivered to consumers",
        Queue,
        0,
    ),
    f(
        "queue_coarse_metrics",
        "queue_messages_unacked",
        Gauge,
        "Messages delivered to consumers but not yet acknowledged",
        Queue,
        1,
    ),
    f(
        "queue_coarse_metrics",
        "queue_messages",
        Gauge,
        "Sum of ready and unacknowledged messages - total queue depth",
        Queue,
        2,
    ),
    f(
        "queue_consumer_count",
        "queue_consumers",
        Gauge,
        "Consumers on a queue",
        Queue,
        3,
    ),
    f(
        "queue_metrics",
        "queue_messages_bytes",
        Gauge,
        "Size in bytes of ready and unacknowledged messages",
        Queue,
        4,
    ),
    f(
        "queue_metrics",
        "queue_messages_ready_bytes",
        Gauge,
        "Size in bytes of ready messages",
        Queue,
        5,
    ),
    f(
        "queue_metrics",
        "queue_messages_unacked_bytes",
        Gauge,
        "Size in bytes of all unacknowledged messages",
        Queue,
        6,
    ),
    f(
        "channel_metrics",
        "channel_consumers",
        Gauge,
        "Consumers on a channel",
        Channel,
        11,
    ),
    f(
        "channel_metrics",
        "channel_messages_unacked",
        Gauge,
        "Delivered but not yet acknowledged messages",
        Channel,
        12,
    ),
    f(
        "channel_metrics",
        "channel_messages_unconfirmed",
        Gauge,
        "Published but not yet confirmed messages",
        Channel,
        13,
    ),
    f(
        "channel_metrics",
        "consumer_prefetch",
        Gauge,
        "Limit of unacknowledged messages for each consumer",
        Channel,
        14,
    ),
    f(
        "channel_metrics",
        "channel_prefetch",
        Gauge,
        "Total limit of unacknowledged messages for all consumers on a channel",
        Channel,
        15,
    ),
    f(
        "channel_exchange_metrics",
        "channel_messages_published_total",
        Counter,
        "Total number of messages published into an exchange on a channel",
        Channel,
        0,
    ),
    f(
        "channel_exchange_metrics",
        "channel_messages_confirmed_total",
        Counter,
        "Total number of messages published into an exchange and confirmed on the channel",
        Channel,
        1,
    ),
    f(
        "channel_exchange_metrics",
        "channel_messages_unroutable_returned_total",
        Counter,
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        Channel,
        2,
    ),
    f(
        "channel_exchange_metrics",
        "channel_messages_unroutable_dropped_total",
        Counter,
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        Channel,
        3,
    ),
    f(
        "channel_queue_metrics",
        "channel_get_ack_total",
        Counter,
        "Total number of messages fetched with basic.get in manual acknowledgement mode",
        Channel,
        6,
    ),
    f(
        "channel_queue_metrics",
        "channel_get_total",
        Counter,
        "Total number of messages fetched with basic.get in automatic acknowledgement mode",
        Channel,
        7,
    ),
    f(
        "channel_queue_metrics",
        "channel_messages_delivered_ack_total",
        Counter,
        "Total number of messages delivered to consumers in manual acknowledgement mode",
        Channel,
        4,
    ),
    f(
        "channel_queue_metrics",
        "channel_messages_delivered_total",
        Counter,
        "Total number of messages delivered to consumers in automatic acknowledgement mode",
        Channel,
        5,
    ),
    f(
        "channel_queue_metrics",
        "channel_messages_redelivered_total",
        Counter,
        "Total number of messages redelivered to consumers",
        Channel,
        10,
    ),
    f(
        "channel_queue_metrics",
        "channel_messages_acked_total",
        Counter,
        "Total number of messages acknowledged by consumers",
        Channel,
        9,
    ),
    f(
        "channel_queue_metrics",
        "channel_get_empty_total",
        Counter,
        "Total number of times basic.get operations fetched no message",
        Channel,
        8,
    ),
    f(
        "connection_coarse_metrics",
        "connection_incoming_bytes_total",
        Counter,
        "Total number of bytes received on a connection",
        Connection,
        0,
    ),
    f(
        "connection_coarse_metrics",
        "connection_outgoing_bytes_total",
        Counter,
        "Total number of bytes sent on a connection",
        Connection,
        2,
    ),
    f(
        "connection_metrics",
        "connection_incoming_packets_total",
        Counter,
        "Total number of packets received on a connection",
        Connection,
        1,
    ),
    f(
        "connection_metrics",
        "connection_outgoing_packets_total",
        Counter,
        "Total number of packets sent on a connection",
        Connection,
        3,
    ),
    f(
        "connection_metrics",
        "connection_channels",
        Gauge,
        "Channels on a connection",
        Connection,
        4,
    ),
    f(
        "channel_queue_exchange_metrics",
        "queue_messages_published_total",
        Counter,
        "Total number of messages published to queues",
        Queue,
        7,
    ),
];
