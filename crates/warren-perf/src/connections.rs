//! The `connections` scenario: open N connections, each with one channel and one server-named
//! exclusive queue, measure the broker's RSS per connection, hold them, close them.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Connection;
use crate::common::{self, CommonArgs, Outcome, Probe, opt};
use crate::stats::round3;
use crate::uri::AmqpUri;

/// Options of `warren-perf connections`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsArgs {
    /// Connection, broker pid and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections to open.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Seconds to hold them open.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
}

/// What a connections run measured.
#[derive(Debug, Default, Serialize)]
pub struct ConnectionsReport {
    /// The broker's `host:port`.
    pub broker: String,
    /// Connections opened.
    pub count: u64,
    /// Time to open them all (one after the other, with channel and queue), seconds.
    pub open_seconds: f64,
    /// Broker CPU per connection opened, µs.
    pub broker_cpu_us_per_conn: Option<f64>,
    /// Broker RSS before, MiB.
    pub rss_mib_before: Option<f64>,
    /// Broker RSS with all open (1 s after the last), MiB.
    pub rss_mib_open: Option<f64>,
    /// (RSS open − RSS before) / count, KiB.
    pub rss_kib_per_conn: Option<f64>,
    /// Broker RSS 2 s after closing them, MiB.
    pub rss_mib_closed: Option<f64>,
    /// Errors while closing.
    pub errors: Vec<String>,
}

impl Outcome for ConnectionsReport {
    fn line(&self) -> String {
        format!(
            "{} connections {}: opened in {:.2} s ({}/conn), RSS {} → {} ({} KiB/conn), after close {}",
            self.broker,
            self.count,
            self.open_seconds,
            opt(self.broker_cpu_us_per_conn, " µs"),
            opt(self.rss_mib_before, " MiB"),
            opt(self.rss_mib_open, " MiB"),
            opt(self.rss_kib_per_conn, ""),
            opt(self.rss_mib_closed, " MiB"),
        )
    }
    fn errors(&self) -> &[String] {
        &self.errors
    }
}

/// Runs the scenario.
pub async fn run(args: &ConnectionsArgs) -> anyhow::Result<ConnectionsReport> {
    let uri = AmqpUri::parse_with(&args.common.uri, &args.common.tls)?;
    let probe = Probe::new(args.common.broker_pid)?;
    let before = probe.point();
    let started = Instant::now();
    let mut conns = Vec::with_capacity(args.count as usize);
    for i in 0..args.count {
        let mut c = Connection::open(&uri, &format!("warren-perf idle {i}")).await?;
        c.channel_open(1).await?;
        c.queue_declare_exclusive(1).await?;
        conns.push(c);
    }
    let open_seconds = started.elapsed().as_secs_f64();
    let opened = probe.point();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let open = probe.point();
    tokio::time::sleep(common::secs(args.hold.saturating_sub(1))).await;
    let closing: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(c.close(Duration::from_secs(10))))
        .collect();
    let mut errors = Vec::new();
    for (i, t) in closing.into_iter().enumerate() {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("connection {i}: {e:#}")),
            Err(e) => errors.push(format!("connection {i} task: {e}")),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = probe.point();
    let n = args.count as f64;
    Ok(ConnectionsReport {
        broker: uri.address(),
        count: args.count,
        open_seconds: round3(open_seconds),
        broker_cpu_us_per_conn: common::broker_cpu(&before, &opened).map(|s| s * 1e6 / n),
        rss_mib_before: common::rss_mib(&before),
        rss_mib_open: common::rss_mib(&open),
        rss_kib_per_conn: before
            .broker_rss
            .zip(open.broker_rss)
            .map(|(a, b)| (b as f64 - a as f64) / n / 1024.0),
        rss_mib_closed: common::rss_mib(&closed),
        errors,
    })
}
