//! The parts of a definitions file that limit and authorise: user `limits`,
//! `topic_permissions`, and the `vhost-limits` runtime parameters in `parameters` (how
//! RabbitMQ 3.10 exports vhost limits). Kept apart from `definitions.rs` so the generic
//! parameters and policies can grow there without touching this.

use serde_json::{Value, json};
use warren_broker::{Broker, TopicPermission, UserLimits, VhostLimits};

use super::vhost_limits::limits_json;
use crate::{ApiError, Management};

/// The component name of vhost limits among runtime parameters.
pub const VHOST_LIMITS_COMPONENT: &str = "vhost-limits";

fn list<'a>(defs: &'a Value, key: &str) -> &'a [Value] {
    defs.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn text<'a>(o: &'a Value, key: &str, what: &str) -> Result<&'a str, ApiError> {
    o.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest(format!("{what} without {key}: {o}")))
}

/// Every topic permission, as `topic_permissions` of an export.
pub fn export_topic_permissions(m: &Management) -> Vec<Value> {
    let mut out = Vec::new();
    for u in m.broker.users() {
        for p in &u.topic_permissions {
            out.push(super::topic_permissions::topic_permission_json(&u.name, p));
        }
    }
    out
}

/// The `vhost-limits` parameters of every vhost (or of `only`), as RabbitMQ exports them.
pub fn export_vhost_limits(m: &Management, only: Option<&str>) -> Vec<Value> {
    m.broker
        .vhosts()
        .iter()
        .filter(|v| only.is_none_or(|o| o == v.name))
        .filter_map(|v| {
            v.limits().map(|l| {
                json!({
                    "value": limits_json(&l.0),
                    "vhost": v.name,
                    "component": VHOST_LIMITS_COMPONENT,
                    "name": "limits",
                })
            })
        })
        .collect()
}

/// Whether a `parameters` entry is a vhost-limits one (the only component Warren has here).
pub fn is_vhost_limits(p: &Value) -> bool {
    p.get("component").and_then(Value::as_str) == Some(VHOST_LIMITS_COMPONENT)
}

fn limits_of(
    v: Option<&Value>,
    set: &mut dyn FnMut(&str, i64) -> Result<(), warren_broker::LimitError>,
) -> Result<(), ApiError> {
    let Some(Value::Object(m)) = v else {
        // An absent or empty (`[]`) value sets nothing.
        return Ok(());
    };
    for (name, value) in m {
        let n = value.as_i64().ok_or_else(|| {
            ApiError::BadRequest(format!("{name} should be a number, actually was {value}"))
        })?;
        set(name, n).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    Ok(())
}

fn vhost_limits(p: &Value) -> Result<VhostLimits, ApiError> {
    let mut l = VhostLimits::default();
    limits_of(p.get("value"), &mut |n, v| l.set(n, v))?;
    // A file lists them most recent first; set in reverse to keep that order.
    l.0.reverse();
    Ok(l)
}

fn user_limits(u: &Value) -> Result<UserLimits, ApiError> {
    let mut l = UserLimits::default();
    limits_of(u.get("limits"), &mut |n, v| l.set(n, v))?;
    Ok(l)
}

fn topic_permission(p: &Value) -> Result<(String, TopicPermission), ApiError> {
    let what = "topic permission";
    let perm = TopicPermission {
        vhost: text(p, "vhost", what)?.into(),
        exchange: text(p, "exchange", what)?.into(),
        write: text(p, "write", what)?.into(),
        read: text(p, "read", what)?.into(),
    };
    Ok((text(p, "user", what)?.into(), perm))
}

/// Checks these parts of a file before anything is imported.
pub fn check(defs: &Value) -> Result<(), ApiError> {
    for u in list(defs, "users") {
        user_limits(u)?;
    }
    for p in list(defs, "parameters")
        .iter()
        .filter(|p| is_vhost_limits(p))
    {
        vhost_limits(p)?;
    }
    for p in list(defs, "topic_permissions") {
        let (_, perm) = topic_permission(p)?;
        for pattern in [&perm.write, &perm.read] {
            warren_broker::TopicAccess::validate(pattern).map_err(|e| {
                ApiError::BadRequestTerm(json!(["invalid_regexp", e.pattern, e.reason]))
            })?;
        }
    }
    Ok(())
}

/// Imports user limits (after the users), topic permissions and vhost limits (after the
/// vhosts), as RabbitMQ's import does.
pub fn import(broker: &Broker, defs: &Value) -> Result<(), ApiError> {
    for u in list(defs, "users") {
        if u.get("limits").is_some() {
            broker.set_user_limits_live(text(u, "name", "user")?, user_limits(u)?)?;
        }
    }
    for p in list(defs, "topic_permissions") {
        let (user, perm) = topic_permission(p)?;
        broker.set_topic_permission_live(&user, perm)?;
    }
    for p in list(defs, "parameters")
        .iter()
        .filter(|p| is_vhost_limits(p))
    {
        broker.set_vhost_limits_live(text(p, "vhost", "parameter")?, Some(vhost_limits(p)?))?;
    }
    Ok(())
}

/// The `vhost-limits` parameters of a one-vhost import (`POST /api/definitions/{vhost}`):
/// their `vhost` fields, if any, are ignored.
pub fn import_into_vhost(broker: &Broker, defs: &Value, vhost: &str) -> Result<(), ApiError> {
    for p in list(defs, "parameters")
        .iter()
        .filter(|p| is_vhost_limits(p))
    {
        broker.set_vhost_limits_live(vhost, Some(vhost_limits(p)?))?;
    }
    Ok(())
}
