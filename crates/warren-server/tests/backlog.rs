//! A queue holding a backlog keeps it packed (past 1 024 ready messages, see the broker's
//! `queue::ready`): what clients get back, and what the store keeps, must not change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

/// Enough that acked messages include packed ones, and that the messages left are packed again
/// when recovered.
const N: usize = 4000;
const ACKED: usize = 1500;

fn properties(i: usize) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("i".into(), AMQPValue::LongLongInt(i as i64));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("text/plain".into())
        .with_headers(headers)
}

fn body(i: usize) -> Vec<u8> {
    format!("message {i} {}", "x".repeat(i % 200)).into_bytes()
}

/// Takes message `i` with `basic.get` and checks it is intact.
async fn get(ch: &Channel, i: usize, no_ack: bool, redelivered: bool) -> lapin::message::Delivery {
    let m = ch
        .basic_get("backlog", BasicGetOptions { no_ack })
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("message {i} is missing"));
    let d = m.delivery;
    assert_eq!(d.data, body(i), "body of message {i}");
    assert_eq!(d.properties, properties(i), "properties of message {i}");
    assert_eq!(
        d.redelivered, redelivered,
        "redelivered flag of message {i}"
    );
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("", "backlog")
    );
    d
}

/// Declares the durable queue `backlog` on `ch` (in confirm mode) and publishes `n` messages
/// to it, `body(i)` with `properties(i)`, every one confirmed.
async fn fill(
    ch: &Channel,
    n: usize,
    body: impl Fn(usize) -> Vec<u8>,
    properties: impl Fn(usize) -> BasicProperties,
) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("backlog", durable, FieldTable::default())
        .await
        .unwrap();
    let mut confirms = Vec::with_capacity(n);
    for i in 0..n {
        let c = ch
            .basic_publish(
                "",
                "backlog",
                BasicPublishOptions::default(),
                &body(i),
                properties(i),
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
}

/// Starts the server again on `dir`, with a channel.
async fn restart(
    dir: &std::path::Path,
) -> (warren_server::ServerHandle, lapin::Connection, Channel) {
    let d = dir.to_path_buf();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    (server, conn, ch)
}

#[tokio::test]
async fn a_packed_durable_backlog_comes_back_intact_and_its_acks_reach_the_store() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    {
        let conn = common::connect(&server).await;
        let ch = conn.create_channel().await.unwrap();
        fill(&ch, N, body, properties).await;
        for i in 0..ACKED {
            let d = get(&ch, i, false, false).await;
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
        // Make sure the acks reached the server before it stops.
        let q = common::passive_queue(&ch, "backlog").await.unwrap();
        assert_eq!(q.message_count() as usize, N - ACKED);
    }
    server.shutdown().await.unwrap();

    let (server, _conn, ch) = restart(&dir).await;
    let q = common::passive_queue(&ch, "backlog").await.unwrap();
    assert_eq!(
        q.message_count() as usize,
        N - ACKED,
        "acked messages stay gone"
    );
    for i in ACKED..N {
        get(&ch, i, true, false).await;
    }
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// `queue.purge` of a durable queue whose backlog spilled runs on a blocking thread (it reads
/// the spilled segments for the stored messages' ids); the connection answers it, then what
/// followed it on the same channel, in order, and the purged messages do not come back after
/// a restart.
#[tokio::test]
async fn a_purge_of_a_spilled_durable_backlog_is_answered_in_order_and_stays_purged() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(move |c| {
        c.data_dir = d;
        c.queue_memory_budget_mib = 1;
    })
    .await;
    let n = 4000;
    {
        let conn = common::connect(&server).await;
        let ch = conn.create_channel().await.unwrap();
        let pad = "x".repeat(1000);
        let persistent = |_| BasicProperties::default().with_delivery_mode(2);
        fill(
            &ch,
            n,
            |i| format!("message {i} {pad}").into_bytes(),
            persistent,
        )
        .await;
        let spill = dir.join("spill");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !std::fs::read_dir(&spill)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.path().extension().is_some_and(|x| x == "seg"))
            })
            .unwrap_or(false)
        {
            assert!(std::time::Instant::now() < deadline, "nothing spilled");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The purge, then at once a publish and a get on the same channel: answered in order.
        let purge = ch.queue_purge("backlog", QueuePurgeOptions::default());
        let props = BasicProperties::default().with_delivery_mode(2);
        let publish = ch.basic_publish(
            "",
            "backlog",
            BasicPublishOptions::default(),
            b"after the purge",
            props,
        );
        let (purged, published) = tokio::join!(purge, publish);
        assert_eq!(purged.unwrap() as usize, n);
        assert!(published.unwrap().await.unwrap().is_ack());
        let got = ch
            .basic_get("backlog", BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("the message published after the purge");
        assert_eq!(got.delivery.data, b"after the purge");
        assert_eq!(got.message_count, 0);
        // Left unacked: it comes back after the restart, alone.
    }
    server.shutdown().await.unwrap();

    let (server, _conn, ch) = restart(&dir).await;
    let q = common::passive_queue(&ch, "backlog").await.unwrap();
    assert_eq!(q.message_count(), 1, "purged messages stay gone");
    let got = ch
        .basic_get("backlog", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.delivery.data, b"after the purge");
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
