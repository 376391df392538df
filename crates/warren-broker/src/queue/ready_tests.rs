//! The packed form and the ready list that chooses it, without a queue around them.

use bytes::Bytes;
use warren_codec::{BasicProperties, FieldTable, FieldValue, ShortStr};

use super::*;

fn message(i: usize, ts: u64, exchange: &str, key: &str, props: BasicProperties) -> Message {
    let body = Bytes::from(format!("body {i} {}", "x".repeat(i % 50)));
    Message::new(exchange.into(), key.into(), props.to_raw(), body, ts)
        .unwrap()
        .with_store_id(if i % 3 == 0 { i as u64 + 1 } else { 0 })
}

/// Messages with every field the record keeps, and timestamps and addresses that repeat or
/// change from one to the next.
fn assorted() -> Vec<Message> {
    (0..40)
        .map(|i| {
            let mut headers = FieldTable::new();
            headers.insert("n", FieldValue::I64(i as i64));
            let props = BasicProperties {
                content_type: (i % 2 == 0).then(|| ShortStr::from("text/plain")),
                headers: (i % 4 == 1).then_some(headers),
                delivery_mode: Some(if i % 5 == 0 { 2 } else { 1 }),
                priority: (i % 3 == 0).then_some((i % 10) as u8),
                expiration: (i % 7 == 0).then(|| ShortStr::from(format!("{}", i * 100).as_str())),
                ..Default::default()
            };
            let exchange = if i % 11 < 5 { "" } else { "amq.topic" };
            let key = if i % 6 < 3 { "orders.eu" } else { "k" };
            message(i, 1_700_000_000_000 + (i as u64 / 4), exchange, key, props)
        })
        .collect()
}

#[test]
fn packed_messages_unpack_equal_to_what_was_pushed_in_order() {
    let originals = assorted();
    assert!(
        originals
            .iter()
            .any(|m| m.persistent && m.store_id().is_some())
    );
    assert!(originals.iter().any(|m| m.expiration_ms.is_some()));
    assert!(originals.iter().any(|m| m.priority > 0));
    let mut fifo = PackedFifo::default();
    for m in &originals {
        assert!(fifo.push(m));
    }
    for m in &originals {
        assert_eq!(fifo.pop().as_deref(), Some(m));
    }
    assert!(fifo.is_empty());
    assert_eq!(fifo.pop(), None);
}

#[test]
fn discarding_records_reports_their_store_ids_and_keeps_the_rest_readable() {
    let originals = assorted();
    let mut fifo = PackedFifo::default();
    for m in &originals {
        fifo.push(m);
    }
    for m in &originals[..7] {
        assert_eq!(fifo.discard(), Some(m.store_id()));
    }
    for m in &originals[7..] {
        assert_eq!(fifo.pop().as_deref(), Some(m));
    }
    assert_eq!(fifo.discard(), None);
}

