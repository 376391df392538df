//! What the scenarios other than `throughput` share: the connection options, the shared state,
//! the broker's `/proc` figures and printing a report as one line or JSON.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::procstat;
use crate::stats::round3;
use crate::throughput::{Counters, ProcPoint, Shared, proc_point};

/// Options every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Broker to load, as an AMQP URI (`amqps://` for TLS, with --cacert).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// TLS options for an `amqps://` URI.
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Broker process id: report its CPU time and RSS from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Print the report as JSON instead of one line.
    #[arg(long)]
    pub json: bool,
}

/// A scenario's result: JSON, one line, and the errors that make the run fail.
pub trait Outcome: Serialize {
    /// The run in one line.
    fn line(&self) -> String;
    /// Errors from the workers.
    fn errors(&self) -> &[String];
}

/// Prints `report` and exits with status 1 when it carries errors.
pub fn emit<R: Outcome>(report: &R, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{}", report.line());
    }
    for e in report.errors() {
        eprintln!("warren-perf: {e}");
    }
    if !report.errors().is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// Reads the broker's and our own CPU and RSS.
pub struct Probe {
    pid: Option<String>,
    ticks: u64,
}

impl Probe {
    /// Checks that `--broker-pid` (if any) can be read.
    pub fn new(pid: Option<u32>) -> anyhow::Result<Probe> {
        let pid = pid.map(|p| p.to_string());
        let ticks = procstat::clock_ticks();
        if let Some(p) = &pid {
            procstat::cpu_time(p, ticks).with_context(|| format!("--broker-pid {p}"))?;
        }
        Ok(Probe { pid, ticks })
    }

    /// The figures now.
    pub fn point(&self) -> ProcPoint {
        proc_point(self.pid.as_deref(), self.ticks)
    }
}

/// Broker CPU seconds between two points.
pub fn broker_cpu(a: &ProcPoint, b: &ProcPoint) -> Option<f64> {
    a.broker_cpu
        .zip(b.broker_cpu)
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64())
}

/// Broker RSS in MiB at a point.
pub fn rss_mib(p: &ProcPoint) -> Option<f64> {
    p.broker_rss.map(|b| b as f64 / crate::throughput::MIB)
}

/// Fresh shared state for one run.
pub fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        counters: Counters::default(),
        stop: AtomicBool::new(false),
        t0: Instant::now(),
    })
}

/// `x` with three significant figures and a unit, or `-`.
pub fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{}{unit}", round3(v)))
}

/// Nanoseconds to milliseconds.
pub fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| n as f64 / 1e6)
}

/// Seconds as a [`Duration`], for `sleep`.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
