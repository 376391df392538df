//! Topology changes: declaring, binding, unbinding and deleting, with their cascades.

use warren_codec::{FieldTable, ShortStr};

use crate::{ALTERNATE_EXCHANGE, Declared, ExchangeDef, ExchangeKind, Router};
use crate::{RouterError, XMatch};

pub(crate) fn none() -> FieldTable {
    FieldTable::new()
}

pub(crate) fn router_with(
    exchanges: &[(&str, ExchangeKind)],
    queues: &[&'static str],
) -> Router<&'static str> {
    let mut r = Router::new();
    for (name, kind) in exchanges {
        assert_eq!(
            r.declare_exchange(ExchangeDef::new(*name, *kind)),
            Ok(Declared::Created)
        );
    }
    for &q in queues {
        r.add_queue(ShortStr::from_static(q), q);
    }
    r
}

pub(crate) fn route(r: &Router<&'static str>, x: &str, keys: &[&str]) -> Vec<&'static str> {
    route_h(r, x, keys, None)
}

pub(crate) fn route_h(
    r: &Router<&'static str>,
    x: &str,
    keys: &[&str],
    headers: Option<&FieldTable>,
) -> Vec<&'static str> {
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let mut out = Vec::new();
    let routed = r.route(x.as_bytes(), &keys, headers, &mut out);
    assert_eq!(routed, Ok(()));
    out.sort_unstable();
    out
}

pub(crate) fn with_ae(name: &str, kind: ExchangeKind, ae: &str) -> ExchangeDef {
    let mut def = ExchangeDef::new(name, kind);
    def.arguments.insert(ALTERNATE_EXCHANGE, ae);
    def
}

#[test]
fn predeclared_exchanges_exist_and_are_durable() {
    let r: Router<()> = Router::new();
    for (name, kind) in [
        ("", ExchangeKind::Direct),
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        let def = r.exchange(name.as_bytes());
        assert_eq!(
            def.map(|d| (d.kind, d.durable)),
            Some((kind, true)),
            "{name}"
        );
    }
    assert_eq!(r.exchanges().count(), 6);
}

#[test]
fn redeclaring_an_equivalent_exchange_is_existing() {
    let mut r = router_with(&[("x", ExchangeKind::Direct)], &[]);
    assert_eq!(
        r.declare_exchange(ExchangeDef::new("x", ExchangeKind::Direct)),
        Ok(Declared::Existing)
    );
    let mut amq = ExchangeDef::new("amq.topic", ExchangeKind::Topic);
    amq.durable = true;
    assert_eq!(r.declare_exchange(amq), Ok(Declared::Existing));
}

#[test]
fn redeclaring_with_another_type_is_inequivalent() {
    let mut r = router_with(&[("x", ExchangeKind::Direct)], &[]);
    let err = r.declare_exchange(ExchangeDef::new("x", ExchangeKind::Fanout));
    let err = err.err();
    assert_eq!(err.as_ref().map(RouterError::reply_code), Some(406));
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some(
            "inequivalent arg 'type' for exchange 'x' in vhost '/': \
             received 'fanout' but current is 'direct'"
        )
    );
}

#[test]
fn vhost_name_appears_in_error_texts() {
    let mut r: Router<()> = Router::with_vhost("prod");
    let err = r.bind_queue(b"nope", b"q", "k".into(), none()).err();
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some("no exchange 'nope' in vhost 'prod'")
    );
    assert_eq!(r.vhost(), &"prod");
}

#[test]
fn default_exchange_refuses_declare_bind_unbind_delete() {
    let mut r = router_with(&[], &["q"]);
    let refused = Err(RouterError::DefaultExchange);
    assert_eq!(
        r.declare_exchange(ExchangeDef::new("", ExchangeKind::Direct)),
        refused.clone().map(|()| Declared::Created)
    );
    assert_eq!(r.bind_queue(b"", b"q", "q".into(), none()), refused);
    assert_eq!(
        r.unbind_queue(b"", b"q", b"q", &none()).map(|_| ()),
        refused
    );
    assert_eq!(
        r.bind_exchange(b"", b"amq.direct", "k".into(), none()),
        refused
    );
    assert_eq!(
        r.bind_exchange(b"amq.direct", b"", "k".into(), none()),
        refused
    );
    assert_eq!(r.delete_exchange(b"", false), refused);
    assert_eq!(
        RouterError::DefaultExchange.reply_text(),
        "operation not permitted on the default exchange"
    );
    assert_eq!(RouterError::DefaultExchange.reply_code(), 403);
}

