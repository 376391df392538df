//! The `throughput` scenario: P producers and C consumers over Q queues for a fixed time.
//!
//! Owns the run's shape: declare (and purge) the queues, open every connection before anyone
//! publishes, measure a fixed window with 1-second samples of the shared counters and of the
//! broker's `/proc` figures, then stop everyone, delete the queues and build the [`Report`]. The
//! loops themselves are in `publisher` and `consumer`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::client::Connection;
use crate::consumer::{self, AckPolicy, ConsumerOutcome};
use crate::procstat;
use crate::publisher::{self, PublishPlan};
use crate::report::Report;
use crate::stats::{median, percentile};
use crate::uri::AmqpUri;

/// Options of `warren-perf throughput`.
#[derive(Debug, Clone, clap::Args)]
pub struct ThroughputArgs {
    /// Broker to load, as an AMQP URI (`amqps://` for TLS, with --cacert).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// TLS options for an `amqps://` URI.
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Producer connections (one channel each).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer connections (one channel each; consumer i reads queue i mod Q).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Queues, named `<prefix>0`, `<prefix>1`, ...
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub queues: u16,
    /// Queue name prefix.
    #[arg(long, default_value = "perf-q-")]
    pub queue_prefix: String,
    /// Message body size in bytes (the first 8 carry the send time when size ≥ 8).
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Publish with confirms, at most this many unconfirmed per producer.
    #[arg(long, value_name = "WINDOW", value_parser = clap::value_parser!(u64).range(1..))]
    pub confirm: Option<u64>,
    /// Durable queues and persistent (delivery mode 2) messages.
    #[arg(long)]
    pub persistent: bool,
    /// Consume with manual acks (default: auto-ack).
    #[arg(long)]
    pub manual_ack: bool,
    /// Prefetch count per consumer channel, with --manual-ack (0: unlimited).
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u16,
    /// With --manual-ack, ack with multiple=true every this many messages (capped at prefetch).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub multi_ack: u64,
    /// Broker process id: report its CPU time per message and RSS from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Leave the queues (and what is left in them) after the run.
    #[arg(long)]
    pub keep_queues: bool,
    /// Print the report as JSON instead of one line.
    #[arg(long)]
    pub json: bool,
}

/// The counters every worker adds to.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages written by producers.
    pub published: AtomicU64,
    /// Publishes acked.
    pub confirmed: AtomicU64,
    /// Publishes nacked.
    pub nacked: AtomicU64,
    /// Messages received by consumers.
    pub consumed: AtomicU64,
    /// `connection.blocked` received.
    pub blocked: AtomicU64,
    /// Longest wait, in microseconds, between two consecutive confirm batches a producer read
    /// (a broker pause, such as the store's compaction swap, shows here).
    pub confirm_gap_max_us: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 4] {
        [
            self.published.load(Ordering::Relaxed),
            self.consumed.load(Ordering::Relaxed),
            self.confirmed.load(Ordering::Relaxed),
            self.nacked.load(Ordering::Relaxed),
        ]
    }
}

/// State shared by the run and its workers.
#[derive(Debug)]
pub struct Shared {
    /// The counters.
    pub counters: Counters,
    /// Set when producers must stop.
    pub stop: AtomicBool,
    /// The clock timestamps in message bodies count from.
    pub t0: Instant,
}

/// CPU and memory of one process at one instant.
pub struct ProcPoint {
    /// Broker CPU time.
    pub broker_cpu: Option<Duration>,
    /// Broker RSS in bytes.
    pub broker_rss: Option<u64>,
    /// warren-perf's CPU time.
    pub own_cpu: Option<Duration>,
}

