//! Crash safety: the real `warren` binary is killed with SIGKILL while several connections
//! publish persistent messages with confirms into durable queues. After a restart every
//! confirmed message is there, in publish order per queue, and nothing is corrupt. Several
//! cycles run against the same data directory. Bounded: a few seconds per cycle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const PUBLISHERS: usize = 3;
const CYCLES: usize = 3;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir)
        .env("WARREN_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn connect(port: u16) -> Connection {
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    for _ in 0..200 {
        if let Ok(c) = Connection::connect(&url, ConnectionProperties::default()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("warren did not come up on port {port}");
}

/// Publishes `p:n` for n = 0, 1, ... into `queue`, recording each n the broker confirmed.
async fn publish_until_killed(
    port: u16,
    queue: String,
    p: usize,
    confirmed: Arc<Mutex<BTreeSet<u64>>>,
) {
    let conn = connect(port).await;
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    if ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .is_err()
    {
        return;
    }
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut window = Vec::new();
    for n in 0u64.. {
        let body = format!("{p}:{n}");
        let Ok(confirm) = ch
            .basic_publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                body.as_bytes(),
                props.clone(),
            )
            .await
        else {
            return;
        };
        window.push((n, confirm));
        if window.len() >= 64 {
            for (n, c) in window.drain(..) {
                match c.await {
                    Ok(c) if c.is_ack() => {
                        confirmed.lock().unwrap().insert(n);
                    }
                    _ => return,
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_message_survives_kill_9() {
    let dir = std::env::temp_dir().join(format!("warren-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng_state = std::process::id() as u64;
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
                tokio::spawn(publish_until_killed(
                    port,
                    queues[p].clone(),
                    p,
                    confirmed[p].clone(),
                ))
            })
            .collect();
        // Kill at a pseudo-random moment between 300 and 1,100 ms in.
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = 300 + (rng_state >> 33) % 800;
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
    let _ = std::fs::remove_dir_all(&dir);
}
