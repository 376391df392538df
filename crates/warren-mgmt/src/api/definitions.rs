//! `/api/definitions` and `/api/definitions/{vhost}`: export (GET) and import (POST) in
//! RabbitMQ's format.
//!
//! `POST` imports such a file with RabbitMQ's merge rules; runtime parameters other than
//! `vhost-limits` are refused as a RabbitMQ node without plugins refuses them
//! (docs/management-api.md). Limits and topic permissions: `definitions_access.rs`; policies and
//! global parameters: `policy_definitions.rs`.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::Response;
use serde_json::{Value, json};
use warren_broker::{Broker, VHost};
use warren_router::Destination;

use super::{State, ok, vhost};
use crate::auth::Authed;
use crate::json::table_to_json;
use crate::{ApiError, Management, RABBITMQ_VERSION};

/// Queues, exchanges and bindings of a vhost, as RabbitMQ exports them: no exclusive queues,
/// no predeclared exchanges, no implicit default-exchange bindings.
fn topology_of(vh: &VHost, with_vhost: bool) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let topology = vh.topology();
    let tag = |mut v: Value| {
        if with_vhost && let Value::Object(o) = &mut v {
            o.insert("vhost".into(), Value::String(vh.name.clone()));
        }
        v
    };
    let mut queues: Vec<Value> = topology
        .queues()
        .filter(|q| q.options.exclusive_owner.is_none())
        .map(|q| {
            tag(json!({
                "name": q.name.to_string(),
                "durable": q.options.durable,
                "auto_delete": q.options.auto_delete,
                "arguments": table_to_json(&q.options.arguments),
            }))
        })
        .collect();
    queues.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut exchanges: Vec<Value> = topology
        .exchanges()
        .filter(|x| !x.name.is_empty() && !x.name.as_bytes().starts_with(b"amq."))
        .map(|x| {
            tag(json!({
                "name": x.name.to_string(),
                "type": x.kind.as_str(),
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": table_to_json(&x.arguments),
            }))
        })
        .collect();
    exchanges.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let bindings: Vec<Value> = topology
        .bindings()
        .map(|b| {
            let (destination, kind) = match b.destination {
                Destination::Queue(q) => (q.to_string(), "queue"),
                Destination::Exchange(x) => (x.to_string(), "exchange"),
            };
            tag(json!({
                "source": b.source.to_string(),
                "destination": destination,
                "destination_type": kind,
                "routing_key": b.routing_key.to_string(),
                "arguments": table_to_json(b.arguments),
            }))
        })
        .collect();
    (queues, exchanges, bindings)
}

