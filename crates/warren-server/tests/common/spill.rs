//! Support for the spilled-queue crash tests: the `warren` binary with a 1 MiB queue memory
//! budget (so queues spill at once), the spill directory's files, reading queues back in full,
//! a clean stop, and checking what the store still holds.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use warren_store::MessageStore;

use super::crash::{parse_body, start_with_env};

/// Padding of each body: with 1 KiB messages a 1 MiB budget of packed segments is passed after
/// about a thousand more than the 1,024 a queue keeps unpacked.
pub const PAD: usize = 1000;

/// A running broker, killed (SIGKILL) when dropped: a failing test leaves no broker behind.
pub struct Broker(Option<Child>);

impl Broker {
    /// Kills it with SIGKILL and waits for it.
    pub fn kill_9(mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops it with SIGTERM (a clean shutdown) and waits for it to exit 0.
    pub fn stop(mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let code = child.wait().unwrap();
        assert!(code.success(), "warren exited with {code} on SIGTERM");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the binary with the smallest queue memory budget, 1 MiB, and durable queues keeping
/// `window` stored messages in memory (`None`: the default, 16384).
pub fn start_spilling(dir: &Path, port: u16, window: Option<u64>) -> Broker {
    let window = window.map(|w| w.to_string());
    let mut env = vec![("WARREN_QUEUE_MEMORY_BUDGET_MIB", "1")];
    if let Some(w) = &window {
        env.push(("WARREN_QUEUE_LOAD_WINDOW", w.as_str()));
    }
    Broker(Some(start_with_env(dir, port, &env)))
}

/// The spill area of a data directory.
pub fn spill_dir(dir: &Path) -> PathBuf {
    dir.join("spill")
}

/// The segment files in the spill area, with their modification times.
pub fn spill_files(dir: &Path) -> Vec<(PathBuf, SystemTime)> {
    let Ok(entries) = std::fs::read_dir(spill_dir(dir)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
        .collect()
}

/// Waits (polling) until `cond` holds; panics after `limit` with `what`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One message read back: publisher, number, priority, redelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub p: usize,
    pub n: u64,
    pub priority: u8,
    pub redelivered: bool,
}

/// Takes every message of `queue` with a no-ack consumer: as many as `queue.declare` counts.
pub async fn consume_all(ch: &lapin::Channel, queue: &str) -> Vec<Seen> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let count = ch
        .queue_declare(queue, passive, FieldTable::default())
        .await
        .unwrap()
        .message_count();
    let mut seen = Vec::new();
    if count == 0 {
        return seen;
    }
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = ch
        .basic_consume(queue, "read-back", opts, FieldTable::default())
        .await
        .unwrap();
    while seen.len() < count as usize {
        let next = tokio::time::timeout(Duration::from_secs(30), consumer.next()).await;
        let d = match next {
            Ok(Some(Ok(d))) => d,
            other => panic!(
                "{queue}: {} of {count} messages read back, then {other:?}",
                seen.len()
            ),
        };
        let (p, n) = parse_body(&d.data).expect("stored body is intact");
        seen.push(Seen {
            p,
            n,
            priority: d.properties.priority().unwrap_or(0),
            redelivered: d.redelivered,
        });
    }
    ch.basic_cancel("read-back", BasicCancelOptions::default())
        .await
        .unwrap();
    seen
}

/// Opens the stopped broker's store and checks it holds no message and no queue entry: what
/// was consumed is gone, and the orphans a kill left were swept.
pub fn assert_store_empty(dir: &Path, at: &str) {
    let store = warren_store::SledStore::open(dir).unwrap();
    // After a clean stop the counts come from the background open scan: wait for it, or
    // the zeros below would be the scan's not having started.
    store.finish_open_scan().unwrap();
    let stats = store.stats();
    assert_eq!(
        (stats.messages, stats.queue_entries, stats.held),
        (0, 0, 0),
        "{at}: the store still holds messages after every queue was drained"
    );
}
