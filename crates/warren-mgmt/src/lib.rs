//! Warren's management plane: RabbitMQ's management HTTP API (`/api/...`) over a running broker.
//!
//! This crate owns the HTTP API: routing, HTTP Basic authentication against the broker's users,
//! RabbitMQ's tag rules, status codes and error bodies, and the JSON shapes of RabbitMQ 3.10's
//! management plugin. It owns no broker state: handlers are thin adapters from JSON to the
//! calls the AMQP side already uses (declare, bind, delete, purge, get, publish), plus the
//! broker's live user/vhost administration, so the two front ends cannot drift apart.
//! Connections belong to the server crate and are reached through the [`Connections`] trait.
//!
//! Statistics are counters owned by what they count (a queue's state, a channel's and a
//! connection's [`counters`]), bumped where the work already happens; the [`stats`] sampler
//! turns them into rates every few seconds, and [`prometheus`] serves them for scraping.
//!
//! One file per endpoint family under `api/`, named by path. The web console (`console/`,
//! served by [`console`]) is static files that use the API like any other client.

mod api;
mod auth;
mod base64;
mod console;
pub mod counters;
mod error;
pub mod exchange_stats;
pub mod history;
mod json;
mod listing;
pub mod prometheus;
mod retiring;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use warren_broker::Broker;

pub use api::definitions::import_definitions;
pub use counters::{ChannelStats, ConnectionStats, Counter, ExchangeTable};
pub use error::ApiError;
pub use stats::Statistics;

/// What the API and Prometheus can be served on: a TCP listener, or one of TLS streams.
pub use axum::serve::Listener as HttpListener;

/// The RabbitMQ version the API reports (`rabbitmq_version`, `management_version`): clients
/// branch on it, and Warren behaves as RabbitMQ 3.10 does.
pub const RABBITMQ_VERSION: &str = "3.10.8";

/// One AMQP connection as the API lists it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The server's id of the connection (consumers name their connection by it).
    pub id: u64,
    /// RabbitMQ's connection name: `"peer_ip:peer_port -> local_ip:local_port"`.
    pub name: String,
    /// The authenticated user.
    pub user: String,
    /// The vhost opened.
    pub vhost: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The broker's address of the connection.
    pub local: SocketAddr,
    /// When it opened, in milliseconds since the epoch.
    pub connected_at_ms: u64,
    /// Its open channel numbers, in order.
    pub channels: Vec<u16>,
    /// The counters of those channels, in the same order.
    pub channel_stats: Vec<Arc<ChannelStats>>,
    /// The connection's socket counters.
    pub stats: Arc<ConnectionStats>,
}

/// The server's open connections, as the API needs them.
pub trait Connections: Send + Sync + 'static {
    /// Every open connection.
    fn list(&self) -> Vec<ConnectionInfo>;
    /// Asks the connection of that name to close with 320 CONNECTION_FORCED and `reason`;
    /// false when there is none.
    fn close(&self, name: &str, reason: &str) -> bool;
    /// Connections and channels opened and closed so far (`None`: not counted).
    fn lifecycle(&self) -> Option<Lifecycle> {
        None
    }
}

/// How many connections and channels opened and closed since the broker started (RabbitMQ's
/// `rabbitmq_connections_opened_total`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// Connections that completed their handshake.
    pub connections_opened: u64,
    /// Of those, the ones that ended.
    pub connections_closed: u64,
    /// Channels opened.
    pub channels_opened: u64,
    /// Channels closed (with their connection or alone).
    pub channels_closed: u64,
}

/// No connections (a broker without an AMQP listener, in tests).
#[derive(Debug, Default)]
pub struct NoConnections;

impl Connections for NoConnections {
    fn list(&self) -> Vec<ConnectionInfo> {
        Vec::new()
    }
    fn close(&self, _name: &str, _reason: &str) -> bool {
        false
    }
}

/// What a listener the API reports (`overview.listeners`, port health checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `amqp` or `http`.
    pub protocol: &'static str,
    /// The bound address.
    pub addr: SocketAddr,
}

/// The memory alarm's threshold, as `vm_memory_high_watermark` sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Watermark {
    /// A fraction of physical memory, in (0, 1].
    Relative(f64),
    /// A number of bytes.
    Absolute(u64),
}

/// The node's memory high watermark, changeable while running (`warren ctl
/// set_vm_memory_high_watermark`).
pub trait MemoryWatermark: Send + Sync + 'static {
    /// The current setting and the limit in bytes it works out to (`None`: never alarms).
    fn get(&self) -> (Watermark, Option<u64>);
    /// Replaces the setting; answers the new limit in bytes, or why it was refused.
    fn set(&self, watermark: Watermark) -> Result<Option<u64>, String>;
}

