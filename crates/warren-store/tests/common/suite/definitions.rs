//! Cases about definitions and their cascades.

use bytes::Bytes;
use warren_store::{
    BindingRecord, DefinitionStore, Definitions, ExchangeRecord, MessageStore, ParameterRecord,
    QueueRecord, StoreError, UserRecord,
};

use crate::common::{Harness, b, enqueue, entries, put};

pub(crate) fn exchange(name: &str, kind: &str) -> ExchangeRecord {
    ExchangeRecord {
        name: b(name),
        kind: b(kind),
        auto_delete: false,
        internal: false,
        arguments: Bytes::new(),
    }
}

pub(crate) fn queue(name: &str) -> QueueRecord {
    QueueRecord {
        name: b(name),
        auto_delete: false,
        arguments: b("\x00\x00\x00\x00"),
    }
}

pub(crate) fn bind_q(source: &str, q: &str, key: &str) -> BindingRecord {
    BindingRecord {
        source: b(source),
        destination: b(q),
        destination_is_exchange: false,
        routing_key: b(key),
        arguments: Bytes::new(),
    }
}

pub(crate) fn bind_x(source: &str, x: &str, key: &str) -> BindingRecord {
    BindingRecord {
        destination_is_exchange: true,
        ..bind_q(source, x, key)
    }
}

pub(crate) fn pairs<T: Clone>(vhost: &str, items: &[T]) -> Vec<(Bytes, T)> {
    items.iter().map(|i| (b(vhost), i.clone())).collect()
}

pub fn every_definition_round_trips_through_reopen(mut h: impl Harness) {
    let s = h.store();
    s.put_vhost(b"/").unwrap();
    s.put_vhost(b"other").unwrap();
    let guest = UserRecord {
        name: b("guest"),
        password_hash: b("h1"),
        tags: b("administrator"),
        permissions: b("perm"),
    };
    let alice = UserRecord {
        name: b("alice"),
        password_hash: b("h2"),
        tags: Bytes::new(),
        permissions: Bytes::new(),
    };
    s.put_user(&guest).unwrap();
    s.put_user(&alice).unwrap();
    let x = ExchangeRecord {
        auto_delete: true,
        internal: true,
        arguments: b("args"),
        ..exchange("logs", "topic")
    };
    s.put_exchange(b"/", &x).unwrap();
    let q = QueueRecord {
        auto_delete: true,
        ..queue("errors")
    };
    s.put_queue(b"/", &q).unwrap();
    let bq = BindingRecord {
        arguments: b("x-match"),
        ..bind_q("logs", "errors", "*.error")
    };
    s.put_binding(b"/", &bq).unwrap();
    h.reopen();
    let expected = Definitions {
        vhosts: vec![b("/"), b("other")],
        users: vec![alice, guest],
        exchanges: pairs("/", &[x]),
        queues: pairs("/", &[q]),
        bindings: pairs("/", &[bq]),
        ..Definitions::default()
    };
    assert_eq!(h.store().load_definitions().unwrap(), expected);
}

pub fn puts_overwrite_and_deletes_of_absent_records_succeed(mut h: impl Harness) {
    let s = h.store();
    let user = UserRecord {
        name: b("u"),
        password_hash: b("old"),
        tags: Bytes::new(),
        permissions: Bytes::new(),
    };
    s.put_user(&user).unwrap();
    s.put_user(&UserRecord {
        password_hash: b("new"),
        ..user.clone()
    })
    .unwrap();
    s.put_queue(b"/", &queue("q")).unwrap();
    s.put_queue(
        b"/",
        &QueueRecord {
            auto_delete: true,
            ..queue("q")
        },
    )
    .unwrap();
    s.delete_user(b"nobody").unwrap();
    s.delete_queue(b"/", b"nothing").unwrap();
    s.delete_exchange(b"/", b"nothing").unwrap();
    s.delete_binding(b"/", &bind_q("a", "b", "c")).unwrap();
    s.delete_vhost(b"nowhere").unwrap();
    h.reopen();
    let d = h.store().load_definitions().unwrap();
    assert_eq!(d.users[0].password_hash, b("new"));
    assert_eq!(
        d.queues,
        pairs(
            "/",
            &[QueueRecord {
                auto_delete: true,
                ..queue("q")
            }]
        )
    );
}

