//! The listener: accepts connections, spawns a task for each, and shuts them down cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;
use warren_broker::{Broker, SharedStore};
use warren_store::{SledStore, StoreError};

use crate::channel::ReplyRegistry;
use crate::config::{Config, ConfigError, check_memory_high_watermark};
use crate::connection;
use crate::registry::ConnectionRegistry;
use crate::tls::listeners::TlsListeners;

/// A bound, not yet running, server.
pub struct Server {
    /// The plain AMQP listener (absent with `tcp_enabled = false`).
    listener: Option<TcpListener>,
    /// The `amqps`, management and Prometheus HTTPS listeners that are enabled.
    tls: TlsListeners,
    /// The management API's listener, when enabled.
    management: Option<TcpListener>,
    /// The Prometheus listener, when enabled.
    prometheus: Option<TcpListener>,
    connections: Arc<ConnectionRegistry>,
    broker: Arc<Broker>,
    config: Arc<Config>,
    memory_limit: Arc<crate::memory::Threshold>,
    disk_limit: Arc<crate::disk::DiskThreshold>,
}

/// A server running in the background (for tests and embedding).
pub struct ServerHandle {
    addr: SocketAddr,
    ssl_addr: Option<SocketAddr>,
    management_ssl_addr: Option<SocketAddr>,
    management_addr: Option<SocketAddr>,
    prometheus_addr: Option<SocketAddr>,
    broker: Arc<Broker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    memory_limit: Arc<crate::memory::Threshold>,
    disk_limit: Arc<crate::disk::DiskThreshold>,
}

impl Server {
    /// Opens the store in `config.data_dir` (compacting it first when its files are far larger
    /// than its data, see [`Config::compact_policy`]), recovers durable state, and binds the
    /// listener.
    ///
    /// Definitions are recovered before the listener opens; stored messages load afterwards on
    /// a thread of their own, and a queue still loading answers as if it were loaded (see
    /// `warren_broker::queue::loading`).
    pub async fn bind(config: Config) -> std::io::Result<Server> {
        let dir = config.data_dir.clone();
        let (options, policy) = (config.sled_options(), config.compact_policy());
        let store = tokio::task::spawn_blocking(move || -> std::io::Result<SharedStore> {
            std::fs::create_dir_all(&dir)?;
            let failed = |what: &str, e: StoreError| {
                std::io::Error::other(format!(
                    "cannot {what} the data directory {}: {e}",
                    dir.display()
                ))
            };
            let store = SledStore::open_with(&dir, &options).map_err(|e| failed("open", e))?;
            // After a clean stop the live figures come with the background open scan: not
            // waited for here (the port would wait with it).
            let (live_bytes, live_records) = store.live_at_open().unzip();
            tracing::info!(
                data_dir = %dir.display(),
                disk_bytes = store.disk_bytes().map_err(|e| failed("measure", e))?,
                live_bytes,
                live_records,
                open_scan_done = store.open_scan_done(),
                "store opened"
            );
            let (store, report) = store
                .compact_if(&policy)
                .map_err(|e| failed("compact", e))?;
            if let Some(r) = report {
                tracing::info!(
                    before_bytes = r.disk_before,
                    after_bytes = r.disk_after,
                    live_bytes = r.live_bytes,
                    records = r.records,
                    elapsed_ms = r.elapsed.as_millis() as u64,
                    "compacted the store: its files were more than {} times its live data",
                    policy.ratio
                );
            }
            Ok(Arc::new(store))
        })
        .await
        .map_err(std::io::Error::other)??;
        Self::bind_with_store(config, store).await
    }

