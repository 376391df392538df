//! Flow of deliveries to a slow consumer: what the consumer has not read stays in its queue
//! instead of piling up in the broker's memory between the queue and the socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Raw;
use lapin::BasicProperties;
use lapin::options::*;
use warren_codec::{BasicConsume, Frame, Method};

const MESSAGES: usize = 3000;
const BODY: usize = 10 * 1024;

#[tokio::test]
async fn a_consumer_that_does_not_read_leaves_its_backlog_in_the_queue_then_gets_it_all() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "slow").await.unwrap();

    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        BasicConsume {
            queue: "slow".into(),
            consumer_tag: "c".into(),
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(raw.method().await, Method::BasicConsumeOk(_)));

    // 30 MiB for a no-ack consumer that reads nothing meanwhile.
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let body = vec![7u8; BODY];
    for _ in 0..MESSAGES {
        ch.basic_publish(
            "",
            "slow",
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    ch.wait_for_confirms().await.unwrap();
    let held = common::passive_queue(&ch, "slow")
        .await
        .unwrap()
        .message_count() as usize;
    // The connection may hold a few MiB of deliveries and the sockets a few more; the rest
    // (most of the 30 MiB) must still be in the queue.
    assert!(
        held > MESSAGES / 2,
        "only {held} of {MESSAGES} messages stayed in the queue"
    );

    // Once the consumer reads, every message arrives.
    let mut delivered = 0;
    let mut bytes = 0;
    while delivered < MESSAGES || bytes < MESSAGES * BODY {
        match raw.frame().await.expect("a frame") {
            Frame::Method {
                method: Method::BasicDeliver(_),
                ..
            } => delivered += 1,
            Frame::Body { payload, .. } => bytes += payload.len(),
            _ => {}
        }
    }
    assert_eq!((delivered, bytes), (MESSAGES, MESSAGES * BODY));
    let left = common::passive_queue(&ch, "slow").await.unwrap();
    assert_eq!(left.message_count(), 0);
}