/// A watermark that cannot be changed (a broker without a memory monitor, in tests).
#[derive(Debug, Default)]
pub struct FixedWatermark;

impl MemoryWatermark for FixedWatermark {
    fn get(&self) -> (Watermark, Option<u64>) {
        (Watermark::Relative(0.4), None)
    }
    fn set(&self, _watermark: Watermark) -> Result<Option<u64>, String> {
        Err("this broker has no memory monitor".into())
    }
}

/// The disk alarm's threshold, as RabbitMQ's `disk_free_limit` sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DiskFreeLimit {
    /// A number of bytes (`disk_free_limit.absolute`).
    Absolute(u64),
    /// A multiple of physical memory (`disk_free_limit.relative`, RabbitMQ's `mem_relative`).
    MemRelative(f64),
}

/// What the disk monitor knows: its setting, the limit in bytes and the last reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskFree {
    /// The limit as set.
    pub setting: DiskFreeLimit,
    /// The limit in bytes: the alarm is set while free space is below it.
    pub limit: u64,
    /// Free space of the data directory's filesystem at the last check (`None`: not known).
    pub free: Option<u64>,
}

/// The node's free disk space monitor, its limit changeable while running (`warren ctl
/// set_disk_free_limit`).
pub trait DiskMonitor: Send + Sync + 'static {
    /// The setting, the limit in bytes and the last reading.
    fn get(&self) -> DiskFree;
    /// Replaces the limit; answers the new limit in bytes, or why it was refused.
    fn set(&self, limit: DiskFreeLimit) -> Result<u64, String>;
}

/// A broker without a disk monitor (tests, embedding): RabbitMQ's default limit, no reading.
#[derive(Debug, Default)]
pub struct NoDiskMonitor;

impl DiskMonitor for NoDiskMonitor {
    fn get(&self) -> DiskFree {
        DiskFree {
            setting: DiskFreeLimit::Absolute(50_000_000),
            limit: 50_000_000,
            free: None,
        }
    }
    fn set(&self, _limit: DiskFreeLimit) -> Result<u64, String> {
        Err("this broker has no disk monitor".into())
    }
}

/// Everything the handlers share.
pub struct Management {
    /// The broker served.
    pub broker: Arc<Broker>,
    /// The server's connections.
    pub connections: Arc<dyn Connections>,
    /// The node name (`warren@host`).
    pub node: String,
    /// The listeners to report.
    pub listeners: Vec<Listener>,
    /// Whether the memory alarm is set (read by the alarm health checks).
    pub memory_alarm: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The memory alarm's threshold (Warren's `/api/warren/vm-memory-high-watermark`).
    pub memory_watermark: Arc<dyn MemoryWatermark>,
    /// Whether the free disk space alarm is set.
    pub disk_alarm: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The free disk space monitor (`/api/nodes`, Warren's `/api/warren/disk-free-limit`).
    pub disk: Arc<dyn DiskMonitor>,
    /// When the API started (uptime).
    pub started: Instant,
    /// The sampler's rates (run [`Statistics::run`] beside the API).
    pub stats: Arc<Statistics>,
    /// The server's TLS certificates, reloaded by `POST /api/warren/tls/reload`.
    pub tls: Option<Arc<dyn TlsReload>>,
}

/// Reloads the server's TLS certificates from their files (Warren's
/// `POST /api/warren/tls/reload`).
pub trait TlsReload: Send + Sync + 'static {
    /// Reloads every TLS listener's files; the listeners reloaded, or why one could not be.
    fn reload(&self) -> Result<Vec<String>, String>;
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// State for a broker with no AMQP connections and no alarm (tests, embedding).
    pub fn new(broker: Arc<Broker>) -> Self {
        Management {
            broker,
            connections: Arc::new(NoConnections),
            node: default_node_name(),
            listeners: Vec::new(),
            memory_alarm: Arc::new(|| false),
            memory_watermark: Arc::new(FixedWatermark),
            disk_alarm: Arc::new(|| false),
            disk: Arc::new(NoDiskMonitor),
            started: Instant::now(),
            stats: Arc::new(Statistics::default()),
            tls: None,
        }
    }
}

/// `warren@<hostname>`, as RabbitMQ names its node `rabbit@<hostname>`.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("warren@{host}")
}

/// The API's router, with its state, and the web console's static files (`/`, `/js`, `/css`).
pub fn router(state: Arc<Management>) -> axum::Router {
    api::routes().merge(console::routes()).with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve<L: HttpListener<Addr = SocketAddr>>(
    listener: L,
    state: Arc<Management>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // `tap_io` for axum's `ConnectInfo<SocketAddr>`, which it provides for any listener only
    // through this wrapper.
    axum::serve(axum::serve::ListenerExt::tap_io(listener, |_| {}), app)
        .with_graceful_shutdown(shutdown)
        .await
}
