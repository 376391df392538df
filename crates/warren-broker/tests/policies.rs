//! Policies applied live (issue 13): set, changed or cleared, they change the limits of queues
//! and exchanges that exist, without a restart, as RabbitMQ 3.10 applies them
//! (`rabbit_amqqueue_process:process_args_policy`); they survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use warren_broker::policy::{Policy, PolicyKind, Target};
use warren_broker::{Broker, Message, Overflow, Queue, QueueDeclare, VHost};
use warren_codec::{BasicProperties, FieldTable, FieldValue};
use warren_store::MemoryStore;

pub fn policy(kind: PolicyKind, name: &str, pattern: &str, prio: i64, def: Value) -> Policy {
    Policy::parse(
        kind,
        "/",
        name,
        &json!(pattern),
        &def,
        Some(&json!(prio)),
        None,
    )
    .unwrap()
}

pub fn set(b: &Broker, name: &str, pattern: &str, prio: i64, def: Value) {
    b.set_policy_live(
        PolicyKind::User,
        policy(PolicyKind::User, name, pattern, prio, def),
    )
    .unwrap();
}

pub fn declare(vh: &VHost, name: &str, args: &[(&str, FieldValue)]) -> Arc<Queue> {
    vh.declare_queue(QueueDeclare {
        name: name.into(),
        durable: true,
        arguments: args.iter().cloned().collect::<FieldTable>(),
        ..Default::default()
    })
    .unwrap()
    .queue
}

pub fn publish(vh: &VHost, exchange: &str, key: &str, body: &str) -> bool {
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    let m = Message::new(
        exchange.into(),
        key.into(),
        props.to_raw(),
        Bytes::copy_from_slice(body.as_bytes()),
        warren_broker::now_ms(),
    )
    .unwrap();
    let mut queues = Vec::new();
    vh.topology()
        .route(exchange.as_bytes(), &[key.as_bytes()], None, &mut queues)
        .unwrap();
    let routed = !queues.is_empty();
    vh.publish(m, &mut queues);
    routed
}

/// Bodies of the ready messages, taken and requeued.
pub fn bodies(q: &Arc<Queue>) -> Vec<String> {
    let mut out = Vec::new();
    let mut seqs = Vec::new();
    while let Some(g) = q.get(false) {
        out.push(String::from_utf8_lossy(&g.message.body).into_owned());
        seqs.push(g.seq);
    }
    q.settle(&seqs, warren_broker::Settle::Requeue);
    out
}

fn broker() -> (Broker, Arc<VHost>) {
    let b = Broker::new();
    let vh = b.vhost("/").unwrap();
    (b, vh)
}

#[test]
fn a_max_length_policy_drops_the_head_of_a_queue_that_holds_more() {
    let (b, vh) = broker();
    let q = declare(&vh, "q", &[]);
    for i in 0..5 {
        publish(&vh, "", "q", &format!("m{i}"));
    }
    set(&b, "len", "^q$", 0, json!({"max-length": 2}));
    assert_eq!(bodies(&q), ["m3", "m4"]);
    publish(&vh, "", "q", "m5");
    assert_eq!(bodies(&q), ["m4", "m5"]);
}

#[test]
fn what_a_policy_limit_drops_goes_to_the_policys_dead_letter_exchange() {
    let (b, vh) = broker();
    let q = declare(&vh, "q", &[]);
    let dlq = declare(&vh, "dlq", &[]);
    for i in 0..3 {
        publish(&vh, "", "q", &format!("m{i}"));
    }
    set(
        &b,
        "dl",
        "^q$",
        0,
        json!({"max-length": 1, "dead-letter-exchange": "", "dead-letter-routing-key": "dlq"}),
    );
    assert_eq!(bodies(&q), ["m2"]);
    assert_eq!(bodies(&dlq), ["m0", "m1"]);
}

#[test]
fn a_message_ttl_policy_applies_to_messages_published_after_it() {
    // RabbitMQ computes a message's expiry when it is enqueued (checked against 3.10.8).
    let (b, vh) = broker();
    let q = declare(&vh, "q", &[]);
    publish(&vh, "", "q", "before");
    set(&b, "ttl", "^q$", 0, json!({"message-ttl": 0}));
    publish(&vh, "", "q", "after");
    assert_eq!(bodies(&q), ["before"]);
}

#[test]
fn arguments_win_for_overflow_and_the_smaller_limit_wins() {
    let (b, vh) = broker();
    let q = declare(
        &vh,
        "q",
        &[
            ("x-max-length", FieldValue::I32(10)),
            ("x-overflow", FieldValue::from("reject-publish")),
        ],
    );
    set(
        &b,
        "p",
        "q",
        0,
        json!({"max-length": 2, "overflow": "drop-head", "message-ttl": 60000}),
    );
    for i in 0..3 {
        publish(&vh, "", "q", &format!("m{i}"));
    }
    assert_eq!(bodies(&q), ["m0", "m1"]);
    let limits = q.limits();
    assert_eq!(limits.max_length, Some(2));
    assert_eq!(limits.overflow, Overflow::RejectPublish);
    assert_eq!(limits.message_ttl, Some(60000));
}

