//! Routing across exchanges: which queues a message reaches.

use warren_codec::{FieldTable, FieldValue};

use crate::router_tests::{none, route, route_h, router_with, with_ae};
use crate::{Declared, Destination, ExchangeDef, ExchangeKind, Router, RouterError};

#[test]
fn default_exchange_routes_by_queue_name() {
    let r = router_with(&[], &["a", "b"]);
    assert_eq!(route(&r, "", &["a"]), ["a"]);
    assert_eq!(route(&r, "", &["a", "b", "a"]), ["a", "b"]);
    assert!(route(&r, "", &["missing"]).is_empty());
    assert_eq!(r.binding_count(), 0);
    assert!(!r.has_bindings_as_source(b""));
}

#[test]
fn missing_exchange_is_not_found_on_route() {
    let r: Router<()> = Router::new();
    let mut out = Vec::new();
    let err = r.route(b"nope", &[b"k"], None, &mut out).err();
    assert_eq!(err.as_ref().map(RouterError::reply_code), Some(404));
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some("no exchange 'nope' in vhost '/'")
    );
}

#[test]
fn direct_exchange_matches_exact_key() {
    let mut r = router_with(&[("x", ExchangeKind::Direct)], &["q1", "q2"]);
    assert_eq!(r.bind_queue(b"x", b"q1", "a".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"x", b"q2", "b".into(), none()), Ok(()));
    assert_eq!(route(&r, "x", &["a"]), ["q1"]);
    assert!(route(&r, "x", &["A"]).is_empty());
    assert_eq!(route(&r, "x", &["a", "b"]), ["q1", "q2"]);
}

#[test]
fn fanout_exchange_ignores_routing_key() {
    let mut r = router_with(&[("f", ExchangeKind::Fanout)], &["q1", "q2"]);
    assert_eq!(r.bind_queue(b"f", b"q1", "x".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"f", b"q2", "".into(), none()), Ok(()));
    assert_eq!(route(&r, "f", &["whatever"]), ["q1", "q2"]);
}

#[test]
fn topic_exchange_routes_cc_keys_too() {
    let mut r = router_with(&[("t", ExchangeKind::Topic)], &["a", "b"]);
    assert_eq!(r.bind_queue(b"t", b"a", "a.*".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"t", b"b", "#.b".into(), none()), Ok(()));
    assert_eq!(route(&r, "t", &["a.x"]), ["a"]);
    assert_eq!(route(&r, "t", &["a.x", "b"]), ["a", "b"]);
    assert_eq!(route(&r, "t", &["a.b"]), ["a", "b"]);
}

#[test]
fn headers_exchange_routes_on_headers() {
    let mut r = router_with(&[("h", ExchangeKind::Headers)], &["all", "any"]);
    let all: FieldTable = [("k", FieldValue::I32(1)), ("j", FieldValue::Void)]
        .into_iter()
        .collect();
    let any: FieldTable = [
        ("x-match", FieldValue::from("any")),
        ("k", FieldValue::I64(1)),
    ]
    .into_iter()
    .collect();
    assert_eq!(r.bind_queue(b"h", b"all", "".into(), all), Ok(()));
    assert_eq!(r.bind_queue(b"h", b"any", "".into(), any), Ok(()));
    let h: FieldTable = [("k", FieldValue::U8(1))].into_iter().collect();
    assert_eq!(route_h(&r, "h", &[""], Some(&h)), ["any"]);
    let h: FieldTable = [("k", FieldValue::U8(1)), ("j", FieldValue::from("z"))]
        .into_iter()
        .collect();
    assert_eq!(route_h(&r, "h", &[""], Some(&h)), ["all", "any"]);
    assert!(route_h(&r, "h", &[""], None).is_empty());
}

#[test]
fn queue_reached_by_two_paths_gets_one_copy() {
    let mut r = router_with(
        &[("t", ExchangeKind::Topic), ("f", ExchangeKind::Fanout)],
        &["q"],
    );
    assert_eq!(r.bind_queue(b"t", b"q", "a.*".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"t", b"q", "#".into(), none()), Ok(()));
    assert_eq!(r.bind_exchange(b"f", b"t", "#".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"f", b"q", "".into(), none()), Ok(()));
    assert_eq!(route(&r, "t", &["a.b", "a.c"]), ["q"]);
}

#[test]
fn exchange_to_exchange_bindings_are_followed() {
    let mut r = router_with(
        &[("src", ExchangeKind::Direct), ("dst", ExchangeKind::Topic)],
        &["q"],
    );
    assert_eq!(
        r.bind_exchange(b"dst", b"src", "k.a".into(), none()),
        Ok(())
    );
    assert_eq!(r.bind_queue(b"dst", b"q", "k.*".into(), none()), Ok(()));
    assert_eq!(route(&r, "src", &["k.a"]), ["q"]);
    assert!(route(&r, "src", &["k.b"]).is_empty());
    let listed: Vec<_> = r.bindings().map(|b| b.destination).collect();
    assert!(listed.contains(&Destination::Exchange(&"dst".into())));
}

