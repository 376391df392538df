//! Queue features through a real client (lapin): TTL, x-expires, length limits, dead-lettering,
//! priorities, consumer priorities, single active consumer, and their survival of a restart.
//! Expected behaviour is RabbitMQ 3.10's (conformance/reference/queue-features.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

/// Arguments that dead-letter into queue `target` through the default exchange, plus `more`.
fn dead_letters_to(target: &str, more: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = args(more);
    t.insert("x-dead-letter-exchange".into(), text(""));
    t.insert("x-dead-letter-routing-key".into(), text(target));
    t
}

/// A server, a connection and a channel on it, with publisher confirms if asked.
async fn open(confirms: bool) -> (warren_server::ServerHandle, lapin::Connection, Channel) {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    if confirms {
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
    }
    (server, conn, ch)
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

async fn queue_with(ch: &Channel, name: &str, a: FieldTable) {
    ch.queue_declare(name, QueueDeclareOptions::default(), a)
        .await
        .unwrap();
}

async fn publish(ch: &Channel, rk: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish("", rk, BasicPublishOptions::default(), body, props)
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn count(ch: &Channel, name: &str) -> u32 {
    common::passive_queue(ch, name)
        .await
        .unwrap()
        .message_count()
}

/// Polls until `name` holds `n` ready messages, or fails after two seconds.
async fn wait_count(ch: &Channel, name: &str, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let c = count(ch, name).await;
        if c == n {
            return;
        }
        assert!(Instant::now() < deadline, "{name} holds {c}, not {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get_body(ch: &Channel, name: &str) -> Option<(Vec<u8>, BasicProperties)> {
    ch.basic_get(name, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .map(|m| (m.delivery.data.clone(), m.delivery.properties.clone()))
}

fn header<'a>(p: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    p.headers().as_ref()?.inner().get(key)
}

fn death(p: &BasicProperties, i: usize) -> FieldTable {
    match header(p, "x-death") {
        Some(AMQPValue::FieldArray(a)) => match &a.as_slice()[i] {
            AMQPValue::FieldTable(t) => t.clone(),
            other => panic!("not a table: {other:?}"),
        },
        other => panic!("no x-death: {other:?}"),
    }
}

fn field_text(t: &FieldTable, key: &str) -> String {
    match t.inner().get(key) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test]
async fn expired_messages_leave_without_a_consumer_and_are_dead_lettered() {
    let (_server, _conn, ch) = open(true).await;
    queue_with(&ch, "dead", FieldTable::default()).await;
    queue_with(
        &ch,
        "ttl",
        dead_letters_to("dead", &[("x-message-ttl", AMQPValue::LongInt(100))]),
    )
    .await;
    publish(&ch, "ttl", b"a", BasicProperties::default()).await;
    publish(
        &ch,
        "ttl",
        b"b",
        BasicProperties::default().with_expiration("60000".into()),
    )
    .await;
    assert_eq!(count(&ch, "ttl").await, 2);
    wait_count(&ch, "ttl", 0).await;
    wait_count(&ch, "dead", 2).await;
    let (body, props) = get_body(&ch, "dead").await.unwrap();
    assert_eq!(body, b"a");
    let d = death(&props, 0);
    assert_eq!(field_text(&d, "reason"), "expired");
    assert_eq!(field_text(&d, "queue"), "ttl");
    assert_eq!(d.inner().get("count"), Some(&AMQPValue::LongLongInt(1)));
    let (_, props) = get_body(&ch, "dead").await.unwrap();
    assert_eq!(props.expiration(), &None, "expiration is removed");
    assert_eq!(
        field_text(&death(&props, 0), "original-expiration"),
        "60000"
    );
}

#[tokio::test]
async fn an_invalid_expiration_closes_the_channel_with_406() {
    let (_server, _conn, ch) = open(false).await;
    common::declare_queue(&ch, "q").await.unwrap();
    // The close is asynchronous: a later call may fail locally before it arrives, so watch it.
    let mut closes = common::watch_close(&ch);
    let _ = ch
        .basic_publish(
            "",
            "q",
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default().with_expiration("-1".into()),
        )
        .await;
    let (code, text) = common::closed_with(&mut closes).await;
    assert_eq!(code, 406);
    assert!(text.contains("invalid expiration '-1'"), "{text}");
}

#[tokio::test]
async fn an_unused_queue_is_deleted_after_x_expires() {
    let (_server, _conn, ch) = open(false).await;
    queue_with(
        &ch,
        "short-lived",
        args(&[("x-expires", AMQPValue::LongInt(200))]),
    )
    .await;
    publish(&ch, "short-lived", b"m", BasicProperties::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = common::passive_queue(&ch, "short-lived").await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
}

#[tokio::test]
async fn drop_head_dead_letters_the_oldest_and_reject_publish_nacks() {
    let (_server, _conn, ch) = open(true).await;
    queue_with(&ch, "overflowed", FieldTable::default()).await;
    queue_with(
        &ch,
        "bounded",
        dead_letters_to("overflowed", &[("x-max-length", AMQPValue::LongInt(2))]),
    )
    .await;
    for b in ["m0", "m1", "m2", "m3"] {
        publish(&ch, "bounded", b.as_bytes(), BasicProperties::default()).await;
    }
    assert_eq!(get_body(&ch, "bounded").await.unwrap().0, b"m2");
    let (body, props) = get_body(&ch, "overflowed").await.unwrap();
    assert_eq!(body, b"m0");
    assert_eq!(field_text(&death(&props, 0), "reason"), "maxlen");

    queue_with(
        &ch,
        "refusing",
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", text("reject-publish")),
        ]),
    )
    .await;
    let mut acks = Vec::new();
    for b in ["first", "second"] {
        let confirm = ch
            .basic_publish(
                "",
                "refusing",
                BasicPublishOptions::default(),
                b.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        acks.push(confirm.is_ack());
    }
    assert_eq!(acks, [true, false]);
    assert_eq!(count(&ch, "refusing").await, 1);
}

#[tokio::test]
async fn rejected_messages_carry_x_death_and_first_death_headers() {
    let (_server, _conn, ch) = open(false).await;
    ch.exchange_declare(
        "dlx",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    queue_with(&ch, "graveyard", FieldTable::default()).await;
    ch.queue_bind(
        "graveyard",
        "dlx",
        "",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    queue_with(
        &ch,
        "work",
        args(&[("x-dead-letter-exchange", text("dlx"))]),
    )
    .await;
    publish(&ch, "work", b"job", BasicProperties::default()).await;
    let m = ch
        .basic_get("work", BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    m.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    wait_count(&ch, "graveyard", 1).await;
    let m = ch
        .basic_get("graveyard", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.delivery.exchange.as_str(), "dlx");
    assert_eq!(m.delivery.routing_key.as_str(), "work");
    let p = &m.delivery.properties;
    assert_eq!(header(p, "x-first-death-reason"), Some(&text("rejected")));
    assert_eq!(header(p, "x-first-death-queue"), Some(&text("work")));
    assert_eq!(header(p, "x-first-death-exchange"), Some(&text("")));
}

#[tokio::test]
async fn a_queue_expiring_into_itself_drops_the_message() {
    let (_server, _conn, ch) = open(false).await;
    queue_with(
        &ch,
        "loop",
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(50)),
            ("x-dead-letter-exchange", text("")),
        ]),
    )
    .await;
    publish(&ch, "loop", b"m", BasicProperties::default()).await;
    wait_count(&ch, "loop", 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&ch, "loop").await, 0);
}

#[tokio::test]
async fn a_priority_queue_delivers_higher_priorities_first() {
    let (_server, _conn, ch) = open(false).await;
    queue_with(
        &ch,
        "prio",
        args(&[("x-max-priority", AMQPValue::LongInt(5))]),
    )
    .await;
    for (b, p) in [("a", None), ("b", Some(1)), ("c", Some(5)), ("e", Some(9))] {
        let mut props = BasicProperties::default();
        if let Some(p) = p {
            props = props.with_priority(p);
        }
        publish(&ch, "prio", b.as_bytes(), props).await;
    }
    let mut order = String::new();
    while let Some((b, _)) = get_body(&ch, "prio").await {
        order.push_str(std::str::from_utf8(&b).unwrap());
    }
    assert_eq!(order, "ceba");
}

#[tokio::test]
async fn consumer_priorities_and_single_active_consumer() {
    let (_server, conn, ch) = open(false).await;
    common::declare_queue(&ch, "shared").await.unwrap();
    let low = ch
        .basic_consume(
            "shared",
            "low",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut high = ch
        .basic_consume(
            "shared",
            "high",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            args(&[("x-priority", AMQPValue::LongInt(10))]),
        )
        .await
        .unwrap();
    for i in 0..4u8 {
        publish(&ch, "shared", &[i], BasicProperties::default()).await;
    }
    for i in 0..4u8 {
        let d = high.next().await.unwrap().unwrap();
        assert_eq!(d.data, [i]);
    }
    drop(low);

    let ch2 = conn.create_channel().await.unwrap();
    queue_with(
        &ch2,
        "sac",
        args(&[("x-single-active-consumer", AMQPValue::Boolean(true))]),
    )
    .await;
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut first = ch2
        .basic_consume("sac", "first", opts, FieldTable::default())
        .await
        .unwrap();
    let mut second = ch2
        .basic_consume("sac", "second", opts, FieldTable::default())
        .await
        .unwrap();
    assert_eq!(
        common::passive_queue(&ch2, "sac")
            .await
            .unwrap()
            .consumer_count(),
        2
    );
    publish(&ch2, "sac", b"one", BasicProperties::default()).await;
    assert_eq!(first.next().await.unwrap().unwrap().data, b"one");
    ch2.basic_cancel("first", BasicCancelOptions::default())
        .await
        .unwrap();
    publish(&ch2, "sac", b"two", BasicProperties::default()).await;
    assert_eq!(second.next().await.unwrap().unwrap().data, b"two");
}

#[tokio::test]
async fn invalid_queue_and_consumer_arguments_are_refused_with_rabbitmqs_texts() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    for (a, text_part) in [
        (
            args(&[("x-expires", AMQPValue::LongInt(0))]),
            "{value_zero,0}",
        ),
        (
            args(&[("x-max-priority", AMQPValue::LongInt(256))]),
            "{max_value_exceeded,256}",
        ),
        (args(&[("x-overflow", text("bogus"))]), "invalid_overflow"),
        (
            args(&[("x-dead-letter-routing-key", text("k"))]),
            "routing_key_but_no_dlx_defined",
        ),
        (
            args(&[("x-message-ttl", text("abc"))]),
            "\"expected integer, got longstr\"",
        ),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let e = ch
            .queue_declare("bad", QueueDeclareOptions::default(), a)
            .await
            .unwrap_err();
        assert_eq!(common::reply_code(&e), Some(406));
        assert!(e.to_string().contains(text_part), "{e}");
    }
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "q").await.unwrap();
    let e = ch
        .basic_consume(
            "q",
            "c",
            BasicConsumeOptions::default(),
            args(&[("x-priority", text("x"))]),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
}

#[tokio::test]
async fn ttl_deadlines_and_dead_letters_survive_a_restart() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let persistent = BasicProperties::default().with_delivery_mode(2);
    {
        let conn = common::connect(&server).await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("d-dead", durable, FieldTable::default())
            .await
            .unwrap();
        ch.queue_declare(
            "d-ttl",
            durable,
            dead_letters_to("d-dead", &[("x-message-ttl", AMQPValue::LongInt(600))]),
        )
        .await
        .unwrap();
        ch.queue_declare("d-work", durable, dead_letters_to("d-dead", &[]))
            .await
            .unwrap();
        publish(&ch, "d-ttl", b"expires-while-down", persistent.clone()).await;
        publish(&ch, "d-work", b"rejected", persistent.clone()).await;
        let m = ch
            .basic_get("d-work", BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        m.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
        wait_count(&ch, "d-dead", 1).await;
    }
    server.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;

    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    // The TTL ran out while the broker was down: recovery expired it into the dead queue
    // before the port opened (a deadline restarted at recovery would still hold it here).
    assert_eq!(count(&ch, "d-ttl").await, 0);
    assert_eq!(count(&ch, "d-dead").await, 2);
    let (body, props) = get_body(&ch, "d-dead").await.unwrap();
    assert_eq!(body, b"rejected");
    assert_eq!(field_text(&death(&props, 0), "reason"), "rejected");
    assert_eq!(props.delivery_mode(), &Some(2));
    let (body, props) = get_body(&ch, "d-dead").await.unwrap();
    assert_eq!(body, b"expires-while-down");
    assert_eq!(field_text(&death(&props, 0), "reason"), "expired");
}

#[tokio::test]
async fn classic_and_lazy_are_accepted_and_quorum_or_stream_refused_with_406() {
    let (_server, conn, ch) = open(false).await;
    queue_with(
        &ch,
        "plain",
        args(&[
            ("x-queue-type", text("classic")),
            ("x-queue-mode", text("lazy")),
        ]),
    )
    .await;
    for kind in ["quorum", "stream"] {
        let ch = conn.create_channel().await.unwrap();
        let e = ch
            .queue_declare(
                "replicated",
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args(&[("x-queue-type", text(kind))]),
            )
            .await
            .unwrap_err();
        assert_eq!(common::reply_code(&e), Some(406));
        assert!(e.to_string().contains(kind), "{e}");
    }
    // A type RabbitMQ does not know either gets RabbitMQ's text (differential tester, issue 12).
    let ch = conn.create_channel().await.unwrap();
    let mut closes = common::watch_close(&ch);
    let _ = ch
        .queue_declare(
            "odd",
            QueueDeclareOptions::default(),
            args(&[("x-queue-type", text("bogus"))]),
        )
        .await;
    assert_eq!(
        common::closed_with(&mut closes).await,
        (
            406,
            "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'odd' in vhost '/': \"unsupported queue type 'bogus'\""
                .into()
        )
    );
}

#[tokio::test]
async fn a_message_returned_past_the_delivery_limit_is_dead_lettered() {
    let (_server, _conn, ch) = open(false).await;
    queue_with(&ch, "poison-dlq", FieldTable::default()).await;
    queue_with(
        &ch,
        "limited",
        dead_letters_to("poison-dlq", &[("x-delivery-limit", AMQPValue::LongInt(1))]),
    )
    .await;
    publish(&ch, "limited", b"poison", BasicProperties::default()).await;
    let first = ch
        .basic_get("limited", BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header(&first.delivery.properties, "x-delivery-count"), None);
    first
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let second = ch
        .basic_get("limited", BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    assert!(second.delivery.redelivered);
    assert_eq!(
        header(&second.delivery.properties, "x-delivery-count"),
        Some(&AMQPValue::LongLongInt(1))
    );
    second
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    wait_count(&ch, "poison-dlq", 1).await;
    assert_eq!(count(&ch, "limited").await, 0);
    let (_, props) = get_body(&ch, "poison-dlq").await.unwrap();
    assert_eq!(field_text(&death(&props, 0), "reason"), "delivery_limit");
}
