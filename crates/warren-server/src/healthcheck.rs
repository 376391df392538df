//! `warren healthcheck`: is the broker of this configuration serving? For a container's
//! `HEALTHCHECK` (slim images have no curl) and for scripts.
//!
//! Two checks, both against the addresses the configuration names:
//! - the AMQP listener answers a protocol header with `connection.start` (no credentials needed;
//!   the broker logs an abandoned handshake at `debug` only, so a probe every few seconds is
//!   quiet);
//! - when the management API is on, `GET /api/health/checks/local-alarms` answers 200 (RabbitMQ's
//!   own health check endpoint: 503 while a memory alarm blocks publishers). It needs a user
//!   with the `monitoring` tag or more: the configuration's default user unless
//!   `WARREN_CTL_USER`/`WARREN_CTL_PASSWORD` (or `--user`/`--password`) name another.
//!
//! It owns no state; the HTTP side is `warren ctl`'s client.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::config::Config;
use crate::ctl::{self, CtlError, CtlOptions};

/// `warren healthcheck`'s flags.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckOptions {
    /// The management API's base URL (default `http://127.0.0.1:<management_port>`).
    #[arg(long, env = "WARREN_CTL_URL")]
    pub url: Option<String>,
    /// The user to call the health check endpoint as (default: `default_user`).
    #[arg(long, env = "WARREN_CTL_USER")]
    pub user: Option<String>,
    /// That user's password (default: `default_pass`).
    #[arg(long, env = "WARREN_CTL_PASSWORD")]
    pub password: Option<String>,
    /// How long each check may take, in seconds.
    #[arg(short = 't', long, default_value_t = 5)]
    pub timeout: u64,
}

/// Why the broker is not healthy; the text is what `warren healthcheck` prints.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Nothing accepted a connection, or the connection failed.
    #[error("AMQP listener {addr}: {reason}")]
    AmqpUnreachable {
        /// The address probed.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Something answered, but not with `connection.start`.
    #[error(
        "AMQP listener {addr}: answered the protocol header with {answer}, not connection.start"
    )]
    NotAmqp {
        /// The address probed.
        addr: SocketAddr,
        /// What came back, in hex.
        answer: String,
    },
    /// The management API failed the check (alarm), refused the credentials or is unreachable.
    #[error("management API health check: {0}")]
    Api(String),
}

/// The AMQP address of `config` as seen from this host: loopback when it binds every address.
pub fn amqp_addr(config: &Config) -> SocketAddr {
    let ip = match config.bind {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, config.port)
}

/// Sends the AMQP 0-9-1 protocol header to `addr` and checks that the first frame back is a
/// method frame on channel 0 carrying `connection.start` (class 10, method 10).
pub fn probe_amqp(addr: SocketAddr, timeout: Duration) -> Result<(), HealthError> {
    let unreachable = |e: std::io::Error| HealthError::AmqpUnreachable {
        addr,
        reason: e.to_string(),
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(unreachable)?;
    stream
        .write_all(b"AMQP\x00\x00\x09\x01")
        .map_err(unreachable)?;
    // Frame type (1), channel (2), size (4), then the method's class and method ids (2 + 2).
    let mut head = [0u8; 11];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(unreachable(e)),
        }
    }
    let head = &head[..got];
    let is_start = head.len() == 11
        && head[0] == 1
        && head[1..3] == [0, 0]
        && head[7..9] == 10u16.to_be_bytes()
        && head[9..11] == 10u16.to_be_bytes();
    if is_start {
        Ok(())
    } else {
        Err(HealthError::NotAmqp {
            addr,
            answer: if head.is_empty() {
                "nothing (closed)".into()
            } else {
                head.iter().map(|b| format!("{b:02x}")).collect()
            },
        })
    }
}

/// `GET /api/health/checks/local-alarms` through `client`: 200 is healthy.
pub fn check_alarms(client: &ctl::Client) -> Result<(), HealthError> {
    let reply = client
        .get("/api/health/checks/local-alarms")
        .map_err(|e| HealthError::Api(api_reason(&e)))?;
    if reply.status == 200 {
        return Ok(());
    }
    let mut reason = reply.reason();
    if let Some(Value::Array(alarms)) = reply.body.get("alarms") {
        let names: Vec<String> = alarms
            .iter()
            .filter_map(|a| a.get("resource").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        if !names.is_empty() {
            reason = format!("{reason} ({})", names.join(", "));
        }
    }
    Err(HealthError::Api(format!("HTTP {}: {reason}", reply.status)))
}

fn api_reason(e: &CtlError) -> String {
    match e {
        CtlError::Refused(m) => {
            format!("{m} (set WARREN_CTL_USER and WARREN_CTL_PASSWORD to a monitoring user)")
        }
        other => other.to_string(),
    }
}

/// Runs the checks `config` calls for; the lines to print when all pass.
pub fn run(config: &Config, options: &HealthcheckOptions) -> Result<String, HealthError> {
    let timeout = Duration::from_secs(options.timeout.max(1));
    let addr = amqp_addr(config);
    probe_amqp(addr, timeout)?;
    let mut out = format!("AMQP listener {addr}: ok\n");
    if config.management_enabled {
        let client = ctl::client(
            config,
            &CtlOptions {
                url: options.url.clone(),
                user: options.user.clone(),
                password: options.password.clone(),
                timeout: options.timeout,
                ..CtlOptions::default()
            },
        )
        .map_err(|e| HealthError::Api(api_reason(&e)))?;
        check_alarms(&client)?;
        out.push_str(&format!(
            "management API {}/api/health/checks/local-alarms: ok\n",
            client.base()
        ));
    }
    Ok(out)
}
