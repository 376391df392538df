//! The `backlog` scenario: fill one queue that has no consumer with N messages (confirm window
//! 1000), measure the broker's RSS per queued message, then drain it with one consumer.
//!
//! The drain consumer uses manual acks (prefetch 1000, `multiple` every 100).

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

const QUEUE: &str = "perf-backlog";
/// Give up on a phase after this long.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

/// Options of `warren-perf backlog`.
#[derive(Debug, Clone, clap::Args)]
pub struct BacklogArgs {
    /// Connection, broker pid and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Messages to queue.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Durable queue and persistent messages.
    #[arg(long)]
    pub persistent: bool,
    /// Stop after the fill and leave the messages in the queue (to measure a broker's
    /// recovery of them after a restart); no drain, the queue is not deleted.
    #[arg(long)]
    pub fill_only: bool,
    /// No fill: drain what the queue already holds (e.g. after a restart over a filled
    /// store, to measure how fast a recovered backlog is consumed).
    #[arg(long, conflicts_with = "fill_only")]
    pub drain_only: bool,
}

/// What a backlog run measured.
#[derive(Debug, Default, Serialize)]
pub struct BacklogReport {
    /// The broker's `host:port`.
    pub broker: String,
    /// Messages published (and confirmed).
    pub messages: u64,
    /// Body size.
    pub size: usize,
    /// Persistent messages in a durable queue.
    pub persistent: bool,
    /// Messages the queue held after the fill (queue.declare-ok).
    pub queued: u64,
    /// Fill time, seconds.
    pub fill_seconds: f64,
    /// Confirmed publishes per second.
    pub fill_rate: f64,
    /// Broker CPU per message during the fill, µs.
    pub fill_cpu_us_per_msg: Option<f64>,
    /// Broker RSS before the fill, MiB.
    pub rss_mib_before: Option<f64>,
    /// Broker RSS after the fill, MiB.
    pub rss_mib_full: Option<f64>,
    /// (RSS after fill − RSS before) / messages, bytes.
    pub rss_bytes_per_msg: Option<f64>,
    /// Drain time, seconds.
    pub drain_seconds: f64,
    /// Messages received per second while draining.
    pub drain_rate: f64,
    /// Broker CPU per message during the drain, µs.
    pub drain_cpu_us_per_msg: Option<f64>,
    /// Broker RSS after the drain, MiB.
    pub rss_mib_drained: Option<f64>,
    /// `connection.blocked` notifications the producer received during the fill.
    pub blocked: u64,
    /// Errors from the workers.
    pub errors: Vec<String>,
}

impl Outcome for BacklogReport {
    fn line(&self) -> String {
        format!(
            "{} backlog {} × {} B{}: fill {} msg/s ({:.1} s, {}/msg), RSS {} → {} ({} B/msg), drain {} msg/s ({:.1} s, {}/msg), RSS after drain {}, blocked {} times",
            self.broker,
            self.messages,
            self.size,
            if self.persistent { " persistent" } else { "" },
            round3(self.fill_rate),
            self.fill_seconds,
            opt(self.fill_cpu_us_per_msg, " µs"),
            opt(self.rss_mib_before, " MiB"),
            opt(self.rss_mib_full, " MiB"),
            opt(self.rss_bytes_per_msg, ""),
            round3(self.drain_rate),
            self.drain_seconds,
            opt(self.drain_cpu_us_per_msg, " µs"),
            opt(self.rss_mib_drained, " MiB"),
            self.blocked,
        )
    }
    fn errors(&self) -> &[String] {
        &self.errors
    }
}

