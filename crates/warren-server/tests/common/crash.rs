//! Support for the crash tests: the real `warren` binary on a port of its own, publishers that
//! record what the broker confirmed until it is killed, and reading queues back afterwards.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the `warren` binary on `port` over the data directory `dir`.
pub fn start(dir: &std::path::Path, port: u16) -> Child {
    super::warren_binary()
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir)
        .env("WARREN_LOG_LEVEL", "warn")
        // Several brokers run at once here: the management API takes any free port.
        .env("WARREN_MANAGEMENT_PORT", "0")
        .env("WARREN_PROMETHEUS_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Connects as guest, retrying while the broker starts (10 s at most).
pub async fn connect(port: u16) -> Connection {
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    for _ in 0..200 {
        if let Ok(c) = Connection::connect(&url, ConnectionProperties::default()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("warren did not come up on port {port}");
}

/// Where a publisher sends and what it records.
pub struct Publisher {
    pub port: u16,
    pub exchange: String,
    pub key: String,
    /// Headers of every message (for a headers exchange).
    pub headers: Option<FieldTable>,
    /// The publisher's number, the `p` of the bodies `p:n`.
    pub p: usize,
    /// Each n the broker confirmed.
    pub confirmed: Arc<Mutex<BTreeSet<u64>>>,
    /// Publishes the broker nacked (nothing in these tests may be refused).
    pub nacked: Arc<AtomicU64>,
}

/// Publishes persistent messages `p:n` for n = 0, 1, ... with confirms, 64 in flight, until
/// the broker goes away.
pub async fn publish_until_killed(p: Publisher) {
    let conn = connect(p.port).await;
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
    let mut props = BasicProperties::default().with_delivery_mode(2);
    if let Some(h) = &p.headers {
        props = props.with_headers(h.clone());
    }
    let mut window = Vec::new();
    for n in 0u64.. {
        let body = format!("{}:{n}", p.p);
        let Ok(confirm) = ch
            .basic_publish(
                &p.exchange,
                &p.key,
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
                        p.confirmed.lock().unwrap().insert(n);
                    }
                    Ok(_) => {
                        p.nacked.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

/// Takes every message of `queue` (no-ack), as `(publisher, n, redelivered)`.
pub async fn drain(ch: &lapin::Channel, queue: &str) -> Vec<(usize, u64, bool)> {
    let mut seen = Vec::new();
    while let Some(m) = ch
        .basic_get(queue, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let text = String::from_utf8(m.delivery.data.clone()).expect("stored body is intact");
        let (who, n) = text.split_once(':').expect("body shape");
        seen.push((
            who.parse().expect("publisher number"),
            n.parse().expect("body number"),
            m.delivery.redelivered,
        ));
    }
    seen
}

/// What one publisher's messages in a queue were. A queue that publishes reach (`exact`) has
/// each at most once and in publish order.
pub fn numbers(seen: &[(usize, u64, bool)], p: usize, queue: &str, exact: bool) -> BTreeSet<u64> {
    let ns: Vec<u64> = seen.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
    let set: BTreeSet<u64> = ns.iter().copied().collect();
    if !exact {
        return set;
    }
    assert_eq!(
        set.len(),
        ns.len(),
        "{queue}: a message of publisher {p} twice"
    );
    if let Some(w) = ns.windows(2).find(|w| w[0] > w[1]) {
        panic!(
            "{queue}: publisher {p} out of order: {} before {}",
            w[0], w[1]
        );
    }
    set
}

/// A deterministic pseudo-random sequence (for kill times and layouts), seeded per run.
pub struct Rng(pub u64);

impl Rng {
    /// The next value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}
