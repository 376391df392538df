//! Disk faults: when the store cannot write or sync, publishes that needed it are nacked, the
//! broker keeps serving, and once the disk recovers publishing is confirmed again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use lapin::BasicProperties;
use lapin::options::*;
use lapin::types::FieldTable;
use warren_server::Server;
use warren_server::config::Config;
use warren_store::{FaultyStore, MemoryStore};

async fn start(store: Arc<FaultyStore<MemoryStore>>) -> warren_server::ServerHandle {
    start_with_window(store, Config::default().queue_load_window).await
}

/// [`start`] with `queue_load_window` `window`.
async fn start_with_window(
    store: Arc<FaultyStore<MemoryStore>>,
    window: u64,
) -> warren_server::ServerHandle {
    let config = Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        management_port: 0,
        prometheus_port: 0,
        queue_load_window: window,
        ..Config::default()
    };
    Server::bind_with_store(config, store)
        .await
        .unwrap()
        .spawn()
}

/// A channel in confirm mode, with the durable queue `dq` declared.
async fn confirmed_durable_queue(conn: &lapin::Connection) -> lapin::Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(
        "dq",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch
}

async fn publish_persistent(ch: &lapin::Channel, body: &[u8]) -> bool {
    let props = BasicProperties::default().with_delivery_mode(2);
    ch.basic_publish("", "dq", BasicPublishOptions::default(), body, props)
        .await
        .unwrap()
        .await
        .unwrap()
        .is_ack()
}

#[tokio::test]
async fn a_failing_sync_nacks_persistent_publishes_and_service_resumes() {
    let store = Arc::new(FaultyStore::new(MemoryStore::new()));
    let server = start(store.clone()).await;
    let conn = common::connect(&server).await;
    let ch = confirmed_durable_queue(&conn).await;
    assert!(publish_persistent(&ch, b"before").await);

    store.set_sync_failing(true);
    assert!(
        !publish_persistent(&ch, b"unsynced").await,
        "a publish that cannot be made durable is nacked"
    );
    // Transient messages do not need the disk.
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

    store.heal();
    assert!(publish_persistent(&ch, b"after").await);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_write_nacks_and_loses_nothing_confirmed() {
    let store = Arc::new(FaultyStore::new(MemoryStore::new()));
    let server = start(store.clone()).await;
    let conn = common::connect(&server).await;
    let ch = confirmed_durable_queue(&conn).await;
    assert!(publish_persistent(&ch, b"kept").await);
    store.set_failing(true);
    assert!(!publish_persistent(&ch, b"refused").await);
    store.heal();
    let m = ch
        .basic_get("dq", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the confirmed message");
    assert_eq!(m.delivery.data, b"kept");
    assert!(
        ch.basic_get("dq", BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .is_none(),
        "the refused one was not enqueued"
    );
    server.shutdown().await.unwrap();
}

/// The body of the next message `basic.get` (no ack) takes from `dq`, if any.
async fn get(ch: &lapin::Channel) -> Option<String> {
    ch.basic_get("dq", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .map(|m| String::from_utf8_lossy(&m.delivery.data).into_owned())
}

/// A server with a load window of two and `n` confirmed persistent messages `m0`, `m1`, ... in
/// the durable queue `dq`: the queue keeps two in memory, the rest of its backlog in the
/// store, read back as it drains. Also the store, and the connection the channel lives on.
async fn stored_backlog(
    n: usize,
) -> (
    Arc<FaultyStore<MemoryStore>>,
    warren_server::ServerHandle,
    lapin::Connection,
    lapin::Channel,
) {
    let store = Arc::new(FaultyStore::new(MemoryStore::new()));
    let server = start_with_window(store.clone(), 2).await;
    let conn = common::connect(&server).await;
    let ch = confirmed_durable_queue(&conn).await;
    for i in 0..n {
        assert!(publish_persistent(&ch, format!("m{i}").as_bytes()).await);
    }
    (store, server, conn, ch)
}

#[tokio::test]
async fn a_get_waits_for_a_suspended_store_and_is_answered_once_it_reads_again() {
    let (store, server, _conn, ch) = stored_backlog(6).await;
    // The store stops answering reads, as one that met a full disk does until it resumes.
    store.set_reads_suspended(true);
    assert_eq!(get(&ch).await.as_deref(), Some("m0"));
    assert_eq!(get(&ch).await.as_deref(), Some("m1"));
    // The head is in the store: the get waits (not get-empty), read again once a second.
    let waiting = tokio::spawn({
        let ch = ch.clone();
        async move { get(&ch).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(
        !waiting.is_finished(),
        "answered while the store cannot read"
    );
    let refused = store.reads_refused();
    assert!(
        (1..=12).contains(&refused),
        "{refused} reads refused in 2.5 s: paced retries, not a loop"
    );
    store.set_reads_suspended(false);
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("answered once the store reads again")
        .unwrap();
    assert_eq!(got.as_deref(), Some("m2"));
    for n in 3..6 {
        assert_eq!(get(&ch).await, Some(format!("m{n}")));
    }
    assert_eq!(get(&ch).await, None);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_api_get_waits_for_a_suspended_store_and_is_answered_once_it_reads_again() {
    let (store, server, _conn, ch) = stored_backlog(4).await;
    store.set_reads_suspended(true);
    // Two messages are in memory, the third in the store, which cannot read until it resumes.
    let body = serde_json::json!({"count": 3, "ackmode": "ack_requeue_false", "encoding": "auto"});
    let waiting = tokio::spawn({
        let server_addr = server.management_addr();
        async move {
            let addr = server_addr.expect("management API enabled");
            common::http::request(
                addr,
                "POST",
                "/api/queues/%2F/dq/get",
                Some(("guest", "guest")),
                Some(body),
                &[],
            )
            .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "answered while the store cannot read"
    );
    store.set_reads_suspended(false);
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("answered once the store reads again")
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let payloads: Vec<String> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(payloads, ["m0", "m1", "m2"]);
    assert_eq!(get(&ch).await.as_deref(), Some("m3"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_api_purge_of_a_stored_backlog_answers_while_the_store_cannot_read() {
    let (store, server, _conn, ch) = stored_backlog(6).await;
    store.set_reads_suspended(true);
    // Two messages in memory, four in the store: the purge counts them all and answers at
    // once; the stored ones are swept once the store reads again.
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        common::http::call(&server, "DELETE", "/api/queues/%2F/dq/contents", None),
    )
    .await
    .expect("answered while the store cannot read");
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(
        common::passive_queue(&ch, "dq")
            .await
            .unwrap()
            .message_count(),
        0
    );
    store.set_reads_suspended(false);
    assert!(publish_persistent(&ch, b"after").await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let got = loop {
        if let Some(m) = get(&ch).await {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new message never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(got, "after", "nothing purged came back");
    assert_eq!(get(&ch).await, None);
    server.shutdown().await.unwrap();
}
