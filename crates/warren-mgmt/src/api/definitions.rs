//! `GET /api/definitions` and `GET /api/definitions/{vhost}`: export in RabbitMQ's format.
//!
//! Import (`POST`) is not there yet (docs/management-api.md).

use axum::extract::Path;
use axum::response::Response;
use serde_json::{Value, json};
use warren_broker::VHost;
use warren_router::Destination;

use super::{State, ok, vhost};
use crate::auth::Authed;
use crate::json::table_to_json;
use crate::{ApiError, Management, RABBITMQ_VERSION};

/// Queues, exchanges and bindings of a vhost, as RabbitMQ exports them: no exclusive queues,
/// no predeclared exchanges, no implicit default-exchange bindings.
fn topology_of(vh: &VHost, with_vhost: bool) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let topology = vh.topology();
    let tag = |mut v: Value| {
        if with_vhost && let Value::Object(o) = &mut v {
            o.insert("vhost".into(), Value::String(vh.name.clone()));
        }
        v
    };
    let mut queues: Vec<Value> = topology
        .queues()
        .filter(|q| q.options.exclusive_owner.is_none())
        .map(|q| {
            tag(json!({
                "name": q.name.to_string(),
                "durable": q.options.durable,
                "auto_delete": q.options.auto_delete,
                "arguments": table_to_json(&q.options.arguments),
            }))
        })
        .collect();
    queues.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut exchanges: Vec<Value> = topology
        .exchanges()
        .filter(|x| !x.name.is_empty() && !x.name.as_bytes().starts_with(b"amq."))
        .map(|x| {
            tag(json!({
                "name": x.name.to_string(),
                "type": x.kind.as_str(),
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": table_to_json(&x.arguments),
            }))
        })
        .collect();
    exchanges.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let bindings: Vec<Value> = topology
        .bindings()
        .map(|b| {
            let (destination, kind) = match b.destination {
                Destination::Queue(q) => (q.to_string(), "queue"),
                Destination::Exchange(x) => (x.to_string(), "exchange"),
            };
            tag(json!({
                "source": b.source.to_string(),
                "destination": destination,
                "destination_type": kind,
                "routing_key": b.routing_key.to_string(),
                "arguments": table_to_json(b.arguments),
            }))
        })
        .collect();
    (queues, exchanges, bindings)
}

fn versions(m: &Management) -> Value {
    let _ = m;
    json!({
        "rabbit_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /api/definitions`: the whole broker (administrators only).
pub async fn export(state: State, user: Authed) -> Result<Response, ApiError> {
    user.require_admin()?;
    let m = &state.0;
    let mut out = versions(m);
    let users: Vec<Value> = m
        .broker
        .users()
        .iter()
        .map(|u| {
            let mut v = super::users::user_json(u);
            if let Value::Object(o) = &mut v {
                o.remove("tags");
                // Definitions carry tags as a list, as RabbitMQ 3.10 writes them.
                o.insert("tags".into(), json!(u.tags));
            }
            v
        })
        .collect();
    let mut vhosts = Vec::new();
    let mut permissions = Vec::new();
    let (mut queues, mut exchanges, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for vh in m.broker.vhosts() {
        vhosts.push(
            json!({"name": vh.name, "limits": [], "metadata": {"description": "", "tags": []}}),
        );
        let (q, x, b) = topology_of(&vh, true);
        queues.extend(q);
        exchanges.extend(x);
        bindings.extend(b);
    }
    for u in m.broker.users() {
        for v in &u.vhosts {
            permissions.push(
                json!({"user": u.name, "vhost": v, "configure": ".*", "write": ".*", "read": ".*"}),
            );
        }
    }
    if let Value::Object(o) = &mut out {
        o.insert("users".into(), Value::Array(users));
        o.insert("vhosts".into(), Value::Array(vhosts));
        o.insert("permissions".into(), Value::Array(permissions));
        o.insert("topic_permissions".into(), json!([]));
        o.insert("parameters".into(), json!([]));
        o.insert("global_parameters".into(), json!([]));
        o.insert("policies".into(), json!([]));
        o.insert("queues".into(), Value::Array(queues));
        o.insert("exchanges".into(), Value::Array(exchanges));
        o.insert("bindings".into(), Value::Array(bindings));
    }
    Ok(ok(out))
}

/// `GET /api/definitions/{vhost}`: one vhost's objects, without the `vhost` fields.
pub async fn export_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let vh = vhost(&state.0, &v)?;
    let (queues, exchanges, bindings) = topology_of(&vh, false);
    let mut out = versions(&state.0);
    if let Value::Object(o) = &mut out {
        o.insert("parameters".into(), json!([]));
        o.insert("policies".into(), json!([]));
        o.insert("queues".into(), Value::Array(queues));
        o.insert("exchanges".into(), Value::Array(exchanges));
        o.insert("bindings".into(), Value::Array(bindings));
    }
    Ok(ok(out))
}
