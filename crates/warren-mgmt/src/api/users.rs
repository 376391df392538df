//! `/api/users` and `/api/users/{user}`.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};
use warren_broker::{HashAlgorithm, PasswordHash, User, rabbitmq_password_hash};

use super::{State, created, no_content, ok};
use crate::auth::Authed;
use crate::json::{body_object, str_field};
use crate::listing::{Params, reply_list};
use crate::{ApiError, base64};

/// A user as RabbitMQ shows it (the hash in RabbitMQ's base64 form, so it exports).
pub fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": base64::encode(&rabbitmq_password_hash(u)),
        "hashing_algorithm": u.password.algorithm().rabbitmq_name(),
        "tags": u.tags,
        "limits": super::user_limits::user_limits_json(&u.limits.0),
    })
}

/// `GET /api/users`.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    Ok(ok(reply_list(
        Value::Array(state.0.broker.users().iter().map(user_json).collect()),
        &params,
    )?))
}

/// `GET /api/users/{user}`.
pub async fn show(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let u = state.0.broker.user(&name).ok_or(ApiError::NotFound)?;
    Ok(ok(user_json(&u)))
}

/// Tags as RabbitMQ accepts them: a comma-separated string or a list.
fn tags(v: &Value) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = match v {
        Value::String(s) => s.split(',').map(|t| t.trim().to_string()).collect(),
        Value::Array(a) => a
            .iter()
            .map(|t| t.as_str().map(|s| s.trim().to_string()))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::BadRequest("tags must be strings".into()))?,
        _ => {
            return Err(ApiError::BadRequest(
                "tags must be a string or a list".into(),
            ));
        }
    };
    Ok(list.into_iter().filter(|t| !t.is_empty()).collect())
}

/// `PUT /api/users/{user}`: `password` or `password_hash` (RabbitMQ's salted SHA-256, base64),
/// and `tags` (required, as in RabbitMQ 3.10).
pub async fn put(
    state: State,
    user: Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let b = body_object(&body)?;
    let tags = tags(
        b.get("tags")
            .ok_or_else(|| ApiError::BadRequest("tags_not_present".into()))?,
    )?;
    let password = match (str_field(&b, "password"), str_field(&b, "password_hash")) {
        (Some(p), _) => Some(PasswordHash::new(p)),
        (None, Some(h)) => {
            // The API's default is the node's (SHA-256), unlike definitions import's MD5.
            let algorithm = match str_field(&b, "hashing_algorithm") {
                None => HashAlgorithm::Sha256,
                Some(alg) => HashAlgorithm::from_rabbitmq_name(alg).ok_or_else(|| {
                    ApiError::BadRequest(format!("unsupported hashing algorithm {alg}"))
                })?,
            };
            let raw = base64::decode(h)
                .ok_or_else(|| ApiError::BadRequest("invalid password_hash".into()))?;
            Some(
                PasswordHash::from_rabbitmq(algorithm, &raw)
                    .ok_or_else(|| ApiError::BadRequest("invalid password_hash".into()))?,
            )
        }
        (None, None) => None,
    };
    Ok(created(
        state.0.broker.put_user_live(&name, password, tags)?,
    ))
}

/// `DELETE /api/users/{user}`.
pub async fn remove(
    state: State,
    user: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    state.0.broker.delete_user_live(&name)?;
    Ok(no_content())
}

/// `GET /api/users/without-permissions`.
pub async fn without_permissions(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let users = state.0.broker.users();
    let list = users
        .iter()
        .filter(|u| u.vhosts.is_empty())
        .map(user_json)
        .collect();
    Ok(ok(reply_list(Value::Array(list), &params)?))
}

/// `POST /api/users/bulk-delete` with `{"users": [...]}`: 204; as RabbitMQ, the users are
/// deleted in order and a missing one stops the request with 400 `["no_such_user", name]`.
pub async fn bulk_delete(state: State, user: Authed, body: Bytes) -> Result<Response, ApiError> {
    user.require_admin()?;
    let b = body_object(&body)?;
    let names = b
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::BadRequest("[{key_missing,users}]".into()))?;
    for name in names.iter().filter_map(Value::as_str) {
        match state.0.broker.delete_user_live(name) {
            Ok(()) => {}
            Err(warren_broker::AdminError::NoSuchUser(_)) => {
                return Err(ApiError::BadRequestTerm(json!(["no_such_user", name])));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(no_content())
}
