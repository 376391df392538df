//! `/api/user-limits`, `/api/user-limits/{user}` and `/api/user-limits/{user}/{name}`:
//! `max-connections` and `max-channels`, kept in the user (exported in its `limits`).

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};
use warren_broker::AdminError;

use super::vhost_limits::limit_value;
use super::{State, no_content, ok};
use crate::ApiError;
use crate::auth::Authed;
use crate::listing::{Params, reply_list};

/// A user's limits as RabbitMQ shows them: an object sorted by name (`{}` when none).
pub fn user_limits_json(limits: &[(String, i64)]) -> Value {
    Value::Object(
        limits
            .iter()
            .map(|(n, v)| (n.clone(), Value::from(*v)))
            .collect(),
    )
}

/// `GET /api/user-limits`: users with at least one limit.
pub async fn list(
    state: State,
    _user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let all: Vec<Value> = state
        .0
        .broker
        .users()
        .iter()
        .filter(|u| !u.limits.is_empty())
        .map(|u| json!({"user": u.name, "value": user_limits_json(&u.limits.0)}))
        .collect();
    Ok(ok(reply_list(Value::Array(all), &params)?))
}

/// `GET /api/user-limits/{user}`: `[]` when the user has none; 404 for a missing user.
pub async fn of_user(
    state: State,
    _user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let u = state.0.broker.user(&name).ok_or(ApiError::NotFound)?;
    if u.limits.is_empty() {
        return Ok(ok(json!([])));
    }
    Ok(ok(
        json!([{"user": u.name, "value": user_limits_json(&u.limits.0)}]),
    ))
}

/// `PUT /api/user-limits/{user}/{name}` with `{"value": N}`.
pub async fn put(
    state: State,
    user: Authed,
    Path((name, limit)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let value = limit_value(&body, &limit)?.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match state.0.broker.set_user_limit_live(&name, &limit, value) {
        Ok(()) => Ok(no_content()),
        Err(AdminError::NoSuchUser(_)) => {
            Err(ApiError::BadRequestTerm(json!(["no_such_user", name])))
        }
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/user-limits/{user}/{name}`: 204 whether or not the limit was set.
pub async fn remove(
    state: State,
    user: Authed,
    Path((name, limit)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    match state.0.broker.clear_user_limit_live(&name, &limit) {
        Ok(()) => Ok(no_content()),
        // RabbitMQ crashes on a missing user here and answers 500 with no body.
        Err(AdminError::NoSuchUser(_)) => Err(ApiError::Crash),
        Err(e) => Err(e.into()),
    }
}
