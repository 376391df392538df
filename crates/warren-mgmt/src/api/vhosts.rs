//! `/api/vhosts` and `/api/vhosts/{vhost}`.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};

use super::{State, created, no_content, ok};
use crate::auth::Authed;
use crate::counters::CHANNEL_COUNTERS;
use crate::json::body_object;
use crate::listing::{Params, reply_list};
use crate::{ApiError, Management, history, stats};

fn vhost_json(m: &Management, name: &str) -> Value {
    let w = m.stats.read(|s| s.vhosts.get(name).copied());
    let (mut ready, mut unacked) = (0, 0);
    if let Some(vh) = m.broker.vhost(name) {
        let queues: Vec<_> = vh.topology().queues().cloned().collect();
        for q in queues {
            let s = q.snapshot();
            ready += s.ready;
            unacked += s.unacked;
        }
    }
    let mut v = json!({
        "name": name,
        "description": "",
        "tags": [],
        "metadata": {"description": "", "tags": []},
        "tracing": false,
        "default_queue_type": "undefined",
        "cluster_state": {m.node.clone(): "running"},
        "messages": ready + unacked,
        "messages_details": stats::details(stats::depth_rate(w.as_ref(), 0)),
        "messages_ready": ready,
        "messages_ready_details": stats::details(stats::depth_rate(w.as_ref(), 1)),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": stats::details(stats::depth_rate(w.as_ref(), 2)),
        "message_stats": w.as_ref().map_or(json!({}), stats::aggregate_message_stats),
    });
    // Socket bytes appear once the vhost had an AMQP connection, as in RabbitMQ.
    if let (Some(w), Value::Object(o)) = (w.filter(|w| w.last[stats::AGG - 2] > 0), &mut v) {
        let (recv, send) = (stats::AGG - 2, stats::AGG - 1);
        o.insert("recv_oct".into(), json!(w.last[recv]));
        o.insert("recv_oct_details".into(), stats::details(w.rate[recv]));
        o.insert("send_oct".into(), json!(w.last[send]));
        o.insert("send_oct_details".into(), stats::details(w.rate[send]));
    }
    v
}

/// `GET /api/vhosts`.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let out: Vec<Value> = m
        .broker
        .vhosts()
        .iter()
        .filter(|v| user.sees_vhost(&v.name))
        .map(|v| vhost_json(m, &v.name))
        .collect();
    Ok(ok(reply_list(Value::Array(out), &params)?))
}

/// `GET /api/vhosts/{vhost}`.
pub async fn show(
    state: State,
    user: Authed,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    m.broker.vhost(&name).ok_or(ApiError::NotFound)?;
    if !user.sees_vhost(&name) {
        return Err(ApiError::NotAuthorised(
            "User not authorised to access virtual host".into(),
        ));
    }
    let hq = history::Query::from_params(&params)?;
    let mut body = vhost_json(m, &name);
    if hq != history::Query::default() {
        let ring = m.stats.read(|s| s.history.vhosts.get(&name).cloned());
        history::apply(
            &mut body,
            ring.as_ref(),
            &hq,
            warren_broker::now_ms(),
            (&CHANNEL_COUNTERS, 0),
            Some((None, CHANNEL_COUNTERS.len())),
        );
    }
    Ok(ok(body))
}

/// `PUT /api/vhosts/{vhost}`: 201 when new, 204 when it existed. As RabbitMQ's `put_vhost`,
/// a new vhost gives the user who created it full permissions on it.
pub async fn put(
    state: State,
    user: Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    body_object(&body)?;
    let new = state.0.broker.add_vhost_live(&name)?;
    if new {
        // RabbitMQ grants the user who created a vhost full permissions on it
        // (`rabbit_vhost:maybe_grant_full_permissions`).
        state
            .0
            .broker
            .set_permissions_live(&user.0.name, &name, [".*", ".*", ".*"])?;
    }
    Ok(created(new))
}

/// `DELETE /api/vhosts/{vhost}`: the vhost, everything in it, and its connections.
pub async fn remove(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let m = &state.0;
    m.broker.delete_vhost_live(&name)?;
    for c in m.connections.list() {
        if c.vhost == name {
            m.connections.close(&c.name, "vhost deleted");
        }
    }
    Ok(no_content())
}
