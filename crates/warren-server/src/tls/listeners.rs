//! Binding the TLS listeners the configuration asks for, with their certificates loaded: a file
//! that cannot be used, or a port in use, fails the start with a message naming it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::options::HttpsOptions;
use super::reload::{Certificates, Endpoint};
use crate::config::Config;

/// A bound TLS listener and the certificates it serves.
#[derive(Debug)]
pub struct Bound {
    /// The TCP listener.
    pub listener: TcpListener,
    /// Its certificates, replaceable while running.
    pub endpoint: Arc<Endpoint>,
}

impl Bound {
    /// The bound address.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// The server's TLS listeners.
#[derive(Debug, Default)]
pub struct TlsListeners {
    /// `amqps` (RabbitMQ's `listeners.ssl.default`).
    pub amqps: Option<Bound>,
    /// HTTPS for the management API.
    pub management: Option<Bound>,
    /// HTTPS for Prometheus.
    pub prometheus: Option<Bound>,
    /// All their certificates, for reloading.
    pub certificates: Arc<Certificates>,
}

async fn bind_one(
    config: &Config,
    name: &'static str,
    port: u16,
    options: crate::tls::options::SslOptions,
    alpn: Vec<&'static [u8]>,
) -> std::io::Result<Bound> {
    let endpoint = Endpoint::load(name, options, alpn).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot start the {name} TLS listener: {e}"),
        )
    })?;
    let listener = TcpListener::bind((config.bind, port)).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for {name} on {}:{port}: {e}", config.bind),
        )
    })?;
    Ok(Bound { listener, endpoint })
}

/// HTTP/1.1 only: the API's server speaks nothing else.
const HTTP1: &[u8] = b"http/1.1";

impl TlsListeners {
    /// Loads the certificates and binds every TLS listener `config` enables.
    pub async fn bind(config: &Config) -> std::io::Result<TlsListeners> {
        let mut certificates = Certificates::default();
        let amqps = if config.ssl_enabled {
            let b = bind_one(
                config,
                "amqps",
                config.ssl_port,
                config.ssl_options.clone(),
                Vec::new(),
            )
            .await?;
            certificates.push(b.endpoint.clone());
            Some(b)
        } else {
            None
        };
        let https = |name: &'static str, o: &HttpsOptions| {
            let enabled = o.enabled;
            let (port, options) = (o.port, o.as_ssl_options());
            async move {
                if enabled {
                    Ok::<_, std::io::Error>(Some(
                        bind_one(config, name, port, options, vec![HTTP1]).await?,
                    ))
                } else {
                    Ok(None)
                }
            }
        };
        let management = https("management", &config.management_ssl).await?;
        let prometheus = https("prometheus", &config.prometheus_ssl).await?;
        for b in management.iter().chain(&prometheus) {
            certificates.push(b.endpoint.clone());
        }
        Ok(TlsListeners {
            amqps,
            management,
            prometheus,
            certificates: Arc::new(certificates),
        })
    }
}
