//! Policy validation with RabbitMQ 3.10's rules and texts (`rabbit_policy:policy_validation/0`,
//! `rabbit_policies:validate_policy0/2`, `rabbit_parameter_validation`).
//!
//! RabbitMQ collects one error per field, definition first, then `apply-to`, `pattern`,
//! `priority` (its results list is built backwards), and reports the definition's first bad key
//! in key order; the text is `Validation failed\n\n` and one line per error.

use serde_json::{Map, Number, Value};

use super::term::erlang;
use super::{ApplyTo, Policy, PolicyKind};

/// A policy RabbitMQ would refuse, with its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `Validation failed` and the errors, one per line.
    #[error("{}", validation_text(.0))]
    Invalid(Vec<String>),
}

fn validation_text(errors: &[String]) -> String {
    let mut s = String::from("Validation failed\n\n");
    for e in errors {
        s.push_str(e);
        s.push('\n');
    }
    s
}

/// Policy keys of RabbitMQ 3.10's core, with the check each value must pass and the end of the
/// error text (`<value> is not a valid ...`).
const USER_KEYS: &[(&str, Check, &str)] = &[
    ("alternate-exchange", Check::Text, "alternate exchange name"),
    (
        "dead-letter-exchange",
        Check::Text,
        "dead letter exchange name",
    ),
    (
        "dead-letter-routing-key",
        Check::Text,
        "dead letter routing key",
    ),
    (
        "dead-letter-strategy",
        Check::OneOf(&["at-most-once", "at-least-once"]),
        "dead letter strategy",
    ),
    ("delivery-limit", Check::Int(0), "delivery limit"),
    ("expires", Check::Int(1), "queue expiry"),
    ("initial-cluster-size", Check::Int(0), "cluster size"),
    ("max-age", Check::MaxAge, "max age"),
    (
        "max-in-memory-bytes",
        Check::Int(0),
        "maximum memory in bytes",
    ),
    (
        "max-in-memory-length",
        Check::Int(0),
        "maximum memory in bytes",
    ),
    ("max-length", Check::Int(0), "maximum length"),
    ("max-length-bytes", Check::Int(0), "maximum length in bytes"),
    ("message-ttl", Check::Int(0), "message TTL"),
    (
        "overflow",
        Check::OneOf(&["drop-head", "reject-publish", "reject-publish-dlx"]),
        "overflow value",
    ),
    (
        "queue-leader-locator",
        Check::OneOf(&["client-local", "balanced", "random", "least-leaders"]),
        "queue leader locator value",
    ),
    (
        "queue-mode",
        Check::OneOf(&["default", "lazy"]),
        "queue-mode value",
    ),
    ("queue-version", Check::Version, "queue-version value"),
    (
        "stream-max-segment-size-bytes",
        Check::SegmentSize,
        "segment size",
    ),
];

/// The keys an operator policy may set.
const OPERATOR_KEYS: &[&str] = &[
    "delivery-limit",
    "expires",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
];

/// Keys of classic queue mirroring (`rabbit_mirror_queue_misc`): accepted so definitions
/// exported from RabbitMQ import, and ignored (Warren is one node, as is a single RabbitMQ node).
const MIRRORING_KEYS: &[&str] = &[
    "ha-mode",
    "ha-params",
    "ha-promote-on-failure",
    "ha-promote-on-shutdown",
    "ha-sync-batch-size",
    "ha-sync-mode",
    "queue-master-locator",
];

#[derive(Debug, Clone, Copy)]
enum Check {
    Text,
    Int(u64),
    OneOf(&'static [&'static str]),
    MaxAge,
    Version,
    SegmentSize,
}

impl Check {
    fn passes(self, v: &Value) -> bool {
        match self {
            Check::Text => v.is_string(),
            Check::Int(min) => match v {
                Value::Number(n) if n.is_u64() => n.as_u64().is_some_and(|n| n >= min),
                _ => false,
            },
            Check::OneOf(allowed) => v.as_str().is_some_and(|s| allowed.contains(&s)),
            Check::MaxAge => v.as_str().is_some_and(|s| {
                let digits = s.trim_end_matches(['Y', 'M', 'D', 'h', 'm', 's']);
                s.len() == digits.len() + 1
                    && !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
            }),
            Check::Version => matches!(v.as_u64(), Some(1 | 2)) && v.is_u64(),
            Check::SegmentSize => v.as_u64().is_some_and(|n| n <= 3_000_000_000) && v.is_u64(),
        }
    }
}

