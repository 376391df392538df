//! `amqps://`: the client side of TLS for every scenario. `--cacert` names the CA bundle the
//! broker's certificate must chain to (there is no "trust anything" switch: a load generator
//! that silently accepts any certificate would measure a man in the middle as happily as the
//! broker); `--cert` and `--key` add a client certificate for brokers that ask for one.
//!
//! It does not own the AMQP handshake (that is `client`) nor URI parsing (`uri`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The TLS options every scenario takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM file of the CA certificates an `amqps://` broker's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// PEM file of a client certificate chain to present (with --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (with --cert).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
}

/// A client TLS configuration, shared by every connection of a run.
#[derive(Clone)]
pub struct TlsClient(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TlsClient {}

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("{} is not PEM", path.display()))?
        .with_context(|| format!("{} holds no private key", path.display()))
}

impl TlsArgs {
    /// The client configuration these options describe; `--cacert` is required.
    pub fn client(&self) -> anyhow::Result<TlsClient> {
        let Some(ca) = &self.cacert else {
            bail!(
                "an amqps:// URI needs --cacert FILE (the CA that signed the broker's certificate)"
            );
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(ca)? {
            roots
                .add(c)
                .with_context(|| format!("{}: unusable CA certificate", ca.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots);
        let config = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(certs(c)?, key(k)?)
                .context("client certificate and key do not fit together")?,
            _ => builder.with_no_client_auth(),
        };
        Ok(TlsClient(Arc::new(config)))
    }
}

impl TlsClient {
    /// Runs the TLS handshake over `tcp`, checking the certificate against `host`.
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> anyhow::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .with_context(|| format!("{host} is not a valid TLS server name"))?;
        tokio_rustls::TlsConnector::from(self.0.clone())
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {host} failed"))
    }
}