/// The broker's and warren-perf's figures now.
pub fn proc_point(broker: Option<&str>, ticks: u64) -> ProcPoint {
    ProcPoint {
        broker_cpu: broker.and_then(|p| procstat::cpu_time(p, ticks).ok()),
        broker_rss: broker.and_then(|p| procstat::rss_bytes(p).ok()),
        own_cpu: procstat::cpu_time("self", ticks).ok(),
    }
}

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// Runs the scenario and returns its report.
pub async fn run(args: &ThroughputArgs) -> anyhow::Result<Report> {
    let uri = AmqpUri::parse_with(&args.uri, &args.tls)?;
    let queues: Vec<String> = (0..args.queues)
        .map(|i| format!("{}{i}", args.queue_prefix))
        .collect();
    let broker_pid = args.broker_pid.map(|p| p.to_string());
    if let Some(pid) = &broker_pid {
        procstat::cpu_time(pid, 100).with_context(|| format!("--broker-pid {pid}"))?;
    }
    let ticks = procstat::clock_ticks();

    let mut setup = Connection::open(&uri, "warren-perf setup").await?;
    setup.channel_open(1).await?;
    for q in &queues {
        setup.queue_declare(1, q, args.persistent).await?;
        setup.queue_purge(1, q).await?;
    }

    let shared = Arc::new(Shared {
        counters: Counters::default(),
        stop: AtomicBool::new(false),
        t0: Instant::now(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let multi_ack = if args.prefetch > 0 {
        args.multi_ack.min(u64::from(args.prefetch))
    } else {
        args.multi_ack
    };
    let ack = AckPolicy {
        manual: args.manual_ack,
        every: multi_ack,
    };
    let mut consumer_conns = Vec::with_capacity(args.consumers);
    for c in 0..args.consumers {
        let mut conn = Connection::open(&uri, &format!("warren-perf consumer {c}")).await?;
        conn.channel_open(1).await?;
        if args.manual_ack {
            conn.basic_qos(1, args.prefetch).await?;
        }
        conn.basic_consume(1, &queues[c % queues.len()], !args.manual_ack)
            .await?;
        consumer_conns.push(conn);
    }
    let mut producer_conns = Vec::with_capacity(args.producers);
    for p in 0..args.producers {
        let mut conn = Connection::open(&uri, &format!("warren-perf producer {p}")).await?;
        conn.channel_open(1).await?;
        if args.confirm.is_some() {
            conn.confirm_select(1).await?;
        }
        producer_conns.push(conn);
    }

    let consumers: Vec<_> = consumer_conns
        .into_iter()
        .map(|conn| {
            tokio::spawn(consumer::run(
                conn,
                ack,
                false,
                shared.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let plan = Arc::new(PublishPlan {
        exchange: String::new(),
        queues: queues.clone(),
        size: args.size,
        persistent: args.persistent,
        confirm_window: args.confirm,
        rate: None,
        limit: None,
    });
    let producers: Vec<_> = producer_conns
        .into_iter()
        .map(|conn| tokio::spawn(publisher::run(conn, plan.clone(), shared.clone())))
        .collect();

    // The measured window.
    let begin = proc_point(broker_pid.as_deref(), ticks);
    let base = shared.counters.snapshot();
    let started = Instant::now();
    let mut publish_samples = Vec::new();
    let mut consume_samples = Vec::new();
    let mut rss_max = begin.broker_rss;
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let (mut prev, mut prev_at) = (base, started);
    for _ in 0..args.duration {
        ticker.tick().await;
        let now = shared.counters.snapshot();
        let at = Instant::now();
        let dt = at.duration_since(prev_at).as_secs_f64();
        publish_samples.push((now[0] - prev[0]) as f64 / dt);
        consume_samples.push((now[1] - prev[1]) as f64 / dt);
        if let Some(pid) = &broker_pid {
            if let Ok(rss) = procstat::rss_bytes(pid) {
                rss_max = rss_max.max(Some(rss));
            }
        }
        (prev, prev_at) = (now, at);
    }
    let end = shared.counters.snapshot();
    let seconds = started.elapsed().as_secs_f64();
    let finish = proc_point(broker_pid.as_deref(), ticks);

    shared.stop.store(true, Ordering::Relaxed);
    // The consumers stop after the producers, so that what is in flight is still drained.
    let mut errors = Vec::new();
    for p in producers {
        join(p, &mut errors, "producer").await;
    }
    let _ = stop_tx.send(true);
    let mut latencies = Vec::new();
    for c in consumers {
        if let Some(ConsumerOutcome { latencies_ns, .. }) = join(c, &mut errors, "consumer").await {
            latencies.extend(latencies_ns);
        }
    }

    let mut left = None;
    if !args.keep_queues {
        let mut n = 0u64;
        for q in &queues {
            n += u64::from(setup.queue_delete(1, q).await?);
        }
        left = Some(n);
    }
    if let Err(e) = setup.close(Duration::from_secs(5)).await {
        errors.push(format!("setup connection: {e:#}"));
    }

    let [published, consumed, confirmed, nacked] =
        [0, 1, 2, 3].map(|i| end[i].saturating_sub(base[i]));
    let messages = published.max(consumed).max(1) as f64;
    let cpu =
        |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| (b - a).as_secs_f64());
    let broker_cpu = cpu(begin.broker_cpu, finish.broker_cpu);
    let own_cpu = cpu(begin.own_cpu, finish.own_cpu);
    let ms = |ns: Option<u64>| ns.map(|n| n as f64 / 1e6);
    Ok(Report {
        broker: uri.address(),
        producers: args.producers,
        consumers: args.consumers,
        queues: queues.len(),
        size: args.size,
        confirm: args.confirm,
        persistent: args.persistent,
        manual_ack: args.manual_ack,
        prefetch: args.manual_ack.then_some(args.prefetch),
        multi_ack: args.manual_ack.then_some(multi_ack),
        seconds,
        published,
        consumed,
        confirmed,
        nacked,
        publish_rate: published as f64 / seconds,
        publish_rate_median: median(&publish_samples).unwrap_or(0.0),
        consume_rate: consumed as f64 / seconds,
        consume_rate_median: median(&consume_samples).unwrap_or(0.0),
        publish_samples,
        consume_samples,
        latency_p50_ms: ms(percentile(&mut latencies, 50.0)),
        latency_p99_ms: ms(percentile(&mut latencies, 99.0)),
        broker_cpu_us_per_msg: broker_cpu.map(|s| s * 1e6 / messages),
        broker_cpu_percent: broker_cpu.map(|s| s * 100.0 / seconds),
        broker_rss_mib_start: begin.broker_rss.map(|b| b as f64 / MIB),
        broker_rss_mib_end: finish.broker_rss.map(|b| b as f64 / MIB),
        broker_rss_mib_max: rss_max.map(|b| b as f64 / MIB),
        perf_cpu_us_per_msg: own_cpu.map(|s| s * 1e6 / messages),
        perf_cpu_percent: own_cpu.map(|s| s * 100.0 / seconds),
        left_in_queues: left,
        blocked: shared.counters.blocked.load(Ordering::Relaxed),
        confirm_gap_max_ms: (confirmed + nacked > 0)
            .then(|| shared.counters.confirm_gap_max_us.load(Ordering::Relaxed) as f64 / 1000.0),
        errors,
    })
}

/// Waits up to 30 s for a worker, recording its error (or its hanging) in `errors`.
pub async fn join<T>(
    task: tokio::task::JoinHandle<anyhow::Result<T>>,
    errors: &mut Vec<String>,
    who: &str,
) -> Option<T> {
    let abort = task.abort_handle();
    match tokio::time::timeout(Duration::from_secs(30), task).await {
        Ok(Ok(Ok(t))) => Some(t),
        Ok(Ok(Err(e))) => {
            errors.push(format!("{who}: {e:#}"));
            None
        }
        Ok(Err(e)) => {
            errors.push(format!("{who} task: {e}"));
            None
        }
        Err(_) => {
            abort.abort();
            errors.push(format!("{who}: did not finish within 30 s of the stop"));
            None
        }
    }
}
