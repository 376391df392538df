//! `/api/exchanges...`: list, show, declare (PUT), delete (`if-unused`) and `POST .../publish`.

use crate::auth::{Refusal, Resource};
use std::collections::HashMap;
use std::sync::Arc;
use warren_broker::Access;
use warren_broker::policy::Target;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Map, Value, json};
use warren_broker::{Message, VHost, now_ms};
use warren_codec::{BasicProperties, FieldValue, ShortStr};
use warren_router::ExchangeDef;

use super::{State, exchange_name, no_content, ok, readable_vhost, vhost};
use crate::auth::Authed;
use crate::json::{body_object, bool_field, json_to_table, str_field, table_to_json};
use crate::listing::{Params, reply_list};
use crate::stats::{Window, details};
use crate::{ApiError, Management, base64, history};

/// An exchange's `message_stats`: `publish_in` once anything was published into it,
/// `publish_out` once a publish reached a queue (RabbitMQ shows each only then).
fn exchange_message_stats(w: Option<Window<2>>) -> Value {
    let mut o = Map::new();
    if let Some(w) = w {
        for (i, n) in ["publish_in", "publish_out"].into_iter().enumerate() {
            if w.last[i] > 0 {
                o.insert(n.into(), json!(w.last[i]));
                o.insert(format!("{n}_details"), details(w.rate[i]));
            }
        }
    }
    Value::Object(o)
}

/// The sampler's windows of `names` in `vh`, read under its lock and nothing else.
fn windows<'a>(
    m: &Management,
    vh: &VHost,
    names: impl Iterator<Item = &'a ExchangeDef>,
) -> Vec<Option<Window<2>>> {
    let names: Vec<String> = names.map(|x| x.name.to_string()).collect();
    m.stats.read(|s| {
        names
            .iter()
            .map(|n| s.exchanges.get(&vh.name, n).copied())
            .collect()
    })
}

fn exchange_json(vh: &VHost, x: &ExchangeDef, w: Option<Window<2>>) -> Value {
    let vhost = &vh.name;
    let mut v = json!({
        "name": x.name.to_string(),
        "vhost": vhost,
        "type": x.kind.as_str(),
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": table_to_json(&x.arguments),
        "message_stats": exchange_message_stats(w),
        "user_who_performed_action": if x.name.is_empty() || x.name.as_bytes().starts_with(b"amq.") { "rmq-internal" } else { "" },
    });
    // RabbitMQ shows `policy` on an exchange only when one applies.
    let applied = vh.applied_policy(Target::Exchange, &x.name.to_string());
    if let (Some(name), Value::Object(o)) = (applied.policy_name(), &mut v) {
        o.insert("policy".into(), json!(name));
    }
    v
}

fn exchanges_of(m: &Management, vh: &VHost) -> Vec<Value> {
    let topology = vh.topology();
    let mut xs: Vec<&ExchangeDef> = topology.exchanges().collect();
    xs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let ws = windows(m, vh, xs.iter().copied());
    xs.into_iter()
        .zip(ws)
        .map(|(x, w)| exchange_json(vh, x, w))
        .collect()
}

/// `GET /api/exchanges`.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for vh in state.0.broker.vhosts() {
        if user.lists(&vh.name) {
            out.extend(exchanges_of(&state.0, &vh));
        }
    }
    Ok(ok(reply_list(Value::Array(out), &params)?))
}

/// `GET /api/exchanges/{vhost}`.
pub async fn list_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    Ok(ok(reply_list(
        Value::Array(exchanges_of(&state.0, &vh)),
        &params,
    )?))
}

fn find(m: &Management, v: &str, name: &str) -> Result<(Arc<VHost>, Value), ApiError> {
    let vh = vhost(m, v)?;
    let topology = vh.topology();
    let def = topology
        .exchange(exchange_name(name).as_bytes())
        .ok_or(ApiError::NotFound)?;
    let w = windows(m, &vh, std::iter::once(def)).pop().flatten();
    let x = exchange_json(&vh, def, w);
    drop(topology);
    Ok((vh, x))
}

