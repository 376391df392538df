//! Queue features driven on [`QueueState`] with explicit times: TTLs, length limits and
//! overflow, priorities, consumer priorities, single active consumer, delivery limit,
//! `x-expires`. The expected behaviour is RabbitMQ 3.10's, as recorded in
//! `conformance/reference/queue-features.md`.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use warren_codec::{BasicProperties, FieldValue, ShortStr};

use super::*;
use crate::dead_letter::DeathReason;

#[derive(Default)]
struct Recorder {
    deliveries: Mutex<Vec<Delivery>>,
}

impl DeliverySink for Recorder {
    fn deliver(&self, d: Delivery) {
        self.deliveries.lock().push(d);
    }
    fn cancelled(&self, _channel: u16, _tag: ShortStr) {}
}

impl Recorder {
    fn bodies(&self) -> Vec<String> {
        std::mem::take(&mut *self.deliveries.lock())
            .iter()
            .map(|d| String::from_utf8_lossy(&d.message.body).into_owned())
            .collect()
    }
}

const T0: u64 = 1_000_000;

fn msg_at(body: &str, ts: u64, expiration: Option<&str>, priority: Option<u8>) -> Arc<Message> {
    let props = BasicProperties {
        expiration: expiration.map(ShortStr::from),
        priority,
        ..Default::default()
    }
    .to_raw();
    Arc::new(
        Message::new(
            "".into(),
            "q".into(),
            props,
            Bytes::copy_from_slice(body.as_bytes()),
            ts,
        )
        .unwrap(),
    )
}

fn msg(body: &str) -> Arc<Message> {
    msg_at(body, T0, None, None)
}

fn handle() -> Arc<Queue> {
    Queue::new(
        "q".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    )
}

fn state(args: QueueArgs) -> QueueState {
    QueueState::with_args(false, args, T0)
}

fn consumer(id: u64, sink: &Arc<Recorder>, prefetch: u32, no_ack: bool) -> Consumer {
    Consumer::new(
        id,
        format!("c{id}").as_str().into(),
        1,
        1,
        sink.clone(),
        no_ack,
        false,
        prefetch,
        Arc::new(ChannelLimit::default()),
    )
}

fn dead(fx: &mut Effects) -> Vec<(String, DeathReason)> {
    std::mem::take(&mut fx.dead)
        .into_iter()
        .map(|d| {
            (
                String::from_utf8_lossy(&d.message.body).into_owned(),
                d.reason,
            )
        })
        .collect()
}

fn publish_all(s: &mut QueueState, q: &Arc<Queue>, msgs: &[Arc<Message>], fx: &mut Effects) {
    for m in msgs {
        s.publish(m.clone(), m.timestamp_ms, q, fx);
    }
}

fn get_all(s: &mut QueueState, now: u64, fx: &mut Effects) -> Vec<String> {
    std::iter::from_fn(|| s.get(true, now, fx))
        .map(|g| String::from_utf8_lossy(&g.message.body).into_owned())
        .collect()
}

#[test]
fn queue_ttl_expires_messages_at_their_deadline_without_a_consumer() {
    let q = handle();
    let mut s = state(QueueArgs {
        message_ttl: Some(100),
        ..Default::default()
    });
    let mut fx = Effects::default();
    publish_all(&mut s, &q, &[msg("a"), msg("b")], &mut fx);
    assert_eq!(s.next_wakeup(), T0 + 100);
    s.expire(T0 + 99, &mut fx);
    assert_eq!(s.ready_count(), 2);
    s.expire(T0 + 100, &mut fx);
    assert_eq!(s.ready_count(), 0);
    assert_eq!(
        dead(&mut fx),
        [
            ("a".into(), DeathReason::Expired),
            ("b".into(), DeathReason::Expired)
        ]
    );
}

