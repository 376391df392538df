//! `/api/overview`, `/api/whoami`, `/api/cluster-name`, `/api/nodes`.

use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};

use super::{State, ok};
use crate::auth::Authed;
use crate::counters::CHANNEL_COUNTERS;
use crate::listing::Params;
use crate::{ApiError, Management, RABBITMQ_VERSION, history, stats};

fn exchange_types() -> Value {
    let t = |name: &str| json!({"name": name, "description": format!("AMQP {name} exchange, as per the AMQP specification"), "enabled": true});
    json!([t("direct"), t("fanout"), t("headers"), t("topic")])
}

/// Totals over the vhosts the user sees: (queues, exchanges, ready, unacked, consumers).
fn totals(m: &Management, user: &Authed) -> (u64, u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0, 0);
    for vh in m.broker.vhosts() {
        if !user.sees_vhost(&vh.name) {
            continue;
        }
        let queues: Vec<_> = {
            let topology = vh.topology();
            t.1 += topology.exchanges().count() as u64;
            topology.queues().cloned().collect()
        };
        for q in queues {
            let s = q.snapshot();
            t.0 += 1;
            t.2 += s.ready;
            t.3 += s.unacked;
            t.4 += s.consumers.len() as u64;
        }
    }
    t
}

fn listeners(m: &Management) -> Value {
    Value::Array(
        m.listeners
            .iter()
            .map(|l| {
                json!({"node": m.node, "protocol": l.protocol, "ip_address": l.addr.ip().to_string(), "port": l.addr.port()})
            })
            .collect(),
    )
}

/// `GET /api/overview`.
pub async fn overview(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let hq = history::Query::from_params(&params)?;
    let m = &state.0;
    let (queues, exchanges, ready, unacked, consumers) = totals(m, &user);
    let conns: Vec<_> = m
        .connections
        .list()
        .into_iter()
        .filter(|c| user.is_monitor() || c.user == user.0.name)
        .collect();
    let connections = conns.len();
    let channels: usize = conns.iter().map(|c| c.channels.len()).sum();
    // The node's totals for monitors; the sum of their vhosts' for everyone else.
    let node = m.stats.read(|s| {
        if user.is_monitor() {
            s.node
        } else {
            let mut sum = stats::Window::<{ stats::AGG }>::default();
            for (name, w) in &s.vhosts {
                if user.sees_vhost(name) {
                    for (s, v) in sum.last.iter_mut().zip(&w.last) {
                        *s += v;
                    }
                    for (s, v) in sum.rate.iter_mut().zip(&w.rate) {
                        *s += v;
                    }
                }
            }
            sum
        }
    });
    let mut body = json!({
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "Warren",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": m.node,
        "erlang_version": "none",
        "erlang_full_version": "Warren (Rust)",
        "disable_stats": false,
        "enable_queue_totals": false,
        "message_stats": stats::aggregate_message_stats(&node),
        "queue_totals": {
            "messages": ready + unacked,
            "messages_details": stats::details(stats::depth_rate(Some(&node), 0)),
            "messages_ready": ready,
            "messages_ready_details": stats::details(stats::depth_rate(Some(&node), 1)),
            "messages_unacknowledged": unacked,
            "messages_unacknowledged_details": stats::details(stats::depth_rate(Some(&node), 2)),
        },
        "object_totals": {
            "channels": channels,
            "connections": connections,
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "statistics_db_event_queue": 0,
        "node": m.node,
        "listeners": listeners(m),
        "contexts": [],
    });
    if hq != history::Query::default() {
        // The node's history for monitors; others see no samples (their overview sums the
        // vhosts they see, whose histories are not summed).
        let ring = if user.is_monitor() {
            Some(m.stats.read(|s| s.history.node.clone()))
        } else {
            None
        };
        history::apply(
            &mut body,
            ring.as_ref(),
            &hq,
            warren_broker::now_ms(),
            (&CHANNEL_COUNTERS, 0),
            Some((Some("queue_totals"), CHANNEL_COUNTERS.len())),
        );
    }
    Ok(ok(body))
}

/// `GET /api/whoami`.
pub async fn whoami(user: Authed) -> Response {
    ok(json!({"name": user.0.name, "tags": user.0.tags}))
}

/// `GET /api/cluster-name`.
pub async fn cluster_name(state: State, _user: Authed) -> Response {
    ok(json!({"name": state.0.node}))
}

/// Resident memory of this process in bytes, from `/proc/self/statm` (0 where there is none).
pub(crate) fn mem_used() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Open file descriptors of this process (0 where `/proc` is missing).
pub(crate) fn fd_used() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn node_json(m: &Management) -> Value {
    let disk = m.disk.get();
    json!({
        "mem_used": mem_used(),
        "fd_used": fd_used(),
        "name": m.node,
        "type": "disc",
        "running": true,
        "uptime": m.started.elapsed().as_millis() as u64,
        "mem_alarm": (m.memory_alarm)(),
        "disk_free_alarm": (m.disk_alarm)(),
        "disk_free": disk.free,
        "disk_free_limit": disk.limit,
        "partitions": [],
        "processors": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "exchange_types": exchange_types(),
        "rates_mode": "basic",
        "applications": [],
        "os_pid": std::process::id().to_string(),
    })
}

/// `GET /api/nodes`.
pub async fn nodes(state: State, user: Authed) -> Result<Response, ApiError> {
    user.require_monitor()?;
    Ok(ok(json!([node_json(&state.0)])))
}

/// `GET /api/nodes/{node}`.
pub async fn node(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    user.require_monitor()?;
    if name != state.0.node {
        return Err(ApiError::NotFound);
    }
    Ok(ok(node_json(&state.0)))
}
