//! Test harness: the real server, in-process, on an ephemeral loopback port.

#![allow(dead_code)]

pub mod crash;
pub mod http;
pub mod tls;

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_codec::{
    ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable, Frame, FrameDecoder, LongStr,
    Method, PROTOCOL_HEADER, ShortStr, encode_method,
};
use warren_server::config::Config;
use warren_server::{Server, ServerHandle};

/// Starts a server with test defaults; `tweak` may adjust the configuration.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> ServerHandle {
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
    Server::bind(config).await.expect("bind").spawn()
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

/// A raw AMQP client for protocol-level tests: does the handshake by hand.
pub struct Raw {
    pub stream: TcpStream,
    pub inbuf: BytesMut,
    pub decoder: FrameDecoder,
}

impl Raw {
    /// Connects without sending anything.
    pub async fn connect(server: &ServerHandle) -> Raw {
        let stream = TcpStream::connect(server.addr())
            .await
            .expect("tcp connect");
        Raw {
            stream,
            inbuf: BytesMut::new(),
            decoder: FrameDecoder::new(0),
        }
    }

    /// Connects and completes the handshake (PLAIN guest/guest, frame_max 4096, no heartbeat).
    pub async fn open(server: &ServerHandle) -> Raw {
        Raw::open_with_heartbeat(server, 0).await
    }

    /// Connects and completes the handshake with the given heartbeat (seconds).
    pub async fn open_with_heartbeat(server: &ServerHandle, heartbeat: u16) -> Raw {
        let mut raw = Raw::connect(server).await;
        raw.start(FieldTable::new(), b"\0guest\0guest").await;
        assert!(matches!(raw.method().await, Method::ConnectionTune(_)));
        raw.tune_and_open("/", heartbeat).await;
        assert!(matches!(raw.method().await, Method::ConnectionOpenOk(_)));
        raw
    }

    /// Sends the protocol header, reads `connection.start` and answers `start-ok` (PLAIN) with
    /// the given client capabilities and SASL response.
    pub async fn start(&mut self, capabilities: FieldTable, response: &[u8]) {
        self.write(&PROTOCOL_HEADER).await;
        assert!(matches!(self.method().await, Method::ConnectionStart(_)));
        let mut props = FieldTable::new();
        props.insert("capabilities", capabilities);
        self.send(
            0,
            ConnectionStartOk {
                client_properties: props,
                mechanism: ShortStr::from("PLAIN"),
                response: LongStr::from(response),
                locale: ShortStr::from("en_US"),
            },
        )
        .await;
    }

    /// Answers `connection.tune` (frame_max 4096) and opens `vhost`.
    pub async fn tune_and_open(&mut self, vhost: &str, heartbeat: u16) {
        let tune_ok = ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 4096,
            heartbeat,
        };
        self.send(0, tune_ok).await;
        self.send(
            0,
            ConnectionOpen {
                virtual_host: vhost.into(),
            },
        )
        .await;
    }

    /// Opens a channel and waits for `channel.open-ok`.
    pub async fn open_channel(&mut self, channel: u16) {
        self.send(channel, warren_codec::ChannelOpen).await;
        assert!(matches!(self.method().await, Method::ChannelOpenOk(_)));
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends one method frame.
    pub async fn send(&mut self, channel: u16, method: impl Into<Method>) {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, channel, &method.into());
        self.write(&buf).await;
    }

    /// The next frame, or `None` when the server closed the socket (5 s limit).
    pub async fn frame(&mut self) -> Option<Frame> {
        let read = async {
            loop {
                if let Some(f) = self
                    .decoder
                    .decode(&mut self.inbuf)
                    .expect("server sent a valid frame")
                {
                    return Some(f);
                }
                match self.stream.read_buf(&mut self.inbuf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("server answered in time")
    }

    /// The next method frame, skipping heartbeats.
    pub async fn method(&mut self) -> Method {
        loop {
            match self.frame().await {
                Some(Frame::Method { method, .. }) => return method,
                Some(Frame::Heartbeat) => continue,
                other => panic!("expected a method, got {other:?}"),
            }
        }
    }

    /// True when the server closes the socket within 5 s.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
