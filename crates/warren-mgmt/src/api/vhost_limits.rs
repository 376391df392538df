//! `/api/vhost-limits`, `/api/vhost-limits/{vhost}` and `/api/vhost-limits/{vhost}/{name}`:
//! `max-connections` and `max-queues` (RabbitMQ's `vhost-limits` runtime parameter).

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Map, Value, json};
use warren_broker::{AdminError, LimitError};

use super::{State, no_content, ok};
use crate::ApiError;
use crate::auth::Authed;
use crate::json::body_object;
use crate::listing::{Params, reply_list};

/// Limits as RabbitMQ's JSON object, in the order given.
pub fn limits_json(limits: &[(String, i64)]) -> Value {
    // RabbitMQ prints an empty proplist as a JSON list.
    if limits.is_empty() {
        return json!([]);
    }
    let mut m = Map::new();
    for (name, value) in limits {
        m.insert(name.clone(), Value::from(*value));
    }
    Value::Object(m)
}

/// How Erlang prints a decoded JSON value, for RabbitMQ's validation messages.
pub(super) fn erlang_term(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        other => other.to_string(),
    }
}

/// The `value` of a limit PUT body: 400 `[{key_missing,value}]` without one; an integer
/// (`Ok`) or the message RabbitMQ's validation gives for anything else (`Err`).
pub fn limit_value(body: &[u8], name: &str) -> Result<Result<i64, LimitError>, ApiError> {
    let b = body_object(body)?;
    let v = b
        .get("value")
        .ok_or_else(|| ApiError::BadRequest("[{key_missing,value}]".into()))?;
    Ok(v.as_i64().ok_or_else(|| LimitError::NotANumber {
        name: name.into(),
        value: erlang_term(v),
    }))
}

fn rows(state: &State, keep: impl Fn(&str) -> bool) -> Vec<Value> {
    state
        .0
        .broker
        .vhosts()
        .iter()
        .filter(|v| keep(&v.name))
        .filter_map(|v| v.limits().map(|l| (v.name.clone(), l)))
        .map(|(vhost, l)| json!({"vhost": vhost, "value": limits_json(&l.0)}))
        .collect()
}

/// `GET /api/vhost-limits`: every vhost the user sees whose limits were ever set.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let all = rows(&state, |v| user.sees_vhost(v));
    Ok(ok(reply_list(Value::Array(all), &params)?))
}

/// `GET /api/vhost-limits/{vhost}`: `[]` when no limit is set.
pub async fn of_vhost(
    state: State,
    user: Authed,
    Path(vhost): Path<String>,
) -> Result<Response, ApiError> {
    let vh = super::vhost(&state.0, &vhost)?;
    user.require_vhost(&vhost)?;
    let limits = vh.limits().unwrap_or_default();
    if limits.0.is_empty() {
        return Ok(ok(json!([])));
    }
    Ok(ok(
        json!([{"vhost": vhost, "value": limits_json(&limits.0)}]),
    ))
}

fn validation_failed(e: &LimitError) -> ApiError {
    ApiError::BadRequest(format!("Validation failed\n\n{e}\n"))
}

/// `PUT /api/vhost-limits/{vhost}/{name}` with `{"value": N}`.
pub async fn put(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    if state.0.broker.vhost(&vhost).is_none() {
        return Err(ApiError::NotFoundReason {
            error: "not_found",
            reason: "vhost_not_found",
        });
    }
    let value = limit_value(&body, &name)?.map_err(|e| validation_failed(&e))?;
    match state.0.broker.set_vhost_limit_live(&vhost, &name, value) {
        Ok(()) => Ok(no_content()),
        Err(AdminError::Limit(e)) => Err(validation_failed(&e)),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/vhost-limits/{vhost}/{name}`: 204 whether or not the limit was set.
pub async fn remove(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    match state.0.broker.clear_vhost_limit_live(&vhost, &name) {
        Ok(()) => Ok(no_content()),
        // RabbitMQ crashes on a missing vhost here and answers 500 with no body.
        Err(AdminError::NoSuchVhost(_)) => Err(ApiError::Crash),
        Err(e) => Err(e.into()),
    }
}
