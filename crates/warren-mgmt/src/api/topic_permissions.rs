//! `/api/topic-permissions`, `/api/topic-permissions/{vhost}/{user}` and the per-user and
//! per-vhost lists: a user's `write` and `read` patterns for the routing keys of one topic
//! exchange (enforced on AMQP by the connection, see `warren-broker`'s `topic_permissions`).

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};
use warren_broker::{AdminError, TopicPermission};

use super::{State, created, no_content, ok};
use crate::auth::Authed;
use crate::json::body_object;
use crate::listing::{Params, reply_list};
use crate::{ApiError, Management};

/// One topic permission as RabbitMQ shows it.
pub fn topic_permission_json(user: &str, p: &TopicPermission) -> Value {
    json!({"user": user, "vhost": p.vhost, "exchange": p.exchange, "write": p.write, "read": p.read})
}

/// Every topic permission for which `keep(user, vhost)` holds, sorted by vhost then user (as
/// RabbitMQ's list sorts them), each user's in exchange order.
fn all(m: &Management, keep: impl Fn(&str, &str) -> bool) -> Vec<Value> {
    let mut rows = Vec::new();
    for u in m.broker.users() {
        for p in &u.topic_permissions {
            if keep(&u.name, &p.vhost) {
                rows.push((
                    p.vhost.clone(),
                    u.name.clone(),
                    topic_permission_json(&u.name, p),
                ));
            }
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    rows.into_iter().map(|(_, _, v)| v).collect()
}

/// `GET /api/topic-permissions`.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    Ok(ok(reply_list(
        Value::Array(all(&state.0, |_, _| true)),
        &params,
    )?))
}

/// `GET /api/vhosts/{vhost}/topic-permissions`.
pub async fn of_vhost(
    state: State,
    user: Authed,
    Path(vhost): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    super::vhost(&state.0, &vhost)?;
    Ok(ok(Value::Array(all(&state.0, |_, v| v == vhost))))
}

/// `GET /api/users/{user}/topic-permissions`.
pub async fn of_user(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    state.0.broker.user(&name).ok_or(ApiError::NotFound)?;
    Ok(ok(Value::Array(all(&state.0, |u, _| u == name))))
}

/// `GET /api/topic-permissions/{vhost}/{user}`: 404 when the user has none there.
pub async fn show(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let found = all(&state.0, |u, v| u == name && v == vhost);
    if found.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(ok(Value::Array(found)))
}

/// `PUT /api/topic-permissions/{vhost}/{user}` with `exchange`, `write` and `read`: 201 for the
/// user's first topic permission in the vhost, 204 after.
pub async fn put(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let m = &state.0;
    if m.broker.vhost(&vhost).is_none() || m.broker.user(&name).is_none() {
        return Err(ApiError::BadRequest("vhost_or_user_not_found".into()));
    }
    let b = body_object(&body)?;
    let mut fields = Vec::with_capacity(3);
    for key in ["exchange", "write", "read"] {
        match b.get(key) {
            None => return Err(ApiError::BadRequest(format!("[{{key_missing,{key}}}]"))),
            Some(Value::String(s)) => fields.push(s.clone()),
            // RabbitMQ's handler crashes on a value that is not a string.
            Some(_) => return Err(ApiError::Crash),
        }
    }
    let [exchange, write, read] = <[String; 3]>::try_from(fields).map_err(|_| ApiError::Crash)?;
    let p = TopicPermission {
        vhost: vhost.clone(),
        exchange,
        write,
        read,
    };
    match m.broker.set_topic_permission_live(&name, p) {
        Ok(first) => Ok(created(first)),
        Err(AdminError::InvalidRegex(e)) => Err(ApiError::BadRequestTerm(json!([
            "invalid_regexp",
            e.pattern,
            e.reason
        ]))),
        Err(AdminError::NoSuchUser(_) | AdminError::NoSuchVhost(_)) => {
            Err(ApiError::BadRequest("vhost_or_user_not_found".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/topic-permissions/{vhost}/{user}`: removes all of the user's topic permissions
/// in the vhost (RabbitMQ 3.10 ignores an `exchange` query parameter); 404 when none.
pub async fn remove(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    match state.0.broker.clear_topic_permissions_live(&name, &vhost) {
        Ok(true) => Ok(no_content()),
        Ok(false) | Err(AdminError::NoSuchUser(_)) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}
