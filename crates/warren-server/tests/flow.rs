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

/// A publisher to a queue that spills faster than the disk writes (the spill writer slowed on
/// purpose) is slowed by its socket, not blocked: what waits to be written stays near the
/// back-pressure bound (16 MiB) instead of growing towards the 64 MiB where segments stay in memory,
/// no `connection.blocked` is sent, and every message comes back.
#[tokio::test]
async fn a_publisher_outrunning_the_spill_writer_is_slowed_not_blocked_and_loses_nothing() {
    const N: usize = 40 * 1024;
    let server = common::start_with(|c| c.queue_memory_budget_mib = 1).await;
    let area = server.broker().spill_area().cloned().expect("a spill area");
    area.set_write_delay(std::time::Duration::from_millis(15));
    let conn = common::connect(&server).await;
    let mut blocked = false;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "deep").await.unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (area, done) = (area.clone(), done.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(area.pending_bytes());
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            most
        })
    };
    let mut body = vec![b'.'; 1024];
    for i in 0..N {
        body[..8].copy_from_slice(format!("{i:08}").as_bytes());
        ch.basic_publish(
            "",
            "deep",
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
        blocked |= conn.status().blocked();
    }
    // A passive declare answers after every publish before it on the channel was handled.
    let count = common::passive_queue(&ch, "deep")
        .await
        .unwrap()
        .message_count();
    assert_eq!(count as usize, N);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.await.unwrap();
    // Paused at 16 MiB, plus what a read buffer already held; without the pause (checked by
    // disabling it) it passes 30 MiB: N is 40 MiB of bodies and the writer takes about 4 MiB/s.
    assert!(most > 8 << 20, "the writer never fell behind ({most})");
    assert!(most <= 20 << 20, "pending reached {most}");
    area.set_write_delay(std::time::Duration::ZERO);
    for i in 0..N {
        let got = ch
            .basic_get("deep", BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(&got.delivery.data[..8], format!("{i:08}").as_bytes());
    }
    assert!(!blocked, "connection.blocked was sent");
    assert_eq!(area.lost_segments(), 0);
    conn.close(200, "").await.unwrap();
    server.shutdown().await.unwrap();
}