/// `GET /api/exchanges/{vhost}/{name}`.
pub async fn show(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let (_, mut x) = find(&state.0, &v, &name)?;
    user.require_vhost(&v)?;
    let hq = history::Query::from_params(&params)?;
    if hq.msg_rates.is_some() {
        let key = (v.clone(), exchange_name(&name).to_string());
        let ring = state
            .0
            .stats
            .read(|s| s.history.exchanges.get(&key).cloned());
        let names = ["publish_in", "publish_out"];
        history::apply(&mut x, ring.as_ref(), &hq, now_ms(), (&names, 0), None);
    }
    Ok(ok(x))
}

/// `PUT /api/exchanges/{vhost}/{name}`: 201 when created, 204 when it existed.
pub async fn put(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    let b = body_object(&body)?;
    let name = exchange_name(&name);
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::NotAuthorised("Access refused.".into()));
    }
    let kind =
        str_field(&b, "type").ok_or_else(|| ApiError::BadRequest("type not present".into()))?;
    user.require_access(
        &v,
        Access::Configure,
        Resource::Exchange,
        name,
        Refusal::AccessRefused,
    )?;
    let existed = vh.topology().exchange(name.as_bytes()).is_some();
    let arguments = json_to_table(b.get("arguments"))?;
    // As over AMQP (the API declares through `rabbit_channel`): creating an exchange with an
    // alternate exchange needs read on it and write on the alternate.
    if !existed && let Some(FieldValue::LongStr(ae)) = arguments.get("alternate-exchange") {
        user.require_access(
            &v,
            Access::Read,
            Resource::Exchange,
            name,
            Refusal::AccessRefused,
        )?;
        user.require_access(
            &v,
            Access::Write,
            Resource::Exchange,
            &String::from_utf8_lossy(ae.as_bytes()),
            Refusal::AccessRefused,
        )?;
    }
    vh.declare_exchange(
        &ShortStr::from(name),
        &ShortStr::from(kind),
        false,
        bool_field(&b, "durable", true)?,
        bool_field(&b, "auto_delete", false)?,
        bool_field(&b, "internal", false)?,
        &arguments,
    )
    .map_err(ApiError::from_broker)?;
    Ok(super::created(!existed))
}

/// `DELETE /api/exchanges/{vhost}/{name}` with optional `if-unused`.
pub async fn remove(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (vh, _) = find(&state.0, &v, &name)?;
    user.require_vhost(&v)?;
    user.require_access(
        &v,
        Access::Configure,
        Resource::Exchange,
        exchange_name(&name),
        Refusal::AccessRefused,
    )?;
    let if_unused = params.get("if-unused").is_some_and(|x| x == "true");
    vh.delete_exchange(&ShortStr::from(exchange_name(&name)), if_unused)
        .map_err(ApiError::from_broker)?;
    Ok(no_content())
}

/// Message properties as the API shows them: RabbitMQ writes an empty set as `[]`.
pub fn properties_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut text = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            m.insert(k.into(), Value::String(v.to_string()));
        }
    };
    text("content_type", &p.content_type);
    text("content_encoding", &p.content_encoding);
    text("correlation_id", &p.correlation_id);
    text("reply_to", &p.reply_to);
    text("expiration", &p.expiration);
    text("message_id", &p.message_id);
    text("type", &p.kind);
    text("user_id", &p.user_id);
    text("app_id", &p.app_id);
    text("cluster_id", &p.cluster_id);
    if let Some(h) = &p.headers {
        m.insert("headers".into(), table_to_json(h));
    }
    if let Some(d) = p.delivery_mode {
        m.insert("delivery_mode".into(), d.into());
    }
    if let Some(d) = p.priority {
        m.insert("priority".into(), d.into());
    }
    if let Some(t) = p.timestamp {
        m.insert("timestamp".into(), t.into());
    }
    if m.is_empty() {
        json!([])
    } else {
        Value::Object(m)
    }
}

