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
    start_with_env(dir, port, &[])
}

/// [`start`] with extra `WARREN_*` configuration variables.
pub fn start_with_env(dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Child {
    command(dir, port)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The `warren` command on `port` over `dir`, logging at warn level, with the management API
/// and Prometheus on any free port (several brokers run at once here); output left to the
/// caller.
pub fn command(dir: &std::path::Path, port: u16) -> std::process::Command {
    let mut cmd = super::warren_binary();
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--data-dir",
    ])
    .arg(dir)
    .env("WARREN_LOG_LEVEL", "warn")
    .env("WARREN_MANAGEMENT_PORT", "0")
    .env("WARREN_PROMETHEUS_PORT", "0");
    cmd
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
    /// Bytes of padding after `p:n ` in each body (0: the body is `p:n`).
    pub pad: usize,
    /// Message `n` gets priority `n % priorities` (0: no priority property).
    pub priorities: u8,
    /// Delivery mode 2 (else 1: transient).
    pub persistent: bool,
}

impl Publisher {
    /// Persistent `p:n` messages without padding or priorities.
    pub fn new(port: u16, exchange: &str, key: &str, p: usize, nacked: &Arc<AtomicU64>) -> Self {
        Publisher {
            port,
            exchange: exchange.into(),
            key: key.into(),
            headers: None,
            p,
            confirmed: Arc::default(),
            nacked: nacked.clone(),
            pad: 0,
            priorities: 0,
            persistent: true,
        }
    }
}

/// The body of publisher `p`'s message `n`: `p:n`, then a space and `pad` bytes when padded.
pub fn body(p: usize, n: u64, pad: usize) -> Vec<u8> {
    let mut b = format!("{p}:{n}").into_bytes();
    if pad > 0 {
        b.push(b' ');
        b.resize(b.len() + pad, b'.');
    }
    b
}

/// `(p, n)` of a body made by [`body`]; `None` for anything else.
pub fn parse_body(b: &[u8]) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(b).ok()?;
    let head = text.split(' ').next()?;
    let (who, n) = head.split_once(':')?;
    Some((who.parse().ok()?, n.parse().ok()?))
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
    let mut props = BasicProperties::default().with_delivery_mode(if p.persistent { 2 } else { 1 });
    if let Some(h) = &p.headers {
        props = props.with_headers(h.clone());
    }
    let mut window = Vec::new();
    for n in 0u64.. {
        let mut props = props.clone();
        if p.priorities > 0 {
            props = props.with_priority((n % u64::from(p.priorities)) as u8);
        }
        let Ok(confirm) = ch
            .basic_publish(
                &p.exchange,
                &p.key,
                BasicPublishOptions::default(),
                &body(p.p, n, p.pad),
                props,
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
/// `queue`'s message count, from a passive declare's reply: after a crash it comes from the
/// extents the store kept, before anything is read.
pub async fn declared_count(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue,
        lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

pub async fn drain(ch: &lapin::Channel, queue: &str) -> Vec<(usize, u64, bool)> {
    let mut seen = Vec::new();
    while let Some(m) = ch
        .basic_get(queue, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let (who, n) = parse_body(&m.delivery.data).expect("stored body is intact");
        seen.push((who, n, m.delivery.redelivered));
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
