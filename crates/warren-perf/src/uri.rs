//! AMQP URIs: `amqp://user:pass@host:port/vhost` and `amqps://...` (TLS, default port 5671), as
//! RabbitMQ's URI spec describes them.
//!
//! Query parameters are ignored (TLS settings come from flags, see `tls`). The vhost is the percent-decoded
//! path after the first `/` (`%2f` is `/`); with no path at all it is `/`, as in the Java client.

use anyhow::{Context, bail};

use crate::tls::{TlsArgs, TlsClient};

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUri {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// PLAIN user name.
    pub user: String,
    /// PLAIN password.
    pub password: String,
    /// Virtual host.
    pub vhost: String,
    /// The TLS client for `amqps://`; `None` for plain `amqp://`.
    pub tls: Option<TlsClient>,
}

impl AmqpUri {
    /// Parses `amqp[s]://[user[:pass]@]host[:port][/vhost][?query]` without TLS options (an
    /// `amqps://` URI then fails for want of `--cacert`).
    #[cfg(test)]
    pub fn parse(uri: &str) -> anyhow::Result<AmqpUri> {
        AmqpUri::parse_with(uri, &TlsArgs::default())
    }

    /// Parses `uri`; an `amqps://` one connects with the TLS options `tls`.
    pub fn parse_with(uri: &str, tls: &TlsArgs) -> anyhow::Result<AmqpUri> {
        let (rest, default_port, tls) = if let Some(rest) = uri.strip_prefix("amqp://") {
            if tls.cacert.is_some() || tls.cert.is_some() {
                bail!("--cacert, --cert and --key apply to amqps:// URIs only: {uri}");
            }
            (rest, 5672, None)
        } else if let Some(rest) = uri.strip_prefix("amqps://") {
            (rest, 5671, Some(tls.client()?))
        } else {
            bail!("only amqp:// and amqps:// URIs are supported: {uri}");
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (percent_decode(u)?, percent_decode(p)?),
                None => (percent_decode(ui)?, "guest".to_owned()),
            },
            None => ("guest".to_owned(), "guest".to_owned()),
        };
        let (host, port) = split_host_port(hostport, default_port)?;
        let vhost = match path {
            None => "/".to_owned(),
            Some(p) => percent_decode(p)?,
        };
        Ok(AmqpUri {
            host: if host.is_empty() {
                "localhost".to_owned()
            } else {
                host
            },
            port,
            user,
            password,
            vhost,
            tls,
        })
    }

    /// `host:port`, for connecting and for reports (never the password).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn split_host_port(hostport: &str, default_port: u16) -> anyhow::Result<(String, u16)> {
    if let Some(v6) = hostport.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            bail!("unterminated IPv6 address in {hostport}");
        };
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().with_context(|| format!("bad port {p}"))?,
            None => default_port,
        };
        return Ok((host.to_owned(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Ok((
            percent_decode(h)?,
            p.parse().with_context(|| format!("bad port {p}"))?,
        )),
        None => Ok((percent_decode(hostport)?, default_port)),
    }
}

fn percent_decode(s: &str) -> anyhow::Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .with_context(|| format!("truncated escape in {s}"))?;
            out.push(u8::from_str_radix(hex, 16).with_context(|| format!("bad escape in {s}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).with_context(|| format!("{s} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri_with_encoded_default_vhost() -> anyhow::Result<()> {
        let u = AmqpUri::parse("amqp://guest:guest@127.0.0.1:5672/%2f")?;
        assert_eq!(
            u,
            AmqpUri {
                host: "127.0.0.1".into(),
                port: 5672,
                user: "guest".into(),
                password: "guest".into(),
                vhost: "/".into(),
                tls: None,
            }
        );
        Ok(())
    }

    #[test]
    fn defaults_apply_when_parts_are_missing() -> anyhow::Result<()> {
        let u = AmqpUri::parse("amqp://localhost")?;
        assert_eq!(
            (u.port, u.vhost.as_str(), u.user.as_str()),
            (5672, "/", "guest")
        );
        let u = AmqpUri::parse("amqp://a%40b:p%3Aw@[::1]:5681/dev?heartbeat=0")?;
        assert_eq!(u.user, "a@b");
        assert_eq!(u.password, "p:w");
        assert_eq!(u.address(), "[::1]:5681");
        assert_eq!(u.vhost, "dev");
        let u = AmqpUri::parse("amqp://h:1/")?;
        assert_eq!(u.vhost, "");
        Ok(())
    }

    #[test]
    fn bad_uris_are_errors() {
        assert!(AmqpUri::parse("http://x").is_err());
        assert!(AmqpUri::parse("amqp://h:notaport").is_err());
        assert!(AmqpUri::parse("amqp://h/%2").is_err());
    }

    #[test]
    fn amqps_defaults_to_5671_and_needs_a_ca_file() -> anyhow::Result<()> {
        let err = AmqpUri::parse("amqps://localhost").unwrap_err().to_string();
        assert!(err.contains("--cacert"), "{err}");
        let missing = TlsArgs {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..TlsArgs::default()
        };
        let err = format!(
            "{:#}",
            AmqpUri::parse_with("amqps://h", &missing).unwrap_err()
        );
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        // TLS flags on a plain URI are a mistake, not silently ignored.
        assert!(AmqpUri::parse_with("amqp://h", &missing).is_err());
        let dir = std::env::temp_dir().join(format!("warren-perf-uri-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ca = dir.join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
        std::fs::write(&ca, cert.cert.pem())?;
        let args = TlsArgs {
            cacert: Some(ca),
            ..TlsArgs::default()
        };
        let u = AmqpUri::parse_with("amqps://u:p@localhost/v", &args)?;
        assert_eq!(
            (u.port, u.vhost.as_str(), u.tls.is_some()),
            (5671, "v", true)
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
