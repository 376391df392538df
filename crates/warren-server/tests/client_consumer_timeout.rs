//! The delivery acknowledgement timeout (`consumer_timeout`), through lapin: a channel holding
//! a delivery unacknowledged for too long is closed with RabbitMQ 3.10's 406 and text, and its
//! messages are requeued.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};

const TIMEOUT_MS: u64 = 200;

async fn server() -> warren_server::ServerHandle {
    common::start_with(|c| c.consumer_timeout = TIMEOUT_MS).await
}

async fn publish(ch: &Channel, routing_key: &str, body: &[u8]) {
    ch.basic_publish(
        "",
        routing_key,
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .unwrap();
}

async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("a delivery in time")
        .expect("the consumer is open")
        .unwrap()
}

async fn one_message(ch: &Channel, queue: &str) {
    common::declare_queue(ch, queue).await.unwrap();
    publish(ch, queue, b"held").await;
}

fn timed_out_text(channel: u16) -> String {
    format!(
        "PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. \
         Timeout value used: {TIMEOUT_MS} ms. This timeout value can be configured, see \
         consumers doc guide to learn more"
    )
}

#[tokio::test]
async fn unacked_consumer_delivery_closes_the_channel_with_406_and_is_requeued() {
    let server = server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let bystander = conn.create_channel().await.unwrap();
    one_message(&bystander, "slow").await;
    let mut closed = common::watch_close(&ch);
    let mut consumer = ch
        .basic_consume(
            "slow",
            "c",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(!next(&mut consumer).await.redelivered);
    assert_eq!(
        common::closed_with(&mut closed).await,
        (406, timed_out_text(ch.id()))
    );
    let again = bystander
        .basic_get("slow", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("requeued");
    assert!(again.delivery.redelivered);
    assert!(conn.status().connected());
}

#[tokio::test]
async fn unacked_basic_get_also_times_out() {
    let server = server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    one_message(&ch, "got").await;
    let mut closed = common::watch_close(&ch);
    ch.basic_get("got", BasicGetOptions::default())
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(
        common::closed_with(&mut closed).await,
        (406, timed_out_text(ch.id()))
    );
}

#[tokio::test]
async fn acked_and_no_ack_deliveries_never_time_out() {
    let server = server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut closed = common::watch_close(&ch);
    one_message(&ch, "acked").await;
    one_message(&ch, "free").await;
    let mut acked = ch
        .basic_consume(
            "acked",
            "a",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut free = ch
        .basic_consume(
            "free",
            "f",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    next(&mut acked)
        .await
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    next(&mut free).await;
    // Several ticks of the check pass.
    tokio::time::sleep(Duration::from_millis(TIMEOUT_MS * 3)).await;
    assert!(closed.try_recv().is_err());
    assert!(ch.status().connected());
    common::declare_queue(&ch, "still-open").await.unwrap();
}

#[tokio::test]
async fn ack_held_by_an_open_transaction_stops_the_clock() {
    let server = server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut closed = common::watch_close(&ch);
    one_message(&ch, "tx-held").await;
    ch.tx_select().await.unwrap();
    let got = ch
        .basic_get("tx-held", BasicGetOptions::default())
        .await
        .unwrap()
        .expect("a message");
    ch.basic_ack(got.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(TIMEOUT_MS * 3)).await;
    assert!(closed.try_recv().is_err());
    ch.tx_commit().await.unwrap();
}
