//! Messaging through a real client library (lapin): publish, consume, get, ack, nack, reject,
//! prefetch, round-robin, requeue on close, confirms and transactions.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

async fn declare(ch: &Channel, name: &str) {
    common::declare_queue(ch, name)
        .await
        .expect("queue.declare");
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    ch.basic_publish(
        exchange,
        key,
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .expect("basic.publish");
}

async fn next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("a delivery within 5 s")
        .expect("consumer stream open")
        .expect("delivery")
}

#[tokio::test]
async fn publish_then_consume_preserves_body_and_properties() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "props").await;
    let mut headers = FieldTable::default();
    headers.insert("x-trace".into(), AMQPValue::LongString("abc".into()));
    headers.insert("n".into(), AMQPValue::LongInt(-5));
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_delivery_mode(2)
        .with_priority(3)
        .with_correlation_id("corr".into())
        .with_message_id("m1".into())
        .with_headers(headers.clone());
    ch.basic_publish(
        "",
        "props",
        BasicPublishOptions::default(),
        b"hello",
        props.clone(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            "props",
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.data, b"hello");
    assert_eq!(d.properties, props);
    assert_eq!(d.routing_key.as_str(), "props");
    assert!(!d.redelivered);
    d.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test]
async fn basic_get_returns_messages_then_empty() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "get").await;
    publish(&ch, "", "get", b"one").await;
    publish(&ch, "", "get", b"two").await;
    let m = ch
        .basic_get("get", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(
        (m.delivery.data.as_slice(), m.message_count),
        (&b"one"[..], 1)
    );
    let m = ch
        .basic_get("get", BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(m.delivery.data, b"two");
    m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    assert!(
        ch.basic_get("get", BasicGetOptions::default())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn nack_with_requeue_redelivers_flagged_and_reject_without_drops() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "nack").await;
    publish(&ch, "", "nack", b"m").await;
    let m = ch
        .basic_get("nack", BasicGetOptions::default())
        .await
        .unwrap()
        .unwrap();
    m.delivery
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
    let again = ch
        .basic_get("nack", BasicGetOptions::default())
        .await
        .unwrap()
        .unwrap();
    assert!(again.delivery.redelivered);
    again
        .delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    assert!(
        ch.basic_get("nack", BasicGetOptions::default())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn multiple_ack_settles_everything_up_to_the_tag() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "multi").await;
    for i in 0..5u8 {
        publish(&ch, "", "multi", &[i]).await;
    }
    let mut consumer = ch
        .basic_consume(
            "multi",
            "c",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..5 {
        last = Some(next(&mut consumer).await);
    }
    last.unwrap()
        .ack(BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.basic_cancel("c", BasicCancelOptions::default())
        .await
        .unwrap();
    let q = common::passive_queue(&ch, "multi").await.unwrap();
    assert_eq!(q.message_count(), 0);
}

#[tokio::test]
async fn multiple_ack_of_a_tag_never_delivered_is_406_and_settles_nothing() {
    // RabbitMQ's collect_acks must meet the tag itself, even with multiple=true (found by the
    // differential tester, issue 12).
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "multi-unknown").await;
    for i in 0..2u8 {
        publish(&ch, "", "multi-unknown", &[i]).await;
    }
    for _ in 0..2 {
        ch.basic_get("multi-unknown", BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
    }
    let mut closes = common::watch_close(&ch);
    ch.basic_ack(7, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    assert_eq!(
        common::closed_with(&mut closes).await,
        (406, "PRECONDITION_FAILED - unknown delivery tag 7".into())
    );
    // Nothing was acked: the channel's close requeued both.
    let ch = conn.create_channel().await.unwrap();
    let q = common::passive_queue(&ch, "multi-unknown").await.unwrap();
    assert_eq!(q.message_count(), 2);
}

#[tokio::test]
async fn unacked_messages_are_requeued_when_the_channel_closes() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "requeue").await;
    publish(&ch, "", "requeue", b"keep me").await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consumer_ch
        .basic_consume(
            "requeue",
            "c",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next(&mut consumer).await;
    assert!(!d.redelivered);
    consumer_ch.close(200, "bye").await.unwrap();
    let m = ch
        .basic_get("requeue", BasicGetOptions::default())
        .await
        .unwrap()
        .expect("requeued");
    assert!(m.delivery.redelivered);
    assert_eq!(m.delivery.data, b"keep me");
}

#[tokio::test]
async fn prefetch_caps_unacked_deliveries_per_consumer() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "prefetch").await;
    for i in 0..10u8 {
        publish(&ch, "", "prefetch", &[i]).await;
    }
    ch.basic_qos(3, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "prefetch",
            "c",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut consumer).await);
    }
    // No fourth delivery while three are unacked.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), consumer.next())
            .await
            .is_err()
    );
    got[0].ack(BasicAckOptions::default()).await.unwrap();
    let fourth = next(&mut consumer).await;
    assert_eq!(fourth.data, [3]);
}

