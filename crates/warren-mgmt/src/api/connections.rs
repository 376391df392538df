//! `/api/connections...`, `/api/channels` and `/api/consumers`.
//!
//! Connections are the server's ([`crate::Connections`]), with their open channel numbers;
//! consumers are read from the queues. A channel's prefetch and unacknowledged count live in
//! its connection task and are not shown yet (docs/management-api.md).

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::{State, no_content, ok, vhost};
use crate::auth::Authed;
use crate::listing::{Params, reply_list};
use crate::{ApiError, ConnectionInfo, Management, stats};

fn connection_json(m: &Management, c: &ConnectionInfo) -> Value {
    // Counts are read live; rates come from the last sample.
    let io = c.stats.counters();
    let rates = m
        .stats
        .read(|s| s.connections.get(&c.id).map(|w| w.rate))
        .unwrap_or_default();
    json!({
        "name": c.name,
        "node": m.node,
        "user": c.user,
        "vhost": c.vhost,
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "host": c.local.ip().to_string(),
        "port": c.local.port(),
        "protocol": "AMQP 0-9-1",
        "type": "network",
        "state": "running",
        "ssl": false,
        "auth_mechanism": "PLAIN",
        "connected_at": c.connected_at_ms,
        "channels": c.channels.len(),
        "recv_oct": io[0],
        "recv_oct_details": stats::details(rates[0]),
        "recv_cnt": io[1],
        "send_oct": io[2],
        "send_oct_details": stats::details(rates[2]),
        "send_cnt": io[3],
        "client_properties": {},
    })
}

fn visible(m: &Management, user: &Authed) -> Vec<ConnectionInfo> {
    let mut list: Vec<ConnectionInfo> = m
        .connections
        .list()
        .into_iter()
        .filter(|c| user.is_monitor() || c.user == user.0.name)
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// `GET /api/connections`.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    Ok(ok(reply_list(
        Value::Array(
            visible(m, &user)
                .iter()
                .map(|c| connection_json(m, c))
                .collect(),
        ),
        &params,
    )?))
}

/// `GET /api/vhosts/{vhost}/connections`.
pub async fn of_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    vhost(m, &v)?;
    user.require_vhost(&v)?;
    Ok(ok(reply_list(
        Value::Array(
            visible(m, &user)
                .iter()
                .filter(|c| c.vhost == v)
                .map(|c| connection_json(m, c))
                .collect(),
        ),
        &params,
    )?))
}

fn find(m: &Management, user: &Authed, name: &str) -> Result<ConnectionInfo, ApiError> {
    visible(m, user)
        .into_iter()
        .find(|c| c.name == name)
        .ok_or(ApiError::NotFound)
}

/// `GET /api/connections/{name}`.
pub async fn show(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let c = find(m, &user, &name)?;
    Ok(ok(connection_json(m, &c)))
}

/// `DELETE /api/connections/{name}`: closes it with 320 CONNECTION_FORCED, the `X-Reason`
/// header as the reason (RabbitMQ's default text otherwise).
pub async fn close(
    state: State,
    user: Authed,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let c = find(m, &user, &name)?;
    if !user.is_admin() && c.user != user.0.name {
        return Err(ApiError::NotAuthorised("Access refused.".into()));
    }
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin");
    if !m.connections.close(&name, reason) {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}

/// Consumers per (connection id, channel number), from every queue's snapshot.
fn consumer_counts(m: &Management) -> HashMap<(u64, u16), usize> {
    let mut counts = HashMap::new();
    for vh in m.broker.vhosts() {
        let queues: Vec<_> = vh.topology().queues().cloned().collect();
        for q in queues {
            for c in q.snapshot().consumers {
                *counts.entry((c.connection, c.channel)).or_insert(0) += 1;
            }
        }
    }
    counts
}

fn channels_json(m: &Management, conns: &[ConnectionInfo]) -> Value {
    let counts = consumer_counts(m);
    let mut out = Vec::new();
    for c in conns {
        for (&n, st) in c.channels.iter().zip(&c.channel_stats) {
            let rates = m
                .stats
                .read(|s| s.channels.get(&(c.id, n)).map(|w| w.rate))
                .unwrap_or_default();
            out.push(json!({
                "name": format!("{} ({n})", c.name),
                "number": n,
                "node": m.node,
                "user": c.user,
                "vhost": c.vhost,
                "state": "running",
                "consumer_count": counts.get(&(c.id, n)).copied().unwrap_or(0),
                "prefetch_count": st.prefetch_count.get(),
                "global_prefetch_count": st.global_prefetch_count.get(),
                "messages_unacknowledged": st.messages_unacknowledged.get(),
                "messages_unconfirmed": st.messages_unconfirmed.get(),
                "message_stats": stats::channel_message_stats(&st.counters(), &rates, false),
                "connection_details": {
                    "name": c.name,
                    "peer_host": c.peer.ip().to_string(),
                    "peer_port": c.peer.port(),
                },
            }));
        }
    }
    Value::Array(out)
}

/// `GET /api/connections/{name}/channels`.
pub async fn channels_of(
    state: State,
    user: Authed,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let c = find(&state.0, &user, &name)?;
    Ok(ok(reply_list(channels_json(&state.0, &[c]), &params)?))
}

/// `GET /api/channels`.
pub async fn channels(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let conns = visible(&state.0, &user);
    Ok(ok(reply_list(channels_json(&state.0, &conns), &params)?))
}

fn consumers_of(m: &Management, vhost_name: &str) -> Vec<Value> {
    let Some(vh) = m.broker.vhost(vhost_name) else {
        return Vec::new();
    };
    let queues: Vec<_> = vh.topology().queues().cloned().collect();
    let mut out = Vec::new();
    for q in queues {
        for c in q.snapshot().consumers {
            out.push(json!({
                "consumer_tag": c.tag.to_string(),
                "ack_required": c.ack_required,
                "exclusive": c.exclusive,
                "prefetch_count": c.prefetch,
                "active": true,
                "activity_status": "up",
                "arguments": if c.priority != 0 { json!({"x-priority": c.priority}) } else { json!({}) },
                "channel_details": {"number": c.channel, "connection_name": super::queues::connection_name(m, c.connection), "node": m.node},
                "queue": {"name": q.name.to_string(), "vhost": vhost_name},
            }));
        }
    }
    out
}

/// `GET /api/consumers`.
pub async fn consumers(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let mut out = Vec::new();
    for vh in m.broker.vhosts() {
        if user.lists(&vh.name) {
            out.extend(consumers_of(m, &vh.name));
        }
    }
    Ok(ok(reply_list(Value::Array(out), &params)?))
}

/// `GET /api/consumers/{vhost}`.
pub async fn consumers_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    vhost(&state.0, &v)?;
    user.require_vhost(&v)?;
    Ok(ok(reply_list(
        Value::Array(consumers_of(&state.0, &v)),
        &params,
    )?))
}
