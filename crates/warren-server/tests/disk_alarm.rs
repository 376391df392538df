//! The free disk space alarm (`disk_free_limit`): publishers are blocked with
//! `connection.blocked` "low on disk" while the data directory's filesystem is below the limit,
//! the management API and Prometheus show it, and a disk that really fills (a small tmpfs,
//! when this process may mount one) blocks publishers, loses nothing confirmed, and unblocks
//! them when space returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Raw;
use common::http::call;
use common::tmpfs::{Tmpfs, fill, fill_from, settle};
use serde_json::json;
use warren_mgmt::DiskFreeLimit;

/// No filesystem has an exabyte free: a limit that sets the alarm at the next check.
const EXABYTE: u64 = 1 << 60;

async fn blocked_publisher(server: &warren_server::ServerHandle, queue: &str) -> Raw {
    let mut raw = Raw::open_blockable(server).await;
    raw.declare(1, queue, false).await;
    raw.publish(1, queue, b"x").await;
    raw
}

/// The `state` `/api/connections` shows for the connection whose client port is `port`.
async fn state_of(server: &warren_server::ServerHandle, port: u16) -> String {
    let list = call(server, "GET", "/api/connections", None).await.json();
    list.as_array()
        .into_iter()
        .flatten()
        .find(|c| c["peer_port"] == port)
        .map(|c| c["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn disk_alarm_blocks_publishers_with_low_on_disk_until_the_limit_is_lowered() {
    let server = common::start().await;
    let nodes = call(&server, "GET", "/api/nodes", None).await.json();
    assert_eq!(nodes[0]["disk_free_limit"], 50_000_000);
    assert_eq!(nodes[0]["disk_free_alarm"], false);
    server
        .set_disk_free_limit(DiskFreeLimit::Absolute(EXABYTE))
        .unwrap();
    eventually("the disk alarm", async || {
        call(&server, "GET", "/api/nodes", None).await.json()[0]["disk_free_alarm"] == true
    })
    .await;
    let nodes = call(&server, "GET", "/api/nodes", None).await.json();
    assert_eq!(nodes[0]["disk_free_limit"], EXABYTE);
    assert!(nodes[0]["disk_free"].as_u64().is_some_and(|f| f < EXABYTE));
    assert_eq!(nodes[0]["mem_alarm"], false);
    let node = nodes[0]["name"].clone();
    for (path, reason) in [
        (
            "/api/health/checks/alarms",
            "There are alarms in effect in the cluster",
        ),
        (
            "/api/health/checks/local-alarms",
            "There are alarms in effect on the node",
        ),
    ] {
        let reply = call(&server, "GET", path, None).await;
        assert_eq!(reply.status, 503, "{path}");
        assert_eq!(
            reply.json(),
            json!({"status": "failed", "reason": reason,
                   "alarms": [{"node": node, "resource": "disk space"}]})
        );
    }
    let prom = server.prometheus_addr().unwrap();
    let metrics = common::http::request(prom, "GET", "/metrics", None, None, &[]).await;
    assert!(
        metrics
            .body
            .contains("\nrabbitmq_alarms_free_disk_space_watermark 1\n"),
        "{}",
        metrics.body
    );

    let mut raw = blocked_publisher(&server, "held").await;
    assert_eq!(raw.blocked().await, "low on disk");
    // Back below the free space: the monitor checks at once, the publisher is unblocked and
    // the publish that met the alarm is in its queue.
    server
        .set_disk_free_limit(DiskFreeLimit::Absolute(0))
        .unwrap();
    raw.unblocked().await;
    assert_eq!(raw.declare(1, "held", true).await, 1);
    let reply = call(&server, "GET", "/api/health/checks/alarms", None).await;
    assert_eq!(reply.json(), json!({"status": "ok"}));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connection_state_is_blocking_under_an_alarm_and_blocked_once_a_publish_is_held() {
    let server = common::start().await;
    let mut idle = blocked_publisher(&server, "idle").await;
    let mut publisher = blocked_publisher(&server, "pub").await;
    // A round trip after the publish: it was handled before the alarm is set.
    for (raw, queue) in [(&mut idle, "idle"), (&mut publisher, "pub")] {
        assert_eq!(raw.declare(1, queue, true).await, 1);
    }
    let port = |r: &Raw| r.stream.local_addr().unwrap().port();
    let (idle_port, pub_port) = (port(&idle), port(&publisher));
    eventually("both listed as running", async || {
        state_of(&server, idle_port).await == "running"
            && state_of(&server, pub_port).await == "running"
    })
    .await;
    server
        .set_disk_free_limit(DiskFreeLimit::Absolute(EXABYTE))
        .unwrap();
    // Both published before the alarm: as in RabbitMQ, neither is held until it publishes.
    eventually("the disk alarm", async || {
        call(&server, "GET", "/api/nodes", None).await.json()[0]["disk_free_alarm"] == true
    })
    .await;
    let states = [
        state_of(&server, idle_port).await,
        state_of(&server, pub_port).await,
    ];
    assert_eq!(states, ["blocking", "blocking"]);
    publisher.publish(1, "pub", b"x").await;
    assert_eq!(publisher.blocked().await, "low on disk");
    assert_eq!(state_of(&server, pub_port).await, "blocked");
    assert_eq!(state_of(&server, idle_port).await, "blocking");
    server
        .set_disk_free_limit(DiskFreeLimit::Absolute(0))
        .unwrap();
    publisher.unblocked().await;
    eventually("both running again", async || {
        state_of(&server, idle_port).await == "running"
            && state_of(&server, pub_port).await == "running"
    })
    .await;
    drop(idle);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn both_alarms_name_both_resources() {
    let server = common::start_with(|c| c.memory_high_watermark = 1e-9).await;
    server
        .set_disk_free_limit(DiskFreeLimit::Absolute(EXABYTE))
        .unwrap();
    eventually("both alarms", async || {
        call(&server, "GET", "/api/health/checks/alarms", None)
            .await
            .json()["alarms"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    let mut raw = blocked_publisher(&server, "both").await;
    assert_eq!(raw.blocked().await, "low on disk & memory");
    // One alarm clearing leaves the connection blocked, with nothing more said.
    server
        .set_disk_free_limit(DiskFreeLimit::Absolute(0))
        .unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(700), raw.frame()).await;
    assert!(quiet.is_err(), "still blocked by memory: {quiet:?}");
    server.set_memory_high_watermark(1.0).unwrap();
    raw.unblocked().await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_limit_changes_through_the_api_with_rabbitmqs_forms() {
    let server = common::start().await;
    let reply = call(
        &server,
        "PUT",
        "/api/warren/disk-free-limit",
        Some(json!({"absolute": 1234})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["disk_free_limit"], 1234);
    let reply = call(
        &server,
        "PUT",
        "/api/warren/disk-free-limit",
        Some(json!({"mem_relative": -1})),
    )
    .await;
    assert_eq!(reply.status, 400);
    let reply = call(&server, "GET", "/api/warren/disk-free-limit", None).await;
    assert_eq!(reply.json()["setting"], json!({"absolute": 1234}));
    server.shutdown().await.unwrap();
}

/// The numbers the durable queue `q` holds, read with basic.get (no ack: they stay).
async fn numbers_in_queue(ch: &lapin::Channel) -> Vec<u64> {
    let mut seen = Vec::new();
    while let Some(m) = ch
        .basic_get("q", lapin::options::BasicGetOptions::default())
        .await
        .unwrap()
    {
        let mut n = [0u8; 8];
        n.copy_from_slice(&m.delivery.data[..8]);
        seen.push(u64::from_be_bytes(n));
    }
    seen.sort_unstable();
    seen
}

async fn durable_queue(conn: &lapin::Connection) -> lapin::Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare(
        "q",
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .unwrap();
    ch
}

fn on_disk(dir: &std::path::Path, limit: u64) -> impl FnOnce(&mut warren_server::config::Config) {
    let dir = dir.join("data");
    move |c| {
        c.data_dir = dir;
        c.store_cache_mib = 4;
        c.disk_free_limit = warren_server::config::DiskFreeLimitConfig {
            absolute: Some(warren_server::config::ByteSize::Bytes(limit)),
            relative: None,
        };
    }
}

#[tokio::test]
async fn a_filling_disk_blocks_publishers_and_space_returning_unblocks_them() {
    let Some(fs) = Tmpfs::mount(128) else { return };
    // Ballast leaves about 60 MiB free; the alarm is at 40 MB. What the store writes after the
    // alarm may not fit in the 40 MB left: the write-ahead log holds up to two checkpoint
    // intervals, and the checkpoint after the alarm copies them into sled before the log goes,
    // so about twice what was written before the alarm, and more with sled's own overhead.
    // When sled meets the full disk the store suspends itself, and resumes once space returns
    // (see docs/decisions.md, "The disk alarm's headroom").
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 68 << 20]).unwrap();
    let server = common::start_with(on_disk(fs.path(), 40_000_000)).await;
    let conn = common::connect(&server).await;
    let ch = durable_queue(&conn).await;
    let filled = fill(&ch, "q", 2, 200_000, Duration::from_secs(3)).await;
    assert!(
        filled.nacked.is_empty(),
        "nothing is refused before the alarm"
    );
    assert!(!filled.due.is_empty(), "the fill was blocked, not finished");
    assert!(conn.status().blocked(), "connection.blocked was received");
    let reply = call(&server, "GET", "/api/health/checks/alarms", None).await;
    assert_eq!(reply.json()["alarms"][0]["resource"], "disk space");
    // Space returns: within the monitor's longest interval the publisher is unblocked and
    // every publish it had sent is confirmed.
    std::fs::remove_file(&ballast).unwrap();
    let acked = settle(filled, Duration::from_secs(15)).await;
    assert!(!conn.status().blocked());
    drop(ch);
    let _ = conn.close(200, "").await;
    server.shutdown().await.unwrap();
    // Nothing confirmed is lost across a restart.
    let server = common::start_with(on_disk(fs.path(), 40_000_000)).await;
    let conn = common::connect(&server).await;
    let ch = durable_queue(&conn).await;
    assert_eq!(numbers_in_queue(&ch).await, acked);
    conn.close(200, "").await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_disk_nacks_persistent_publishes_and_loses_nothing_confirmed() {
    let Some(fs) = Tmpfs::mount(24) else { return };
    // No alarm (a limit of 0): the store meets the full disk itself.
    let server = common::start_with(on_disk(fs.path(), 0)).await;
    let conn = common::connect(&server).await;
    let ch = durable_queue(&conn).await;
    let filled = fill(&ch, "q", 2, 100_000, Duration::from_secs(10)).await;
    assert!(filled.due.is_empty(), "every publish is answered");
    assert!(!filled.nacked.is_empty(), "a full disk refuses publishes");
    assert!(!filled.acked.is_empty());
    // The broker still serves: a transient queue works.
    let other = conn.create_channel().await.unwrap();
    common::declare_queue(&other, "still-here").await.unwrap();
    drop((ch, other));
    let _ = conn.close(200, "").await;
    server.shutdown().await.unwrap();
    // With a little room, the write-ahead log's replay into sled (which takes more space
    // than the log: a full disk leaves the confirmed messages in the log) may not fit: the
    // start then fails with a clear error and loses nothing, and a start with room replays
    // again.
    fs.resize(64);
    let server = match common::try_start_with(on_disk(fs.path(), 0)).await {
        Ok(server) => server,
        Err(e) => {
            assert!(e.to_string().contains("No space left on device"), "{e}");
            fs.resize(256);
            common::start_with(on_disk(fs.path(), 0)).await
        }
    };
    // With room again, every confirmed message is back (a nacked one may be too).
    let conn = common::connect(&server).await;
    let ch = durable_queue(&conn).await;
    let back = numbers_in_queue(&ch).await;
    for n in &filled.acked {
        assert!(back.binary_search(n).is_ok(), "confirmed {n} lost");
    }
    conn.close(200, "").await.unwrap();
    server.shutdown().await.unwrap();
}

/// Fills the filesystem at `dir` with a ballast file until it refuses a single byte more.
fn fill_up(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
        let bytes = vec![0u8; chunk];
        while f.write_all(&bytes).and_then(|()| f.flush()).is_ok() {}
    }
    path
}

/// Publishes persistent messages numbered from `n` until one is confirmed; answers its number.
async fn publish_until_confirmed(ch: &lapin::Channel, mut n: u64, patience: Duration) -> u64 {
    let props = lapin::BasicProperties::default().with_delivery_mode(2);
    let deadline = std::time::Instant::now() + patience;
    let mut body = vec![b'.'; 1024];
    loop {
        body[..8].copy_from_slice(&n.to_be_bytes());
        let confirm = ch
            .basic_publish("", "q", Default::default(), &body, props.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        if confirm.is_ack() {
            return n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "persistent publishes still refused {patience:?} after space returned"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        n += 1;
    }
}

#[tokio::test]
async fn a_store_whose_database_met_a_full_disk_takes_persistent_messages_again_once_space_returns()
{
    let Some(fs) = Tmpfs::mount(64) else { return };
    // No alarm (a limit of 0). Confirmed messages wait in the write-ahead log until a
    // checkpoint hands them to sled; the disk fills up in between, so the checkpoint's write
    // into sled fails (sled then refuses everything until it is reopened) while the log,
    // which has nothing more to write, does not.
    let server = common::start_with(on_disk(fs.path(), 0)).await;
    let conn = common::connect(&server).await;
    let ch = durable_queue(&conn).await;
    let filled = fill(&ch, "q", 2, 4_096, Duration::from_secs(10)).await;
    assert_eq!(filled.acked.len(), 4_096, "room for the first messages");
    let ballast = fill_up(fs.path());
    // The checkpoints (every 500 ms) meet the full disk; the store suspends itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Space returns: within the store's next try to resume (at most 16 s apart), persistent
    // publishes are confirmed again, without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let last = publish_until_confirmed(&ch, 1_000_000, Duration::from_secs(60)).await;
    drop(ch);
    let _ = conn.close(200, "").await;
    server.shutdown().await.unwrap();
    // Every confirmed message is back after a restart, the one confirmed after the resume too.
    let server = common::start_with(on_disk(fs.path(), 0)).await;
    let conn = common::connect(&server).await;
    let ch = durable_queue(&conn).await;
    let back = numbers_in_queue(&ch).await;
    for m in filled.acked.iter().chain([&last]) {
        assert!(back.binary_search(m).is_ok(), "confirmed {m} lost");
    }
    conn.close(200, "").await.unwrap();
    server.shutdown().await.unwrap();
}

/// Seeds for [`a_search_over_full_disks_loses_nothing_confirmed_and_the_store_resumes`]:
/// `WARREN_DISK_CYCLES` (default 3) drawn from `WARREN_DISK_SEED` (default: the clock).
fn disk_seeds() -> Vec<u64> {
    let cycles = std::env::var("WARREN_DISK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3u64);
    let seed = std::env::var("WARREN_DISK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let mut rng = common::crash::Rng(seed);
    (0..cycles).map(|_| rng.below(u64::MAX)).collect()
}

#[tokio::test]
async fn a_search_over_full_disks_loses_nothing_confirmed_and_the_store_resumes() {
    let Some(fs) = Tmpfs::mount(64) else { return };
    for seed in disk_seeds() {
        let mut rng = common::crash::Rng(seed);
        // Confirmed messages first (some still in the log, some handed to sled), then the disk
        // fills up but for a drawn margin, stays full for a drawn time while a publisher keeps
        // trying, and frees up: whichever of the log and sled met the full disk, persistent
        // publishes are confirmed again without a restart, and every confirmed one is back
        // after a restart.
        let first = 64 * (8 + rng.below(64));
        // With a publisher on the full disk the log meets it first; without, the checkpoint
        // that hands the log to sled does, and sled fails (the store suspends).
        let publishing = rng.below(2) == 0;
        let margin = rng.below(if publishing { 3 << 20 } else { 256 << 10 });
        let full_for = Duration::from_millis(300 + rng.below(2700));
        let at = format!(
            "disk seed {seed} ({first} confirmed first, {margin} bytes left, full for \
             {full_for:?}, publishing {publishing})"
        );
        eprintln!("{at}");
        let sub = fs.path().join(format!("s{seed}"));
        std::fs::create_dir_all(&sub).unwrap();
        let server = common::start_with(on_disk(&sub, 0)).await;
        let conn = common::connect(&server).await;
        let ch = durable_queue(&conn).await;
        let filled = fill(&ch, "q", 2, first, Duration::from_secs(10)).await;
        assert_eq!(
            filled.acked.len() as u64,
            first,
            "{at}: room for the first messages"
        );
        let ballast = fill_up(fs.path());
        let len = std::fs::metadata(&ballast).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&ballast)
            .unwrap()
            .set_len(len.saturating_sub(margin))
            .unwrap();
        let more = if publishing {
            fill_from(&ch, "q", 2, first, 1 << 20, Duration::from_secs(10)).await
        } else {
            common::tmpfs::Fill::default()
        };
        assert!(more.due.is_empty(), "{at}: every publish is answered");
        tokio::time::sleep(full_for).await;
        std::fs::remove_file(&ballast).unwrap();
        let last = publish_until_confirmed(&ch, 1 << 40, Duration::from_secs(60)).await;
        drop(ch);
        let _ = conn.close(200, "").await;
        server.shutdown().await.unwrap();
        let server = common::start_with(on_disk(&sub, 0)).await;
        let conn = common::connect(&server).await;
        let ch = durable_queue(&conn).await;
        let back = numbers_in_queue(&ch).await;
        for m in filled.acked.iter().chain(&more.acked).chain([&last]) {
            assert!(back.binary_search(m).is_ok(), "{at}: confirmed {m} lost");
        }
        conn.close(200, "").await.unwrap();
        server.shutdown().await.unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
    }
}