#[test]
fn the_lower_of_queue_ttl_and_message_expiration_applies() {
    let q = handle();
    let mut s = state(QueueArgs {
        message_ttl: Some(10_000),
        ..Default::default()
    });
    let mut fx = Effects::default();
    s.publish(msg_at("short", T0, Some("50"), None), T0, &q, &mut fx);
    assert_eq!(s.next_wakeup(), T0 + 50);
    let mut s = state(QueueArgs {
        message_ttl: Some(200),
        ..Default::default()
    });
    s.publish(msg_at("long", T0, Some("60000"), None), T0, &q, &mut fx);
    assert_eq!(s.next_wakeup(), T0 + 200);
}

#[test]
fn only_the_head_expires_and_get_drops_what_expired_behind_it() {
    let q = handle();
    let mut s = state(QueueArgs::default());
    let mut fx = Effects::default();
    publish_all(
        &mut s,
        &q,
        &[
            msg_at("long", T0, Some("1000"), None),
            msg_at("short", T0, Some("50"), None),
            msg_at("none", T0, None, None),
        ],
        &mut fx,
    );
    s.expire(T0 + 300, &mut fx);
    assert_eq!(s.ready_count(), 3, "short waits behind long");
    let got = s.get(true, T0 + 300, &mut fx).unwrap();
    assert_eq!((&got.message.body[..], got.remaining), (&b"long"[..], 1));
    assert_eq!(dead(&mut fx), [("short".into(), DeathReason::Expired)]);
}

#[test]
fn ttl_zero_reaches_a_ready_consumer_and_otherwise_expires_at_once() {
    let q = handle();
    let mut s = state(QueueArgs {
        message_ttl: Some(0),
        ..Default::default()
    });
    let mut fx = Effects::default();
    let sink = Arc::new(Recorder::default());
    s.add_consumer(consumer(1, &sink, 1, false), "q").unwrap();
    // The clock moved on a little since the publish: the consumer still gets it.
    s.publish(msg("first"), T0 + 3, &q, &mut fx);
    s.publish(msg("second"), T0 + 3, &q, &mut fx);
    assert_eq!(sink.bodies(), ["first"]);
    assert_eq!(s.ready_count(), 0);
    assert_eq!(dead(&mut fx), [("second".into(), DeathReason::Expired)]);
}

#[test]
fn a_message_requeued_after_its_ttl_expires_at_once() {
    let q = handle();
    let mut s = state(QueueArgs {
        message_ttl: Some(100),
        ..Default::default()
    });
    let mut fx = Effects::default();
    s.publish(msg("a"), T0, &q, &mut fx);
    let got = s.get(false, T0 + 10, &mut fx).unwrap();
    s.settle(&[got.seq], Settle::Requeue, T0 + 500, &mut fx);
    assert_eq!(s.ready_count(), 0);
    assert_eq!(dead(&mut fx), [("a".into(), DeathReason::Expired)]);
}

#[test]
fn drop_head_keeps_the_newest_and_kills_the_oldest_as_maxlen() {
    let q = handle();
    let mut s = state(QueueArgs {
        max_length: Some(2),
        ..Default::default()
    });
    let mut fx = Effects::default();
    let pushed: Vec<Pushed> = ["m0", "m1", "m2", "m3"]
        .iter()
        .map(|b| s.publish(msg(b), T0, &q, &mut fx))
        .collect();
    assert!(pushed.iter().all(|p| matches!(p, Pushed::Enqueued(_))));
    assert_eq!(
        dead(&mut fx),
        [
            ("m0".into(), DeathReason::Maxlen),
            ("m1".into(), DeathReason::Maxlen)
        ]
    );
    assert_eq!(get_all(&mut s, T0, &mut fx), ["m2", "m3"]);
}

#[test]
fn max_length_bytes_counts_bodies_and_drops_an_oversized_message_at_once() {
    let q = handle();
    let mut s = state(QueueArgs {
        max_length_bytes: Some(10),
        ..Default::default()
    });
    let mut fx = Effects::default();
    for b in ["12345", "67890", "abc", ""] {
        s.publish(msg(b), T0, &q, &mut fx);
    }
    assert_eq!(get_all(&mut s, T0, &mut fx), ["67890", "abc", ""]);
    s.publish(msg("this body is longer than ten"), T0, &q, &mut fx);
    assert_eq!(s.ready_count(), 0);
}