#[test]
fn system_exchanges_cannot_be_deleted() {
    let mut r: Router<()> = Router::new();
    let err = r.delete_exchange(b"amq.direct", false).err();
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some("deletion of system exchange 'amq.direct' in vhost '/' not allowed")
    );
    assert!(r.exchange(b"amq.direct").is_some());
}

#[test]
fn bind_errors_name_the_missing_exchange_first() {
    let mut r: Router<()> = Router::new();
    let err = r.bind_queue(b"x", b"q", "k".into(), none()).err();
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some("no exchange 'x' in vhost '/'")
    );
    let err = r.bind_queue(b"amq.direct", b"q", "k".into(), none()).err();
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some("no queue 'q' in vhost '/'")
    );
    let err = r
        .bind_exchange(b"d", b"amq.direct", "k".into(), none())
        .err();
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some("no exchange 'd' in vhost '/'")
    );
}

#[test]
fn binding_twice_is_idempotent() {
    let mut r = router_with(&[("x", ExchangeKind::Direct)], &["q"]);
    assert_eq!(r.bind_queue(b"x", b"q", "k".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"x", b"q", "k".into(), none()), Ok(()));
    assert_eq!(r.binding_count(), 1);
    assert_eq!(r.bindings().count(), 1);
}

#[test]
fn binding_arguments_are_part_of_identity_in_any_order() {
    let mut r = router_with(&[("x", ExchangeKind::Direct)], &["q"]);
    let ab: FieldTable = [("a", 1), ("b", 2)].into_iter().collect();
    let ba: FieldTable = [("b", 2), ("a", 1)].into_iter().collect();
    assert_eq!(r.bind_queue(b"x", b"q", "k".into(), ab), Ok(()));
    assert_eq!(r.bind_queue(b"x", b"q", "k".into(), ba.clone()), Ok(()));
    assert_eq!(r.binding_count(), 1);
    assert_eq!(r.bind_queue(b"x", b"q", "k".into(), none()), Ok(()));
    assert_eq!(r.binding_count(), 2);
    assert_eq!(r.unbind_queue(b"x", b"q", b"k", &ba), Ok(vec![]));
    assert_eq!(route(&r, "x", &["k"]), ["q"]);
    let listed: Vec<_> = r.bindings().map(|b| b.arguments.len()).collect();
    assert_eq!(listed, [0]);
}

#[test]
fn unbinding_what_does_not_exist_is_ok() {
    let mut r = router_with(&[("x", ExchangeKind::Direct)], &["q"]);
    assert_eq!(r.unbind_queue(b"x", b"q", b"k", &none()), Ok(vec![]));
    assert_eq!(r.unbind_queue(b"nope", b"q", b"k", &none()), Ok(vec![]));
    assert_eq!(r.unbind_queue(b"x", b"nope", b"k", &none()), Ok(vec![]));
    assert_eq!(r.unbind_exchange(b"nope", b"x", b"k", &none()), Ok(vec![]));
}

#[test]
fn headers_binding_with_bad_x_match_is_refused() {
    let mut r = router_with(&[("h", ExchangeKind::Headers)], &["q"]);
    let args: FieldTable = [("x-match", "first")].into_iter().collect();
    let err = r.bind_queue(b"h", b"q", "".into(), args.clone()).err();
    assert_eq!(err.as_ref().map(RouterError::reply_code), Some(406));
    assert_eq!(r.binding_count(), 0);
    // Other exchange types do not look at x-match.
    assert_eq!(r.bind_queue(b"amq.direct", b"q", "".into(), args), Ok(()));
    assert_eq!(crate::HeadersMatcher::new(&none()).mode(), XMatch::All);
}

#[test]
fn auto_delete_exchange_goes_with_last_binding() {
    let mut r = router_with(&[], &["q1", "q2"]);
    assert_eq!(
        r.declare_exchange(auto_delete("ad", ExchangeKind::Fanout)),
        Ok(Declared::Created)
    );
    assert_eq!(r.bind_queue(b"ad", b"q1", "".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"ad", b"q2", "".into(), none()), Ok(()));
    assert_eq!(r.unbind_queue(b"ad", b"q1", b"", &none()), Ok(vec![]));
    assert!(r.exchange(b"ad").is_some());
    let gone = r.unbind_queue(b"ad", b"q2", b"", &none());
    assert_eq!(gone, Ok(vec![ShortStr::from("ad")]));
    assert!(r.exchange(b"ad").is_none());
}