    /// As [`Server::bind`], over a store the caller opened (tests inject faulty stores).
    pub async fn bind_with_store(config: Config, store: SharedStore) -> std::io::Result<Server> {
        let first_boot = config.first_boot();
        let spill = config.open_spill()?;
        let window = config.load_window();
        let (broker, loader) = tokio::task::spawn_blocking(move || {
            let mut broker = Broker::with_store(store);
            broker.set_spill(spill);
            broker.set_load_window(window);
            let (_, loader) = broker
                .recover_definitions(&first_boot)
                .map_err(|e| std::io::Error::other(format!("cannot recover durable state: {e}")))?;
            Ok::<_, std::io::Error>((broker, loader))
        })
        .await
        .map_err(std::io::Error::other)??;
        let broker = Arc::new(broker);
        if !config.load_definitions.as_os_str().is_empty() {
            load_definitions(&broker, &config.load_definitions).await?;
        }
        let tls = TlsListeners::bind(&config).await?;
        let listener = if config.tcp_enabled {
            Some(TcpListener::bind((config.bind, config.port)).await?)
        } else {
            None
        };
        // Bound here, not when serving, so a port in use fails the start as RabbitMQ's does.
        let management = if config.management_enabled {
            let l = TcpListener::bind((config.bind, config.management_port))
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot listen for the management API on {}:{}: {e}",
                            config.bind, config.management_port
                        ),
                    )
                })?;
            Some(l)
        } else {
            None
        };
        let prometheus = if config.prometheus_enabled {
            let l = TcpListener::bind((config.bind, config.prometheus_port))
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot listen for Prometheus on {}:{}: {e}",
                            config.bind, config.prometheus_port
                        ),
                    )
                })?;
            Some(l)
        } else {
            None
        };
        // The listeners are bound: clients can connect while messages load. The loader stays
        // for the broker's life: a deep durable queue leaves its backlog in the store and asks
        // it for the messages back.
        loader.spawn()?;
        if config.loopback_only_default_user {
            // `guest` by name as well, as RabbitMQ's `loopback_users` default: a directory seeded
            // with guest/guest keeps that user after `default_user` is changed.
            broker.set_loopback_users([config.default_user.clone(), "guest".to_string()]);
        }
        let memory_limit = Arc::new(crate::memory::Threshold::relative(
            config.memory_high_watermark,
        ));
        let disk_setting = config
            .disk_free_limit
            .limit()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let disk_limit = Arc::new(
            crate::disk::DiskThreshold::new(config.data_dir.clone(), disk_setting)
                .map_err(std::io::Error::other)?,
        );
        Ok(Server {
            listener,
            tls,
            management,
            prometheus,
            connections: Arc::new(ConnectionRegistry::default()),
            broker,
            config: Arc::new(config),
            memory_limit,
            disk_limit,
        })
    }

    /// The address the plain AMQP listener is bound to (the `amqps` one's without it).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .or_else(|| self.ssl_addr())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.config.port)))
    }

    /// The `amqps` listener's address, when it is enabled.
    pub fn ssl_addr(&self) -> Option<SocketAddr> {
        self.tls.amqps.as_ref().and_then(|b| b.addr())
    }

    /// The management API's HTTPS address, when it is enabled.
    pub fn management_ssl_addr(&self) -> Option<SocketAddr> {
        self.tls.management.as_ref().and_then(|b| b.addr())
    }

    /// The Prometheus HTTPS address, when it is enabled.
    pub fn prometheus_ssl_addr(&self) -> Option<SocketAddr> {
        self.tls.prometheus.as_ref().and_then(|b| b.addr())
    }

    /// The broker behind the server.
    pub fn broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }

    /// The management API's address, when it is enabled.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The Prometheus listener's address, when it is enabled.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then stops accepting, closes every connection with
    /// 320 CONNECTION_FORCED and waits (briefly) for them to finish.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (alarm_tx, alarm_rx) = watch::channel(crate::alarm::Alarms::default());
        let alarm_tx = Arc::new(alarm_tx);
        let monitors = [
            tokio::spawn(crate::memory::monitor(
                self.memory_limit.subscribe(),
                alarm_tx.clone(),
            )),
            tokio::spawn(self.disk_limit.clone().monitor(alarm_tx)),
        ];
        let mut listeners = Vec::new();
        for (l, protocol) in [
            (&self.listener, "amqp"),
            (&self.management, "http"),
            (&self.prometheus, "http/prometheus"),
        ] {
            if let Some(addr) = l.as_ref().and_then(|l| l.local_addr().ok()) {
                listeners.push(warren_mgmt::Listener { protocol, addr });
            }
        }
        for (b, protocol) in [
            (&self.tls.amqps, "amqp/ssl"),
            (&self.tls.management, "https"),
            (&self.tls.prometheus, "https/prometheus"),
        ] {
            if let Some(addr) = b.as_ref().and_then(|b| b.addr()) {
                listeners.push(warren_mgmt::Listener { protocol, addr });
            }
        }
        let certificates = self.tls.certificates.clone();
        let (alarm, disk_alarm) = (alarm_rx.clone(), alarm_rx.clone());
        // One state for the API, the sampler and Prometheus.
        let state = Arc::new(warren_mgmt::Management {
            broker: self.broker.clone(),
            connections: self.connections.clone(),
            node: warren_mgmt::default_node_name(),
            listeners,
            memory_alarm: Arc::new(move || alarm.borrow().memory),
            memory_watermark: self.memory_limit.clone(),
            disk_alarm: Arc::new(move || disk_alarm.borrow().disk),
            disk: self.disk_limit.clone(),
            started: std::time::Instant::now(),
            stats: Arc::new(warren_mgmt::Statistics::new(Duration::from_millis(
                self.config.collect_statistics_interval.max(1),
            ))),
            tls: (!certificates.is_empty())
                .then(|| certificates.clone() as Arc<dyn warren_mgmt::TlsReload>),
        });
        let stopped = |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.changed().await;
        };
        // Rates are only shown by the API: no API, no sampler.
        let sampler = self.management.as_ref().map(|_| {
            tokio::spawn(state.stats.clone().run(
                self.broker.clone(),
                self.connections.clone(),
                stopped(stop_rx.clone()),
            ))
        });
        let management = self.management.map(|listener| {
            let (state, shutdown) = (state.clone(), stopped(stop_rx.clone()));
            tokio::spawn(async move {
                if let Err(e) = warren_mgmt::serve(listener, state, shutdown).await {
                    tracing::error!(error = %e, "the management API stopped");
                }
            })
        });
        let prometheus = self.prometheus.map(|listener| {
            let (state, shutdown) = (state.clone(), stopped(stop_rx.clone()));
            tokio::spawn(async move {
                if let Err(e) = warren_mgmt::prometheus::serve(listener, state, shutdown).await {
                    tracing::error!(error = %e, "the Prometheus listener stopped");
                }
            })
        });
        let https = [
            (self.tls.management.take(), false),
            (self.tls.prometheus.take(), true),
        ]
        .into_iter()
        .filter_map(|(b, prometheus)| {
            let b = b?;
            let listener = match crate::tls::https::HttpsListener::spawn(
                b.listener,
                b.endpoint.clone(),
            ) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, listener = b.endpoint.name, "cannot serve HTTPS");
                    return None;
                }
            };
            let (state, shutdown) = (state.clone(), stopped(stop_rx.clone()));
            Some(tokio::spawn(async move {
                let served = if prometheus {
                    warren_mgmt::prometheus::serve(listener, state, shutdown).await
                } else {
                    warren_mgmt::serve(listener, state, shutdown).await
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "an HTTPS listener stopped");
                }
            }))
        })
        .collect::<Vec<_>>();
        let watcher =
            (!certificates.is_empty() && self.config.ssl_cert_reload_interval > 0).then(|| {
                tokio::spawn(certificates.clone().watch(
                    Duration::from_millis(self.config.ssl_cert_reload_interval),
                    stopped(stop_rx.clone()),
                ))
            });
        let spawner = Spawner {
            // Connection ids start at 1: the management API acts as connection 0.
            next_id: AtomicU64::new(1),
            replies: Arc::new(ReplyRegistry::default()),
            broker: self.broker.clone(),
            config: self.config.clone(),
            signals: connection::Signals {
                stop: stop_rx.clone(),
                alarms: alarm_rx.clone(),
                registry: self.connections.clone(),
            },
        };
        let amqps = self.tls.amqps.take();
        let mut connections = JoinSet::new();
        let admission = connection::admission::Admission::new(&self.config);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = admitted_accept(&admission, self.listener.as_ref()) => match accepted {
                    Ok(Some((stream, peer, admitted))) => {
                        spawner.plain(&mut connections, admitted, stream, peer);
                    }
                    Ok(None) => {}
                    Err(e) => accept_failed(e).await,
                },
                accepted = admitted_accept(&admission, amqps.as_ref().map(|b| &b.listener)) => {
                    match (accepted, &amqps) {
                        (Ok(Some((stream, peer, admitted))), Some(b)) => {
                            let acceptor = b.endpoint.acceptor();
                            spawner.tls(&mut connections, admitted, stream, peer, acceptor);
                        }
                        (Ok(_), _) => {}
                        (Err(e), _) => accept_failed(e).await,
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!("shutting down: closing connections");
        drop(self.listener);
        drop(amqps);
        // Before the connections close: what their channels requeue stays in its queue, where
        // the store has it, instead of going to a consumer on a connection that closes too.
        self.broker.stop_delivering();
        let _ = stop_tx.send(true);
        for mut api in management
            .into_iter()
            .chain(prometheus)
            .chain(sampler)
            .chain(https)
            .chain(watcher)
        {
            // Requests in flight finish; an idle keep-alive client does not hold shutdown up.
            // Each task holds the broker: aborted or not, it has ended when this returns.
            if tokio::time::timeout(Duration::from_secs(2), &mut api)
                .await
                .is_err()
            {
                api.abort();
                let _ = api.await;
            }
        }
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            connections.abort_all();
            // Aborted tasks drop their broker handles only when the runtime gets to them: wait,
            // so the store (and its directory lock) is released when this returns.
            while connections.join_next().await.is_some() {}
        }
        for monitor in monitors {
            monitor.abort();
            let _ = monitor.await;
        }
        let stats = self.broker.store().stats();
        tracing::info!(
            stored_messages = stats.messages,
            flushes = stats.flushes,
            cancelled_changes = stats.cancelled_changes,
            "stopped"
        );
        Ok(())
    }

    /// Runs the server on the current tokio runtime until the handle is shut down or dropped.
    pub fn spawn(self) -> ServerHandle {
        let addr = self.local_addr();
        let ssl_addr = self.ssl_addr();
        let management_ssl_addr = self.management_ssl_addr();
        let management_addr = self.management_addr();
        let prometheus_addr = self.prometheus_addr();
        let broker = self.broker.clone();
        let memory_limit = self.memory_limit.clone();
        let disk_limit = self.disk_limit.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run_until(async move {
            let _ = rx.await;
        }));
        ServerHandle {
            addr,
            ssl_addr,
            management_ssl_addr,
            management_addr,
            prometheus_addr,
            broker,
            stop: Some(tx),
            task,
            memory_limit,
            disk_limit,
        }
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker behind the server.
    pub fn broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }

    /// The `amqps` listener's address, when it is enabled.
    pub fn ssl_addr(&self) -> Option<SocketAddr> {
        self.ssl_addr
    }

    /// The management API's HTTPS address, when it is enabled.
    pub fn management_ssl_addr(&self) -> Option<SocketAddr> {
        self.management_ssl_addr
    }

    /// The management API's address, when it is enabled.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management_addr
    }

    /// The Prometheus listener's address, when it is enabled.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus_addr
    }

    /// An `amqp://` URL for the default user.
    pub fn url(&self) -> String {
        format!(
            "amqp://guest:guest@{}:{}/%2f",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// Changes the memory high watermark while running, as a fraction of physical memory
    /// (RabbitMQ's `rabbitmqctl set_vm_memory_high_watermark`); the alarm follows at the next
    /// sample (every 200 ms). A fraction outside (0, 1] is refused, as in the configuration.
    pub fn set_memory_high_watermark(&self, fraction: f64) -> Result<(), ConfigError> {
        check_memory_high_watermark(fraction)?;
        let _ = warren_mgmt::MemoryWatermark::set(
            &*self.memory_limit,
            warren_mgmt::Watermark::Relative(fraction),
        );
        Ok(())
    }

    /// Changes the free disk space limit while running (RabbitMQ's `rabbitmqctl
    /// set_disk_free_limit`); the monitor checks again at once. Answers the limit in bytes.
    pub fn set_disk_free_limit(&self, limit: warren_mgmt::DiskFreeLimit) -> Result<u64, String> {
        warren_mgmt::DiskMonitor::set(&*self.disk_limit, limit)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Accepts on `listener` under the admission limits (`connection_max`, `handshake_max`);
/// never resolves without one (a disabled listener). `Ok(None)`: a socket refused because too
/// many are in the handshake (already closed).
async fn admitted_accept(
    admission: &connection::admission::Admission,
    listener: Option<&TcpListener>,
) -> std::io::Result<Option<(TcpStream, SocketAddr, connection::admission::Admitted)>> {
    match listener {
        Some(l) => admission.accept(l).await,
        None => std::future::pending().await,
    }
}

/// A failed accept (out of file descriptors...) is logged and retried after a pause.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// What every connection task is started with.
struct Spawner {
    next_id: AtomicU64,
    replies: Arc<ReplyRegistry>,
    broker: Arc<Broker>,
    config: Arc<Config>,
    signals: connection::Signals,
}

impl Spawner {
    /// The connection's span; `user` and `vhost` are filled in once the handshake names them.
    fn span(&self, peer: SocketAddr) -> (u64, tracing::Span) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "conn",
            conn = id,
            %peer,
            user = tracing::field::Empty,
            vhost = tracing::field::Empty
        );
        (id, span)
    }

    fn signals(&self) -> connection::Signals {
        self.signals.clone()
    }

    /// Serves a plain TCP connection.
    fn plain(
        &self,
        set: &mut JoinSet<()>,
        admitted: connection::admission::Admitted,
        stream: TcpStream,
        peer: SocketAddr,
    ) {
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let (id, span) = self.span(peer);
        set.spawn(
            connection::run(
                admitted,
                stream,
                peer,
                local,
                crate::tls::Transport::Plain,
                id,
                self.broker.clone(),
                self.config.clone(),
                self.replies.clone(),
                self.signals(),
            )
            .instrument(span),
        );
    }

    /// Serves a TLS connection: the TLS handshake, then AMQP, both under `handshake_timeout`
    /// (the AMQP handshake's own limit starts after TLS's).
    fn tls(
        &self,
        set: &mut JoinSet<()>,
        admitted: connection::admission::Admitted,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: tokio_rustls::TlsAcceptor,
    ) {
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let (id, span) = self.span(peer);
        let timeout = Duration::from_secs(self.config.handshake_timeout);
        let (broker, config, replies, signals) = (
            self.broker.clone(),
            self.config.clone(),
            self.replies.clone(),
            self.signals(),
        );
        set.spawn(
            async move {
                let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::info!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!("TLS handshake timed out");
                        return;
                    }
                };
                let transport = crate::tls::Transport::of(&tls);
                connection::run(
                    admitted, tls, peer, local, transport, id, broker, config, replies, signals,
                )
                .await;
            }
            .instrument(span),
        );
    }
}

/// Imports `path` (RabbitMQ's definitions format) before the listeners open, as RabbitMQ's
/// `load_definitions`; a file that cannot be read or imported fails the start.
async fn load_definitions(broker: &Arc<Broker>, path: &std::path::Path) -> std::io::Result<()> {
    let broker = broker.clone();
    let path = path.to_path_buf();
    // Reading the file and the import's store writes block: off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        let shown = path.display();
        let text = std::fs::read(&path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot read load_definitions {shown}: {e}"),
            )
        })?;
        warren_mgmt::import_definitions(&broker, &text).map_err(|e| {
            std::io::Error::other(format!("cannot import load_definitions {shown}: {e}"))
        })?;
        tracing::info!(file = %shown, "definitions imported");
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}
