//! Reads the PEM files named by [`SslOptions`] and builds a rustls server configuration from
//! them, with an error that names the file and what is wrong with it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::TlsError;
use super::options::{SslOptions, TlsVersion, Verify};

/// The ring provider, chosen explicitly: rustls refuses to guess when more than one is built.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn bad(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Every certificate in a PEM file; none is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| bad(path, format!("not valid PEM: {e}")))?
        .ok_or_else(|| bad(path, "holds no PEM private key"))
}

/// A rustls server configuration for `o`, for ALPN protocols `alpn` (none for AMQP).
pub fn server_config(o: &SslOptions, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
    let chain = load_certs(&o.certfile)?;
    let key = load_key(&o.keyfile)?;
    let provider = provider();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = o
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if o.verify == Verify::VerifyPeer {
        let mut roots = RootCertStore::empty();
        for ca in load_certs(&o.cacertfile)? {
            roots
                .add(ca)
                .map_err(|e| bad(&o.cacertfile, format!("not a usable CA certificate: {e}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if o.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier
            .build()
            .map_err(|e| bad(&o.cacertfile, e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => bad(
            &o.keyfile,
            format!("does not match the certificate in {}", o.certfile.display()),
        ),
        other => bad(&o.keyfile, format!("cannot be used: {other}")),
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
