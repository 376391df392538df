//! The node-wide counters of `/metrics` that RabbitMQ 3.10 keeps in `rabbit_global_counters`
//! and its core metrics (`rabbitmq_global_messages_*`, `rabbitmq_*_opened_total`, ...), as far
//! as Warren counts them. They come from the sampler's node totals (which keep the counts of
//! closed channels), so they move once per `collect_statistics_interval`, never down.
//!
//! Also the queue lifecycle totals (the broker's [`warren_broker::QueueTotals`]), free disk
//! space and its limit (the disk monitor's last reading) and the TCP socket gauges: RabbitMQ's
//! `sockets_used` counts the AMQP connections it accepted, and its socket limit is a share of
//! the file descriptor limit; Warren has no separate socket reservation, so its limit is the
//! file descriptor limit itself (docs/management-api.md, "Prometheus").
//!
//! Also `warren_spill_lost_messages_total`, Warren's own: messages a spill I/O error dropped.
//!
//! Not served: the `dead_lettered_*` families and the Erlang-specific allocator families.

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
    let (node, routed, received_confirm) = m.stats.read(|s| {
        let mut node = [0u64; CHANNEL_COUNTERS.len()];
        node.copy_from_slice(&s.node.last[..CHANNEL_COUNTERS.len()]);
        (node, s.exchanges.routed_total(), s.publish_confirm.total())
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
        if fam.name == "rabbitmq_global_messages_received_total" {
            // RabbitMQ's order: received_confirm follows received.
            let name = "rabbitmq_global_messages_received_confirm_total";
            out.family(
                name,
                Kind::Counter,
                "Total number of messages received from publishers expecting confirmations",
            );
            out.sample(name, "protocol=\"amqp091\"", received_confirm);
        }
    }
    let q = m.broker.queue_totals();
    for (name, help, v) in [
        (
            "rabbitmq_queues_declared_total",
            "Total number of queues declared",
            q.declared,
        ),
        (
            "rabbitmq_queues_created_total",
            "Total number of queues created",
            q.created,
        ),
        (
            "rabbitmq_queues_deleted_total",
            "Total number of queues deleted",
            q.deleted,
        ),
    ] {
        out.family(name, Kind::Counter, help);
        out.sample(name, "", v);
    }
    render_node(m, out);
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

/// Disk space and TCP sockets (RabbitMQ's `node_coarse_metrics` and `node_metrics`).
fn render_node(m: &Management, out: &mut Exposition) {
    let disk = m.disk.get();
    if let Some(free) = disk.free {
        let name = "rabbitmq_disk_space_available_bytes";
        out.family(name, Kind::Gauge, "Disk space available in bytes");
        out.sample(name, "", free);
    }
    let name = "rabbitmq_disk_space_available_limit_bytes";
    out.family(name, Kind::Gauge, "Free disk space low watermark in bytes");
    out.sample(name, "", disk.limit);
    let name = "rabbitmq_process_open_tcp_sockets";
    out.family(name, Kind::Gauge, "Open TCP sockets");
    out.sample(name, "", m.connections.list().len() as u64);
    let name = "rabbitmq_process_max_tcp_sockets";
    out.family(name, Kind::Gauge, "Open TCP sockets limit");
    out.sample(name, "", super::max_fds());
    // Warren's own (RabbitMQ has no spill area): docs/compatibility.md, "queues".
    let name = "warren_spill_lost_messages_total";
    out.family(
        name,
        Kind::Counter,
        "Messages dropped because their spilled segment could not be read back",
    );
    out.sample(name, "", m.broker.spill_lost_messages());
}
