//! Test harness: the real server, in-process, on an ephemeral loopback port.

#![allow(dead_code)]

pub mod crash;
pub mod http;
pub mod raw;
pub mod spill;
pub mod tls;
pub mod tmpfs;

#[allow(unused_imports)] // Not every suite uses the raw client.
pub use raw::Raw;

use std::time::Duration;

use warren_server::config::Config;
use warren_server::{Server, ServerHandle};

/// Starts a server with test defaults; `tweak` may adjust the configuration.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> ServerHandle {
    try_start_with(tweak).await.expect("bind")
}

/// As [`start_with`], answering the start's error instead of panicking.
#[allow(dead_code)] // not every test binary that includes `common` uses it
pub async fn try_start_with(tweak: impl FnOnce(&mut Config)) -> std::io::Result<ServerHandle> {
    // `WARREN_TEST_LOG=debug cargo test ...` shows the server's log for a failing test.
    if let Ok(filter) = std::env::var("WARREN_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let mut config = Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        // A free port: tests run in parallel, and 15672 may be a developer's RabbitMQ.
        management_port: 0,
        prometheus_port: 0,
        data_dir: fresh_data_dir(),
        ..Config::default()
    };
    tweak(&mut config);
    Ok(Server::bind(config).await?.spawn())
}

/// A new, empty data directory for one server of this test process.
pub fn fresh_data_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("warren-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The `warren` binary of this build, without the developer's `WARREN_*` variables.
pub fn warren_binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_warren"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WARREN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("WARREN_MANAGEMENT_PORT", "0");
    cmd.env("WARREN_PROMETHEUS_PORT", "0");
    cmd
}

/// What one run of the `warren` binary printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Run {
    /// Its standard output, after checking it exited 0.
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "warren failed: {}{}", self.out, self.err);
        self.out
    }

    /// Its standard error, after checking it exited 1.
    pub fn failed(self) -> String {
        assert_eq!(self.code, 1, "expected exit 1: {self:?}");
        self.err
    }
}

/// Runs `cmd` (a [`warren_binary`] with arguments) to its end, off the async runtime.
pub async fn run(mut cmd: std::process::Command) -> Run {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts a server with test defaults.
pub async fn start() -> ServerHandle {
    start_with(|_| {}).await
}

/// A lapin connection to the server.
pub async fn connect(server: &ServerHandle) -> lapin::Connection {
    lapin::Connection::connect(&server.url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect")
}

/// `queue.declare` with default flags (transient, not exclusive, not auto-delete).
pub async fn declare_queue(ch: &lapin::Channel, name: &str) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(
        name,
        lapin::options::QueueDeclareOptions::default(),
        lapin::types::FieldTable::default(),
    )
    .await
}

/// A passive `queue.declare`: whether the queue exists, and its counts.
pub async fn passive_queue(ch: &lapin::Channel, name: &str) -> lapin::Result<lapin::Queue> {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(name, passive, lapin::types::FieldTable::default())
        .await
}

/// The reply code of a lapin protocol error, if it is one.
pub fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e {
        lapin::Error::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

/// The reply code and text a channel was closed with, as `watch_close` reports them.
pub type CloseWatch = tokio::sync::mpsc::UnboundedReceiver<(u16, String)>;

/// Reports the error (code and text) the server closes `ch` with.
pub fn watch_close(ch: &lapin::Channel) -> CloseWatch {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    ch.on_error(move |e| {
        if let lapin::Error::ProtocolError(amqp) = e {
            let _ = tx.send((amqp.get_id(), amqp.get_message().to_string()));
        }
    });
    rx
}

/// The close `watch_close` saw, within 5 s.
pub async fn closed_with(rx: &mut CloseWatch) -> (u16, String) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the channel was closed in time")
        .expect("an error was reported")
}
