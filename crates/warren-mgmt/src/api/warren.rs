//! `/api/warren/...`: Warren's own extensions to RabbitMQ's API, for `warren ctl` commands that
//! RabbitMQ's `rabbitmqctl` runs over Erlang distribution rather than HTTP. Clients written for
//! RabbitMQ never call them.

use axum::body::Bytes;
use axum::response::Response;
use serde_json::{Value, json};

use super::{State, ok};
use crate::auth::Authed;
use crate::json::body_object;
use crate::{ApiError, DiskFree, DiskFreeLimit, Watermark};

/// `GET /api/warren/vm-memory-high-watermark`: the watermark as set and its limit in bytes.
pub async fn get_watermark(state: State, user: Authed) -> Result<Response, ApiError> {
    user.require_monitor()?;
    let (watermark, limit) = state.0.memory_watermark.get();
    Ok(ok(watermark_json(watermark, limit)))
}

/// `PUT /api/warren/vm-memory-high-watermark` with `{"relative": 0.5}` or
/// `{"absolute": bytes}` (administrator): changes the memory alarm's threshold while running,
/// as `rabbitmqctl set_vm_memory_high_watermark` does. Answers the new setting.
pub async fn put_watermark(state: State, user: Authed, body: Bytes) -> Result<Response, ApiError> {
    user.require_admin()?;
    let body = body_object(&body)?;
    let watermark =
        match (body.get("relative"), body.get("absolute")) {
            (Some(r), None) => Watermark::Relative(r.as_f64().ok_or_else(|| {
                ApiError::BadRequest("relative must be a number in (0, 1]".into())
            })?),
            (None, Some(a)) => Watermark::Absolute(a.as_u64().ok_or_else(|| {
                ApiError::BadRequest("absolute must be a whole number of bytes".into())
            })?),
            _ => {
                return Err(ApiError::BadRequest(
                    "give exactly one of relative or absolute".into(),
                ));
            }
        };
    let limit = state
        .0
        .memory_watermark
        .set(watermark)
        .map_err(ApiError::BadRequest)?;
    Ok(ok(watermark_json(watermark, limit)))
}

fn watermark_json(watermark: Watermark, limit: Option<u64>) -> Value {
    let setting = match watermark {
        Watermark::Relative(f) => json!({"relative": f}),
        Watermark::Absolute(b) => json!({"absolute": b}),
    };
    json!({"setting": setting, "mem_limit": limit})
}

/// `GET /api/warren/disk-free-limit`: the free disk space limit as set, in bytes, and the last
/// reading of free space.
pub async fn get_disk_free_limit(state: State, user: Authed) -> Result<Response, ApiError> {
    user.require_monitor()?;
    Ok(ok(disk_json(&state.0.disk.get())))
}

/// `PUT /api/warren/disk-free-limit` with `{"absolute": bytes}` or `{"mem_relative": 1.5}`
/// (administrator): changes the disk alarm's limit while running, as `rabbitmqctl
/// set_disk_free_limit` does. Answers the new setting.
pub async fn put_disk_free_limit(
    state: State,
    user: Authed,
    body: Bytes,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let body = body_object(&body)?;
    let limit = match (body.get("mem_relative"), body.get("absolute")) {
        (Some(r), None) => DiskFreeLimit::MemRelative(r.as_f64().ok_or_else(|| {
            ApiError::BadRequest("mem_relative must be a non-negative number".into())
        })?),
        (None, Some(a)) => DiskFreeLimit::Absolute(a.as_u64().ok_or_else(|| {
            ApiError::BadRequest("absolute must be a whole number of bytes".into())
        })?),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of mem_relative or absolute".into(),
            ));
        }
    };
    state.0.disk.set(limit).map_err(ApiError::BadRequest)?;
    Ok(ok(disk_json(&state.0.disk.get())))
}

fn disk_json(disk: &DiskFree) -> Value {
    let setting = match disk.setting {
        DiskFreeLimit::MemRelative(f) => json!({"mem_relative": f}),
        DiskFreeLimit::Absolute(b) => json!({"absolute": b}),
    };
    json!({"setting": setting, "disk_free_limit": disk.limit, "disk_free": disk.free})
}

/// `POST /api/warren/tls/reload` (administrator): reads every TLS listener's certificate, key
/// and CA files again; new TLS connections use them, open ones keep theirs. Answers
/// `{"reloaded": ["amqps", ...]}` (empty without TLS listeners), or 400 with the reason when a
/// file cannot be used (that listener keeps its previous certificates).
pub async fn reload_tls(state: State, user: Authed) -> Result<Response, ApiError> {
    user.require_admin()?;
    let Some(tls) = state.0.tls.clone() else {
        return Ok(ok(json!({"reloaded": []})));
    };
    // Reading files blocks: off the runtime's threads.
    let reloaded = tokio::task::spawn_blocking(move || tls.reload())
        .await
        .map_err(|e| ApiError::BadRequest(format!("reload stopped: {e}")))?
        .map_err(ApiError::BadRequest)?;
    Ok(ok(json!({ "reloaded": reloaded })))
}
