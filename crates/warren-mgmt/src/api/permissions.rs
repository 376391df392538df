//! `/api/permissions`, `/api/permissions/{vhost}/{user}` and the per-vhost and per-user lists.
//!
//! Warren's permissions are all or nothing per vhost (see docs/compatibility.md): a permission
//! is shown as `".*"` three times, and setting anything else is refused with 400.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};
use warren_broker::AdminError;

use super::{State, created, no_content, ok};
use crate::auth::Authed;
use crate::json::{body_object, str_field};
use crate::listing::{Params, reply_list};
use crate::{ApiError, Management};

fn permission_json(user: &str, vhost: &str) -> Value {
    json!({"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"})
}

fn all(m: &Management, keep: impl Fn(&str, &str) -> bool) -> Value {
    let mut out = Vec::new();
    for u in m.broker.users() {
        for v in &u.vhosts {
            if keep(&u.name, v) {
                out.push(permission_json(&u.name, v));
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
    if !u.vhosts.contains(&vhost) {
        return Err(ApiError::NotFound);
    }
    Ok(ok(permission_json(&name, &vhost)))
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
    for key in ["configure", "write", "read"] {
        match str_field(&b, key) {
            Some(".*") => {}
            Some(other) => return Err(AdminError::UnsupportedPermission(other.into()).into()),
            None => return Err(ApiError::BadRequest(format!("{key} not present"))),
        }
    }
    match state.0.broker.set_permissions_live(&name, &vhost) {
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
