//! `/api/queues...`: list, show, declare (PUT), delete (`if-empty`, `if-unused`), purge
//! (`DELETE .../contents`) and `POST .../get`.
//!
//! Counts come from [`warren_broker::Queue::snapshot`], read under the queue's lock once per
//! queue per request; nothing is counted on the message path for the API.

use crate::auth::{Refusal, Resource};
use std::collections::HashMap;
use std::sync::Arc;
use warren_broker::Access;
use warren_broker::policy::Target;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};
use warren_broker::{Queue, QueueDeclare, Settle};
use warren_codec::FieldValue;
use warren_codec::ShortStr;

use super::{State, created, no_content, ok, readable_vhost, vhost};
use crate::auth::Authed;
use crate::json::{body_object, bool_field, json_to_table, str_field, table_to_json};
use crate::listing::{Params, reply_list};
use crate::{ApiError, Management, base64, history, stats};

/// The connection id the API acts as: no AMQP connection has id 0, so exclusive queues of
/// clients stay theirs (405 RESOURCE_LOCKED becomes 400 here, as in RabbitMQ).
pub const API_CONNECTION: u64 = 0;

fn queue_json(m: &Management, q: &Queue, details: bool) -> Value {
    let s = q.snapshot();
    let key = (q.vhost.clone(), q.name.to_string());
    let w = m.stats.read(|st| st.queues.get(&key).copied());
    let values = stats::queue_values(&s.counters, s.ready, s.unacked);
    let rates = w.map_or([0.0; 11], |w| w.rate);
    let mut message_stats = stats::message_stats(&stats::QUEUE_COUNTERS, &values, &rates);
    stats::add_deliver_get(&mut message_stats);
    let n = stats::QUEUE_COUNTERS.len();
    // The share of time the queue could deliver at once, as a moving average the queue keeps
    // (warren-broker's `queue::utilisation`); RabbitMQ shows 0 while no consumer is attached.
    let utilisation = if s.consumers.is_empty() {
        json!(0)
    } else {
        json!(s.consumer_utilisation)
    };
    let mut v = json!({
        "name": q.name.to_string(),
        "vhost": q.vhost,
        "durable": q.options.durable,
        "auto_delete": q.options.auto_delete,
        "exclusive": q.options.exclusive_owner.is_some(),
        "arguments": table_to_json(&q.options.arguments),
        "node": m.node,
        "state": "running",
        "type": "classic",
        "messages": s.ready + s.unacked,
        "messages_ready": s.ready,
        "messages_unacknowledged": s.unacked,
        "messages_details": stats::details(rates[n]),
        "messages_ready_details": stats::details(rates[n + 1]),
        "messages_unacknowledged_details": stats::details(rates[n + 2]),
        "message_bytes": s.ready_bytes + s.unacked_bytes,
        "message_bytes_ready": s.ready_bytes,
        "message_bytes_unacknowledged": s.unacked_bytes,
        "consumers": s.consumers.len(),
        "consumer_utilisation": utilisation,
        "consumer_capacity": utilisation,
        "exclusive_consumer_tag": null,
        "message_stats": message_stats,
    });
    if let Value::Object(o) = &mut v {
        // The policies applied now (RabbitMQ's `policy`, `operator_policy` and
        // `effective_policy_definition`; `null`, `null` and `{}` without any).
        let applied = m
            .broker
            .vhost(&q.vhost)
            .map(|vh| vh.applied_policy(Target::Queue, &q.name.to_string()))
            .unwrap_or_default();
        o.insert("policy".into(), json!(applied.policy_name()));
        o.insert("operator_policy".into(), json!(applied.operator_name()));
        o.insert(
            "effective_policy_definition".into(),
            Value::Object(applied.definition()),
        );
    }
    if details && let Value::Object(o) = &mut v {
        let consumers: Vec<Value> = s
            .consumers
            .iter()
            .map(|c| {
                json!({
                    "consumer_tag": c.tag.to_string(),
                    "ack_required": c.ack_required,
                    "exclusive": c.exclusive,
                    "prefetch_count": c.prefetch,
                    "arguments": if c.priority != 0 { json!({"x-priority": c.priority}) } else { json!({}) },
                    "channel_details": {"number": c.channel, "connection_name": connection_name(m, c.connection)},
                    "queue": {"name": q.name.to_string(), "vhost": q.vhost},
                })
            })
            .collect();
        o.insert("consumer_details".into(), Value::Array(consumers));
        o.insert("deliveries".into(), json!([]));
        o.insert("incoming".into(), json!([]));
    }
    v
}

