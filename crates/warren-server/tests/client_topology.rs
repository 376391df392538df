//! Exchanges, queues and bindings through lapin, including the reply codes of common mistakes.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

async fn get_body(ch: &Channel, q: &str) -> Option<Vec<u8>> {
    ch.basic_get(q, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .map(|m| m.delivery.data)
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(exchange, key, BasicPublishOptions::default(), body, props)
        .await
        .unwrap();
}

async fn queue(ch: &Channel, name: &str) {
    common::declare_queue(ch, name).await.unwrap();
}

#[tokio::test]
async fn topic_routing_follows_star_and_hash() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    for (q, pattern) in [("t-star", "a.*.c"), ("t-hash", "a.#"), ("t-all", "#")] {
        queue(&ch, q).await;
        ch.queue_bind(
            q,
            "amq.topic",
            pattern,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    publish(
        &ch,
        "amq.topic",
        "a.b.c",
        b"abc",
        BasicProperties::default(),
    )
    .await;
    publish(&ch, "amq.topic", "a", b"a", BasicProperties::default()).await;
    publish(&ch, "amq.topic", "", b"empty", BasicProperties::default()).await;
    assert_eq!(get_body(&ch, "t-star").await.as_deref(), Some(&b"abc"[..]));
    assert_eq!(get_body(&ch, "t-star").await, None);
    assert_eq!(get_body(&ch, "t-hash").await.as_deref(), Some(&b"abc"[..]));
    assert_eq!(get_body(&ch, "t-hash").await.as_deref(), Some(&b"a"[..]));
    assert_eq!(get_body(&ch, "t-hash").await, None);
    let mut all = Vec::new();
    while let Some(b) = get_body(&ch, "t-all").await {
        all.push(b);
    }
    assert_eq!(all, [b"abc".to_vec(), b"a".to_vec(), b"empty".to_vec()]);
}

#[tokio::test]
async fn headers_exchange_matches_all_and_any() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut all = FieldTable::default();
    all.insert("x-match".into(), AMQPValue::LongString("all".into()));
    all.insert("format".into(), AMQPValue::LongString("pdf".into()));
    all.insert("type".into(), AMQPValue::LongString("report".into()));
    let mut any = all.clone();
    any.insert("x-match".into(), AMQPValue::LongString("any".into()));
    queue(&ch, "h-all").await;
    queue(&ch, "h-any").await;
    ch.queue_bind("h-all", "amq.headers", "", QueueBindOptions::default(), all)
        .await
        .unwrap();
    ch.queue_bind("h-any", "amq.headers", "", QueueBindOptions::default(), any)
        .await
        .unwrap();
    let mut h = FieldTable::default();
    h.insert("format".into(), AMQPValue::LongString("pdf".into()));
    publish(
        &ch,
        "amq.headers",
        "",
        b"pdf only",
        BasicProperties::default().with_headers(h.clone()),
    )
    .await;
    h.insert("type".into(), AMQPValue::LongString("report".into()));
    publish(
        &ch,
        "amq.headers",
        "",
        b"both",
        BasicProperties::default().with_headers(h),
    )
    .await;
    assert_eq!(get_body(&ch, "h-all").await.as_deref(), Some(&b"both"[..]));
    assert_eq!(get_body(&ch, "h-all").await, None);
    assert_eq!(
        get_body(&ch, "h-any").await.as_deref(),
        Some(&b"pdf only"[..])
    );
    assert_eq!(get_body(&ch, "h-any").await.as_deref(), Some(&b"both"[..]));
}

#[tokio::test]
async fn exchange_to_exchange_binding_forwards() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "upstream",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "downstream",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_bind(
        "downstream",
        "upstream",
        "k",
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    queue(&ch, "e2e").await;
    ch.queue_bind(
        "e2e",
        "downstream",
        "",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "upstream", "k", b"through", BasicProperties::default()).await;
    publish(
        &ch,
        "upstream",
        "other",
        b"dropped",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(get_body(&ch, "e2e").await.as_deref(), Some(&b"through"[..]));
    assert_eq!(get_body(&ch, "e2e").await, None);
    ch.exchange_unbind(
        "downstream",
        "upstream",
        "k",
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(
        &ch,
        "upstream",
        "k",
        b"after unbind",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(get_body(&ch, "e2e").await, None);
}

#[tokio::test]
async fn alternate_exchange_takes_unroutable_messages() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "ae",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("ae".into()),
    );
    ch.exchange_declare(
        "main",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        args,
    )
    .await
    .unwrap();
    queue(&ch, "routed").await;
    queue(&ch, "unrouted").await;
    ch.queue_bind(
        "routed",
        "main",
        "yes",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "unrouted",
        "ae",
        "",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "main", "yes", b"1", BasicProperties::default()).await;
    publish(&ch, "main", "no", b"2", BasicProperties::default()).await;
    assert_eq!(get_body(&ch, "routed").await.as_deref(), Some(&b"1"[..]));
    assert_eq!(get_body(&ch, "unrouted").await.as_deref(), Some(&b"2"[..]));
    assert_eq!(get_body(&ch, "unrouted").await, None);
}

#[tokio::test]
async fn server_named_queue_gets_an_amq_gen_name() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(q.name().as_str().starts_with("amq.gen-"), "{}", q.name());
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_404() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let e = common::passive_queue(&ch, "missing").await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
    // The channel is closed, the connection is not.
    let ch2 = conn.create_channel().await.unwrap();
    queue(&ch2, "fine").await;
}

#[tokio::test]
async fn redeclaring_with_other_flags_is_406() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    queue(&ch, "flags").await;
    let e = ch
        .queue_declare(
            "flags",
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "x",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let e = ch
        .exchange_declare(
            "x",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
}

#[tokio::test]
async fn another_connections_exclusive_queue_is_405() {
    let server = common::start().await;
    let owner = common::connect(&server).await;
    let ch = owner.create_channel().await.unwrap();
    ch.queue_declare(
        "mine",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let other = common::connect(&server).await;
    let ch2 = other.create_channel().await.unwrap();
    let e = ch2
        .basic_consume(
            "mine",
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(405));
}

#[tokio::test]
async fn exclusive_queue_goes_with_its_connection() {
    let server = common::start().await;
    let owner = common::connect(&server).await;
    let ch = owner.create_channel().await.unwrap();
    ch.queue_declare(
        "temp",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    owner.close(200, "bye").await.unwrap();
    let other = common::connect(&server).await;
    let ch2 = other.create_channel().await.unwrap();
    let mut gone = false;
    for _ in 0..50 {
        let ch = other.create_channel().await.unwrap();
        match common::passive_queue(&ch, "temp").await {
            Err(e) if common::reply_code(&e) == Some(404) => {
                gone = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(gone);
    drop(ch2);
}

#[tokio::test]
async fn amq_prefixed_names_are_reserved_403() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let e = ch
        .exchange_declare(
            "amq.custom",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(403));
    let ch = conn.create_channel().await.unwrap();
    let e = common::declare_queue(&ch, "amq.q").await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(403));
}

#[tokio::test]
async fn unknown_delivery_tag_is_406() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut closes = common::watch_close(&ch);
    ch.basic_ack(42, BasicAckOptions::default()).await.unwrap();
    let (code, text) = common::closed_with(&mut closes).await;
    assert_eq!(code, 406);
    assert!(text.contains("unknown delivery tag 42"), "{text}");
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_consumers() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    queue(&ch, "doomed").await;
    let mut consumer = ch
        .basic_consume(
            "doomed",
            "c",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let admin = conn.create_channel().await.unwrap();
    admin
        .queue_delete("doomed", QueueDeleteOptions::default())
        .await
        .unwrap();
    // lapin ends the consumer stream when the server cancels it.
    let end = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap();
    assert!(end.is_none());
}

#[tokio::test]
async fn purge_and_delete_report_counts_and_honour_conditions() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    queue(&ch, "counted").await;
    for _ in 0..3 {
        publish(&ch, "", "counted", b"x", BasicProperties::default()).await;
    }
    assert_eq!(
        ch.queue_purge("counted", QueuePurgeOptions::default())
            .await
            .unwrap(),
        3
    );
    publish(&ch, "", "counted", b"x", BasicProperties::default()).await;
    let e = ch
        .queue_delete(
            "counted",
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        ch.queue_delete("counted", QueueDeleteOptions::default())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn auto_delete_queue_goes_when_its_last_consumer_cancels() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "auto",
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_consume(
        "auto",
        "c",
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_cancel("c", BasicCancelOptions::default())
        .await
        .unwrap();
    let e = common::passive_queue(&ch, "auto").await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_the_channel_with_404() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let res = ch
        .basic_publish(
            "no-such-exchange",
            "k",
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await;
    let outcome = match res {
        Ok(confirm) => confirm.await.err(),
        Err(e) => Some(e),
    };
    let e = outcome.expect("the publish fails");
    assert_eq!(common::reply_code(&e), Some(404), "{e:?}");
}

#[tokio::test]
async fn cc_and_bcc_headers_add_routing_keys_and_bcc_is_hidden() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    for q in ["cc-main", "cc-copy", "cc-blind"] {
        queue(&ch, q).await;
    }
    let mut h = FieldTable::default();
    h.insert(
        "CC".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongString("cc-copy".into())].into()),
    );
    h.insert(
        "BCC".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongString("cc-blind".into())].into()),
    );
    publish(
        &ch,
        "",
        "cc-main",
        b"memo",
        BasicProperties::default().with_headers(h),
    )
    .await;
    for q in ["cc-main", "cc-copy", "cc-blind"] {
        let m = ch
            .basic_get(q, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect(q);
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        assert!(headers.inner().contains_key("CC"), "{q}");
        assert!(!headers.inner().contains_key("BCC"), "{q} must not see BCC");
    }
}

#[tokio::test]
async fn queue_bind_looks_the_exchange_up_before_the_queue() {
    // RabbitMQ's order (found by the differential tester, issue 12): a missing exchange is
    // reported even when the queue is missing or another connection's exclusive queue.
    let server = common::start().await;
    let owner = common::connect(&server).await;
    let och = owner.create_channel().await.unwrap();
    och.queue_declare(
        "mine-only",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let conn = common::connect(&server).await;
    for queue in ["no-such-queue", "mine-only"] {
        let ch = conn.create_channel().await.unwrap();
        let mut closes = common::watch_close(&ch);
        let _ = ch
            .queue_bind(
                queue,
                "no-such-exchange",
                "k",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_eq!(
            common::closed_with(&mut closes).await,
            (
                404,
                "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'".into()
            ),
            "{queue}"
        );
    }
}

#[tokio::test]
async fn redeclaring_checks_equivalence_before_validating_arguments() {
    // RabbitMQ validates arguments only when it creates a queue; an existing one is checked for
    // exclusive access, then flags, then argument equivalence (differential tester, issue 12).
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "equiv").await.unwrap();
    let mut bad = FieldTable::default();
    bad.insert("x-max-length".into(), AMQPValue::LongString("abc".into()));
    let cases = [
        (
            false,
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'equiv' in vhost '/': \
             received the value 'abc' of type 'longstr' but current is none",
        ),
        (
            true,
            405,
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'equiv' in vhost '/'. \
             It could be originally declared on another connection or the exclusive property value \
             does not match that of the original declaration.",
        ),
    ];
    for (exclusive, code, text) in cases {
        let ch = conn.create_channel().await.unwrap();
        let mut closes = common::watch_close(&ch);
        let opts = QueueDeclareOptions {
            exclusive,
            ..Default::default()
        };
        let _ = ch.queue_declare("equiv", opts, bad.clone()).await;
        assert_eq!(common::closed_with(&mut closes).await, (code, text.into()));
    }
}

#[tokio::test]
async fn cr_and_lf_are_stripped_from_declared_bound_and_deleted_names() {
    // RabbitMQ's channel strips them (strip_cr_lf) from exchange and queue names in declares,
    // deletes and bindings (issue 12 item 6).
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "cr\r\nlf-x",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "crlf-x",
        ExchangeKind::Fanout,
        passive,
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = common::declare_queue(&ch, "cr\rlf\n-q").await.unwrap();
    assert_eq!(q.name().as_str(), "crlf-q");
    ch.queue_bind(
        "crlf\r\n-q",
        "cr\nlf-x",
        "",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "crlf-x",
        "",
        BasicPublishOptions::default(),
        b"m",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        common::passive_queue(&ch, "crlf-q")
            .await
            .unwrap()
            .message_count(),
        1
    );
    ch.queue_delete("crlf-q\r", QueueDeleteOptions::default())
        .await
        .unwrap();
    ch.exchange_delete("crlf-x\n", ExchangeDeleteOptions::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let e = common::passive_queue(&ch, "crlf-q").await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
}
