//! The rules RabbitMQ enforces on channels and consumers, through lapin: each mistake gets the
//! reply code RabbitMQ 3.10 sends, and closes only what RabbitMQ closes.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_is_404() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let e = ch
        .exchange_declare(
            "nope",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
}

#[tokio::test]
async fn unknown_exchange_type_closes_the_connection_with_503() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let e = ch
        .exchange_declare(
            "odd",
            ExchangeKind::Custom("x-no-such-type".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(503));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!conn.status().connected());
}

#[tokio::test]
async fn binding_to_the_default_exchange_is_403() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "dq").await.unwrap();
    let e = ch
        .queue_bind(
            "dq",
            "",
            "dq",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(403));
}

#[tokio::test]
async fn deleting_an_exchange_in_use_with_if_unused_is_406() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "used",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    common::declare_queue(&ch, "uq").await.unwrap();
    ch.queue_bind(
        "uq",
        "used",
        "k",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let e = ch
        .exchange_delete(
            "used",
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete("used", ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn publishing_to_an_internal_exchange_is_403() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "inner",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let res = ch
        .basic_publish(
            "inner",
            "",
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await;
    let e = match res {
        Ok(c) => c.await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(common::reply_code(&e), Some(403));
}

#[tokio::test]
async fn exclusive_consumer_refuses_a_second_consumer_with_403() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "solo").await.unwrap();
    // Keep the consumer: lapin cancels a consumer when it is dropped.
    let _first = ch
        .basic_consume(
            "solo",
            "first",
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    let e = ch2
        .basic_consume(
            "solo",
            "second",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(403));
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_is_530() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "tagged").await.unwrap();
    let _first = ch
        .basic_consume(
            "tagged",
            "same",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let e = ch
        .basic_consume(
            "tagged",
            "same",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(530));
}

#[tokio::test]
async fn confirm_and_tx_modes_exclude_each_other_406() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    let e = ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let e = ch.tx_select().await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
    let ch = conn.create_channel().await.unwrap();
    let e = ch.tx_commit().await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
}

#[tokio::test]
async fn recover_redelivers_unacked_messages() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "rec").await.unwrap();
    ch.basic_publish(
        "",
        "rec",
        BasicPublishOptions::default(),
        b"again",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            "rec",
            "c",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!first.redelivered);
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(second.redelivered);
    assert_eq!(second.data, b"again");
}

#[tokio::test]
async fn global_qos_limits_the_whole_channel() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    for q in ["g1", "g2"] {
        common::declare_queue(&ch, q).await.unwrap();
        for _ in 0..3 {
            ch.basic_publish(
                "",
                q,
                BasicPublishOptions::default(),
                b"m",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        }
    }
    ch.basic_qos(2, BasicQosOptions { global: true })
        .await
        .unwrap();
    let mut a = ch
        .basic_consume(
            "g1",
            "a",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut b = ch
        .basic_consume(
            "g2",
            "b",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = 0;
    loop {
        let next = tokio::time::timeout(
            Duration::from_millis(300),
            futures_lite::future::race(a.next(), b.next()),
        )
        .await;
        match next {
            Ok(Some(Ok(_))) => got += 1,
            _ => break,
        }
    }
    assert_eq!(got, 2, "two unacked deliveries across both consumers");
}

#[tokio::test]
async fn invalid_queue_argument_is_406() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongString("soon".into()));
    let e = ch
        .queue_declare("badargs", QueueDeclareOptions::default(), args)
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(406));
}

#[tokio::test]
async fn a_passive_declare_of_the_empty_name_is_404_not_the_last_queue() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "last").await.unwrap();
    let e = common::passive_queue(&ch, "").await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
    assert!(e.to_string().contains("no queue '' in vhost '/'"), "{e}");
}