/// The name of the connection with that id, for consumer listings.
pub fn connection_name(m: &Management, id: u64) -> String {
    m.connections
        .list()
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.name)
        .unwrap_or_default()
}

fn queues_of(m: &Management, vhost_name: &str) -> Vec<Arc<Queue>> {
    let Some(vh) = m.broker.vhost(vhost_name) else {
        return Vec::new();
    };
    let mut qs: Vec<Arc<Queue>> = vh.topology().queues().cloned().collect();
    qs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    qs
}

/// `GET /api/queues`.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let mut out = Vec::new();
    for vh in m.broker.vhosts() {
        if user.lists(&vh.name) {
            out.extend(
                queues_of(m, &vh.name)
                    .iter()
                    .map(|q| queue_json(m, q, false)),
            );
        }
    }
    Ok(ok(reply_list(Value::Array(out), &params)?))
}

/// `GET /api/queues/{vhost}`.
pub async fn list_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    readable_vhost(m, &user, &v)?;
    Ok(ok(reply_list(
        Value::Array(
            queues_of(m, &v)
                .iter()
                .map(|q| queue_json(m, q, false))
                .collect(),
        ),
        &params,
    )?))
}

fn find(m: &Management, v: &str, name: &str) -> Result<Arc<Queue>, ApiError> {
    let vh = vhost(m, v)?;
    let q = vh.topology().queue(name.as_bytes()).cloned();
    q.ok_or(ApiError::NotFound)
}

/// `GET /api/queues/{vhost}/{name}`.
pub async fn show(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let q = find(m, &v, &name)?;
    user.require_vhost(&v)?;
    let mut hq = history::Query::from_params(&params)?;
    // RabbitMQ's queue endpoints round the lengths range up (`range_ceil`).
    if let Some(l) = &mut hq.lengths {
        l.ceil = true;
    }
    let mut body = queue_json(m, &q, true);
    if hq != history::Query::default() {
        let key = (v.clone(), name.clone());
        let ring = m.stats.read(|s| s.history.queues.get(&key).cloned());
        let now = warren_broker::now_ms();
        let n = stats::QUEUE_COUNTERS.len();
        history::apply(
            &mut body,
            ring.as_ref(),
            &hq,
            now,
            (&stats::QUEUE_COUNTERS, 0),
            Some((None, n)),
        );
    }
    Ok(ok(body))
}

/// `PUT /api/queues/{vhost}/{name}`: declares; 201 when created, 204 when it existed with the
/// same properties, 400 with AMQP's text when they differ.
pub async fn put(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let vh = readable_vhost(m, &user, &v)?;
    let b = body_object(&body)?;
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::NotFound);
    }
    user.require_access(
        &v,
        Access::Configure,
        Resource::Queue,
        &name,
        Refusal::AccessRefused,
    )?;
    let arguments = json_to_table(b.get("arguments"))?;
    // RabbitMQ's API declares through `rabbit_channel`, so its extra check applies: creating a
    // queue with a dead-letter exchange needs read on the queue and write on that exchange.
    if vh.topology().queue(name.as_bytes()).is_none()
        && let Some(FieldValue::LongStr(dlx)) = arguments.get("x-dead-letter-exchange")
    {
        user.require_access(
            &v,
            Access::Read,
            Resource::Queue,
            &name,
            Refusal::AccessRefused,
        )?;
        user.require_access(
            &v,
            Access::Write,
            Resource::Exchange,
            &String::from_utf8_lossy(dlx.as_bytes()),
            Refusal::AccessRefused,
        )?;
    }
    let declared = vh
        .declare_queue(QueueDeclare {
            name: ShortStr::from(name.as_str()),
            passive: false,
            durable: bool_field(&b, "durable", true)?,
            exclusive: false,
            auto_delete: bool_field(&b, "auto_delete", false)?,
            arguments,
            connection: API_CONNECTION,
        })
        .map_err(ApiError::from_broker)?;
    Ok(created(declared.created))
}