pub fn deletes_round_trip_through_reopen(mut h: impl Harness) {
    let s = h.store();
    s.put_vhost(b"v").unwrap();
    s.put_user(&UserRecord {
        name: b("u"),
        password_hash: b("h"),
        tags: Bytes::new(),
        permissions: Bytes::new(),
    })
    .unwrap();
    s.put_binding(b"v", &bind_q("x", "q", "k1")).unwrap();
    s.put_binding(b"v", &bind_q("x", "q", "k2")).unwrap();
    // Bindings differing only in arguments are different bindings.
    s.put_binding(
        b"v",
        &BindingRecord {
            arguments: b("a"),
            ..bind_q("x", "q", "k1")
        },
    )
    .unwrap();
    s.delete_user(b"u").unwrap();
    s.delete_binding(b"v", &bind_q("x", "q", "k1")).unwrap();
    h.reopen();
    let d = h.store().load_definitions().unwrap();
    assert!(d.users.is_empty());
    let mut keys: Vec<_> = d
        .bindings
        .iter()
        .map(|(_, b)| (b.routing_key.clone(), b.arguments.clone()))
        .collect();
    keys.sort();
    assert_eq!(keys, [(b("k1"), b("a")), (b("k2"), Bytes::new())]);
}

pub fn delete_exchange_removes_bindings_to_and_from_it(mut h: impl Harness) {
    let s = h.store();
    for x in ["x", "y", "z"] {
        s.put_exchange(b"/", &exchange(x, "direct")).unwrap();
    }
    s.put_binding(b"/", &bind_q("x", "q", "from-x")).unwrap();
    s.put_binding(b"/", &bind_x("y", "x", "to-x")).unwrap();
    s.put_binding(b"/", &bind_x("x", "z", "x-to-z")).unwrap();
    s.put_binding(b"/", &bind_q("y", "x", "to-queue-named-x"))
        .unwrap();
    s.put_binding(b"other", &bind_q("x", "q", "other-vhost"))
        .unwrap();
    s.delete_exchange(b"/", b"x").unwrap();
    h.reopen();
    let d = h.store().load_definitions().unwrap();
    let names: Vec<_> = d.exchanges.iter().map(|(_, x)| x.name.clone()).collect();
    assert_eq!(names, [b("y"), b("z")]);
    let mut keys: Vec<_> = d
        .bindings
        .iter()
        .map(|(_, b)| b.routing_key.clone())
        .collect();
    keys.sort();
    // A queue that happens to be named like the exchange keeps its binding.
    assert_eq!(keys, [b("other-vhost"), b("to-queue-named-x")]);
}

pub fn delete_queue_removes_its_bindings_entries_and_unshared_messages(mut h: impl Harness) {
    let s = h.store();
    s.put_queue(b"/", &queue("q")).unwrap();
    s.put_queue(b"/", &queue("keep")).unwrap();
    s.put_binding(b"/", &bind_q("amq.direct", "q", "k"))
        .unwrap();
    s.put_binding(b"/", &bind_x("amq.direct", "q", "exchange-named-q"))
        .unwrap();
    s.put_binding(b"/", &bind_q("amq.direct", "keep", "k"))
        .unwrap();
    s.write(&[
        put(1, "only-q"),
        enqueue("/", "q", 1, 1),
        put(2, "shared"),
        enqueue("/", "q", 2, 2),
    ])
    .unwrap();
    s.write(&[enqueue("/", "keep", 1, 2)]).unwrap();
    s.delete_queue(b"/", b"q").unwrap();
    h.reopen();
    let s = h.store();
    let d = s.load_definitions().unwrap();
    assert_eq!(d.queues, pairs("/", &[queue("keep")]));
    let dests: Vec<_> = d
        .bindings
        .iter()
        .map(|(_, b)| (b.destination.clone(), b.destination_is_exchange))
        .collect();
    assert_eq!(dests.len(), 2);
    assert!(dests.contains(&(b("keep"), false)) && dests.contains(&(b("q"), true)));
    assert!(entries(s, "/", "q").is_empty());
    assert_eq!(entries(s, "/", "keep"), [(1, 2, false, "shared".into())]);
    let stats = s.stats();
    assert_eq!((stats.messages, stats.queue_entries), (1, 1));
}