/// The definition's error, if any (`rabbit_policy:validation/3`).
fn check_definition(kind: PolicyKind, definition: &Value) -> Option<String> {
    let Some(map) = definition.as_object() else {
        return Some(format!(
            "definition must be a dictionary: {}",
            erlang(definition)
        ));
    };
    if map.is_empty() {
        return Some("no policy provided".into());
    }
    let mut unrecognised = Vec::new();
    for (key, value) in map {
        let known = match kind {
            PolicyKind::User => USER_KEYS.iter().find(|(k, ..)| k == key),
            PolicyKind::Operator if OPERATOR_KEYS.contains(&key.as_str()) => {
                USER_KEYS.iter().find(|(k, ..)| k == key)
            }
            PolicyKind::Operator => None,
        };
        match known {
            Some((_, check, what)) if !check.passes(value) => {
                return Some(format!("{} is not a valid {what}", erlang(value)));
            }
            Some(_) => {}
            None if kind == PolicyKind::User && MIRRORING_KEYS.contains(&key.as_str()) => {}
            None => unrecognised.push(format!(
                "{{{},{}}}",
                erlang(&key.clone().into()),
                erlang(value)
            )),
        }
    }
    if unrecognised.is_empty() {
        None
    } else {
        Some(format!(
            "[{}] are not recognised policy settings",
            unrecognised.join(",")
        ))
    }
}

impl Policy {
    /// Validates a policy as `rabbit_policy:set/8` does: `priority` defaults to 0 and
    /// `apply-to` to `all`.
    pub fn parse(
        kind: PolicyKind,
        vhost: &str,
        name: &str,
        pattern: &Value,
        definition: &Value,
        priority: Option<&Value>,
        apply_to: Option<&Value>,
    ) -> Result<Policy, PolicyError> {
        let mut errors = Vec::new();
        if let Some(e) = check_definition(kind, definition) {
            errors.push(e);
        }
        let apply = match apply_to {
            None => Some(ApplyTo::All),
            Some(v) => {
                let parsed = v.as_str().and_then(ApplyTo::parse);
                if parsed.is_none() {
                    let shown = v.as_str().map_or_else(|| erlang(v), str::to_string);
                    errors.push(format!(
                        "apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                    ));
                }
                parsed
            }
        };
        let regex = match pattern {
            Value::String(p) => match regex::Regex::new(p) {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.push(format!(
                        "pattern should be regular expression but is invalid: {}",
                        regex_reason(p, &e)
                    ));
                    None
                }
            },
            other => {
                errors.push(format!(
                    "pattern should be a binary but was {}",
                    erlang(other)
                ));
                None
            }
        };
        let priority = match priority {
            None => Some(Number::from(0)),
            Some(Value::Number(n)) => Some(n.clone()),
            Some(other) => {
                errors.push(format!(
                    "priority should be a number, actually was {}",
                    erlang(other)
                ));
                None
            }
        };
        match (errors.is_empty(), regex, apply, priority) {
            (true, Some(regex), Some(apply_to), Some(priority)) => Ok(Policy {
                vhost: vhost.to_string(),
                name: name.to_string(),
                pattern: pattern.as_str().unwrap_or_default().to_string(),
                regex,
                apply_to,
                priority,
                definition: definition.as_object().cloned().unwrap_or_else(Map::new),
            }),
            _ => Err(PolicyError::Invalid(errors)),
        }
    }

    /// Reads a policy back from its stored runtime parameter value.
    pub fn from_stored(
        kind: PolicyKind,
        vhost: &str,
        name: &str,
        value: &Value,
    ) -> Result<Policy, PolicyError> {
        Policy::parse(
            kind,
            vhost,
            name,
            value.get("pattern").unwrap_or(&Value::Null),
            value.get("definition").unwrap_or(&Value::Null),
            value.get("priority"),
            value.get("apply-to"),
        )
    }
}

/// PCRE's `{Message, Offset}` for the common mistake (an unclosed group); Rust's regex words
/// other errors its own way.
fn regex_reason(pattern: &str, e: &regex::Error) -> String {
    let text = e.to_string();
    if text.contains("unclosed group") {
        format!("{{\"missing )\",{}}}", pattern.len())
    } else {
        let last = text.lines().last().unwrap_or("invalid").trim();
        let last = last.strip_prefix("error: ").unwrap_or(last);
        format!("{{\"{last}\",0}}")
    }
}