/// `DELETE /api/queues/{vhost}/{name}` with optional `if-empty` and `if-unused`.
pub async fn remove(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    let vh = readable_vhost(m, &user, &v)?;
    let q = find(m, &v, &name)?;
    user.require_access(
        &v,
        Access::Configure,
        Resource::Queue,
        &name,
        Refusal::AccessRefused,
    )?;
    let flag = |k: &str| params.get(k).is_some_and(|x| x == "true");
    let (ready, consumers) = q.counts();
    if flag("if-empty") && ready > 0 {
        return Err(ApiError::BadRequest(format!("{} not empty", q.describe())));
    }
    if flag("if-unused") && consumers > 0 {
        return Err(ApiError::BadRequest(format!("{} in use", q.describe())));
    }
    vh.remove_queue(&q);
    Ok(no_content())
}

/// `DELETE /api/queues/{vhost}/{name}/contents`: purge.
pub async fn purge(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let m = &state.0;
    readable_vhost(m, &user, &v)?;
    let q = find(m, &v, &name)?;
    user.require_access(
        &v,
        Access::Read,
        Resource::Queue,
        &name,
        Refusal::AccessRefused,
    )?;
    // A purge may read spilled segments and stored entries: off the runtime's threads.
    tokio::task::spawn_blocking(move || q.purge())
        .await
        .map_err(|e| ApiError::BadRequest(format!("purge stopped: {e}")))?;
    Ok(no_content())
}

/// `POST /api/queues/{vhost}/{name}/get`: `count`, `ackmode` (`ack_requeue_true`,
/// `ack_requeue_false`, `reject_requeue_true`, `reject_requeue_false`), `encoding` (`auto` or
/// `base64`), optional `truncate`.
pub async fn get_messages(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let m = &state.0;
    readable_vhost(m, &user, &v)?;
    let q = find(m, &v, &name)?;
    user.require_access(
        &v,
        Access::Read,
        Resource::Queue,
        &name,
        Refusal::ChannelText,
    )?;
    let b = body_object(&body)?;
    let count = b
        .get("count")
        .and_then(|c| {
            c.as_u64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or_else(|| ApiError::BadRequest("count not present".into()))?;
    let requeue = match str_field(&b, "ackmode") {
        Some("ack_requeue_true" | "reject_requeue_true") => true,
        Some("ack_requeue_false" | "reject_requeue_false") => false,
        _ => return Err(ApiError::BadRequest("ackmode not present".into())),
    };
    let base64_always = match str_field(&b, "encoding") {
        Some("auto") => false,
        Some("base64") => true,
        _ => return Err(ApiError::BadRequest("encoding not present".into())),
    };
    let truncate = b
        .get("truncate")
        .and_then(Value::as_u64)
        .map(|t| t as usize);
    // A get may wait for a spilled segment or read stored entries: off the runtime's threads.
    let taken = tokio::task::spawn_blocking(move || {
        let mut taken = Vec::new();
        let mut held = Vec::new();
        for _ in 0..count {
            // Requeued messages are held until the end, as RabbitMQ's channel holds them, so
            // one request does not read the same message twice.
            let Some(got) = q.get(!requeue) else {
                break;
            };
            if requeue {
                held.push(got.seq);
            }
            taken.push(got);
        }
        if !held.is_empty() {
            q.settle(&held, Settle::Requeue);
        }
        taken
    })
    .await
    .map_err(|e| ApiError::BadRequest(format!("get stopped: {e}")))?;
    if (taken.len() as u64) < count {
        m.stats.count_api(&v, "get_empty", 1);
    }
    let mut out = Vec::new();
    for got in taken {
        m.stats
            .count_api(&v, if requeue { "get" } else { "get_no_ack" }, 1);
        if got.redelivered {
            m.stats.count_api(&v, "redeliver", 1);
        }
        let body = &got.message.body;
        let shown = &body[..truncate.map_or(body.len(), |t| t.min(body.len()))];
        let (payload, encoding) = match std::str::from_utf8(shown) {
            Ok(text) if !base64_always => (text.to_string(), "string"),
            _ => (base64::encode(shown), "base64"),
        };
        let properties = match got.message.properties.decode() {
            Ok(p) => crate::api::exchanges::properties_json(&p),
            Err(_) => json!({}),
        };
        out.push(json!({
            "payload_bytes": body.len(),
            "redelivered": got.redelivered,
            "exchange": got.message.exchange.to_string(),
            "routing_key": got.message.routing_key.to_string(),
            "message_count": got.remaining,
            "properties": properties,
            "payload": payload,
            "payload_encoding": encoding,
        }));
    }
    Ok(ok(Value::Array(out)))
}