pub fn delete_vhost_removes_everything_in_it_and_nothing_else(mut h: impl Harness) {
    let s = h.store();
    for v in ["a", "ab"] {
        s.put_vhost(v.as_bytes()).unwrap();
        s.put_exchange(v.as_bytes(), &exchange("x", "fanout"))
            .unwrap();
        s.put_queue(v.as_bytes(), &queue("q")).unwrap();
        s.put_binding(v.as_bytes(), &bind_q("x", "q", "")).unwrap();
    }
    s.write(&[
        put(1, "m"),
        enqueue("a", "q", 1, 1),
        enqueue("ab", "q", 1, 1),
        put(2, "n"),
        enqueue("a", "q", 2, 2),
    ])
    .unwrap();
    s.delete_vhost(b"a").unwrap();
    h.reopen();
    let s = h.store();
    let d = s.load_definitions().unwrap();
    assert_eq!(d.vhosts, [b("ab")]);
    assert!(
        d.exchanges
            .iter()
            .chain(d.exchanges.iter())
            .all(|(v, _)| v == "ab")
    );
    assert_eq!(
        (d.exchanges.len(), d.queues.len(), d.bindings.len()),
        (1, 1, 1)
    );
    assert!(entries(s, "a", "q").is_empty());
    assert_eq!(entries(s, "ab", "q"), [(1, 1, false, "m".into())]);
    assert_eq!(s.stats().messages, 1);
}

pub fn overlong_names_are_refused_everywhere(h: impl Harness) {
    let s = h.store();
    let long = "n".repeat(256);
    assert!(matches!(
        s.put_queue(b"/", &queue(&long)),
        Err(StoreError::NameTooLong { what: "queue", .. })
    ));
    assert!(matches!(
        s.put_exchange(b"/", &exchange(&long, "direct")),
        Err(StoreError::NameTooLong { .. })
    ));
    assert!(matches!(
        s.put_binding(b"/", &bind_q("x", "q", &long)),
        Err(StoreError::NameTooLong {
            what: "routing key",
            ..
        })
    ));
    assert!(matches!(
        s.put_vhost(long.as_bytes()),
        Err(StoreError::NameTooLong { what: "vhost", .. })
    ));
    assert!(matches!(
        s.load_queue(long.as_bytes(), b"q"),
        Err(StoreError::NameTooLong { .. })
    ));
    s.put_queue(b"/", &queue(&long[..255])).unwrap();
}

pub fn vhost_limits_round_trip_and_go_with_their_vhost(mut h: impl Harness) {
    let s = h.store();
    for v in ["a", "ab"] {
        s.put_vhost(v.as_bytes()).unwrap();
        s.put_vhost_limits(v.as_bytes(), b"max-queues=1").unwrap();
    }
    s.put_vhost_limits(b"ab", b"max-connections=2").unwrap();
    s.delete_vhost(b"a").unwrap();
    h.reopen();
    let s = h.store();
    assert_eq!(
        s.load_definitions().unwrap().vhost_limits,
        [(b("ab"), b("max-connections=2"))]
    );
    s.delete_vhost_limits(b"ab").unwrap();
    s.delete_vhost_limits(b"never").unwrap();
    h.reopen();
    assert!(
        h.store()
            .load_definitions()
            .unwrap()
            .vhost_limits
            .is_empty()
    );
}

/// Runtime parameters and global parameters survive a reopen; deleting a vhost takes its
/// parameters and no other vhost's.
pub fn parameters_survive_reopen_and_go_with_their_vhost(mut h: impl Harness) {
    let s = h.store();
    s.put_vhost(b"/").unwrap();
    s.put_vhost(b"v2").unwrap();
    let p = |c: &str, n: &str, v: &str| ParameterRecord {
        component: b(c),
        name: b(n),
        value: b(v),
    };
    s.put_parameter(b"/", &p("policy", "ttl", "{}")).unwrap();
    s.put_parameter(b"/", &p("policy", "ttl", "{\"a\":1}"))
        .unwrap();
    s.put_parameter(b"/", &p("operator_policy", "ttl", "{}"))
        .unwrap();
    s.put_parameter(b"v2", &p("policy", "x", "{}")).unwrap();
    s.put_global_parameter(b"cluster_name", b"\"c\"").unwrap();
    s.put_global_parameter(b"gone", b"1").unwrap();
    s.delete_global_parameter(b"gone").unwrap();
    s.delete_parameter(b"/", b"policy", b"absent").unwrap();
    h.reopen();
    let d = h.store().load_definitions().unwrap();
    assert_eq!(
        d.parameters,
        vec![
            // Key order: the component is length-prefixed, so `policy` sorts first.
            (b("/"), p("policy", "ttl", "{\"a\":1}")),
            (b("/"), p("operator_policy", "ttl", "{}")),
            (b("v2"), p("policy", "x", "{}")),
        ]
    );
    assert_eq!(d.global_parameters, vec![(b("cluster_name"), b("\"c\""))]);
    h.store().delete_vhost(b"/").unwrap();
    h.store().delete_parameter(b"v2", b"policy", b"x").unwrap();
    h.reopen();
    let d = h.store().load_definitions().unwrap();
    assert!(d.parameters.is_empty(), "{:?}", d.parameters);
    assert_eq!(d.global_parameters.len(), 1);
}
