//! Compaction of the data directory, offline (`warren compact`) and at startup: persistent
//! messages published before it are all consumed after it, in order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

const QUEUE: &str = "compacted";

fn body(i: u32) -> Vec<u8> {
    let mut b = format!("message {i:05} ").into_bytes();
    b.resize(1024, b'.');
    b
}

/// Publishes `count` persistent 1 KiB messages into a durable queue with confirms, restarts,
/// then takes the first `acked` of them (no-ack `basic.get`, which removes them from the
/// store).
async fn fill_and_take(data_dir: &Path, count: u32, acked: u32, message_log: bool) {
    let d = data_dir.to_path_buf();
    let server = common::start_with(move |c| {
        c.data_dir = d;
        c.store_message_log = message_log;
    })
    .await;
    {
        let conn = common::connect(&server).await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(QUEUE, durable, FieldTable::default())
            .await
            .unwrap();
        let props = BasicProperties::default().with_delivery_mode(2);
        let mut confirms = Vec::new();
        for i in 0..count {
            let c = ch
                .basic_publish(
                    "",
                    QUEUE,
                    BasicPublishOptions::default(),
                    &body(i),
                    props.clone(),
                )
                .await
                .unwrap();
            confirms.push(c);
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack());
        }
        conn.close(200, "done").await.unwrap();
    }
    // A restart between the fill and the takes: the clean close hands every message to sled.
    // Taken before the write-ahead log's (aged) checkpoint hands them over, one to two 500 ms
    // intervals after their confirms, they would never reach it, and the store would not be
    // larger than its data.
    server.shutdown().await.unwrap();
    let d = data_dir.to_path_buf();
    let server = common::start_with(move |c| c.data_dir = d).await;
    {
        let conn = common::connect(&server).await;
        let ch = conn.create_channel().await.unwrap();
        for i in 0..acked {
            let m = ch
                .basic_get(QUEUE, BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(m.delivery.data, body(i));
        }
        // The last removal has reached the server (and its store) before it stops.
        common::passive_queue(&ch, QUEUE).await.unwrap();
        conn.close(200, "done").await.unwrap();
    }
    server.shutdown().await.unwrap();
}

/// Consumes every message of the queue and checks they are `first..end`, in order, none
/// redelivered, and nothing more.
async fn consume_all(ch: &Channel, first: u32, end: u32) {
    let q = common::passive_queue(ch, QUEUE).await.unwrap();
    assert_eq!(q.message_count(), end - first);
    ch.basic_qos(100, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            QUEUE,
            "c",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in first..end {
        let d = consumer.next().await.unwrap().unwrap();
        assert_eq!(d.data, body(i), "message {i}");
        assert!(!d.redelivered);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let q = common::passive_queue(ch, QUEUE).await.unwrap();
    assert_eq!(q.message_count(), 0);
}

fn sled_bytes(data_dir: &Path) -> u64 {
    warren_store::disk_usage(&data_dir.join("sled")).unwrap()
}

/// The inode of the `sled` directory (`None` between a compaction's renames): a compaction
/// renames a new one into its place.
fn sled_inode(data_dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(data_dir.join("sled"))
        .ok()
        .map(|m| m.ino())
}

#[tokio::test]
async fn messages_survive_warren_compact_and_come_back_in_order() {
    let dir = common::fresh_data_dir();
    fill_and_take(&dir, 1000, 600, true).await;

    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("compact")
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("WARREN_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("compacted "), "{stdout}");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // `spill` is the broker's transient spill area (emptied at every start), not compaction's.
    assert_eq!(names, ["FORMAT", "messages", "sled", "spill"]);

    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    consume_all(&ch, 600, 1000).await;
    conn.close(200, "done").await.unwrap();
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn warren_compact_refuses_a_directory_in_use() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--data-dir"])
        .arg(&dir)
        .arg("compact")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
/// After a clean stop the live figures come from the background open scan, so the startup
/// check has nothing to compare and the port does not wait: the online compaction, which waits
/// for the scan, compacts the store soon after.
async fn a_store_far_larger_than_its_data_is_compacted_soon_after_a_clean_start() {
    let dir = common::fresh_data_dir();
    // Bodies in sled (no message log): sled's files are what grows here.
    fill_and_take(&dir, 3000, 2900, false).await;
    let (before, inode) = (sled_bytes(&dir), sled_inode(&dir));

    // The default threshold (64 MiB at least) leaves this small store alone. (Its size is no
    // witness: sled may truncate free segments at the end of its log by itself, and whether
    // the messages reached sled at all before their gets depends on the write-ahead log's
    // checkpoint timing.)
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    server.shutdown().await.unwrap();
    let untouched = sled_bytes(&dir);
    assert_eq!(
        sled_inode(&dir),
        inode,
        "compacted: {before} -> {untouched}"
    );

    let d = dir.clone();
    let server = common::start_with(move |c| {
        c.data_dir = d;
        c.compact_on_start_ratio = 2.0;
        c.compact_on_start_min_mib = 0;
        c.online_compaction_ratio = 2.0;
        c.online_compaction_min_mib = 0;
    })
    .await;
    // Online compaction is checked every 5 s once the open scan is over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut after = sled_bytes(&dir);
    let replaced = |dir: &Path| matches!(sled_inode(dir), Some(i) if Some(i) != inode);
    while !(replaced(&dir) && after * 2 < untouched) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        after = sled_bytes(&dir);
    }
    eprintln!("sled bytes: filled {before}, restarted {untouched}, compacted {after}");
    assert!(replaced(&dir), "not compacted: {untouched} -> {after}");
    assert!(after * 2 < untouched, "{untouched} -> {after}");
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    consume_all(&ch, 2900, 3000).await;
    conn.close(200, "done").await.unwrap();
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