fn properties_from_json(v: Option<&Value>) -> Result<BasicProperties, ApiError> {
    let mut p = BasicProperties::default();
    let Some(Value::Object(m)) = v else {
        return Ok(p);
    };
    let text = |k: &str| m.get(k).and_then(Value::as_str).map(ShortStr::from);
    let small = |k: &str| -> Result<Option<u8>, ApiError> {
        match m.get(k) {
            None => Ok(None),
            Some(x) => x
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest(format!("{k} must be a small integer"))),
        }
    };
    p.content_type = text("content_type");
    p.content_encoding = text("content_encoding");
    p.correlation_id = text("correlation_id");
    p.reply_to = text("reply_to");
    p.expiration = text("expiration");
    p.message_id = text("message_id");
    p.kind = text("type");
    p.user_id = text("user_id");
    p.app_id = text("app_id");
    p.cluster_id = text("cluster_id");
    p.delivery_mode = small("delivery_mode")?;
    p.priority = small("priority")?;
    p.timestamp = m.get("timestamp").and_then(Value::as_u64);
    if m.contains_key("headers") {
        p.headers = Some(json_to_table(m.get("headers"))?);
    }
    Ok(p)
}

/// `POST /api/exchanges/{vhost}/{name}/publish`: `routing_key`, `payload`,
/// `payload_encoding` (`string` or `base64`), `properties`; answers `{"routed": bool}`.
pub async fn publish(
    state: State,
    user: Authed,
    Path((v, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (vh, _) = find(&state.0, &v, &name)?;
    user.require_vhost(&v)?;
    user.require_access(
        &v,
        Access::Write,
        Resource::Exchange,
        exchange_name(&name),
        Refusal::ChannelClosed,
    )?;
    let b = body_object(&body)?;
    let routing_key = str_field(&b, "routing_key")
        .ok_or_else(|| ApiError::BadRequest("routing_key not present".into()))?;
    if routing_key.len() > 255 {
        // An AMQP short string: it could not be delivered intact.
        return Err(ApiError::BadRequest(
            "routing_key longer than 255 bytes".into(),
        ));
    }
    let payload = str_field(&b, "payload")
        .ok_or_else(|| ApiError::BadRequest("payload not present".into()))?;
    let payload = match str_field(&b, "payload_encoding") {
        Some("string") => payload.as_bytes().to_vec(),
        Some("base64") => base64::decode(payload)
            .ok_or_else(|| ApiError::BadRequest("invalid base64 payload".into()))?,
        _ => return Err(ApiError::BadRequest("payload_encoding not present".into())),
    };
    let properties = properties_from_json(b.get("properties"))?;
    let exchange = ShortStr::from(exchange_name(&name));
    let routing_key = ShortStr::from(routing_key);
    let mut queues = Vec::new();
    {
        let topology = vh.topology();
        VHost::check_publish(&topology, &exchange).map_err(ApiError::from_broker)?;
        topology
            .route(
                exchange.as_bytes(),
                &[routing_key.as_bytes()],
                properties.headers.as_ref(),
                &mut queues,
            )
            .map_err(|e| ApiError::from_broker(e.into()))?;
    }
    let message = Message::new(
        exchange,
        routing_key,
        properties.to_raw(),
        bytes::Bytes::from(payload),
        now_ms(),
    )
    .map_err(ApiError::from_broker)?;
    let routed = !queues.is_empty();
    state.0.stats.count_api(&v, "publish", 1);
    state
        .0
        .stats
        .count_api_exchange(&v, exchange_name(&name), queues.len());
    if !routed {
        state.0.stats.count_api(&v, "drop_unroutable", 1);
    }
    let published = vh.publish(message, &mut queues);
    if published.store_failed {
        return Err(ApiError::Internal("the store failed".into()));
    }
    Ok(ok(json!({"routed": routed})))
}
