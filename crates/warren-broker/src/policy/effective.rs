//! What applies to one queue or exchange: the matching policy and operator policy, their merged
//! definition (`rabbit_policy:effective_definition/1`), and the queue limits that result when it
//! meets the queue's own arguments (`rabbit_amqqueue_process:process_args_policy/1`).

use std::sync::Arc;

use serde_json::{Map, Value};
use warren_codec::FieldTable;

use super::Policy;
use crate::queue::{Overflow, QueueArgs};

/// The policy and operator policy applied to one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// The user policy, if one matches.
    pub policy: Option<Arc<Policy>>,
    /// The operator policy, if one matches.
    pub operator: Option<Arc<Policy>>,
}

/// Keys whose user and operator values merge to the smaller (`rabbit_policies`).
const MIN_MERGED: &[&str] = &[
    "delivery-limit",
    "expires",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
];

fn smaller(a: &Value, b: &Value) -> Value {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if y < x => b.clone(),
        _ => a.clone(),
    }
}

impl Applied {
    /// The merged definition: every key of both, the smaller number where both set a limit,
    /// the operator's value for other keys both set.
    pub fn definition(&self) -> Map<String, Value> {
        let user = self.policy.as_ref().map(|p| &p.definition);
        let op = self.operator.as_ref().map(|p| &p.definition);
        let mut out = user.cloned().unwrap_or_default();
        for (k, v) in op.into_iter().flatten() {
            let merged = match out.get(k) {
                Some(mine) if MIN_MERGED.contains(&k.as_str()) => smaller(mine, v),
                _ => v.clone(),
            };
            out.insert(k.clone(), merged);
        }
        out
    }

    /// The policy's name for the API (`null` when none).
    pub fn policy_name(&self) -> Option<&str> {
        self.policy.as_ref().map(|p| p.name.as_str())
    }

    /// The operator policy's name for the API.
    pub fn operator_name(&self) -> Option<&str> {
        self.operator.as_ref().map(|p| p.name.as_str())
    }

    /// The alternate exchange the policies give an exchange (its own argument still wins).
    pub fn alternate_exchange(&self) -> Option<String> {
        self.definition()
            .get("alternate-exchange")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// A queue's limits under a policy definition: `message-ttl`, `expires`, `max-length` and
/// `max-length-bytes` take the smaller of policy and argument; `dead-letter-exchange`,
/// `dead-letter-routing-key` and `overflow` follow the argument when there is one. Other keys
/// change nothing on a classic queue: `queue-mode` and `queue-version` are storage choices
/// Warren does not have, and RabbitMQ's classic queues ignore `delivery-limit` from policies.
pub fn effective_queue_args(
    declared: &QueueArgs,
    arguments: &FieldTable,
    definition: &Map<String, Value>,
) -> QueueArgs {
    let mut out = declared.clone();
    let num = |k: &str| definition.get(k).and_then(Value::as_u64);
    let text = |k: &str| {
        definition
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let min = |arg: Option<u64>, pol: Option<u64>| match (arg, pol) {
        (Some(a), Some(p)) => Some(a.min(p)),
        (a, p) => a.or(p),
    };
    out.message_ttl = min(declared.message_ttl, num("message-ttl"));
    out.expires = min(declared.expires, num("expires"));
    out.max_length = min(declared.max_length, num("max-length"));
    out.max_length_bytes = min(declared.max_length_bytes, num("max-length-bytes"));
    if declared.dead_letter_exchange.is_none() {
        out.dead_letter_exchange = text("dead-letter-exchange");
    }
    if declared.dead_letter_routing_key.is_none() {
        out.dead_letter_routing_key = text("dead-letter-routing-key");
    }
    if arguments.get("x-overflow").is_none() {
        out.overflow = match text("overflow").as_deref() {
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead,
        };
    }
    out
}
