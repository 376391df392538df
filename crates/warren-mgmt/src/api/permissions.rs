//! `/api/permissions`, `/api/permissions/{vhost}/{user}` and the per-vhost and per-user lists.
//!
//! A permission is RabbitMQ's three regular expressions (configure, write, read), shown as set;
//! one that does not compile is refused with 400. Channels open on the vhost apply a change at
//! their next operation.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};
use warren_broker::{AdminError, Permission};

use super::{State, created, no_content, ok};
use crate::auth::Authed;
use crate::json::{body_object, str_field};
use crate::listing::{Params, reply_list};
use crate::{ApiError, Management};

/// A permission as RabbitMQ shows it (also the shape definitions carry).
pub fn permission_json(user: &str, vhost: &str, p: &Permission) -> Value {
    let [configure, write, read] = p.sources();
    json!({"user": user, "vhost": vhost, "configure": configure, "write": write, "read": read})
}

fn all(m: &Management, keep: impl Fn(&str, &str) -> bool) -> Value {
    let mut out = Vec::new();
    for u in m.broker.users() {
        for (v, p) in u.vhosts.entries() {
            if keep(&u.name, v) {
                out.push(permission_json(&u.name, v, p));
            }
        }
    }
    Value::Array(out)
}

/// `GET /api/permissions`.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    Ok(ok(reply_list(all(&state.0, |_, _| true), &params)?))
}

/// `GET /api/vhosts/{vhost}/permissions`.
pub async fn of_vhost(
    state: State,
    user: Authed,
    Path(vhost): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    super::vhost(&state.0, &vhost)?;
    Ok(ok(all(&state.0, |_, v| v == vhost)))
}

/// `GET /api/users/{user}/permissions`.
pub async fn of_user(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    state.0.broker.user(&name).ok_or(ApiError::NotFound)?;
    Ok(ok(all(&state.0, |u, _| u == name)))
}

/// `GET /api/permissions/{vhost}/{user}`.
pub async fn show(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let u = state.0.broker.user(&name).ok_or(ApiError::NotFound)?;
    let p = u.vhosts.get(&vhost).ok_or(ApiError::NotFound)?;
    Ok(ok(permission_json(&name, &vhost, p)))
}

/// `PUT /api/permissions/{vhost}/{user}`.
pub async fn put(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let b = body_object(&body)?;
    let mut regexes = [""; 3];
    for (slot, key) in regexes.iter_mut().zip(["configure", "write", "read"]) {
        *slot =
            str_field(&b, key).ok_or_else(|| ApiError::BadRequest(format!("{key} not present")))?;
    }
    match state.0.broker.set_permissions_live(&name, &vhost, regexes) {
        Ok(new) => Ok(created(new)),
        // RabbitMQ's reason for either missing.
        Err(AdminError::NoSuchUser(_) | AdminError::NoSuchVhost(_)) => {
            Err(ApiError::BadRequest("vhost_or_user_not_found".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/permissions/{vhost}/{user}`.
pub async fn remove(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    if !state.0.broker.clear_permissions_live(&name, &vhost)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}
