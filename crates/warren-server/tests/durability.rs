//! Durable definitions and persistent messages survive a restart; transient ones do not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[tokio::test]
async fn durable_state_and_persistent_messages_survive_a_restart() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    {
        let conn = common::connect(&server).await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.exchange_declare(
            "dx",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            "tx-transient",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_declare("dq", durable(), FieldTable::default())
            .await
            .unwrap();
        common::declare_queue(&ch, "tq").await.unwrap();
        ch.queue_bind(
            "dq",
            "dx",
            "k",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        for i in 0..5u8 {
            let c = ch
                .basic_publish(
                    "dx",
                    "k",
                    BasicPublishOptions::default(),
                    &[i],
                    persistent(),
                )
                .await
                .unwrap();
            assert!(c.await.unwrap().is_ack());
        }
        // A transient message in a durable queue is not kept.
        let c = ch
            .basic_publish(
                "",
                "dq",
                BasicPublishOptions::default(),
                b"transient",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        assert!(c.await.unwrap().is_ack());
        // Take the first message without acking it: it must come back redelivered.
        let got = ch
            .basic_get("dq", BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.delivery.data, [0]);
        // Ack the second one: it must not come back.
        let got = ch
            .basic_get("dq", BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        got.delivery.ack(BasicAckOptions::default()).await.unwrap();
        // Make sure the ack reached the server before it stops.
        common::passive_queue(&ch, "dq").await.unwrap();
    }
    server.shutdown().await.unwrap();

    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.exchange_declare("dx", ExchangeKind::Direct, passive, FieldTable::default())
        .await
        .unwrap();
    let e = ch
        .exchange_declare(
            "tx-transient",
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
    let ch = conn.create_channel().await.unwrap();
    let e = common::passive_queue(&ch, "tq").await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
    let ch = conn.create_channel().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = ch
        .basic_get("dq", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        got.push((m.delivery.data[0], m.delivery.redelivered));
    }
    assert_eq!(got, [(0, true), (2, false), (3, false), (4, false)]);
    // The binding came back too.
    ch.basic_publish(
        "dx",
        "k",
        BasicPublishOptions::default(),
        b"again",
        persistent(),
    )
    .await
    .unwrap();
    let m = ch
        .basic_get("dq", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("routed through the recovered binding");
    assert_eq!(m.delivery.data, b"again");
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn deleted_durable_queue_stays_deleted_after_restart() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    {
        let conn = common::connect(&server).await;
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare("gone", durable(), FieldTable::default())
            .await
            .unwrap();
        ch.basic_publish(
            "",
            "gone",
            BasicPublishOptions::default(),
            b"x",
            persistent(),
        )
        .await
        .unwrap();
        ch.queue_delete("gone", QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    server.shutdown().await.unwrap();
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let e = common::passive_queue(&ch, "gone").await.unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// The store no longer checks that a Remove finds its entry (issue 7): settling the deliveries
/// of a deleted queue must write nothing, or it would drop the reference the other queue holds
/// and its copy would be lost (or dangle) after a restart.
#[tokio::test]
async fn settling_deliveries_of_a_deleted_durable_queue_keeps_the_messages_in_other_queues() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    {
        let conn = common::connect(&server).await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.exchange_declare(
            "fan",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        for q in ["deleted", "kept"] {
            ch.queue_declare(q, durable(), FieldTable::default())
                .await
                .unwrap();
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
        for i in 0..3u8 {
            let c = ch
                .basic_publish(
                    "fan",
                    "",
                    BasicPublishOptions::default(),
                    &[i],
                    persistent(),
                )
                .await
                .unwrap();
            assert!(c.await.unwrap().is_ack());
        }
        let mut held = Vec::new();
        for _ in 0..3 {
            let got = ch
                .basic_get("deleted", BasicGetOptions { no_ack: false })
                .await
                .unwrap()
                .unwrap();
            held.push(got.delivery);
        }
        let other = conn.create_channel().await.unwrap();
        other
            .queue_delete("deleted", QueueDeleteOptions::default())
            .await
            .unwrap();
        // Every way of settling, after the queue and its store records are gone.
        held[0].ack(BasicAckOptions::default()).await.unwrap();
        held[1]
            .nack(BasicNackOptions {
                requeue: false,
                ..Default::default()
            })
            .await
            .unwrap();
        held[2]
            .reject(BasicRejectOptions { requeue: true })
            .await
            .unwrap();
        // Make sure the settlements reached the server before it stops.
        common::passive_queue(&ch, "kept").await.unwrap();
    }
    server.shutdown().await.unwrap();

    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = ch
        .basic_get("kept", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        got.push(m.delivery.data[0]);
    }
    assert_eq!(got, [0, 1, 2]);
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
