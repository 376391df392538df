//! Runtime parameters of a running broker: policies and operator policies (stored as the
//! `policy` and `operator_policy` components, as RabbitMQ stores them), other components, and
//! global parameters.
//!
//! A change is validated, written to the store, then applied in memory (the vhost applies a
//! policy to its queues and exchanges before the call returns). Warren registers no runtime
//! parameter component besides the two policy kinds, so setting any other component is refused
//! with RabbitMQ's "component not found", as a RabbitMQ node without plugins refuses it.

use std::sync::Arc;

use serde_json::Value;
use warren_store::{ParameterRecord, StoreError};

use super::Broker;
use crate::policy::{Policy, PolicyError, PolicyKind};

/// A runtime parameter change refused.
#[derive(Debug, thiserror::Error)]
pub enum ParameterError {
    /// The vhost does not exist.
    #[error("vhost_not_found")]
    NoSuchVhost,
    /// The policy is invalid (RabbitMQ's `Validation failed` text).
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// Refused with RabbitMQ's text (an unknown component, a policy through `/api/parameters`).
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `component` is one of the two policy components.
pub fn policy_kind(component: &str) -> Option<PolicyKind> {
    match component {
        "policy" => Some(PolicyKind::User),
        "operator_policy" => Some(PolicyKind::Operator),
        _ => None,
    }
}

impl Broker {
    /// Sets (adds or replaces) a policy while running and applies it; true when it is new.
    pub fn set_policy_live(
        &self,
        kind: PolicyKind,
        policy: Policy,
    ) -> Result<bool, ParameterError> {
        let vhost = self
            .vhost(&policy.vhost)
            .ok_or(ParameterError::NoSuchVhost)?;
        let record = ParameterRecord {
            component: kind.component().as_bytes().to_vec().into(),
            name: policy.name.as_bytes().to_vec().into(),
            value: policy.stored_value().to_string().into_bytes().into(),
        };
        self.store.put_parameter(policy.vhost.as_bytes(), &record)?;
        Ok(vhost.put_policy(kind, policy))
    }

    /// Clears a policy while running; false when there was none.
    pub fn clear_policy_live(
        &self,
        kind: PolicyKind,
        vhost: &str,
        name: &str,
    ) -> Result<bool, ParameterError> {
        let vh = self.vhost(vhost).ok_or(ParameterError::NoSuchVhost)?;
        if vh.policies().get(kind, name).is_none() {
            return Ok(false);
        }
        self.store.delete_parameter(
            vhost.as_bytes(),
            kind.component().as_bytes(),
            name.as_bytes(),
        )?;
        Ok(vh.remove_policy(kind, name))
    }

    /// The policies of a kind, of one vhost or of all, in vhost then name order.
    pub fn policies(&self, kind: PolicyKind, vhost: Option<&str>) -> Vec<Arc<Policy>> {
        let vhosts = match vhost {
            Some(v) => self.vhost(v).into_iter().collect(),
            None => self.vhosts(),
        };
        vhosts
            .iter()
            .flat_map(|v| v.policies().list(kind).to_vec())
            .collect()
    }

    /// Sets a runtime parameter of another component: Warren has none, so this is refused as
    /// RabbitMQ refuses an unknown component (and a policy set through this path).
    pub fn set_parameter_live(
        &self,
        component: &str,
        vhost: &str,
        _name: &str,
        _value: &Value,
    ) -> Result<bool, ParameterError> {
        if self.vhost(vhost).is_none() {
            return Err(ParameterError::NoSuchVhost);
        }
        if policy_kind(component).is_some() {
            return Err(ParameterError::Refused(
                "policies may not be set using this method".into(),
            ));
        }
        Err(ParameterError::Refused(format!(
            "Validation failed\n\ncomponent {component} not found\n"
        )))
    }

    /// The global parameters, sorted by name.
    pub fn global_parameters(&self) -> Vec<(String, Value)> {
        self.globals
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// One global parameter.
    pub fn global_parameter(&self, name: &str) -> Option<Value> {
        self.globals.read().get(name).cloned()
    }

    /// Sets a global parameter (any JSON value, as RabbitMQ); true when it is new.
    pub fn set_global_parameter_live(
        &self,
        name: &str,
        value: Value,
    ) -> Result<bool, ParameterError> {
        let mut globals = self.globals.write();
        self.store
            .put_global_parameter(name.as_bytes(), value.to_string().as_bytes())?;
        Ok(globals.insert(name.to_string(), value).is_none())
    }

    /// Clears a global parameter; false when there was none.
    pub fn clear_global_parameter_live(&self, name: &str) -> Result<bool, ParameterError> {
        let mut globals = self.globals.write();
        if !globals.contains_key(name) {
            return Ok(false);
        }
        self.store.delete_global_parameter(name.as_bytes())?;
        globals.remove(name);
        Ok(true)
    }

    /// Loads stored policies and global parameters at startup, before queues and exchanges are
    /// recovered (so they get their policies as they come back).
    pub(super) fn recover_parameters(
        &self,
        defs: &warren_store::Definitions,
    ) -> Result<(), StoreError> {
        let text = |b: &bytes::Bytes| String::from_utf8_lossy(b).into_owned();
        for (vhost, p) in &defs.parameters {
            let Some(kind) = policy_kind(&text(&p.component)) else {
                // Components Warren does not know (another version's, another subsystem's):
                // kept in the store, not applied.
                continue;
            };
            let vh = self.add_vhost(&text(vhost));
            let value: Value = serde_json::from_slice(&p.value)
                .map_err(|e| StoreError::Corrupt(format!("policy {}: {e}", text(&p.name))))?;
            let policy = Policy::from_stored(kind, &vh.name, &text(&p.name), &value)
                .map_err(|e| StoreError::Corrupt(format!("policy {}: {e}", text(&p.name))))?;
            vh.load_policy(kind, policy);
        }
        let mut globals = self.globals.write();
        for (name, value) in &defs.global_parameters {
            let value: Value = serde_json::from_slice(value).map_err(|e| {
                StoreError::Corrupt(format!("global parameter {}: {e}", text(name)))
            })?;
            globals.insert(text(name), value);
        }
        Ok(())
    }
}
