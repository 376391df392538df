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

use super::{State, no_content, ok, readable_vhost, vhost};
use crate::auth::Authed;
use crate::counters::CHANNEL_COUNTERS;
use crate::listing::{Params, reply_list, reply_list_unpaged};
use crate::{ApiError, ConnectionInfo, Management, history, stats};

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
        "state": connection_state(m, c),
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

/// RabbitMQ's connection `state` (`rabbit_reader`'s `i(state)`): `blocked` once a publish made
/// under a resource alarm held it, `blocking` while an alarm is set and it has not published
/// since, `running` otherwise.
fn connection_state(m: &Management, c: &ConnectionInfo) -> &'static str {
    if c.stats.blocked.get() != 0 {
        "blocked"
    } else if (m.memory_alarm)() || (m.disk_alarm)() {
        "blocking"
    } else {
        "running"
    }
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
    readable_vhost(m, &user, &v)?;
    Ok(ok(reply_list_unpaged(
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

/// The connection named `name`, if `user` may see it (`delete`: close it). As RabbitMQ's
/// `is_authorized_user`: the connection's own user may; otherwise reading needs `monitoring`
/// and closing `administrator`, and someone else's connection is 401 "User not authorised to
/// access object" (not 404: RabbitMQ checks before it looks the object up). An unknown name is
/// 404 to a privileged user and 500 without a body to anyone else, as RabbitMQ 3.10, whose
/// owner check crashes on the missing connection.
fn find(
    m: &Management,
    user: &Authed,
    name: &str,
    delete: bool,
) -> Result<ConnectionInfo, ApiError> {
    let privileged = if delete {
        user.is_admin()
    } else {
        user.is_monitor()
    };
    let c = m
        .connections
        .list()
        .into_iter()
        .find(|c| c.name == name)
        .ok_or(if privileged {
            ApiError::NotFound
        } else {
            ApiError::Crash
        })?;
    if privileged || c.user == user.0.name {
        Ok(c)
    } else {
        Err(ApiError::NotAuthorised(
            "User not authorised to access object".into(),
        ))
    }
}

/// `GET /api/connections/{name}`; `data_rates_age`/`data_rates_incr` add the history of
/// `recv_oct` and `send_oct` (RabbitMQ's `coarse_conn_stats` range).
pub async fn show(
    state: State,
    user: Authed,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let c = find(m, &user, &name, false)?;
    let hq = history::Query::from_params(&params)?;
    let mut body = connection_json(m, &c);
    if hq.data_rates.is_some() {
        let ring = m.stats.read(|s| s.history.connections.get(&c.id).cloned());
        // Indices in the connection's sampled values: recv_oct, recv_cnt, send_oct, send_cnt.
        let names: [(&str, &[usize]); 2] = [("recv_oct", &[0]), ("send_oct", &[2])];
        history::annotate(
            &mut body,
            ring.as_ref(),
            &names,
            hq.data_rates,
            warren_broker::now_ms(),
        );
    }
    Ok(ok(body))
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
    find(m, &user, &name, true)?;
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
    let c = find(&state.0, &user, &name, false)?;
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

/// `GET /api/vhosts/{vhost}/channels`: 404 for an unknown vhost, 401 without access to it;
/// then, as `/api/channels`, a `management` user sees only its own.
pub async fn channels_of_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    readable_vhost(m, &user, &v)?;
    let conns: Vec<ConnectionInfo> = visible(m, &user)
        .into_iter()
        .filter(|c| c.vhost == v)
        .collect();
    Ok(ok(reply_list_unpaged(channels_json(m, &conns), &params)?))
}

/// `GET /api/channels/{name}`: one channel, named `"<connection name> (<number>)"`;
/// `msg_rates_age`/`msg_rates_incr` add the history of its `message_stats`.
pub async fn channel(
    state: State,
    user: Authed,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let (conn, number) = name
        .rsplit_once(" (")
        .and_then(|(c, n)| Some((c, n.strip_suffix(')')?.parse::<u16>().ok()?)))
        .ok_or(ApiError::NotFound)?;
    let c = m
        .connections
        .list()
        .into_iter()
        .find(|c| c.name == conn)
        .ok_or(ApiError::NotFound)?;
    // RabbitMQ checks the channel's user before its existence: someone else's channel is 401.
    if !user.is_monitor() && c.user != user.0.name {
        return Err(ApiError::NotAuthorised(
            "User not authorised to access object".into(),
        ));
    }
    let stats = c
        .channels
        .iter()
        .position(|&n| n == number)
        .and_then(|i| c.channel_stats.get(i).cloned())
        .ok_or(ApiError::NotFound)?;
    let hq = history::Query::from_params(&params)?;
    let id = c.id;
    let one = ConnectionInfo {
        channels: vec![number],
        channel_stats: vec![stats],
        ..c
    };
    let mut body = match channels_json(m, &[one]) {
        Value::Array(mut list) if !list.is_empty() => list.swap_remove(0),
        _ => return Err(ApiError::NotFound),
    };
    if hq.msg_rates.is_some() {
        let ring = m
            .stats
            .read(|s| s.history.channels.get(&(id, number)).cloned());
        history::apply(
            &mut body,
            ring.as_ref(),
            &hq,
            warren_broker::now_ms(),
            (&CHANNEL_COUNTERS, 0),
            None,
        );
    }
    Ok(ok(body))
}

/// The consumers of `vhost_name`; a user who is not `monitoring` sees only those on its own
/// connections (RabbitMQ's `rabbit_mgmt_wm_consumers:filter_user`).
fn consumers_of(
    m: &Management,
    user: &Authed,
    owners: &HashMap<u64, ConnectionInfo>,
    vhost_name: &str,
) -> Vec<Value> {
    let Some(vh) = m.broker.vhost(vhost_name) else {
        return Vec::new();
    };
    let queues: Vec<_> = vh.topology().queues().cloned().collect();
    let mut out = Vec::new();
    for q in queues {
        for c in q.snapshot().consumers {
            let owner = owners.get(&c.connection);
            let owner_user = owner.map_or("", |o| o.user.as_str());
            if !user.is_monitor() && owner_user != user.0.name {
                continue;
            }
            out.push(json!({
                "consumer_tag": c.tag.to_string(),
                "ack_required": c.ack_required,
                "exclusive": c.exclusive,
                "prefetch_count": c.prefetch,
                "active": true,
                "activity_status": "up",
                "arguments": if c.priority != 0 { json!({"x-priority": c.priority}) } else { json!({}) },
                "channel_details": {
                    "name": owner.map(|o| format!("{} ({})", o.name, c.channel)),
                    "number": c.channel,
                    "connection_name": owner.map(|o| o.name.clone()),
                    "peer_host": owner.map(|o| o.peer.ip().to_string()),
                    "peer_port": owner.map(|o| o.peer.port()),
                    "user": owner_user,
                    "node": m.node,
                },
                "queue": {"name": q.name.to_string(), "vhost": vhost_name},
            }));
        }
    }
    out
}

/// `GET /api/consumers`: every vhost's, filtered by user as [`consumers_of`] says.
pub async fn consumers(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let owners = owners(m);
    let mut out = Vec::new();
    for vh in m.broker.vhosts() {
        out.extend(consumers_of(m, &user, &owners, &vh.name));
    }
    Ok(ok(reply_list_unpaged(Value::Array(out), &params)?))
}

/// `GET /api/consumers/{vhost}`: 404 for an unknown vhost; any management user may ask (as in
/// RabbitMQ, access to the vhost is not checked: the user filter applies).
pub async fn consumers_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    vhost(&state.0, &v)?;
    let owners = owners(&state.0);
    Ok(ok(reply_list_unpaged(
        Value::Array(consumers_of(&state.0, &user, &owners, &v)),
        &params,
    )?))
}

/// The open connections by id, to name a consumer's channel and its user.
fn owners(m: &Management) -> HashMap<u64, ConnectionInfo> {
    m.connections
        .list()
        .into_iter()
        .map(|c| (c.id, c))
        .collect()
}
