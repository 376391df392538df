//! An HTTPS listener for the management API and Prometheus: TCP accepts and TLS handshakes run
//! in their own tasks (a slow or silent client holds up nobody), finished streams are handed to
//! the HTTP server through a channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use super::reload::Endpoint;

/// How long a client has to finish the TLS handshake (RabbitMQ's `ssl_handshake_timeout`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS streams ready for HTTP, as `axum::serve` takes them.
#[derive(Debug)]
pub struct HttpsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl HttpsListener {
    /// Starts accepting on `listener` with `endpoint`'s current certificates; stops when the
    /// returned listener is dropped.
    pub fn spawn(listener: TcpListener, endpoint: Arc<Endpoint>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, listener = endpoint.name, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let acceptor = endpoint.acceptor();
                let tx = tx.clone();
                let name = endpoint.name;
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(listener = name, %peer, "TLS handshake timed out")
                        }
                    }
                });
            }
        });
        Ok(HttpsListener { ready, local })
    }
}

impl warren_mgmt::HttpListener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept task only ends when this listener is dropped: never reached while
            // serving, so waiting forever is right.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
