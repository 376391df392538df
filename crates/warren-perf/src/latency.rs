//! The `latency` scenario: one producer at a fixed rate, one auto-ack consumer, one queue.
//!
//! The producer is paced by a 1 ms timer (each tick publishes what is due, as one batch); every
//! body starts with its send time in nanoseconds since the run's start instant, and the consumer,
//! in the same process, records the latency of every message it receives.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::client::Connection;
use crate::common::{self, CommonArgs, Outcome, Probe, ms, opt};
use crate::consumer::{self, AckPolicy, ConsumerOutcome};
use crate::publisher::{self, PublishPlan};
use crate::stats::{percentile, round3};
use crate::throughput::join;
use crate::uri::AmqpUri;

const QUEUE: &str = "perf-latency";

/// Options of `warren-perf latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct LatencyArgs {
    /// Connection, broker pid and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Messages per second.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// Body size in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(8..))]
    pub size: u64,
    /// Seconds to publish.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

/// What a latency run measured.
#[derive(Debug, Default, Serialize)]
pub struct LatencyReport {
    /// The broker's `host:port`.
    pub broker: String,
    /// Target rate, msg/s.
    pub rate: u64,
    /// Body size.
    pub size: u64,
    /// Publishing time, seconds.
    pub seconds: f64,
    /// Messages published.
    pub published: u64,
    /// Messages received (including after the producer stopped).
    pub consumed: u64,
    /// Latency percentiles over every message, milliseconds.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Largest latency.
    pub max_ms: Option<f64>,
    /// Broker CPU per message, µs.
    pub broker_cpu_us_per_msg: Option<f64>,
    /// Broker CPU use, percent of one core.
    pub broker_cpu_percent: Option<f64>,
    /// Broker RSS at the end, MiB.
    pub broker_rss_mib_end: Option<f64>,
    /// Errors from the workers.
    pub errors: Vec<String>,
}

impl Outcome for LatencyReport {
    fn line(&self) -> String {
        format!(
            "{} latency {} msg/s {} B {:.1} s: published {} consumed {}, p50 {} p90 {} p99 {} p99.9 {} max {}, broker {}/msg CPU {} RSS {}",
            self.broker,
            self.rate,
            self.size,
            self.seconds,
            self.published,
            self.consumed,
            opt(self.p50_ms, " ms"),
            opt(self.p90_ms, " ms"),
            opt(self.p99_ms, " ms"),
            opt(self.p999_ms, " ms"),
            opt(self.max_ms, " ms"),
            opt(self.broker_cpu_us_per_msg, " µs"),
            opt(self.broker_cpu_percent, "%"),
            opt(self.broker_rss_mib_end, " MiB"),
        )
    }
    fn errors(&self) -> &[String] {
        &self.errors
    }
}

/// Runs the scenario.
pub async fn run(args: &LatencyArgs) -> anyhow::Result<LatencyReport> {
    let uri = AmqpUri::parse_with(&args.common.uri, &args.common.tls)?;
    let probe = Probe::new(args.common.broker_pid)?;
    let mut setup = Connection::open(&uri, "warren-perf setup").await?;
    setup.channel_open(1).await?;
    setup.queue_declare(1, QUEUE, false).await?;
    setup.queue_purge(1, QUEUE).await?;

    let shared = common::shared();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut cconn = Connection::open(&uri, "warren-perf consumer").await?;
    cconn.channel_open(1).await?;
    cconn.basic_consume(1, QUEUE, true).await?;
    let mut pconn = Connection::open(&uri, "warren-perf producer").await?;
    pconn.channel_open(1).await?;
    let ack = AckPolicy {
        manual: false,
        every: 1,
    };
    let consumer = tokio::spawn(consumer::run(cconn, ack, true, shared.clone(), stop_rx));
    let plan = Arc::new(PublishPlan {
        exchange: String::new(),
        queues: vec![QUEUE.to_owned()],
        size: args.size as usize,
        persistent: false,
        confirm_window: None,
        rate: Some(args.rate),
        limit: None,
    });
    let begin = probe.point();
    let started = std::time::Instant::now();
    let producer = tokio::spawn(publisher::run(pconn, plan, shared.clone()));
    tokio::time::sleep(common::secs(args.duration)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    join(producer, &mut errors, "producer").await;
    let seconds = started.elapsed().as_secs_f64();
    let published = shared.counters.published.load(Ordering::Relaxed);
    // Let the last messages arrive (at most 5 s).
    for _ in 0..500 {
        if shared.counters.consumed.load(Ordering::Relaxed) >= published {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let finish = probe.point();
    let _ = stop_tx.send(true);
    let mut lat = match join(consumer, &mut errors, "consumer").await {
        Some(ConsumerOutcome { latencies_ns, .. }) => latencies_ns,
        None => Vec::new(),
    };
    setup.queue_delete(1, QUEUE).await?;
    if let Err(e) = setup.close(Duration::from_secs(5)).await {
        errors.push(format!("setup connection: {e:#}"));
    }
    let consumed = shared.counters.consumed.load(Ordering::Relaxed);
    let cpu = common::broker_cpu(&begin, &finish);
    Ok(LatencyReport {
        broker: uri.address(),
        rate: args.rate,
        size: args.size,
        seconds: round3(seconds),
        published,
        consumed,
        p50_ms: ms(percentile(&mut lat, 50.0)),
        p90_ms: ms(percentile(&mut lat, 90.0)),
        p99_ms: ms(percentile(&mut lat, 99.0)),
        p999_ms: ms(percentile(&mut lat, 99.9)),
        max_ms: ms(lat.iter().copied().max()),
        broker_cpu_us_per_msg: cpu.map(|s| s * 1e6 / published.max(1) as f64),
        broker_cpu_percent: cpu.map(|s| s * 100.0 / seconds),
        broker_rss_mib_end: common::rss_mib(&finish),
        errors,
    })
}