#[test]
fn an_operator_policy_caps_the_user_policy_and_clearing_restores_the_arguments() {
    let (b, vh) = broker();
    let q = declare(&vh, "q", &[("x-max-length", FieldValue::I32(7))]);
    set(
        &b,
        "u",
        "^q",
        1,
        json!({"max-length": 5, "expires": 100000}),
    );
    b.set_policy_live(
        PolicyKind::Operator,
        policy(
            PolicyKind::Operator,
            "o",
            ".",
            0,
            json!({"max-length": 2, "expires": 900000}),
        ),
    )
    .unwrap();
    let applied = vh.applied_policy(Target::Queue, "q");
    assert_eq!(applied.policy_name(), Some("u"));
    assert_eq!(applied.operator_name(), Some("o"));
    assert_eq!(
        Value::Object(applied.definition()),
        json!({"max-length": 2, "expires": 100000})
    );
    assert_eq!(q.limits().max_length, Some(2));
    assert!(b.clear_policy_live(PolicyKind::Operator, "/", "o").unwrap());
    assert!(b.clear_policy_live(PolicyKind::User, "/", "u").unwrap());
    assert!(!b.clear_policy_live(PolicyKind::User, "/", "u").unwrap());
    assert_eq!(q.limits(), q.args);
}

#[test]
fn the_highest_priority_policy_applies_and_exchange_policies_skip_queues() {
    let (b, vh) = broker();
    let q = declare(&vh, "orders", &[]);
    set(&b, "low", "^ord", 1, json!({"max-length": 10}));
    set(&b, "high", "ers$", 5, json!({"max-length": 3}));
    b.set_policy_live(
        PolicyKind::User,
        Policy::parse(
            PolicyKind::User,
            "/",
            "xonly",
            &json!("."),
            &json!({"max-length": 1}),
            Some(&json!(99)),
            Some(&json!("exchanges")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(q.limits().max_length, Some(3));
    assert_eq!(
        vh.applied_policy(Target::Queue, "orders").policy_name(),
        Some("high")
    );
}

#[test]
fn an_alternate_exchange_policy_routes_unroutable_publishes_until_cleared() {
    let (b, vh) = broker();
    let none = FieldTable::new();
    vh.declare_exchange(
        &"x".into(),
        &"direct".into(),
        false,
        false,
        false,
        false,
        &none,
    )
    .unwrap();
    vh.declare_exchange(
        &"ae".into(),
        &"fanout".into(),
        false,
        false,
        false,
        false,
        &none,
    )
    .unwrap();
    let caught = declare(&vh, "caught", &[]);
    vh.bind_queue(&"caught".into(), &"ae".into(), &"".into(), &none, 1)
        .unwrap();
    assert!(!publish(&vh, "x", "k", "lost"));
    set(&b, "ae", "^x$", 0, json!({"alternate-exchange": "ae"}));
    assert!(publish(&vh, "x", "k", "kept"));
    assert_eq!(bodies(&caught), ["kept"]);
    b.clear_policy_live(PolicyKind::User, "/", "ae").unwrap();
    assert!(!publish(&vh, "x", "k", "lost again"));
}

#[test]
fn a_queue_declared_after_a_policy_gets_it_at_declaration() {
    let (b, vh) = broker();
    set(&b, "len", "^late", 0, json!({"max-length": 1}));
    let q = declare(&vh, "late", &[]);
    publish(&vh, "", "late", "a");
    publish(&vh, "", "late", "b");
    assert_eq!(bodies(&q), ["b"]);
}

#[test]
fn an_expires_policy_deletes_an_unused_queue() {
    let (b, vh) = broker();
    declare(&vh, "temp", &[]);
    set(&b, "exp", "^temp$", 0, json!({"expires": 30}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while vh.topology().queue(b"temp").is_some() {
        assert!(std::time::Instant::now() < deadline, "queue did not expire");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn policies_and_global_parameters_survive_a_restart() {
    let store: Arc<dyn warren_broker::Store> = Arc::new(MemoryStore::new());
    {
        let b = Broker::with_store(store.clone());
        b.recover().unwrap();
        let vh = b.vhost("/").unwrap();
        declare(&vh, "q", &[]);
        set(&b, "len", "^q$", 3, json!({"max-length": 4}));
        b.set_policy_live(
            PolicyKind::Operator,
            policy(PolicyKind::Operator, "op", ".", 0, json!({"max-length": 2})),
        )
        .unwrap();
        b.set_global_parameter_live("cluster_name", json!("c1"))
            .unwrap();
    }
    let b = Broker::with_store(store);
    b.recover().unwrap();
    let vh = b.vhost("/").unwrap();
    let q = vh.topology().queue(b"q").cloned().unwrap();
    assert_eq!(q.limits().max_length, Some(2));
    let p = &b.policies(PolicyKind::User, Some("/"))[0];
    assert_eq!(p.to_json()["priority"], json!(3));
    assert_eq!(b.global_parameter("cluster_name"), Some(json!("c1")));
}