#[test]
fn a_record_that_repeats_timestamp_address_and_properties_omits_them() {
    let props = BasicProperties {
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    let m = message(1, 5, "ex", "a.routing.key", props);
    let mut fifo = PackedFifo::default();
    fifo.push(&m);
    let first = fifo.used();
    fifo.push(&m);
    let second = fifo.used() - first;
    // Flags, priority, body length and the body; nothing else.
    assert_eq!(second, 6 + m.body.len());
    let address = 2 + "ex".len() + "a.routing.key".len();
    let props = 2 + m.properties.as_bytes().len();
    assert_eq!(first - second, 8 + address + props);
    assert_eq!(fifo.pop().as_deref(), Some(&m));
    assert_eq!(fifo.pop().as_deref(), Some(&m));
}

#[test]
fn records_fill_segments_and_emptied_segments_are_freed() {
    let m = message(49, 5, "", "q", BasicProperties::default());
    let mut fifo = PackedFifo::default();
    for _ in 0..2000 {
        fifo.push(&m);
    }
    let allocated = fifo.allocated();
    assert!(
        allocated < 2000 * (m.body.len() + 16) + 64 * 1024,
        "{allocated}"
    );
    for _ in 0..2000 {
        assert_eq!(fifo.pop().as_deref(), Some(&m));
    }
    assert_eq!(fifo.allocated(), 0);
}

#[test]
fn large_messages_are_not_packable() {
    let mut m = message(0, 5, "", "q", BasicProperties::default());
    m.body = Bytes::from(vec![7u8; 8 * 1024]);
    assert!(!packed::packable(&m));
    assert!(!PackedFifo::default().push(&m));
}

#[test]
fn entries_stay_as_small_as_ready_messages_were() {
    assert_eq!(std::mem::size_of::<Entry>(), 32);
    assert_eq!(std::mem::size_of::<Ready>(), 32);
    // A queue that never held a backlog pays one word per level for the packed form.
    assert_eq!(
        std::mem::size_of::<Level>(),
        std::mem::size_of::<VecDeque<Entry>>() + 8
    );
}

fn ready(seq: u64, message: Arc<Message>) -> Ready {
    Ready {
        seq,
        message,
        deadline: NEVER,
        returns: 0,
        redelivered: false,
    }
}

#[test]
fn a_backlog_beyond_the_threshold_is_packed_and_comes_back_in_order() {
    let n = PACK_AFTER + 500;
    let make = |i: usize| message(i, 9, "", "q", BasicProperties::default());
    let mut list = ReadyList::new(0);
    for i in 0..n {
        list.push_back(ready(i as u64, Arc::new(make(i))));
    }
    assert_eq!(list.packed_count(), 500);
    let bytes: u64 = (0..n).map(|i| make(i).body.len() as u64).sum();
    assert_eq!((list.len(), list.bytes()), (n, bytes));
    for i in 0..n {
        let r = list.pop_front().unwrap();
        assert_eq!((r.seq, &*r.message), (i as u64, &make(i)));
    }
    assert_eq!(
        (list.len(), list.bytes(), list.pop_front().is_none()),
        (0, 0, true)
    );
}

#[test]
fn a_message_another_holder_shares_is_never_packed() {
    let mut list = ReadyList::new(0);
    let mut kept = Vec::new();
    for i in 0..PACK_AFTER + 100 {
        let m = Arc::new(message(i, 9, "", "q", BasicProperties::default()));
        kept.push(m.clone());
        list.push_back(ready(i as u64, m));
    }
    assert_eq!(list.packed_count(), 0);
    let r = list.pop_front().unwrap();
    assert!(Arc::ptr_eq(&r.message, &kept[0]));
}

#[test]
fn clearing_lists_the_store_ids_of_packed_and_unpacked_messages() {
    let n = PACK_AFTER + 300;
    let mut list = ReadyList::new(0);
    let mut expected = Vec::new();
    for i in 0..n {
        let m = message(i, 9, "", "q", BasicProperties::default());
        if let Some(id) = m.store_id() {
            expected.push((i as u64, id));
        }
        list.push_back(ready(i as u64, Arc::new(m)));
    }
    assert!(list.packed_count() > 0);
    let mut gone = Vec::new();
    list.clear(Some(&mut gone));
    assert_eq!(gone, expected);
    assert_eq!((list.len(), list.bytes(), list.packed_count()), (0, 0, 0));
}

mod interleaved {
    //! Property: any interleaving of pushes, pops and discards gives back exactly the packable
    //! messages, in push order, each equal to what was pushed.

    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push(Message),
        Pop,
        Discard,
    }

    fn any_message() -> impl Strategy<Value = Message> {
        (
            0usize..3,
            0usize..3,
            0usize..4,
            proptest::collection::vec(any::<u8>(), 0..6000),
            0u64..3,
            any::<bool>(),
            proptest::option::of(0u64..100_000),
            proptest::option::of(1u64..1_000_000),
        )
            .prop_map(|(x, k, p, body, ts, persistent, ttl, id)| {
                let props = BasicProperties {
                    content_type: (p % 2 == 1).then(|| ShortStr::from("application/json")),
                    delivery_mode: Some(if persistent { 2 } else { 1 }),
                    priority: (p >= 2).then_some(p as u8),
                    expiration: ttl.map(|t| ShortStr::from(t.to_string().as_str())),
                    ..Default::default()
                };
                let exchange = ["", "amq.direct", "x"][x];
                let key = ["", "k", "orders.eu.1"][k];
                Message::new(
                    exchange.into(),
                    key.into(),
                    props.to_raw(),
                    Bytes::from(body),
                    1_700_000_000_000 + ts,
                )
                .unwrap()
                .with_store_id(id.unwrap_or(0))
            })
    }

    fn any_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any_message().prop_map(Op::Push),
            2 => Just(Op::Pop),
            1 => Just(Op::Discard),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn the_fifo_gives_back_what_was_packed(ops in proptest::collection::vec(any_op(), 0..200)) {
            let mut fifo = PackedFifo::default();
            let mut model: VecDeque<Message> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(m) => {
                        if fifo.push(&m) {
                            model.push_back(m);
                        } else {
                            prop_assert!(!packed::packable(&m));
                        }
                    }
                    Op::Pop => prop_assert_eq!(fifo.pop().as_deref().cloned(), model.pop_front()),
                    Op::Discard => prop_assert_eq!(
                        fifo.discard(),
                        model.pop_front().map(|m| m.store_id())
                    ),
                }
                prop_assert_eq!(fifo.is_empty(), model.is_empty());
            }
        }
    }
}