#[test]
fn reject_publish_refuses_what_would_overflow_and_dlx_variant_dead_letters_it() {
    let q = handle();
    for (overflow, dead_lettered) in [
        (Overflow::RejectPublish, false),
        (Overflow::RejectPublishDlx, true),
    ] {
        let mut s = state(QueueArgs {
            max_length: Some(2),
            overflow,
            ..Default::default()
        });
        let mut fx = Effects::default();
        let pushed: Vec<bool> = ["m0", "m1", "m2", "m3"]
            .iter()
            .map(|b| s.publish(msg(b), T0, &q, &mut fx) == Pushed::Rejected)
            .collect();
        assert_eq!(pushed, [false, false, true, true]);
        let expected: Vec<(String, DeathReason)> = if dead_lettered {
            vec![
                ("m2".into(), DeathReason::Maxlen),
                ("m3".into(), DeathReason::Maxlen),
            ]
        } else {
            vec![]
        };
        assert_eq!(dead(&mut fx), expected);
        assert_eq!(get_all(&mut s, T0, &mut fx), ["m0", "m1"]);
    }
}

#[test]
fn unacked_messages_do_not_count_against_the_length_limit() {
    let q = handle();
    let mut s = state(QueueArgs {
        max_length: Some(1),
        overflow: Overflow::RejectPublish,
        ..Default::default()
    });
    let mut fx = Effects::default();
    s.publish(msg("first"), T0, &q, &mut fx);
    let first = s.get(false, T0, &mut fx).unwrap();
    assert!(matches!(
        s.publish(msg("second"), T0, &q, &mut fx),
        Pushed::Enqueued(_)
    ));
    // Requeue may exceed the limit of a reject-publish queue...
    s.settle(&[first.seq], Settle::Requeue, T0, &mut fx);
    assert_eq!(s.ready_count(), 2);
}

#[test]
fn a_requeue_over_the_limit_of_a_drop_head_queue_drops_the_requeued_head() {
    let q = handle();
    let mut s = state(QueueArgs {
        max_length: Some(1),
        ..Default::default()
    });
    let mut fx = Effects::default();
    s.publish(msg("first"), T0, &q, &mut fx);
    let first = s.get(false, T0, &mut fx).unwrap();
    s.publish(msg("second"), T0, &q, &mut fx);
    s.settle(&[first.seq], Settle::Requeue, T0, &mut fx);
    assert_eq!(dead(&mut fx), [("first".into(), DeathReason::Maxlen)]);
    assert_eq!(get_all(&mut s, T0, &mut fx), ["second"]);
}

#[test]
fn priorities_deliver_highest_first_fifo_within_and_cap_at_the_maximum() {
    let q = handle();
    let mut s = state(QueueArgs {
        max_priority: Some(5),
        ..Default::default()
    });
    let mut fx = Effects::default();
    let plan = [
        ("a", None),
        ("b", Some(1)),
        ("c", Some(5)),
        ("d", Some(3)),
        ("e", Some(9)),
        ("f", Some(5)),
        ("g", Some(0)),
        ("h", Some(3)),
        ("i", Some(255)),
    ];
    for (b, p) in plan {
        s.publish(msg_at(b, T0, None, p), T0, &q, &mut fx);
    }
    assert_eq!(
        get_all(&mut s, T0, &mut fx).concat(),
        "cefidhbag",
        "RabbitMQ's order for this plan"
    );
}

#[test]
fn without_max_priority_the_priority_property_is_ignored() {
    let q = handle();
    let mut s = state(QueueArgs::default());
    let mut fx = Effects::default();
    s.publish(msg_at("low", T0, None, Some(0)), T0, &q, &mut fx);
    s.publish(msg_at("high", T0, None, Some(9)), T0, &q, &mut fx);
    assert_eq!(get_all(&mut s, T0, &mut fx), ["low", "high"]);
}

