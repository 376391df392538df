//! `/api/parameters[/{component}[/{vhost}[/{name}]]]` and `/api/global-parameters[/{name}]`:
//! runtime parameters as RabbitMQ's management plugin serves them.
//!
//! The one vhost parameter component Warren has is `vhost-limits` ([`super::parameters_limits`]);
//! RabbitMQ's others come from plugins (federation, shovel; policies have their own endpoints),
//! so their lists are empty and setting one is refused with RabbitMQ's "component ... not
//! found" text. Global parameters are
//! any JSON value under a name, stored and listed. Access: `policymaker` or `administrator`
//! (with a permission on the vhost for vhost parameters), as RabbitMQ.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};

use super::parameters_limits::{self as limits, COMPONENT};
use super::policies::{parameter_error, require_policymaker};
use super::{State, created, no_content, ok};
use crate::ApiError;
use crate::auth::Authed;
use crate::json::body_object;
use crate::listing::{Params, reply_list};

/// `GET /api/parameters`: the `vhost-limits` parameters of the vhosts the user sees.
pub async fn list(
    state: State,
    user: Authed,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, None)?;
    let rows = limits::rows(&state.0, |v| user.sees_vhost(v));
    Ok(ok(reply_list(Value::Array(rows), &p)?))
}

/// `GET /api/parameters/{component}`: `vhost-limits` has parameters, other components none.
pub async fn list_component(
    state: State,
    user: Authed,
    Path(component): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, None)?;
    let rows = if component == COMPONENT {
        limits::rows(&state.0, |v| user.sees_vhost(v))
    } else {
        Vec::new()
    };
    Ok(ok(reply_list(Value::Array(rows), &p)?))
}

/// `GET /api/parameters/{component}/{vhost}`.
pub async fn list_vhost(
    state: State,
    user: Authed,
    Path((component, vhost)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, Some(&vhost))?;
    super::vhost(&state.0, &vhost)?;
    let rows = if component == COMPONENT {
        limits::rows(&state.0, |v| v == vhost)
    } else {
        Vec::new()
    };
    Ok(ok(reply_list(Value::Array(rows), &p)?))
}

/// `GET /api/parameters/{component}/{vhost}/{name}`: only `vhost-limits` has any.
pub async fn show(
    state: State,
    user: Authed,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, Some(&vhost))?;
    if component != COMPONENT {
        return Err(ApiError::NotFound);
    }
    Ok(ok(limits::show(&state.0, &vhost, &name)?))
}

/// `DELETE /api/parameters/{component}/{vhost}/{name}`: 404 unless it exists.
pub async fn remove(
    state: State,
    user: Authed,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, Some(&vhost))?;
    if component != COMPONENT {
        return Err(ApiError::NotFound);
    }
    limits::remove(&state.0, &vhost, &name)?;
    Ok(no_content())
}

/// `PUT /api/parameters/{component}/{vhost}/{name}`.
pub async fn put(
    state: State,
    user: Authed,
    Path((component, vhost, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, Some(&vhost))?;
    if state.0.broker.vhost(&vhost).is_none() {
        return Err(ApiError::NotFoundReason {
            error: "not_found",
            reason: "vhost_not_found",
        });
    }
    let b = body_object(&body)?;
    let value = b
        .get("value")
        .ok_or_else(|| ApiError::BadRequest("[{key_missing,value}]".into()))?;
    if component == COMPONENT {
        return Ok(created(limits::put(&state.0, &vhost, &name, value)?));
    }
    let new = state
        .0
        .broker
        .set_parameter_live(&component, &vhost, &name, value)
        .map_err(parameter_error)?;
    Ok(created(new))
}

/// `GET /api/global-parameters`.
pub async fn list_global(
    state: State,
    user: Authed,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, None)?;
    let items: Vec<Value> = state
        .0
        .broker
        .global_parameters()
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    Ok(ok(reply_list(Value::Array(items), &p)?))
}

/// `GET /api/global-parameters/{name}`.
pub async fn show_global(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, None)?;
    let value = state
        .0
        .broker
        .global_parameter(&name)
        .ok_or(ApiError::NotFound)?;
    Ok(ok(json!({"name": name, "value": value})))
}

/// `PUT /api/global-parameters/{name}`: `value` required, any JSON.
pub async fn put_global(
    state: State,
    user: Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, None)?;
    let mut b = body_object(&body)?;
    let value = b
        .remove("value")
        .ok_or_else(|| ApiError::BadRequest("[{key_missing,value}]".into()))?;
    let new = state
        .0
        .broker
        .set_global_parameter_live(&name, value)
        .map_err(parameter_error)?;
    Ok(created(new))
}

/// `DELETE /api/global-parameters/{name}`.
pub async fn remove_global(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_policymaker(&state.0, &user, None)?;
    match state.0.broker.clear_global_parameter_live(&name) {
        Ok(true) => Ok(no_content()),
        Ok(false) => Err(ApiError::NotFound),
        Err(e) => Err(parameter_error(e)),
    }
}
