//! Crash safety: the real `warren` binary is killed with SIGKILL while several connections
//! publish persistent messages with confirms into durable queues. After a restart every
//! confirmed message is there, in publish order per queue, and nothing is corrupt. Several
//! cycles run against the same data directory. Bounded: a few seconds per cycle. The fan-out
//! variant, with generated layouts, is `crash_fanout.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::crash::{
    Publisher, Rng, connect, declared_count, free_port, publish_until_killed, start,
};
use lapin::options::*;
use lapin::types::FieldTable;

const PUBLISHERS: usize = 3;
const CYCLES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_message_survives_kill_9() {
    let dir = std::env::temp_dir().join(format!("warren-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng(u64::from(std::process::id()));
    let nacked = Arc::new(AtomicU64::new(0));
    for cycle in 0..CYCLES {
        let port = free_port();
        let mut broker = start(&dir, port);
        let setup = connect(port).await;
        let ch = setup.create_channel().await.unwrap();
        let queues: Vec<String> = (0..PUBLISHERS)
            .map(|p| format!("crash-{cycle}-{p}"))
            .collect();
        for q in &queues {
            ch.queue_declare(
                q,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
        let confirmed: Vec<Arc<Mutex<BTreeSet<u64>>>> =
            (0..PUBLISHERS).map(|_| Arc::default()).collect();
        let tasks: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                tokio::spawn(publish_until_killed(Publisher {
                    port,
                    exchange: String::new(),
                    key: queues[p].clone(),
                    headers: None,
                    p,
                    confirmed: confirmed[p].clone(),
                    nacked: nacked.clone(),
                    pad: 0,
                    priorities: 0,
                    persistent: true,
                }))
            })
            .collect();
        // Kill at a pseudo-random moment between 300 and 1,100 ms in.
        let wait = 300 + rng.below(800);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        broker.kill().unwrap();
        broker.wait().unwrap();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        drop(setup);

        let port = free_port();
        let mut broker = start(&dir, port);
        let conn = connect(port).await;
        let ch = conn.create_channel().await.unwrap();
        for (p, q) in queues.iter().enumerate() {
            // Counted from the store's kept extents, before anything is read.
            let counted = declared_count(&ch, q).await;
            let mut seen = Vec::new();
            while let Some(m) = ch
                .basic_get(q, BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                let text =
                    String::from_utf8(m.delivery.data.clone()).expect("stored body is intact");
                let (who, n) = text.split_once(':').expect("body shape");
                assert_eq!(who, p.to_string(), "message in the wrong queue");
                seen.push(n.parse::<u64>().expect("body number"));
            }
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "queue {q} out of order: {seen:?}"
            );
            assert_eq!(
                counted as usize,
                seen.len(),
                "cycle {cycle}: {q} declared {counted} messages after the restart, held {}",
                seen.len()
            );
            let have: BTreeSet<u64> = seen.iter().copied().collect();
            let lost: Vec<u64> = confirmed[p]
                .lock()
                .unwrap()
                .difference(&have)
                .copied()
                .collect();
            assert!(
                lost.is_empty(),
                "cycle {cycle}: confirmed but lost in {q}: {lost:?}"
            );
            eprintln!(
                "cycle {cycle} queue {q}: {} confirmed, {} recovered (killed after {wait} ms)",
                confirmed[p].lock().unwrap().len(),
                seen.len()
            );
        }
        drop(conn);
        broker.kill().unwrap();
        broker.wait().unwrap();
    }
    assert_eq!(nacked.load(Ordering::Relaxed), 0, "publishes were nacked");
    let _ = std::fs::remove_dir_all(&dir);
}