#[test]
fn higher_priority_consumers_are_served_first_while_they_have_credit() {
    let q = handle();
    let mut s = state(QueueArgs::default());
    let mut fx = Effects::default();
    let low = Arc::new(Recorder::default());
    let high = Arc::new(Recorder::default());
    s.add_consumer(consumer(1, &low, 10, false), "q").unwrap();
    s.add_consumer(consumer(2, &high, 2, false).with_priority(10), "q")
        .unwrap();
    for b in ["m0", "m1", "m2", "m3", "m4", "m5"] {
        s.publish(msg(b), T0, &q, &mut fx);
    }
    assert_eq!(high.bodies(), ["m0", "m1"]);
    assert_eq!(low.bodies(), ["m2", "m3", "m4", "m5"]);
}

#[test]
fn single_active_consumer_serves_only_the_first_until_it_leaves() {
    let q = handle();
    let mut s = state(QueueArgs {
        single_active_consumer: true,
        ..Default::default()
    });
    let mut fx = Effects::default();
    let first = Arc::new(Recorder::default());
    let second = Arc::new(Recorder::default());
    s.add_consumer(consumer(1, &first, 0, true), "q").unwrap();
    s.add_consumer(consumer(2, &second, 0, true), "q").unwrap();
    s.publish(msg("a"), T0, &q, &mut fx);
    s.publish(msg("b"), T0, &q, &mut fx);
    assert_eq!(first.bodies(), ["a", "b"]);
    assert!(second.bodies().is_empty());
    s.remove_consumer(1, T0);
    s.publish(msg("c"), T0, &q, &mut fx);
    assert_eq!(second.bodies(), ["c"]);
}

#[test]
fn past_the_delivery_limit_a_returned_message_dies_and_before_it_is_counted() {
    let q = handle();
    let mut s = state(QueueArgs {
        delivery_limit: Some(1),
        ..Default::default()
    });
    let mut fx = Effects::default();
    s.publish(msg("poison"), T0, &q, &mut fx);
    let got = s.get(false, T0, &mut fx).unwrap();
    s.settle(&[got.seq], Settle::Requeue, T0, &mut fx);
    let again = s.get(false, T0, &mut fx).unwrap();
    let headers = again.message.properties.decode().unwrap().headers.unwrap();
    assert_eq!(headers.get("x-delivery-count"), Some(&FieldValue::I64(1)));
    s.settle(&[again.seq], Settle::Requeue, T0, &mut fx);
    assert_eq!(s.ready_count(), 0);
    assert_eq!(
        dead(&mut fx),
        [("poison".into(), DeathReason::DeliveryLimit)]
    );
}

#[test]
fn an_unused_queue_expires_after_its_period_and_use_renews_the_lease() {
    let mut s = state(QueueArgs {
        expires: Some(300),
        ..Default::default()
    });
    let mut fx = Effects::default();
    assert_eq!(s.next_wakeup(), T0 + 300);
    assert!(!s.is_expired(T0 + 299));
    s.get(true, T0 + 200, &mut fx);
    assert!(!s.is_expired(T0 + 300), "basic.get renewed it");
    s.touch(T0 + 400);
    assert!(!s.is_expired(T0 + 600), "a redeclare renewed it");
    assert!(s.is_expired(T0 + 700));
    let sink = Arc::new(Recorder::default());
    s.add_consumer(consumer(1, &sink, 0, true), "q").unwrap();
    assert!(!s.is_expired(T0 + 10_000), "a consumer keeps it");
    s.remove_consumer(1, T0 + 10_000);
    assert!(s.is_expired(T0 + 10_300));
}

#[test]
fn rejected_messages_die_as_rejected() {
    let q = handle();
    let mut s = state(QueueArgs::default());
    let mut fx = Effects::default();
    s.publish(msg("x"), T0, &q, &mut fx);
    let got = s.get(false, T0, &mut fx).unwrap();
    s.settle(&[got.seq], Settle::Discard, T0, &mut fx);
    assert_eq!(dead(&mut fx), [("x".into(), DeathReason::Rejected)]);
}