fn versions(m: &Management) -> Value {
    let _ = m;
    json!({
        "rabbit_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /api/definitions`: the whole broker (administrators only).
pub async fn export(state: State, user: Authed) -> Result<Response, ApiError> {
    user.require_admin()?;
    let m = &state.0;
    let mut out = versions(m);
    let users: Vec<Value> = m
        .broker
        .users()
        .iter()
        .map(|u| {
            let mut v = super::users::user_json(u);
            if let Value::Object(o) = &mut v {
                o.remove("tags");
                // Definitions carry tags as a list, as RabbitMQ 3.10 writes them.
                o.insert("tags".into(), json!(u.tags));
            }
            v
        })
        .collect();
    let mut vhosts = Vec::new();
    let mut permissions = Vec::new();
    let (mut queues, mut exchanges, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for vh in m.broker.vhosts() {
        // RabbitMQ 3.10 exports a vhost as its name alone.
        vhosts.push(json!({"name": vh.name}));
        let (q, x, b) = topology_of(&vh, true);
        queues.extend(q);
        exchanges.extend(x);
        bindings.extend(b);
    }
    for u in m.broker.users() {
        for (v, p) in u.vhosts.entries() {
            permissions.push(super::permissions::permission_json(&u.name, v, p));
        }
    }
    if let Value::Object(o) = &mut out {
        o.insert("users".into(), Value::Array(users));
        o.insert("vhosts".into(), Value::Array(vhosts));
        o.insert("permissions".into(), Value::Array(permissions));
        o.insert(
            "topic_permissions".into(),
            Value::Array(super::definitions_access::export_topic_permissions(m)),
        );
        o.insert(
            "parameters".into(),
            Value::Array(super::definitions_access::export_vhost_limits(m, None)),
        );
        o.insert(
            "global_parameters".into(),
            super::policy_definitions::export_global_parameters(&m.broker),
        );
        o.insert(
            "policies".into(),
            super::policy_definitions::export_policies(&m.broker, None),
        );
        o.insert("queues".into(), Value::Array(queues));
        o.insert("exchanges".into(), Value::Array(exchanges));
        o.insert("bindings".into(), Value::Array(bindings));
    }
    Ok(ok(out))
}

/// `GET /api/definitions/{vhost}`: one vhost's objects, without the `vhost` fields.
pub async fn export_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let vh = vhost(&state.0, &v)?;
    let (queues, exchanges, bindings) = topology_of(&vh, false);
    let mut out = versions(&state.0);
    if let Value::Object(o) = &mut out {
        o.insert(
            "parameters".into(),
            Value::Array(super::definitions_access::export_vhost_limits(
                &state.0,
                Some(&v),
            )),
        );
        o.insert(
            "policies".into(),
            super::policy_definitions::export_policies(&state.0.broker, Some(&v)),
        );
        o.insert("queues".into(), Value::Array(queues));
        o.insert("exchanges".into(), Value::Array(exchanges));
        o.insert("bindings".into(), Value::Array(bindings));
    }
    Ok(ok(out))
}

/// One object of a definitions file, its fields read with RabbitMQ's defaults.
fn field<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

fn flag(o: &Value, key: &str, default: bool) -> bool {
    o.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn list<'a>(defs: &'a Value, key: &str) -> &'a [Value] {
    defs.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn required<'a>(o: &'a Value, key: &str, what: &str) -> Result<&'a str, ApiError> {
    field(o, key).ok_or_else(|| ApiError::BadRequest(format!("{what} without {key}: {o}")))
}

/// What an import would do, checked before anything changes, so a file Warren cannot take
/// whole changes nothing.
fn check(defs: &Value) -> Result<(), ApiError> {
    if !defs.is_object() {
        return Err(ApiError::BadRequest("not_json".into()));
    }
    super::policy_definitions::check(defs)?;
    for p in list(defs, "permissions") {
        warren_broker::compile_permission(permission_regexes(p)?)?;
    }
    super::definitions_access::check(defs)?;
    for u in list(defs, "users") {
        required(u, "name", "user")?;
        if let Some(alg) = field(u, "hashing_algorithm")
            && warren_broker::HashAlgorithm::from_rabbitmq_name(alg).is_none()
        {
            return Err(ApiError::BadRequest(format!(
                "user {}: unsupported hashing algorithm {alg}",
                field(u, "name").unwrap_or_default()
            )));
        }
    }
    for x in list(defs, "exchanges") {
        let kind = required(x, "type", "exchange")?;
        warren_router::ExchangeKind::parse(kind.as_bytes())
            .map_err(|e| ApiError::BadRequest(e.reply_text()))?;
    }
    Ok(())
}

/// A permission entry's expressions: configure, write, read (each required).
fn permission_regexes(p: &Value) -> Result<[&str; 3], ApiError> {
    Ok([
        required(p, "configure", "permission")?,
        required(p, "write", "permission")?,
        required(p, "read", "permission")?,
    ])
}

/// The algorithm of a hash exported without `hashing_algorithm`, by the exporting node's
/// version, as RabbitMQ's `rabbit_auth_backend_internal:hashing_algorithm/2` decides: MD5 for
/// 3.0 to 3.5, SHA-256 (the node's default) otherwise.
fn default_hashing(version: Option<&str>) -> warren_broker::HashAlgorithm {
    let old = ["3.0.", "3.1.", "3.2.", "3.3.", "3.4.", "3.5."];
    match version {
        Some(v) if old.iter().any(|p| v.starts_with(p)) => warren_broker::HashAlgorithm::Md5,
        _ => warren_broker::HashAlgorithm::Sha256,
    }
}

fn import_user(broker: &Broker, u: &Value, version: Option<&str>) -> Result<(), ApiError> {
    let name = required(u, "name", "user")?;
    let tags: Vec<String> = match u.get("tags") {
        Some(Value::String(s)) => s.split(',').map(str::trim).map(String::from).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    let tags = tags.into_iter().filter(|t| !t.is_empty()).collect();
    let password = match (field(u, "password"), field(u, "password_hash")) {
        (Some(p), _) => Some(warren_broker::PasswordHash::new(p)),
        (None, Some(h)) if !h.is_empty() => {
            let raw = crate::base64::decode(h).ok_or_else(|| {
                ApiError::BadRequest(format!("user {name}: invalid password_hash"))
            })?;
            let algorithm = field(u, "hashing_algorithm")
                .and_then(warren_broker::HashAlgorithm::from_rabbitmq_name)
                .unwrap_or_else(|| default_hashing(version));
            Some(
                warren_broker::PasswordHash::from_rabbitmq(algorithm, &raw).ok_or_else(|| {
                    ApiError::BadRequest(format!("user {name}: invalid password_hash"))
                })?,
            )
        }
        _ => None,
    };
    broker.put_user_live(name, password, tags)?;
    Ok(())
}

/// Queues, exchanges and bindings of one vhost's part of a file. Existing queues and exchanges
/// are left as they are, as RabbitMQ's import leaves them (even when the file differs).
fn import_topology(vh: &VHost, defs: &Value, only: Option<&str>) -> Result<(), ApiError> {
    let mine = |o: &&Value| only.is_some() || field(o, "vhost") == Some(vh.name.as_str());
    use warren_codec::ShortStr;
    for x in list(defs, "exchanges").iter().filter(mine) {
        let name = required(x, "name", "exchange")?;
        if vh.topology().exchange(name.as_bytes()).is_some() {
            continue;
        }
        vh.declare_exchange(
            &ShortStr::from(name),
            &ShortStr::from(required(x, "type", "exchange")?),
            false,
            flag(x, "durable", true),
            flag(x, "auto_delete", false),
            flag(x, "internal", false),
            &crate::json::json_to_table(x.get("arguments"))?,
        )
        .map_err(ApiError::from_broker)?;
    }
    for q in list(defs, "queues").iter().filter(mine) {
        let name = required(q, "name", "queue")?;
        if vh.topology().queue(name.as_bytes()).is_some() {
            continue;
        }
        vh.declare_queue(warren_broker::QueueDeclare {
            name: ShortStr::from(name),
            passive: false,
            durable: flag(q, "durable", true),
            exclusive: false,
            auto_delete: flag(q, "auto_delete", false),
            arguments: crate::json::json_to_table(q.get("arguments"))?,
            connection: super::queues::API_CONNECTION,
        })
        .map_err(ApiError::from_broker)?;
    }
    for b in list(defs, "bindings").iter().filter(mine) {
        let source = ShortStr::from(required(b, "source", "binding")?);
        let destination = ShortStr::from(required(b, "destination", "binding")?);
        let key = ShortStr::from(field(b, "routing_key").unwrap_or(""));
        let arguments = crate::json::json_to_table(b.get("arguments"))?;
        if source.is_empty() {
            // The default exchange's bindings are implicit.
            continue;
        }
        match field(b, "destination_type") {
            Some("exchange") => vh.bind_exchange(&destination, &source, &key, &arguments),
            _ => vh.bind_queue(
                &destination,
                &source,
                &key,
                &arguments,
                super::queues::API_CONNECTION,
            ),
        }
        .map_err(ApiError::from_broker)?;
    }
    Ok(())
}

/// Imports a RabbitMQ definitions file with RabbitMQ's merge rules: vhosts are created when
/// missing, users are created or replaced (password hashes kept, so users exported from
/// RabbitMQ log in with their passwords), permissions are granted, and queues, exchanges and
/// bindings are declared unless they exist. Checked whole first: a file Warren cannot take
/// changes nothing. Used by `POST /api/definitions` and by `load_definitions` at boot.
pub fn import_definitions(broker: &Broker, body: &[u8]) -> Result<(), ApiError> {
    let defs: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::BadRequest("not_json".into()))?;
    check(&defs)?;
    for v in list(&defs, "vhosts") {
        broker.add_vhost_live(required(v, "name", "vhost")?)?;
    }
    let version = field(&defs, "rabbitmq_version").or_else(|| field(&defs, "rabbit_version"));
    for u in list(&defs, "users") {
        import_user(broker, u, version)?;
    }
    for p in list(&defs, "permissions") {
        let (name, vhost) = (
            required(p, "user", "permission")?,
            required(p, "vhost", "permission")?,
        );
        broker.set_permissions_live(name, vhost, permission_regexes(p)?)?;
    }
    super::definitions_access::import(broker, &defs)?;
    super::policy_definitions::import(broker, &defs, None)?;
    for vh in broker.vhosts() {
        import_topology(&vh, &defs, None)?;
    }
    Ok(())
}

/// `POST /api/definitions`: [`import_definitions`]; answers 204.
pub async fn import(state: State, user: Authed, body: Bytes) -> Result<Response, ApiError> {
    user.require_admin()?;
    import_definitions(&state.0.broker, &body)?;
    Ok(super::no_content())
}

/// `POST /api/definitions/{vhost}`: one vhost's queues, exchanges and bindings (their `vhost`
/// fields, if any, are ignored).
pub async fn import_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    user.require_admin()?;
    let vh = vhost(&state.0, &v)?;
    let defs: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest("not_json".into()))?;
    check(&defs)?;
    super::policy_definitions::import(&state.0.broker, &defs, Some(&v))?;
    import_topology(&vh, &defs, Some(&v))?;
    super::definitions_access::import_into_vhost(&state.0.broker, &defs, &v)?;
    Ok(super::no_content())
}
