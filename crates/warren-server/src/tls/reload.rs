//! The certificates each TLS listener serves, replaceable while running: new handshakes use the
//! configuration loaded last, connections already open keep the one they started with.
//!
//! A reload happens when the files change (their modification times and sizes are polled) or
//! on request (`warren ctl reload_certificates`, `POST /api/warren/tls/reload`). A reload that
//! fails (a half-written file, a key that does not match) keeps the previous certificates.
//!
//! Lock order: `Endpoint::current` and `Endpoint::stamps` are leaves, never held together, never
//! across an `.await` or a file read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::TlsError;
use super::certs::server_config;
use super::options::SslOptions;

/// What identifies a version of a file: its modification time and size (`None`: unreadable).
type Stamp = Option<(SystemTime, u64)>;

/// One TLS listener's settings and current certificates.
pub struct Endpoint {
    /// `amqps`, `management` or `prometheus`, for logs and replies.
    pub name: &'static str,
    options: SslOptions,
    alpn: Vec<&'static [u8]>,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<Stamp>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Loads the files once; an error here stops the start.
    pub fn load(
        name: &'static str,
        options: SslOptions,
        alpn: Vec<&'static [u8]>,
    ) -> Result<Arc<Endpoint>, TlsError> {
        let stamps = stamps(&options);
        let config = server_config(&options, &alpn)?;
        Ok(Arc::new(Endpoint {
            name,
            options,
            alpn,
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
        }))
    }

    /// An acceptor with the certificates loaded last.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// The settings this endpoint was started with.
    pub fn options(&self) -> &SslOptions {
        &self.options
    }

    /// Reads the files again and, when they make a valid configuration, serves it from now on.
    pub fn reload(&self) -> Result<(), TlsError> {
        let seen = stamps(&self.options);
        *self.stamps.lock() = seen;
        let config = server_config(&self.options, &self.alpn)?;
        *self.current.write() = Arc::new(config);
        tracing::info!(listener = self.name, "TLS certificates reloaded");
        Ok(())
    }

    /// The files changed since they were last read.
    fn changed(&self) -> bool {
        let now = stamps(&self.options);
        *self.stamps.lock() != now
    }
}

fn stamps(o: &SslOptions) -> Vec<Stamp> {
    files(o)
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

fn files(o: &SslOptions) -> impl Iterator<Item = &PathBuf> {
    [&o.certfile, &o.keyfile, &o.cacertfile]
        .into_iter()
        .filter(|p| !p.as_os_str().is_empty())
}

/// Every TLS listener of the server, reloaded together.
#[derive(Debug, Default)]
pub struct Certificates {
    endpoints: Vec<Arc<Endpoint>>,
}

impl Certificates {
    /// Adds a listener's endpoint.
    pub fn push(&mut self, endpoint: Arc<Endpoint>) {
        self.endpoints.push(endpoint);
    }

    /// No TLS listener is configured.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Reloads every endpoint; the names reloaded, or the first failure (the endpoints before it
    /// are reloaded, it and the ones after keep their certificates).
    pub fn reload_all(&self) -> Result<Vec<String>, String> {
        let mut done = Vec::new();
        for e in &self.endpoints {
            e.reload()
                .map_err(|err| format!("{} listener: {err}", e.name))?;
            done.push(e.name.to_string());
        }
        Ok(done)
    }

    /// Polls the files every `period` until `stop` completes, reloading an endpoint whose files
    /// changed.
    pub async fn watch(
        self: Arc<Self>,
        period: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => {}
            }
            let me = self.clone();
            // File system calls block: off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || {
                for e in &me.endpoints {
                    if e.changed() {
                        if let Err(err) = e.reload() {
                            tracing::error!(
                                listener = e.name,
                                error = %err,
                                "TLS files changed but cannot be loaded; keeping the previous certificates"
                            );
                        }
                    }
                }
            })
            .await;
        }
    }
}

impl warren_mgmt::TlsReload for Certificates {
    fn reload(&self) -> Result<Vec<String>, String> {
        self.reload_all()
    }
}
