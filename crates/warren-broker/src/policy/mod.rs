//! Policies and operator policies (RabbitMQ's `rabbit_policy`): what they are, how they are
//! validated, which one applies to a queue or exchange, and what they make of a queue's limits.
//!
//! This module owns the rules only; a [`crate::VHost`] keeps its policies and applies them to
//! its queues and exchanges (`vhost/policies.rs`), the broker persists them
//! (`broker/parameters.rs`).

mod effective;
mod term;
mod validate;

use std::sync::Arc;

use serde_json::{Map, Number, Value};

pub use effective::{Applied, effective_queue_args};
pub use validate::PolicyError;

/// A user policy or an operator policy: two runtime parameter components of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// `policy`: set by policymakers, any recognised key.
    User,
    /// `operator_policy`: set by administrators, numeric limits only, merged with the user's.
    Operator,
}

impl PolicyKind {
    /// The runtime parameter component that holds this kind.
    pub fn component(self) -> &'static str {
        match self {
            PolicyKind::User => "policy",
            PolicyKind::Operator => "operator_policy",
        }
    }
}

/// What a policy applies to (`apply-to`); RabbitMQ 3.10 knows these three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyTo {
    /// Queues only.
    Queues,
    /// Exchanges only.
    Exchanges,
    /// Both.
    All,
}

impl ApplyTo {
    /// The name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "queues" => Some(ApplyTo::Queues),
            "exchanges" => Some(ApplyTo::Exchanges),
            "all" => Some(ApplyTo::All),
            _ => None,
        }
    }
}

/// The kind of object a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A queue.
    Queue,
    /// An exchange.
    Exchange,
}

/// A validated policy of one vhost.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// The regular expression names are matched against (unanchored, as `re:run`).
    pub pattern: String,
    regex: regex::Regex,
    /// What it applies to.
    pub apply_to: ApplyTo,
    /// Higher wins; any JSON number, as RabbitMQ accepts.
    pub priority: Number,
    /// The keys and values it sets, sorted by key.
    pub definition: Map<String, Value>,
}

impl PartialEq for Policy {
    fn eq(&self, o: &Self) -> bool {
        self.vhost == o.vhost
            && self.name == o.name
            && self.pattern == o.pattern
            && self.apply_to == o.apply_to
            && self.priority == o.priority
            && self.definition == o.definition
    }
}

impl Policy {
    /// True when the policy applies to an object of this kind and name.
    pub fn matches(&self, target: Target, name: &str) -> bool {
        let kind_ok = matches!(
            (self.apply_to, target),
            (ApplyTo::All, _)
                | (ApplyTo::Queues, Target::Queue)
                | (ApplyTo::Exchanges, Target::Exchange)
        );
        kind_ok && self.regex.is_match(name)
    }

    /// The priority as a number to compare.
    pub fn priority_value(&self) -> f64 {
        self.priority.as_f64().unwrap_or(0.0)
    }

    /// The API's and the definitions file's form: `vhost`, `name`, `pattern`, `apply-to`,
    /// `definition`, `priority`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to.as_str(),
            "definition": self.definition,
            "priority": self.priority,
        })
    }

    /// The runtime parameter's value as stored: `pattern`, `definition`, `priority`, `apply-to`.
    pub fn stored_value(&self) -> Value {
        serde_json::json!({
            "pattern": self.pattern,
            "definition": self.definition,
            "priority": self.priority,
            "apply-to": self.apply_to.as_str(),
        })
    }
}

/// The policies and operator policies of one vhost.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    user: Vec<Arc<Policy>>,
    operator: Vec<Arc<Policy>>,
}

impl PolicySet {
    fn list_mut(&mut self, kind: PolicyKind) -> &mut Vec<Arc<Policy>> {
        match kind {
            PolicyKind::User => &mut self.user,
            PolicyKind::Operator => &mut self.operator,
        }
    }

    /// The policies of a kind, sorted by name.
    pub fn list(&self, kind: PolicyKind) -> &[Arc<Policy>] {
        match kind {
            PolicyKind::User => &self.user,
            PolicyKind::Operator => &self.operator,
        }
    }

    /// The policy of that kind and name.
    pub fn get(&self, kind: PolicyKind, name: &str) -> Option<&Arc<Policy>> {
        self.list(kind).iter().find(|p| p.name == name)
    }

    /// Adds or replaces a policy; true when it is new.
    pub fn put(&mut self, kind: PolicyKind, policy: Policy) -> bool {
        let list = self.list_mut(kind);
        match list.binary_search_by(|p| p.name.as_str().cmp(&policy.name)) {
            Ok(i) => {
                list[i] = Arc::new(policy);
                false
            }
            Err(i) => {
                list.insert(i, Arc::new(policy));
                true
            }
        }
    }

    /// Removes a policy; true when it existed.
    pub fn remove(&mut self, kind: PolicyKind, name: &str) -> bool {
        let list = self.list_mut(kind);
        let before = list.len();
        list.retain(|p| p.name != name);
        list.len() != before
    }

    /// The policy of a kind that applies to the object: the highest priority among those
    /// matching. RabbitMQ breaks ties by its table order, which is not specified; Warren takes
    /// the first by name, so the answer is at least stable.
    pub fn matching(&self, kind: PolicyKind, target: Target, name: &str) -> Option<Arc<Policy>> {
        let mut best: Option<&Arc<Policy>> = None;
        for p in self.list(kind) {
            if p.matches(target, name)
                && best.is_none_or(|b| p.priority_value() > b.priority_value())
            {
                best = Some(p);
            }
        }
        best.cloned()
    }

    /// The user and operator policies that apply to the object.
    pub fn applied(&self, target: Target, name: &str) -> Applied {
        Applied {
            policy: self.matching(PolicyKind::User, target, name),
            operator: self.matching(PolicyKind::Operator, target, name),
        }
    }

    /// True when no policy of either kind exists (declarations skip the matching then).
    pub fn is_empty(&self) -> bool {
        self.user.is_empty() && self.operator.is_empty()
    }
}

#[cfg(test)]
mod tests;
