//! TLS: the `amqps` listener, HTTPS for the management API and Prometheus, client certificate
//! checks, the user name a certificate stands for (SASL EXTERNAL), and reloading certificates
//! while running. Settings are named after RabbitMQ's (`ssl_options.*`, `ssl_cert_login_from`).
//!
//! The AMQP connection code does not know about TLS: it is generic over its stream, and takes
//! the peer's certificate (when there is one) as a value for EXTERNAL.

pub mod certs;
pub mod https;
pub mod identity;
pub mod listeners;
pub mod options;
pub mod reload;

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;

pub use identity::LoginFrom;
pub use reload::{Certificates, Endpoint};

/// TLS files or settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable, or does not hold what it should.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("{0}")]
    Config(String),
}

/// What the AMQP handshake knows about the transport, for EXTERNAL.
#[derive(Debug, Clone, Default)]
pub enum Transport {
    /// A plain TCP socket: EXTERNAL is neither offered nor accepted.
    #[default]
    Plain,
    /// A TLS session, with the client's certificate when it sent one (and it was verified).
    Tls {
        /// The client's leaf certificate.
        peer_cert: Option<CertificateDer<'static>>,
    },
}

impl Transport {
    /// The transport of a finished server-side TLS handshake.
    pub fn of<S>(tls: &tokio_rustls::server::TlsStream<S>) -> Transport {
        let peer_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.clone().into_owned());
        Transport::Tls { peer_cert }
    }
}