#[test]
fn exchange_to_exchange_cycle_terminates() {
    let mut r = router_with(
        &[("a", ExchangeKind::Fanout), ("b", ExchangeKind::Fanout)],
        &["q"],
    );
    assert_eq!(r.bind_exchange(b"b", b"a", "".into(), none()), Ok(()));
    assert_eq!(r.bind_exchange(b"a", b"b", "".into(), none()), Ok(()));
    assert_eq!(r.bind_exchange(b"a", b"a", "".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"b", b"q", "".into(), none()), Ok(()));
    assert_eq!(route(&r, "a", &[""]), ["q"]);
    assert_eq!(route(&r, "b", &[""]), ["q"]);
}

#[test]
fn alternate_exchange_used_only_when_unroutable() {
    let mut r = router_with(&[("ae", ExchangeKind::Fanout)], &["q", "lost"]);
    assert_eq!(
        r.declare_exchange(with_ae("x", ExchangeKind::Direct, "ae")),
        Ok(Declared::Created)
    );
    assert_eq!(r.bind_queue(b"ae", b"lost", "".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"x", b"q", "k".into(), none()), Ok(()));
    assert_eq!(route(&r, "x", &["k"]), ["q"]);
    assert_eq!(route(&r, "x", &["other"]), ["lost"]);
}

#[test]
fn alternate_exchange_not_used_when_message_reaches_an_exchange() {
    // RabbitMQ consults the AE only when the exchange's own bindings matched nothing at all.
    let mut r = router_with(
        &[
            ("ae", ExchangeKind::Fanout),
            ("empty", ExchangeKind::Direct),
        ],
        &["lost"],
    );
    assert_eq!(
        r.declare_exchange(with_ae("x", ExchangeKind::Fanout, "ae")),
        Ok(Declared::Created)
    );
    assert_eq!(r.bind_queue(b"ae", b"lost", "".into(), none()), Ok(()));
    assert_eq!(r.bind_exchange(b"empty", b"x", "".into(), none()), Ok(()));
    assert!(route(&r, "x", &["k"]).is_empty());
}

#[test]
fn alternate_exchange_chains_are_followed_and_cycles_end() {
    let mut r = router_with(&[], &["end"]);
    for (name, ae) in [("a", "b"), ("b", "c"), ("c", "a")] {
        assert_eq!(
            r.declare_exchange(with_ae(name, ExchangeKind::Direct, ae)),
            Ok(Declared::Created)
        );
    }
    assert!(route(&r, "a", &["k"]).is_empty());
    assert_eq!(r.bind_queue(b"c", b"end", "k".into(), none()), Ok(()));
    assert_eq!(route(&r, "a", &["k"]), ["end"]);
}

#[test]
fn missing_alternate_exchange_is_ignored() {
    let mut r = router_with(&[], &["q"]);
    assert_eq!(
        r.declare_exchange(with_ae("x", ExchangeKind::Direct, "ghost")),
        Ok(Declared::Created)
    );
    assert!(route(&r, "x", &["k"]).is_empty());
}

#[test]
fn default_exchange_as_alternate_routes_nowhere() {
    // RabbitMQ 3.10 stores no default-exchange bindings, so reaching "" through an AE finds none.
    let mut r = router_with(&[], &["k"]);
    assert_eq!(
        r.declare_exchange(with_ae("x", ExchangeKind::Direct, "")),
        Ok(Declared::Created)
    );
    assert!(route(&r, "x", &["k"]).is_empty());
}

#[test]
fn internal_exchange_routes_but_refuses_publish() {
    let mut r = router_with(&[("pub", ExchangeKind::Fanout)], &["q"]);
    let mut internal = ExchangeDef::new("int", ExchangeKind::Fanout);
    internal.internal = true;
    assert_eq!(r.declare_exchange(internal), Ok(Declared::Created));
    assert_eq!(r.bind_exchange(b"int", b"pub", "".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"int", b"q", "".into(), none()), Ok(()));
    assert_eq!(route(&r, "pub", &[""]), ["q"]);
    let err = r.check_publish(b"int").err();
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some("cannot publish to internal exchange 'int' in vhost '/'")
    );
    assert!(r.check_publish(b"pub").is_ok());
}

#[test]
fn route_does_not_grow_out_beyond_its_capacity() {
    let mut r = router_with(&[("t", ExchangeKind::Topic)], &["a", "b"]);
    assert_eq!(r.bind_queue(b"t", b"a", "#".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"t", b"b", "x.*".into(), none()), Ok(()));
    let mut out = Vec::with_capacity(4);
    let ptr = out.as_ptr();
    for _ in 0..3 {
        out.clear();
        assert_eq!(r.route(b"t", &[b"x.y"], None, &mut out), Ok(()));
        assert_eq!(out.len(), 2);
    }
    assert_eq!(out.as_ptr(), ptr);
}
