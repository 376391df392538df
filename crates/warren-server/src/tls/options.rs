//! TLS settings as RabbitMQ names them (`ssl_options.*`, `ssl_cert_login_from`,
//! `management.ssl.*`, `prometheus.ssl.*`), as parts of [`crate::config::Config`].
//!
//! This module only describes and checks settings; reading the files is [`super::certs`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `ssl_options.verify`: whether the server asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// No client certificate is asked for (Erlang's and so RabbitMQ's default).
    #[default]
    VerifyNone,
    /// A client certificate is asked for and, when sent, must chain to `cacertfile`.
    VerifyPeer,
}

/// A TLS protocol version (`ssl_options.versions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "tlsv1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "tlsv1.3")]
    Tls13,
}

/// `ssl_options.*`: the files and checks of the `amqps` listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SslOptions {
    /// PEM file of the certificate authorities client certificates must chain to.
    pub cacertfile: PathBuf,
    /// PEM file of the server's certificate chain, leaf first.
    pub certfile: PathBuf,
    /// PEM file of the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub keyfile: PathBuf,
    /// Ask for a client certificate (`verify_peer`) or not (`verify_none`).
    pub verify: Verify,
    /// With `verify_peer`: refuse a client that sends no certificate.
    pub fail_if_no_peer_cert: bool,
    /// The protocol versions offered (RabbitMQ 3.10 offers TLS 1.2 and 1.3).
    pub versions: Vec<TlsVersion>,
}

impl Default for SslOptions {
    fn default() -> Self {
        SslOptions {
            cacertfile: PathBuf::new(),
            certfile: PathBuf::new(),
            keyfile: PathBuf::new(),
            verify: Verify::VerifyNone,
            fail_if_no_peer_cert: false,
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
        }
    }
}

/// `ssl_cert_login_from`: which part of the client certificate names the user of an EXTERNAL
/// login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertLoginFrom {
    /// The whole subject as an RFC 4514 string, as RabbitMQ formats it (`CN=client,O=Acme`).
    #[default]
    DistinguishedName,
    /// The subject's common name(s), joined with `,`.
    CommonName,
    /// A subject alternative name, chosen by `ssl_cert_login_san_type` and `_san_index`.
    #[serde(alias = "subject_alt_name")]
    SubjectAlternativeName,
}

/// `ssl_cert_login_san_type`: the kind of subject alternative name used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanType {
    /// A DNS name (RabbitMQ's default).
    #[default]
    Dns,
    /// An e-mail address (rfc822Name).
    Email,
    /// A URI.
    Uri,
}

/// An HTTPS listener (`management.ssl.*`, `prometheus.ssl.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpsOptions {
    /// Serve this listener over HTTPS (beside the plain HTTP one while that is enabled).
    pub enabled: bool,
    /// Its port, on the bind address; 0 picks a free one.
    pub port: u16,
    /// PEM file of CA certificates for client certificates (optional).
    pub cacertfile: PathBuf,
    /// PEM file of the server's certificate chain.
    pub certfile: PathBuf,
    /// PEM file of the server's private key.
    pub keyfile: PathBuf,
    /// Ask for a client certificate.
    pub verify: Verify,
    /// With `verify_peer`: refuse a client that sends no certificate.
    pub fail_if_no_peer_cert: bool,
}

/// Only used for keys a file leaves out of a table it gives: the configuration's defaults
/// (which carry each listener's own port) are merged in first.
impl Default for HttpsOptions {
    fn default() -> Self {
        HttpsOptions::on_port(15671)
    }
}

impl HttpsOptions {
    /// Disabled, on `port` (RabbitMQ's 15671 for the management API, 15691 for Prometheus).
    pub fn on_port(port: u16) -> Self {
        HttpsOptions {
            enabled: false,
            port,
            cacertfile: PathBuf::new(),
            certfile: PathBuf::new(),
            keyfile: PathBuf::new(),
            verify: Verify::VerifyNone,
            fail_if_no_peer_cert: false,
        }
    }

    /// The same checks as the `amqps` listener's.
    pub fn as_ssl_options(&self) -> SslOptions {
        SslOptions {
            cacertfile: self.cacertfile.clone(),
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            verify: self.verify,
            fail_if_no_peer_cert: self.fail_if_no_peer_cert,
            ..SslOptions::default()
        }
    }
}

/// A SASL mechanism Warren implements (`auth_mechanisms`).
pub const KNOWN_MECHANISMS: [&str; 3] = ["PLAIN", "AMQPLAIN", "EXTERNAL"];

/// Checks what serde cannot: files named where they are needed. `what` names the settings in
/// messages (`ssl_options`, `management_ssl`).
pub fn check(what: &str, o: &SslOptions) -> Result<(), String> {
    for (name, path) in [("certfile", &o.certfile), ("keyfile", &o.keyfile)] {
        if path.as_os_str().is_empty() {
            return Err(format!("{what}.{name} must name a PEM file"));
        }
    }
    if o.verify == Verify::VerifyPeer && o.cacertfile.as_os_str().is_empty() {
        return Err(format!(
            "{what}.verify = verify_peer needs {what}.cacertfile (the CAs client certificates \
             must chain to)"
        ));
    }
    if o.versions.is_empty() {
        return Err(format!("{what}.versions must name at least one version"));
    }
    Ok(())
}
