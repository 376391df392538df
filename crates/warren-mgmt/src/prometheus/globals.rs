//! The node-wide counters of `/metrics` that RabbitMQ 3.10 keeps in `rabbit_global_counters`
//! and its core metrics (`rabbitmq_global_messages_*`, `rabbitmq_*_opened_total`, ...), as far
//! as Warren counts them. They come from the sampler's node totals (which keep the counts of
//! closed channels), so they move once per `collect_statistics_interval`, never down.
//!
//! Not served (docs/management-api.md, "Prometheus"): `received_confirm_total` (Warren does
//! not count publishes by confirm mode), the `dead_lettered_*` families, the queue lifecycle
//! totals, disk space and the Erlang-specific socket and allocator families.

use super::{Exposition, Kind};
use crate::Management;
use crate::counters::CHANNEL_COUNTERS;

/// A RabbitMQ `rabbit_global_counters` family: name, help, and which node total it is.
struct Global {
    name: &'static str,
    help: &'static str,
    /// Indices in [`CHANNEL_COUNTERS`] summed; empty for `routed_total`.
    of: &'static [usize],
    /// Whether RabbitMQ labels it by queue type as well as protocol.
    per_queue_type: bool,
}

const fn g(name: &'static str, help: &'static str, of: &'static [usize], q: bool) -> Global {
    Global {
        name,
        help,
        of,
        per_queue_type: q,
    }
}

/// In RabbitMQ's order. Indices: publish 0, confirm 1, return_unroutable 2, drop_unroutable 3,
/// deliver 4, deliver_no_ack 5, get 6, get_no_ack 7, get_empty 8, ack 9, redeliver 10.
const GLOBALS: [Global; 13] = [
    g(
        "rabbitmq_global_messages_acknowledged_total",
        "Total number of messages acknowledged by consumers",
        &[9],
        true,
    ),
    g(
        "rabbitmq_global_messages_confirmed_total",
        "Total number of messages confirmed to publishers",
        &[1],
        false,
    ),
    g(
        "rabbitmq_global_messages_delivered_consume_auto_ack_total",
        "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
        &[5],
        true,
    ),
    g(
        "rabbitmq_global_messages_delivered_consume_manual_ack_total",
        "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
        &[4],
        true,
    ),
    g(
        "rabbitmq_global_messages_delivered_get_auto_ack_total",
        "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
        &[7],
        true,
    ),
    g(
        "rabbitmq_global_messages_delivered_get_manual_ack_total",
        "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
        &[6],
        true,
    ),
    g(
        "rabbitmq_global_messages_delivered_total",
        "Total number of messages delivered to consumers",
        &[4, 5, 6, 7],
        true,
    ),
    g(
        "rabbitmq_global_messages_get_empty_total",
        "Total number of times basic.get operations fetched no message",
        &[8],
        true,
    ),
    g(
        "rabbitmq_global_messages_received_total",
        "Total number of messages received from publishers",
        &[0],
        false,
    ),
    g(
        "rabbitmq_global_messages_redelivered_total",
        "Total number of messages redelivered to consumers",
        &[10],
        true,
    ),
    g(
        "rabbitmq_global_messages_routed_total",
        "Total number of messages routed to queues or streams",
        &[],
        false,
    ),
    g(
        "rabbitmq_global_messages_unroutable_dropped_total",
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        &[3],
        false,
    ),
    g(
        "rabbitmq_global_messages_unroutable_returned_total",
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        &[2],
        false,
    ),
];

/// Writes the node-wide families.
pub fn render(m: &Management, out: &mut Exposition) {
    let (node, routed) = m.stats.read(|s| {
        let mut node = [0u64; CHANNEL_COUNTERS.len()];
        node.copy_from_slice(&s.node.last[..CHANNEL_COUNTERS.len()]);
        (node, s.exchanges.routed_total())
    });
    for fam in &GLOBALS {
        let value = if fam.of.is_empty() {
            routed
        } else {
            fam.of.iter().map(|&i| node[i]).sum()
        };
        out.family(fam.name, Kind::Counter, fam.help);
        let labels = if fam.per_queue_type {
            "protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\""
        } else {
            "protocol=\"amqp091\""
        };
        out.sample(fam.name, labels, value);
    }
    if let Some(l) = m.connections.lifecycle() {
        for (name, help, v) in [
            (
                "rabbitmq_connections_opened_total",
                "Total number of connections opened",
                l.connections_opened,
            ),
            (
                "rabbitmq_connections_closed_total",
                "Total number of connections closed or terminated",
                l.connections_closed,
            ),
            (
                "rabbitmq_channels_opened_total",
                "Total number of channels opened",
                l.channels_opened,
            ),
            (
                "rabbitmq_channels_closed_total",
                "Total number of channels closed",
                l.channels_closed,
            ),
        ] {
            out.family(name, Kind::Counter, help);
            out.sample(name, "", v);
        }
    }
    if let (_, Some(limit)) = m.memory_watermark.get() {
        let name = "rabbitmq_resident_memory_limit_bytes";
        out.family(name, Kind::Gauge, "Memory high watermark in bytes");
        out.sample(name, "", limit);
    }
}
