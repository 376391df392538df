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
    let config = Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        management_port: 0,
        prometheus_port: 0,
        ..Config::default()
    };
    Server::bind_with_store(config, store)
        .await
        .unwrap()
        .spawn()
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
