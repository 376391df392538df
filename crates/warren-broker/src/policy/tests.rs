//! Validation texts and matching rules, checked against RabbitMQ 3.10.8's answers.

use serde_json::{Value, json};

use super::*;

fn parse(kind: PolicyKind, body: Value) -> Result<Policy, String> {
    Policy::parse(
        kind,
        "/",
        "p",
        body.get("pattern").unwrap_or(&Value::Null),
        body.get("definition").unwrap_or(&Value::Null),
        body.get("priority"),
        body.get("apply-to"),
    )
    .map_err(|e| e.to_string())
}

fn user(body: Value) -> Result<Policy, String> {
    parse(PolicyKind::User, body)
}

#[test]
fn defaults_are_priority_zero_and_apply_to_all() {
    let p = user(json!({"pattern": "^a", "definition": {"message-ttl": 5}})).unwrap();
    assert_eq!(p.priority, Number::from(0));
    assert_eq!(p.apply_to, ApplyTo::All);
}

#[test]
fn errors_are_rabbitmqs_in_rabbitmqs_order() {
    assert_eq!(
        user(
            json!({"pattern": "a", "definition": {"message-ttl": -1, "expires": 0},
                    "priority": "y", "apply-to": "foo"})
        ),
        Err("Validation failed\n\n0 is not a valid queue expiry\n\
             apply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'\n\
             priority should be a number, actually was <<\"y\">>\n"
            .into())
    );
    assert_eq!(
        user(json!({"pattern": "(", "definition": {"message-ttl": 1}, "priority": 1})),
        Err("Validation failed\n\npattern should be regular expression but is invalid: {\"missing )\",1}\n".into())
    );
    assert_eq!(
        user(json!({"pattern": 1, "definition": {"message-ttl": 1}})),
        Err("Validation failed\n\npattern should be a binary but was 1\n".into())
    );
    assert_eq!(
        user(json!({"pattern": "a", "definition": {"bogus": 1}})),
        Err("Validation failed\n\n[{<<\"bogus\">>,1}] are not recognised policy settings\n".into())
    );
    assert_eq!(
        user(json!({"pattern": "a", "definition": {}})),
        Err("Validation failed\n\nno policy provided\n".into())
    );
    assert_eq!(
        user(json!({"pattern": "a", "definition": {"max-length": 1.5}})),
        Err("Validation failed\n\n1.5 is not a valid maximum length\n".into())
    );
    assert_eq!(
        user(json!({"pattern": "a", "definition": {"max-length": {"a": 1}}})),
        Err("Validation failed\n\n#{<<\"a\">> => 1} is not a valid maximum length\n".into())
    );
    assert_eq!(
        user(json!({"pattern": "a", "definition": {"alternate-exchange": 1, "max-length": "a"}})),
        Err("Validation failed\n\n1 is not a valid alternate exchange name\n".into())
    );
}

#[test]
fn operator_policies_take_numeric_limits_only() {
    assert!(
        parse(
            PolicyKind::Operator,
            json!({"pattern": "a", "definition": {"max-length": 1}})
        )
        .is_ok()
    );
    assert_eq!(
        parse(PolicyKind::Operator, json!({"pattern": "a", "definition": {"overflow": "drop-head"}})),
        Err("Validation failed\n\n[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings\n".into())
    );
}

#[test]
fn the_highest_priority_match_applies_and_apply_to_filters() {
    let mut set = PolicySet::default();
    let p = |name: &str, pattern: &str, prio: i64, to: &str| {
        Policy::parse(
            PolicyKind::User,
            "/",
            name,
            &json!(pattern),
            &json!({"max-length": prio}),
            Some(&json!(prio)),
            Some(&json!(to)),
        )
        .unwrap()
    };
    set.put(PolicyKind::User, p("low", "^q", 1, "all"));
    set.put(PolicyKind::User, p("high", "q", 5, "queues"));
    set.put(PolicyKind::User, p("x", "q", 9, "exchanges"));
    assert_eq!(
        set.matching(PolicyKind::User, Target::Queue, "q1")
            .unwrap()
            .name,
        "high"
    );
    assert_eq!(
        set.matching(PolicyKind::User, Target::Exchange, "q1")
            .unwrap()
            .name,
        "x"
    );
    assert_eq!(
        set.matching(PolicyKind::User, Target::Queue, "aq")
            .unwrap()
            .name,
        "high"
    );
    assert!(
        set.matching(PolicyKind::User, Target::Queue, "zzz")
            .is_none()
    );
    assert!(set.remove(PolicyKind::User, "high"));
    assert_eq!(
        set.matching(PolicyKind::User, Target::Queue, "q1")
            .unwrap()
            .name,
        "low"
    );
}

#[test]
fn operator_limits_merge_to_the_minimum() {
    let user = Policy::parse(
        PolicyKind::User,
        "/",
        "u",
        &json!("."),
        &json!({"message-ttl": 1000, "max-length": 5, "overflow": "reject-publish"}),
        None,
        None,
    )
    .unwrap();
    let op = Policy::parse(
        PolicyKind::Operator,
        "/",
        "o",
        &json!("."),
        &json!({"message-ttl": 200, "max-length": 50, "expires": 100000}),
        None,
        None,
    )
    .unwrap();
    let applied = Applied {
        policy: Some(Arc::new(user)),
        operator: Some(Arc::new(op)),
    };
    assert_eq!(
        Value::Object(applied.definition()),
        json!({"expires": 100000, "max-length": 5, "message-ttl": 200, "overflow": "reject-publish"})
    );
}
