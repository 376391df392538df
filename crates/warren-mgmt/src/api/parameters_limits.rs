//! The `vhost-limits` runtime-parameter component under `/api/parameters/vhost-limits/...`:
//! the same limits `/api/vhost-limits` serves, as one parameter named `limits` per vhost whose
//! value is the whole object of limits (RabbitMQ 3.10 stores vhost limits this way).
//!
//! A PUT replaces every limit at once (`/api/vhost-limits/{vhost}/{name}` changes one); a
//! DELETE removes the parameter. RabbitMQ also stores a parameter of another name and then
//! fails with 500 (its limit tracker reads only `limits`); Warren answers the 500 without
//! storing it (docs/compatibility.md).

use serde_json::{Value, json};
use warren_broker::VhostLimits;

use super::vhost_limits::{erlang_term, limits_json};
use crate::{ApiError, Management};

/// The component's name in the path.
pub const COMPONENT: &str = "vhost-limits";

/// The one parameter name RabbitMQ's limits read.
const NAME: &str = "limits";

/// One vhost's parameter as RabbitMQ lists it.
fn row(vhost: &str, limits: &VhostLimits) -> Value {
    json!({"value": limits_json(&limits.0), "vhost": vhost, "component": COMPONENT, "name": NAME})
}

/// Every `vhost-limits` parameter of the vhosts `keep` accepts, by vhost name.
pub fn rows(m: &Management, keep: impl Fn(&str) -> bool) -> Vec<Value> {
    let mut vhosts = m.broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    vhosts
        .iter()
        .filter(|v| keep(&v.name))
        .filter_map(|v| v.limits().map(|l| row(&v.name, &l)))
        .collect()
}

/// `GET /api/parameters/vhost-limits/{vhost}/{name}`.
pub fn show(m: &Management, vhost: &str, name: &str) -> Result<Value, ApiError> {
    let vh = m.broker.vhost(vhost).ok_or(ApiError::NotFound)?;
    match vh.limits() {
        Some(l) if name == NAME => Ok(row(vhost, &l)),
        _ => Err(ApiError::NotFound),
    }
}

fn invalid(text: String) -> ApiError {
    ApiError::BadRequest(super::policies::escape_html(&format!(
        "Validation failed\n\n{text}\n"
    )))
}

/// The limits a PUT body's `value` sets, or RabbitMQ's validation message.
pub fn parse(value: &Value) -> Result<VhostLimits, ApiError> {
    let Value::Object(o) = value else {
        // RabbitMQ: a JSON list is accepted only when empty (an empty proplist).
        if value.as_array().is_some_and(Vec::is_empty) {
            return Ok(VhostLimits::default());
        }
        return Err(invalid(format!("limits not a list {}", erlang_term(value))));
    };
    let mut limits = VhostLimits::default();
    // `set` puts each limit first: go backwards to keep the map's (name) order.
    for (name, v) in o.iter().rev() {
        let n = v.as_i64().ok_or_else(|| {
            invalid(format!(
                "{name} should be a number, actually was {}",
                erlang_term(v)
            ))
        })?;
        limits.set(name, n).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(limits)
}

/// `PUT /api/parameters/vhost-limits/{vhost}/{name}` with the body's `value`; true when new.
pub fn put(m: &Management, vhost: &str, name: &str, value: &Value) -> Result<bool, ApiError> {
    let vh = m.broker.vhost(vhost).ok_or(ApiError::NotFoundReason {
        error: "not_found",
        reason: "vhost_not_found",
    })?;
    let limits = parse(value)?;
    if name != NAME {
        return Err(ApiError::Crash);
    }
    let new = vh.limits().is_none();
    m.broker.set_vhost_limits_live(vhost, Some(limits))?;
    Ok(new)
}

/// `DELETE /api/parameters/vhost-limits/{vhost}/{name}`: 404 when there is no such parameter.
pub fn remove(m: &Management, vhost: &str, name: &str) -> Result<(), ApiError> {
    show(m, vhost, name)?;
    m.broker.set_vhost_limits_live(vhost, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_an_object_of_integer_limits() {
        let l = parse(&json!({"max-queues": 3, "max-connections": -1})).ok();
        assert_eq!(
            l.map(|l| l.0),
            Some(vec![
                ("max-connections".to_string(), -1),
                ("max-queues".to_string(), 3)
            ])
        );
        assert_eq!(parse(&json!([])).ok().map(|l| l.0.len()), Some(0));
    }

    #[test]
    fn parse_refuses_with_rabbitmqs_messages() {
        let text = |v: Value| match parse(&v) {
            Err(ApiError::BadRequest(t)) => t,
            other => format!("{other:?}"),
        };
        assert_eq!(text(json!(5)), "Validation failed\n\nlimits not a list 5\n");
        assert_eq!(
            text(json!({"max-queues": "x"})),
            "Validation failed\n\nmax-queues should be a number, actually was &lt;&lt;\"x\"&gt;&gt;\n"
        );
        assert_eq!(
            text(json!({"bogus": 1})),
            "Validation failed\n\nUnrecognised terms [{&lt;&lt;\"bogus\"&gt;&gt;,1}] in limits\n"
        );
    }
}
