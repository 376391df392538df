//! A disk that fills while queues spill (issue 16): the data directory, and with it the spill
//! area, on a small tmpfs (root only: elsewhere the tests say they are skipped), queues with a
//! 1 MiB memory budget, and persistent and transient 1 KiB messages published with confirms.
//!
//! - With the disk alarm set above the free space the ballast leaves, the alarm fires and
//!   blocks the publishers (`connection.blocked`) before the disk is full; once the ballast is
//!   deleted they are unblocked, every publish is confirmed, and both queues drain completely,
//!   without loss or duplicates.
//! - Without the alarm, the spill area meets ENOSPC: its segments stay in memory, so every
//!   confirmed transient message is still delivered, and persistent publishes the store cannot
//!   write are nacked, never confirmed; the broker goes on serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::spill::spill_files;
use common::tmpfs::{Tmpfs, fill, settle};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use warren_server::config::{ByteSize, Config, DiskFreeLimitConfig};

/// The data directory on `fs`, a 1 MiB queue memory budget and the disk alarm at `limit`.
fn spilling_on(fs: &Path, limit: u64) -> impl FnOnce(&mut Config) {
    let dir = fs.join("data");
    move |c| {
        c.data_dir = dir;
        c.store_cache_mib = 4;
        c.queue_memory_budget_mib = 1;
        c.disk_free_limit = DiskFreeLimitConfig {
            absolute: Some(ByteSize::Bytes(limit)),
            relative: None,
        };
    }
}

/// A confirm channel and the durable queues `p` (persistent messages) and `t` (transient).
async fn channels(conn: &lapin::Connection) -> (lapin::Channel, lapin::Channel) {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    for q in ["p", "t"] {
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare(q, durable, FieldTable::default())
            .await
            .unwrap();
        out.push(ch);
    }
    let t = out.pop().unwrap();
    (out.pop().unwrap(), t)
}

/// Consumes the whole of `queue` and checks it is exactly `expected` (ascending).
async fn drain_exactly(conn: &lapin::Connection, queue: &str, expected: &[u64]) {
    let ch = conn.create_channel().await.unwrap();
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = ch
        .basic_consume(queue, "drain", opts, FieldTable::default())
        .await
        .unwrap();
    let mut seen = Vec::with_capacity(expected.len());
    while seen.len() < expected.len() {
        let next = tokio::time::timeout(Duration::from_secs(30), consumer.next()).await;
        let Ok(Some(Ok(d))) = next else {
            panic!(
                "{queue}: {} of {} messages delivered, then {next:?}",
                seen.len(),
                expected.len()
            );
        };
        let mut n = [0u8; 8];
        n.copy_from_slice(&d.data[..8]);
        seen.push(u64::from_be_bytes(n));
    }
    // `fill` publishes each window's messages from concurrent tasks: their order on the wire
    // is not their numbers' order, so the delivered numbers are compared as a set.
    seen.sort_unstable();
    let missing: Vec<&u64> = expected
        .iter()
        .filter(|n| seen.binary_search(n).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{queue}: confirmed, not delivered: {missing:?}"
    );
    assert!(seen == expected, "{queue}: a message delivered twice");
    let left = common::passive_queue(&ch, queue).await.unwrap();
    assert_eq!(left.message_count(), 0, "{queue}: more than was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filling_with_spilled_queues_blocks_publishers_then_everything_drains() {
    let Some(fs) = Tmpfs::mount(128) else { return };
    // Ballast leaves about 64 MiB free; the alarm is at 40 MB.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 64 << 20]).unwrap();
    let server = common::start_with(spilling_on(fs.path(), 40_000_000)).await;
    let conn = common::connect(&server).await;
    let (p, t) = channels(&conn).await;
    let patience = Duration::from_secs(3);
    let (persistent, transient) = tokio::join!(
        fill(&p, "p", 2, 200_000, patience),
        fill(&t, "t", 1, 200_000, patience)
    );
    assert!(
        persistent.nacked.is_empty() && transient.nacked.is_empty(),
        "nothing is refused before the alarm"
    );
    assert!(
        !persistent.due.is_empty() && !transient.due.is_empty(),
        "both fills were blocked, not finished"
    );
    assert!(conn.status().blocked(), "connection.blocked was received");
    let data = fs.path().join("data");
    assert!(!spill_files(&data).is_empty(), "the queues spilled");
    // Space returns: the publishers are unblocked and every publish is confirmed.
    std::fs::remove_file(&ballast).unwrap();
    let persistent = settle(persistent, Duration::from_secs(20)).await;
    let transient = settle(transient, Duration::from_secs(20)).await;
    assert!(!conn.status().blocked());
    eprintln!(
        "blocked after {} persistent and {} transient messages",
        persistent.len(),
        transient.len()
    );
    drain_exactly(&conn, "p", &persistent).await;
    drain_exactly(&conn, "t", &transient).await;
    drop((p, t));
    let _ = conn.close(200, "").await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_in_the_spill_area_loses_no_confirmed_message() {
    let Some(fs) = Tmpfs::mount(24) else { return };
    // No alarm (a limit of 0): the spill area and the store meet the full disk themselves.
    let server = common::start_with(spilling_on(fs.path(), 0)).await;
    let conn = common::connect(&server).await;
    let (p, t) = channels(&conn).await;
    // 40 MiB of transient messages: past the 24 MiB disk, the spill area cannot write.
    let patience = Duration::from_secs(20);
    let transient = fill(&t, "t", 1, 40_000, patience).await;
    assert!(
        transient.due.is_empty(),
        "every transient publish is answered"
    );
    assert!(
        transient.nacked.is_empty(),
        "transient messages are kept in memory when the spill area is full"
    );
    let persistent = fill(&p, "p", 2, 20_000, patience).await;
    assert!(
        persistent.due.is_empty(),
        "every persistent publish is answered"
    );
    assert!(
        !persistent.nacked.is_empty(),
        "a full disk refuses persistent publishes"
    );
    eprintln!(
        "{} transient confirmed; {} persistent confirmed, then refused",
        transient.acked.len(),
        persistent.acked.len()
    );
    // Every confirmed message is delivered: a nacked one may be there too (it
    // may be in the store), so the persistent queue is checked for the confirmed ones only.
    drain_exactly(&conn, "t", &transient.acked).await;
    let ch = conn.create_channel().await.unwrap();
    let mut back = Vec::new();
    while let Some(m) = ch
        .basic_get("p", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let mut n = [0u8; 8];
        n.copy_from_slice(&m.delivery.data[..8]);
        back.push(u64::from_be_bytes(n));
    }
    for n in &persistent.acked {
        assert!(
            back.binary_search(n).is_ok(),
            "confirmed persistent {n} lost"
        );
    }
    // The broker still serves.
    common::declare_queue(&ch, "still-here").await.unwrap();
    drop((p, t, ch));
    let _ = conn.close(200, "").await;
    server.shutdown().await.unwrap();
}