/// Runs the scenario.
pub async fn run(args: &BacklogArgs) -> anyhow::Result<BacklogReport> {
    let uri = AmqpUri::parse_with(&args.common.uri, &args.common.tls)?;
    let probe = Probe::new(args.common.broker_pid)?;
    let mut setup = Connection::open(&uri, "warren-perf setup").await?;
    setup.channel_open(1).await?;
    setup.queue_declare(1, QUEUE, args.persistent).await?;
    if !args.drain_only {
        setup.queue_purge(1, QUEUE).await?;
    }
    let shared = common::shared();
    let mut errors = Vec::new();

    // Fill.
    let mut pconn = Connection::open(&uri, "warren-perf producer").await?;
    pconn.channel_open(1).await?;
    pconn.confirm_select(1).await?;
    let plan = Arc::new(PublishPlan {
        exchange: String::new(),
        queues: vec![QUEUE.to_owned()],
        size: args.size,
        persistent: args.persistent,
        confirm_window: Some(1000),
        rate: None,
        limit: Some(args.messages),
    });
    let before = probe.point();
    let started = Instant::now();
    if args.drain_only {
        // Nothing to publish: the fill phase measures nothing.
    } else {
        match tokio::time::timeout(
            PHASE_LIMIT,
            tokio::spawn(publisher::run(pconn, plan, shared.clone())),
        )
        .await
        {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => errors.push(format!("producer: {e:#}")),
            Ok(Err(e)) => errors.push(format!("producer task: {e}")),
            Err(_) => errors.push(format!("fill did not finish within {PHASE_LIMIT:?}")),
        }
    }
    let fill_seconds = started.elapsed().as_secs_f64();
    let full = probe.point();
    let confirmed = shared.counters.confirmed.load(Ordering::Relaxed);
    let queued = u64::from(setup.queue_declare(1, QUEUE, args.persistent).await?);
    let per_msg = |cpu: Option<f64>, n: u64| cpu.map(|s| s * 1e6 / n.max(1) as f64);
    let filled = BacklogReport {
        broker: uri.address(),
        messages: confirmed,
        size: args.size,
        persistent: args.persistent,
        queued,
        fill_seconds: round3(fill_seconds),
        fill_rate: confirmed as f64 / fill_seconds,
        fill_cpu_us_per_msg: per_msg(common::broker_cpu(&before, &full), confirmed),
        rss_mib_before: common::rss_mib(&before),
        rss_mib_full: common::rss_mib(&full),
        rss_bytes_per_msg: before
            .broker_rss
            .zip(full.broker_rss)
            .map(|(a, b)| (b as f64 - a as f64) / confirmed.max(1) as f64),
        blocked: shared.counters.blocked.load(Ordering::Relaxed),
        ..Default::default()
    };
    if args.fill_only {
        if let Err(e) = setup.close(Duration::from_secs(5)).await {
            errors.push(format!("setup connection: {e:#}"));
        }
        return Ok(BacklogReport { errors, ..filled });
    }

    // Drain.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut cconn = Connection::open(&uri, "warren-perf consumer").await?;
    cconn.channel_open(1).await?;
    cconn.basic_qos(1, 1000).await?;
    let drain_begin = probe.point();
    let started = Instant::now();
    cconn.basic_consume(1, QUEUE, false).await?;
    let ack = AckPolicy {
        manual: true,
        every: 100,
    };
    let consumer = tokio::spawn(consumer::run(cconn, ack, false, shared.clone(), stop_rx));
    let (mut last, mut last_progress) = (0, Instant::now());
    loop {
        let got = shared.counters.consumed.load(Ordering::Relaxed);
        if got >= queued {
            break;
        }
        if got > last {
            (last, last_progress) = (got, Instant::now());
        } else if last_progress.elapsed() > Duration::from_secs(10) {
            errors.push(format!("drain stalled at {got} of {queued} for 10 s"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    let drained = shared.counters.consumed.load(Ordering::Relaxed);
    let drain_end = probe.point();
    let _ = stop_tx.send(true);
    join(consumer, &mut errors, "consumer").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = probe.point();
    setup.queue_delete(1, QUEUE).await?;
    if let Err(e) = setup.close(Duration::from_secs(5)).await {
        errors.push(format!("setup connection: {e:#}"));
    }
    Ok(BacklogReport {
        drain_seconds: round3(drain_seconds),
        drain_rate: drained as f64 / drain_seconds,
        drain_cpu_us_per_msg: per_msg(common::broker_cpu(&drain_begin, &drain_end), drained),
        rss_mib_drained: common::rss_mib(&after),
        errors,
        ..filled
    })
}
