//! `/api/aliveness-test/{vhost}` and `/api/health/checks/...`.

use axum::extract::Path;
use axum::response::Response;
use serde_json::json;
use warren_broker::{QueueDeclare, now_ms};
use warren_codec::ShortStr;

use super::{State, ok, readable_vhost};
use crate::ApiError;
use crate::auth::Authed;

/// A check that always passes on a single node (`node-is-quorum-critical`, ...).
pub async fn ok_check(_user: Authed) -> Response {
    ok(json!({"status": "ok"}))
}

/// `GET /api/aliveness-test/{vhost}`: declares `aliveness-test`, publishes to it and gets the
/// message back, as RabbitMQ does.
pub async fn aliveness(
    state: State,
    user: Authed,
    Path(v): Path<String>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    let name = ShortStr::from_static("aliveness-test");
    let declared = vh
        .declare_queue(QueueDeclare {
            name: name.clone(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: Default::default(),
            connection: super::queues::API_CONNECTION,
        })
        .map_err(ApiError::from_broker)?;
    let message = warren_broker::Message::new(
        ShortStr::from_static(""),
        name,
        warren_codec::RawProperties::EMPTY,
        bytes::Bytes::from_static(b"test_message"),
        now_ms(),
    )
    .map_err(ApiError::from_broker)?;
    let mut queues = vec![declared.queue.clone()];
    vh.publish(message, &mut queues);
    match declared.queue.get(true) {
        Some(_) => Ok(ok(json!({"status": "ok"}))),
        None => Err(ApiError::Unavailable(
            json!({"status": "failed", "reason": "aliveness test message not received"}),
        )),
    }
}

/// `GET /api/health/checks/alarms`: 503 while a resource alarm is in effect.
pub async fn alarms(state: State, _user: Authed) -> Result<Response, ApiError> {
    alarms_check(&state, "There are alarms in effect in the cluster")
}

/// `GET /api/health/checks/local-alarms`: the same for this node (a single node, so the same
/// alarms, with RabbitMQ's other wording).
pub async fn local_alarms(state: State, _user: Authed) -> Result<Response, ApiError> {
    alarms_check(&state, "There are alarms in effect on the node")
}

fn alarms_check(state: &State, reason: &str) -> Result<Response, ApiError> {
    let node = &state.0.node;
    // RabbitMQ's names and order (its alarms are kept sorted: disk before memory).
    let mut alarms = Vec::new();
    if (state.0.disk_alarm)() {
        alarms.push(json!({"node": node, "resource": "disk space"}));
    }
    if (state.0.memory_alarm)() {
        alarms.push(json!({"node": node, "resource": "memory"}));
    }
    if alarms.is_empty() {
        return Ok(ok(json!({"status": "ok"})));
    }
    Err(ApiError::Unavailable(json!({
        "status": "failed",
        "reason": reason,
        "alarms": alarms,
    })))
}

/// `GET /api/health/checks/virtual-hosts`: every vhost runs while the broker does.
pub async fn virtual_hosts(_user: Authed) -> Response {
    ok(json!({"status": "ok"}))
}

/// `GET /api/health/checks/port-listener/{port}`.
pub async fn port_listener(
    state: State,
    _user: Authed,
    Path(port): Path<String>,
) -> Result<Response, ApiError> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid port {port}")))?;
    let ports: Vec<u16> = state.0.listeners.iter().map(|l| l.addr.port()).collect();
    if ports.contains(&port) {
        Ok(ok(json!({"status": "ok", "port": port})))
    } else {
        Err(ApiError::Unavailable(json!({
            "status": "failed", "reason": "No active listener", "missing": port, "ports": ports,
        })))
    }
}

/// `GET /api/health/checks/protocol-listener/{protocol}`.
pub async fn protocol_listener(
    state: State,
    _user: Authed,
    Path(protocol): Path<String>,
) -> Result<Response, ApiError> {
    // RabbitMQ accepts aliases such as `amqp091` for `amqp`.
    let wanted = match protocol.as_str() {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" => "amqp",
        "https" | "management" => "http",
        other => other,
    };
    let protocols: Vec<&str> = state.0.listeners.iter().map(|l| l.protocol).collect();
    if protocols.contains(&wanted) {
        Ok(ok(json!({"status": "ok", "protocol": protocol})))
    } else {
        Err(ApiError::Unavailable(json!({
            "status": "failed", "reason": "No active listener", "missing": protocol, "protocols": protocols,
        })))
    }
}