#[test]
fn auto_delete_exchange_without_bindings_stays() {
    let mut r = router_with(&[], &["q"]);
    assert_eq!(
        r.declare_exchange(auto_delete("ad", ExchangeKind::Fanout)),
        Ok(Declared::Created)
    );
    assert!(r.remove_queue(b"q").is_empty());
    assert!(r.exchange(b"ad").is_some());
}

#[test]
fn removing_queue_cascades_auto_delete_through_exchanges() {
    let mut r = router_with(&[], &["q"]);
    for name in ["outer", "inner"] {
        assert_eq!(
            r.declare_exchange(auto_delete(name, ExchangeKind::Fanout)),
            Ok(Declared::Created)
        );
    }
    assert_eq!(
        r.bind_exchange(b"inner", b"outer", "".into(), none()),
        Ok(())
    );
    assert_eq!(r.bind_queue(b"inner", b"q", "".into(), none()), Ok(()));
    let mut gone = r.remove_queue(b"q");
    gone.sort();
    assert_eq!(gone, [ShortStr::from("inner"), ShortStr::from("outer")]);
    assert!(r.queue(b"q").is_none());
    assert_eq!(r.binding_count(), 0);
    assert_eq!(r.exchanges().count(), 6);
}

#[test]
fn delete_exchange_removes_bindings_both_ways() {
    let mut r = router_with(
        &[("src", ExchangeKind::Fanout), ("mid", ExchangeKind::Fanout)],
        &["q"],
    );
    assert_eq!(r.bind_exchange(b"mid", b"src", "".into(), none()), Ok(()));
    assert_eq!(r.bind_queue(b"mid", b"q", "".into(), none()), Ok(()));
    assert_eq!(r.delete_exchange(b"mid", false), Ok(()));
    assert_eq!(r.binding_count(), 0);
    assert!(!r.has_bindings_as_source(b"src"));
    assert!(route(&r, "src", &[""]).is_empty());
    // The queue no longer counts "mid" as a source: re-creating the name starts clean.
    assert_eq!(
        r.declare_exchange(ExchangeDef::new("mid", ExchangeKind::Fanout)),
        Ok(Declared::Created)
    );
    assert!(route(&r, "mid", &[""]).is_empty());
}

#[test]
fn delete_exchange_cascades_to_auto_delete_sources() {
    let mut r = router_with(&[("dst", ExchangeKind::Fanout)], &[]);
    assert_eq!(
        r.declare_exchange(auto_delete("src", ExchangeKind::Fanout)),
        Ok(Declared::Created)
    );
    assert_eq!(r.bind_exchange(b"dst", b"src", "".into(), none()), Ok(()));
    assert_eq!(
        r.delete_exchange_cascading(b"dst", false),
        Ok(vec![ShortStr::from("src")])
    );
}

#[test]
fn delete_if_unused_refuses_exchange_with_bindings() {
    let mut r = router_with(&[("x", ExchangeKind::Fanout)], &["q"]);
    assert_eq!(r.bind_queue(b"x", b"q", "".into(), none()), Ok(()));
    assert!(r.has_bindings_as_source(b"x"));
    let err = r.delete_exchange(b"x", true).err();
    assert_eq!(
        err.map(|e| e.reply_text()).as_deref(),
        Some("exchange 'x' in vhost '/' in use")
    );
    assert_eq!(r.delete_exchange(b"x", false), Ok(()));
    let err = r.delete_exchange(b"x", false).err();
    assert_eq!(err.map(|e| e.reply_code()), Some(404));
}

#[test]
fn if_unused_ignores_bindings_where_exchange_is_destination() {
    let mut r = router_with(
        &[("src", ExchangeKind::Fanout), ("dst", ExchangeKind::Fanout)],
        &[],
    );
    assert_eq!(r.bind_exchange(b"dst", b"src", "".into(), none()), Ok(()));
    assert_eq!(r.delete_exchange(b"dst", true), Ok(()));
}

#[test]
fn re_adding_a_queue_keeps_bindings_and_replaces_handle() {
    let mut r: Router<u8> = Router::new();
    r.add_queue("q".into(), 1);
    assert_eq!(r.bind_queue(b"amq.fanout", b"q", "".into(), none()), Ok(()));
    r.add_queue("q".into(), 2);
    let mut out = Vec::new();
    assert_eq!(r.route(b"amq.fanout", &[b""], None, &mut out), Ok(()));
    assert_eq!(out, [2]);
    assert_eq!(r.queue_count(), 1);
}

fn auto_delete(name: &str, kind: ExchangeKind) -> ExchangeDef {
    let mut def = ExchangeDef::new(name, kind);
    def.auto_delete = true;
    def
}
