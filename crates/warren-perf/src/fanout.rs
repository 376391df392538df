//! The `fanout` scenario: one producer publishes to the fanout exchange `perf-fanout`, bound to
//! K queues, each read by its own auto-ack consumer connection.
//!
//! Reports the publish rate and the delivery rate summed over the queues (ideally K times it).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::client::Connection;
use crate::common::{self, CommonArgs, Outcome, Probe, opt};
use crate::consumer::{self, AckPolicy};
use crate::publisher::{self, PublishPlan};
use crate::stats::round3;
use crate::throughput::join;
use crate::uri::AmqpUri;

const EXCHANGE: &str = "perf-fanout";

/// Options of `warren-perf fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Connection, broker pid and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Queues bound to the exchange (one consumer connection each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub queues: u16,
    /// Body size in bytes.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Durable queues and persistent messages (every message stored once for all queues).
    #[arg(long)]
    pub persistent: bool,
    /// Publisher confirms with at most this many unconfirmed publishes.
    #[arg(long)]
    pub confirm: Option<u64>,
}

/// What a fan-out run measured.
#[derive(Debug, Default, Serialize)]
pub struct FanoutReport {
    /// The broker's `host:port`.
    pub broker: String,
    /// Bound queues.
    pub queues: u16,
    /// Body size.
    pub size: usize,
    /// Measured window, seconds.
    pub seconds: f64,
    /// Publishes per second.
    pub publish_rate: f64,
    /// Deliveries per second, summed over the queues.
    pub deliver_rate: f64,
    /// Broker CPU per delivered message, µs.
    pub broker_cpu_us_per_msg: Option<f64>,
    /// Broker CPU use, percent of one core.
    pub broker_cpu_percent: Option<f64>,
    /// Broker RSS at the end of the window, MiB.
    pub broker_rss_mib_end: Option<f64>,
    /// Messages left in the queues at the end.
    pub left_in_queues: u64,
    /// Errors from the workers.
    pub errors: Vec<String>,
}

impl Outcome for FanoutReport {
    fn line(&self) -> String {
        format!(
            "{} fanout 1→{} {} B {:.1} s: published {} msg/s, delivered {} msg/s, broker {}/msg CPU {} RSS {}, left in queues {}",
            self.broker,
            self.queues,
            self.size,
            self.seconds,
            round3(self.publish_rate),
            round3(self.deliver_rate),
            opt(self.broker_cpu_us_per_msg, " µs"),
            opt(self.broker_cpu_percent, "%"),
            opt(self.broker_rss_mib_end, " MiB"),
            self.left_in_queues,
        )
    }
    fn errors(&self) -> &[String] {
        &self.errors
    }
}

/// Runs the scenario.
pub async fn run(args: &FanoutArgs) -> anyhow::Result<FanoutReport> {
    let uri = AmqpUri::parse_with(&args.common.uri, &args.common.tls)?;
    let probe = Probe::new(args.common.broker_pid)?;
    let queues: Vec<String> = (0..args.queues)
        .map(|i| format!("perf-fanout-{i}"))
        .collect();
    let mut setup = Connection::open(&uri, "warren-perf setup").await?;
    setup.channel_open(1).await?;
    setup.exchange_declare(1, EXCHANGE, "fanout").await?;
    for q in &queues {
        setup.queue_declare(1, q, args.persistent).await?;
        setup.queue_purge(1, q).await?;
        setup.queue_bind(1, q, EXCHANGE).await?;
    }
    let shared = common::shared();
    let (stop_tx, stop_rx) = watch::channel(false);
    let ack = AckPolicy {
        manual: false,
        every: 1,
    };
    let mut consumers = Vec::with_capacity(queues.len());
    for (i, q) in queues.iter().enumerate() {
        let mut c = Connection::open(&uri, &format!("warren-perf consumer {i}")).await?;
        c.channel_open(1).await?;
        c.basic_consume(1, q, true).await?;
        consumers.push(c);
    }
    let mut pconn = Connection::open(&uri, "warren-perf producer").await?;
    pconn.channel_open(1).await?;
    if args.confirm.is_some() {
        pconn.confirm_select(1).await?;
    }
    let consumers: Vec<_> = consumers
        .into_iter()
        .map(|c| {
            tokio::spawn(consumer::run(
                c,
                ack,
                false,
                shared.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let plan = Arc::new(PublishPlan {
        exchange: EXCHANGE.to_owned(),
        queues: vec![String::new()],
        size: args.size,
        persistent: args.persistent,
        confirm_window: args.confirm,
        rate: None,
        limit: None,
    });
    let producer = tokio::spawn(publisher::run(pconn, plan, shared.clone()));
    // One second to warm up, then the window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c = &shared.counters;
    let begin = probe.point();
    let (p0, d0) = (
        c.published.load(Ordering::Relaxed),
        c.consumed.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    tokio::time::sleep(common::secs(args.duration)).await;
    let (p1, d1) = (
        c.published.load(Ordering::Relaxed),
        c.consumed.load(Ordering::Relaxed),
    );
    let seconds = started.elapsed().as_secs_f64();
    let finish = probe.point();
    shared.stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    join(producer, &mut errors, "producer").await;
    let _ = stop_tx.send(true);
    for c in consumers {
        join(c, &mut errors, "consumer").await;
    }
    let mut left = 0;
    for q in &queues {
        left += u64::from(setup.queue_delete(1, q).await?);
    }
    if let Err(e) = setup.close(Duration::from_secs(5)).await {
        errors.push(format!("setup connection: {e:#}"));
    }
    let cpu = common::broker_cpu(&begin, &finish);
    let delivered = d1 - d0;
    Ok(FanoutReport {
        broker: uri.address(),
        queues: args.queues,
        size: args.size,
        seconds: round3(seconds),
        publish_rate: (p1 - p0) as f64 / seconds,
        deliver_rate: delivered as f64 / seconds,
        broker_cpu_us_per_msg: cpu.map(|s| s * 1e6 / delivered.max(1) as f64),
        broker_cpu_percent: cpu.map(|s| s * 100.0 / seconds),
        broker_rss_mib_end: common::rss_mib(&finish),
        left_in_queues: left,
        errors,
    })
}
