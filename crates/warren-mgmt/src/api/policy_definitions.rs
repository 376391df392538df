//! The policy and runtime parameter parts of `/api/definitions` (export and import), in
//! RabbitMQ's format: `policies` as `/api/policies` lists them (with `vhost`, also in a vhost's
//! own export, as RabbitMQ writes it), `global_parameters` as `{name, value}`, `parameters`
//! empty (Warren has no runtime parameter component). Operator policies are not part of
//! RabbitMQ 3.10's definitions, so not of Warren's.

use serde_json::{Map, Value, json};
use warren_broker::Broker;
use warren_broker::policy::{Policy, PolicyKind};

use super::policies::escape_html;
use crate::ApiError;

/// The `policies` list of an export: every vhost's, or one vhost's.
pub fn export_policies(broker: &Broker, vhost: Option<&str>) -> Value {
    Value::Array(
        broker
            .policies(PolicyKind::User, vhost)
            .iter()
            .map(|p| p.to_json())
            .collect(),
    )
}

/// The `global_parameters` list of an export.
pub fn export_global_parameters(broker: &Broker) -> Value {
    Value::Array(
        broker
            .global_parameters()
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

fn items<'a>(defs: &'a Value, key: &str) -> &'a [Value] {
    defs.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A policy of a definitions file, validated (`vhost` from the file unless `only` names it).
fn policy_of(p: &Value, only: Option<&str>) -> Result<Policy, ApiError> {
    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
    let vhost = only
        .or_else(|| p.get("vhost").and_then(Value::as_str))
        .unwrap_or("/");
    Policy::parse(
        PolicyKind::User,
        vhost,
        name,
        p.get("pattern").unwrap_or(&Value::Null),
        p.get("definition").unwrap_or(&Map::new().into()),
        p.get("priority"),
        p.get("apply-to"),
    )
    .map_err(|e| ApiError::BadRequest(escape_html(&e.to_string())))
}

/// Checks the policies and parameters of a file before anything is imported.
pub fn check(defs: &Value) -> Result<(), ApiError> {
    // `vhost-limits` is the one component Warren has (definitions_access.rs); any other is
    // refused as RabbitMQ refuses a component no plugin registered.
    if let Some(p) = items(defs, "parameters")
        .iter()
        .find(|p| !super::definitions_access::is_vhost_limits(p))
    {
        let component = p.get("component").and_then(Value::as_str).unwrap_or("");
        return Err(ApiError::BadRequest(format!(
            "Validation failed\n\ncomponent {component} not found\n"
        )));
    }
    for p in items(defs, "policies") {
        policy_of(p, None)?;
    }
    Ok(())
}

/// Imports global parameters and policies (into `only` when importing one vhost's file).
pub fn import(broker: &Broker, defs: &Value, only: Option<&str>) -> Result<(), ApiError> {
    for g in items(defs, "global_parameters") {
        if let (Some(name), Some(value)) = (g.get("name").and_then(Value::as_str), g.get("value")) {
            broker
                .set_global_parameter_live(name, value.clone())
                .map_err(super::policies::parameter_error)?;
        }
    }
    for p in items(defs, "policies") {
        let policy = policy_of(p, only)?;
        broker
            .set_policy_live(PolicyKind::User, policy)
            .map_err(super::policies::parameter_error)?;
    }
    Ok(())
}
