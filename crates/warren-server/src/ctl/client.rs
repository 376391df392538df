//! The HTTP side of `warren ctl`: a blocking client of the management API (ureq; rustls for
//! `https://`) that turns answers into JSON or a typed [`CtlError`].
//!
//! An `https://` API's certificate is verified against `--cacert` (else the system's CA
//! certificates); `--insecure` is the only way to skip the check, so a wrong or self-signed
//! certificate is refused with a message that names both.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::CtlError;

/// How an `https://` API's certificate is checked (ignored for `http://`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// PEM file of the CA certificates to trust; `None`: the system's.
    pub cacert: Option<PathBuf>,
    /// Accept any certificate (no verification at all).
    pub insecure: bool,
}

impl Trust {
    /// The CA certificates to trust.
    fn roots(&self) -> Result<Vec<ureq::tls::Certificate<'static>>, CtlError> {
        let Some(path) = &self.cacert else {
            let native = rustls_native_certs::load_native_certs().map_err(|e| {
                CtlError::Io(format!("cannot load the system's CA certificates: {e}"))
            })?;
            return Ok(native
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect());
        };
        let bad = |reason: String| CtlError::Io(format!("--cacert {}: {reason}", path.display()));
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut roots = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad(e.to_string()))? {
                roots.push(c);
            }
        }
        if roots.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        Ok(roots)
    }

    /// ureq's TLS settings: rustls with ring (the broker's provider, no aws-lc build).
    fn tls_config(&self) -> Result<ureq::tls::TlsConfig, CtlError> {
        let roots = if self.insecure {
            Vec::new()
        } else {
            self.roots()?
        };
        Ok(ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
            .disable_verification(self.insecure)
            .build())
    }
}

/// A management API endpoint with credentials.
#[derive(Debug)]
pub struct Client {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

/// One answer: status and body (JSON, or `Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The parsed body.
    pub body: Value,
}

impl Reply {
    /// RabbitMQ's `reason` of an error body, else the status.
    pub fn reason(&self) -> String {
        match self.body.get("reason") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => format!("HTTP status {}", self.status),
        }
    }

    /// The body of a 2xx answer, else [`CtlError::Api`].
    pub fn ok(self) -> Result<Value, CtlError> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(CtlError::Api {
                status: self.status,
                reason: self.reason(),
            })
        }
    }
}

impl Client {
    /// A client of the API at `base` (`http://host:port` or `https://host:port`) as `user`;
    /// fails when `--cacert` cannot be read.
    pub fn new(
        base: &str,
        user: &str,
        password: &str,
        timeout: Duration,
        trust: &Trust,
    ) -> Result<Self, CtlError> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout));
        if base.starts_with("https://") {
            config = config.tls_config(trust.tls_config()?);
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            auth: format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            agent: config.build().into(),
        })
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Reply, CtlError> {
        self.finish(
            self.agent
                .get(self.url(path))
                .header("authorization", &self.auth)
                .call(),
        )
    }

    /// `DELETE path` with extra headers.
    pub fn delete(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, CtlError> {
        let mut req = self
            .agent
            .delete(self.url(path))
            .header("authorization", &self.auth);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.finish(req.call())
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<Reply, CtlError> {
        let req = self
            .agent
            .put(self.url(path))
            .header("authorization", &self.auth)
            .header("content-type", "application/json");
        self.finish(req.send(body.to_string()))
    }

    /// `POST path` with a JSON body given as text.
    pub fn post(&self, path: &str, body: String) -> Result<Reply, CtlError> {
        let req = self
            .agent
            .post(self.url(path))
            .header("authorization", &self.auth)
            .header("content-type", "application/json");
        self.finish(req.send(body))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn finish(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, CtlError> {
        let unreachable = |e: ureq::Error| match untrusted(&e) {
            Some(why) => CtlError::Untrusted {
                url: self.base.clone(),
                reason: format!("{why:?}"),
            },
            None => CtlError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            },
        };
        let mut resp = result.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .map_err(unreachable)?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 401 {
            let reason = Reply { status, body }.reason();
            // RabbitMQ's 401 is either a failed login or a missing tag or permission.
            return Err(CtlError::Refused(
                if reason == "Login failed" || reason.starts_with("HTTP") {
                    format!(
                        "the management API at {} refused the credentials: {reason}",
                        self.base
                    )
                } else {
                    format!("not authorised: {reason}")
                },
            ));
        }
        Ok(Reply { status, body })
    }
}

/// What was wrong with the server's certificate, when that is why the request failed (ureq
/// reports a handshake failure as rustls's error, or as an I/O error wrapping it).
fn untrusted(e: &ureq::Error) -> Option<&rustls::CertificateError> {
    let tls = match e {
        ureq::Error::Rustls(tls) => tls,
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        _ => return None,
    };
    match tls {
        rustls::Error::InvalidCertificate(why) => Some(why),
        _ => None,
    }
}

/// A path segment percent-encoded as RabbitMQ's API expects names (`/` is `%2F`).
pub fn seg(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding (HTTP Basic credentials).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("guest:guest", "Z3Vlc3Q6Z3Vlc3Q="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn names_are_percent_encoded_as_path_segments() {
        assert_eq!(seg("/"), "%2F");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("q-1.x_y~"), "q-1.x_y~");
        assert_eq!(seg("127.0.0.1:5 -> 1:2"), "127.0.0.1%3A5%20-%3E%201%3A2");
    }
}