#[tokio::test]
async fn competing_consumers_share_the_work_round_robin() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "work").await;
    let ch1 = conn.create_channel().await.unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut c1 = ch1
        .basic_consume("work", "a", opts, FieldTable::default())
        .await
        .unwrap();
    let mut c2 = ch2
        .basic_consume("work", "b", opts, FieldTable::default())
        .await
        .unwrap();
    for i in 0..6u8 {
        publish(&ch, "", "work", &[i]).await;
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..3 {
        a.push(next(&mut c1).await.data[0]);
        b.push(next(&mut c2).await.data[0]);
    }
    assert_eq!((a, b), (vec![0, 2, 4], vec![1, 3, 5]));
}

#[tokio::test]
async fn fanout_copies_to_every_bound_queue() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "fan",
        lapin::ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for q in ["f1", "f2", "f3"] {
        declare(&ch, q).await;
        ch.queue_bind(
            q,
            "fan",
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    publish(&ch, "fan", "ignored", b"all").await;
    for q in ["f1", "f2", "f3"] {
        let m = ch
            .basic_get(q, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect(q);
        assert_eq!(m.delivery.data, b"all");
    }
}

#[tokio::test]
async fn publisher_confirms_ack_every_publish() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare(&ch, "confirmed").await;
    let mut confirms = Vec::new();
    for i in 0..50u8 {
        confirms.push(
            ch.basic_publish(
                "",
                "confirmed",
                BasicPublishOptions::default(),
                &[i],
                BasicProperties::default(),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
    let q = common::passive_queue(&ch, "confirmed").await.unwrap();
    assert_eq!(q.message_count(), 50);
}

#[tokio::test]
async fn unroutable_mandatory_publish_is_returned_then_confirmed() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "",
            "nowhere",
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let returned = confirm.take_message().expect("the message came back");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.data, b"lost");
}

#[tokio::test]
async fn transactions_hold_publishes_until_commit_and_drop_them_on_rollback() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "tx").await;
    ch.tx_select().await.unwrap();
    publish(&ch, "", "tx", b"rolled back").await;
    ch.tx_rollback().await.unwrap();
    publish(&ch, "", "tx", b"committed").await;
    let other = conn.create_channel().await.unwrap();
    assert!(
        other
            .basic_get("tx", BasicGetOptions::default())
            .await
            .unwrap()
            .is_none()
    );
    ch.tx_commit().await.unwrap();
    let m = other
        .basic_get("tx", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("committed");
    assert_eq!(m.delivery.data, b"committed");
    assert!(
        other
            .basic_get("tx", BasicGetOptions::default())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn tx_acks_take_effect_only_at_commit() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "txack").await;
    publish(&ch, "", "txack", b"m").await;
    ch.tx_select().await.unwrap();
    let m = ch
        .basic_get("txack", BasicGetOptions::default())
        .await
        .unwrap()
        .unwrap();
    m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    ch.tx_rollback().await.unwrap();
    // The rolled-back ack never happened: recover puts the message back.
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let again = ch
        .basic_get("txack", BasicGetOptions::default())
        .await
        .unwrap()
        .expect("back");
    assert!(again.delivery.redelivered);
    again
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    let q = common::passive_queue(&ch, "txack").await.unwrap();
    assert_eq!(q.message_count(), 0);
}

#[tokio::test]
async fn large_message_spanning_many_frames_arrives_whole() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "big").await;
    let body: Vec<u8> = (0..(3 * 1024 * 1024)).map(|i| (i % 251) as u8).collect();
    publish(&ch, "", "big", &body).await;
    let m = ch
        .basic_get("big", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.delivery.data, body);
}

#[tokio::test]
async fn acks_held_by_an_uncommitted_tx_are_requeued_when_the_channel_closes() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "txclose").await;
    publish(&ch, "", "txclose", b"held").await;
    let tx_ch = conn.create_channel().await.unwrap();
    tx_ch.tx_select().await.unwrap();
    let m = tx_ch
        .basic_get("txclose", BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    // Closing without commit: the ack never happened and the message must come back.
    tx_ch.close(200, "bye").await.unwrap();
    let again = ch
        .basic_get("txclose", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message is ready again");
    assert!(again.delivery.redelivered);
    assert_eq!(again.delivery.data, b"held");
}
