//! `warren-netfuzz`: attacks a running AMQP 0-9-1 broker over TCP and judges how it copes.
//!
//! One idea: a hostile network. It starts the real `warren` binary (or targets `--addr`), measures
//! a well-behaved client alone (the baseline), then runs `--attackers` connections doing hostile
//! things (mutated frames, truncations, huge sizes, interleaved channels, random bytes, slow
//! writers, slow readers, half-open handshakes; see `attack.rs`) for `--duration` seconds while
//! the same client runs again. It fails when the broker dies or logs a panic, when a probe
//! connection does not complete a handshake and a round trip within `--probe-bound-ms`, when the
//! broker's resident memory passes `--rss-limit-mib`, or when the good client's throughput under
//! attack falls below `--min-throughput-ratio` of its baseline. Every episode's bytes come from
//! `(seed, attacker, episode)`; `--replay` runs one episode alone.

mod amqp;
mod attack;
mod broker;
mod good;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use broker::Broker;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Attack an AMQP broker over TCP; check it lives, answers, stays small"
)]
struct Args {
    /// The `warren` binary to start (ignored with --addr).
    #[arg(long, default_value = "target/release/warren")]
    binary: PathBuf,
    /// Attack the broker at this address instead of starting one (no RSS or panic checks).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Seed of every episode (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Length of the attack, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Length of the good client's run without attackers, in seconds.
    #[arg(long, default_value_t = 10)]
    baseline: u64,
    /// Attacker connections at once.
    #[arg(long, default_value_t = 24)]
    attackers: u64,
    /// The broker's resident memory may not pass this (MiB).
    #[arg(long, default_value_t = 512)]
    rss_limit_mib: u64,
    /// A probe must complete within this (milliseconds).
    #[arg(long, default_value_t = 5000)]
    probe_bound_ms: u64,
    /// The good client's throughput under attack, as a fraction of its baseline, may not fall
    /// below this.
    #[arg(long, default_value_t = 0.1)]
    min_throughput_ratio: f64,
    /// Runs one episode alone: SEED:ATTACKER:EPISODE, as printed by a failing run.
    #[arg(long)]
    replay: Option<String>,
    /// Where the broker's data directory and log go.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut broker = match args.addr {
        Some(addr) => Broker::external(addr),
        None => Broker::start(&args.binary, &args.work_dir, &[])?,
    };
    let result = match &args.replay {
        Some(spec) => replay(&mut broker, spec, &args).await,
        None => run(&mut broker, &args).await,
    };
    broker.stop();
    result
}

/// Runs one episode alone, then checks the broker.
async fn replay(broker: &mut Broker, spec: &str, args: &Args) -> anyhow::Result<()> {
    let parts: Vec<u64> = spec
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("--replay wants SEED:ATTACKER:EPISODE")?;
    let [seed, attacker, episode] = parts[..] else {
        bail!("--replay wants SEED:ATTACKER:EPISODE");
    };
    let mut rng = attack::episode_rng(seed, attacker, episode);
    let kind = attack::run_episode(broker.addr, &mut rng, attacker).await;
    println!("replayed {spec}: {kind:?}");
    let probe = good::probe(broker.addr, Duration::from_millis(args.probe_bound_ms)).await;
    judge_end(broker, probe.err().map(|e| e.to_string()))
}

/// What the monitor saw during the attack.
#[derive(Default)]
struct Watch {
    rss_max: AtomicU64,
    fds_max: AtomicU64,
    probes: AtomicU64,
    probe_max_us: AtomicU64,
    failure: std::sync::Mutex<Option<String>>,
}

impl Watch {
    fn fail(&self, why: String) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some(why);
        }
    }
}

async fn run(broker: &mut Broker, args: &Args) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("seed: {seed}");
    let addr = broker.addr;
    let rss_start = broker.rss_bytes().unwrap_or(0);

    let base = good::client(addr, Duration::from_secs(args.baseline), "base")
        .await
        .context("the good client failed without attackers")?;
    let rss_after_base = broker.rss_bytes().unwrap_or(0);

    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let stop = Arc::new(AtomicBool::new(false));
    let episodes: Arc<std::sync::Mutex<BTreeMap<String, u64>>> = Arc::default();
    let mut attackers = tokio::task::JoinSet::new();
    for a in 0..args.attackers {
        let (stop, episodes) = (stop.clone(), episodes.clone());
        attackers.spawn(async move {
            let mut episode = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut rng = attack::episode_rng(seed, a, episode);
                let kind = attack::run_episode(addr, &mut rng, a).await;
                if let Ok(mut e) = episodes.lock() {
                    *e.entry(format!("{kind:?}")).or_default() += 1;
                }
                episode += 1;
            }
        });
    }
    let good = tokio::spawn(good::client(
        addr,
        Duration::from_secs(args.duration),
        "attacked",
    ));

    let watch = Arc::new(Watch::default());
    let bound = Duration::from_millis(args.probe_bound_ms);
    let mut next_probe = Instant::now();
    let mut probe: Option<tokio::task::JoinHandle<anyhow::Result<Duration>>> = None;
    while Instant::now() < deadline {
        if let Some(why) = broker.died() {
            watch.fail(format!("the broker died: {why}"));
            break;
        }
        if let Some(rss) = broker.rss_bytes() {
            watch.rss_max.fetch_max(rss, Ordering::Relaxed);
        }
        if let Some(fds) = broker.open_fds() {
            watch.fds_max.fetch_max(fds as u64, Ordering::Relaxed);
        }
        if let Some(p) = &probe
            && p.is_finished()
            && let Some(p) = probe.take()
        {
            match p.await {
                Ok(Ok(took)) => {
                    watch.probes.fetch_add(1, Ordering::Relaxed);
                    watch
                        .probe_max_us
                        .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
                }
                Ok(Err(e)) => watch.fail(format!("a probe failed: {e:#}")),
                Err(e) => watch.fail(format!("a probe task failed: {e}")),
            }
        }
        if probe.is_none() && Instant::now() >= next_probe {
            probe = Some(tokio::spawn(good::probe(addr, bound)));
            next_probe = Instant::now() + Duration::from_secs(1);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let attacked = good.await?;
    while attackers.join_next().await.is_some() {}
    if let Some(p) = probe
        && let Ok(Err(e)) = p.await
    {
        watch.fail(format!("a probe failed: {e:#}"));
    }
    // Once the attackers are gone the broker must come back down (their connections closed).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_end = broker.rss_bytes().unwrap_or(0);
    let fds_end = broker.open_fds().unwrap_or(0);

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let total: u64 = episodes.lock().map(|e| e.values().sum()).unwrap_or(0);
    println!("attackers: {} for {} s", args.attackers, args.duration);
    println!("attack connections: {total}");
    if let Ok(e) = episodes.lock() {
        for (kind, n) in e.iter() {
            println!("  {kind}: {n}");
        }
    }
    println!(
        "probes: {} completed, slowest {:.1} ms (bound {} ms)",
        watch.probes.load(Ordering::Relaxed),
        watch.probe_max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        args.probe_bound_ms
    );
    println!(
        "broker RSS: start {:.1} MiB, after baseline {:.1} MiB, max under attack {:.1} MiB, \
         2 s after {:.1} MiB (limit {} MiB)",
        mib(rss_start),
        mib(rss_after_base),
        mib(watch.rss_max.load(Ordering::Relaxed)),
        mib(rss_end),
        args.rss_limit_mib
    );
    println!(
        "broker fds: max under attack {}, 2 s after {fds_end}",
        watch.fds_max.load(Ordering::Relaxed)
    );
    println!(
        "good client alone:        {:>9.0} msg/s, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        base.rate(),
        base.latency_ms(50.0),
        base.latency_ms(99.0),
        base.latency_ms(100.0)
    );
    let mut failures = Vec::new();
    match &attacked {
        Ok(f) => {
            let ratio = f.rate() / base.rate().max(1e-9);
            println!(
                "good client under attack: {:>9.0} msg/s, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms (throughput ratio {ratio:.2})",
                f.rate(),
                f.latency_ms(50.0),
                f.latency_ms(99.0),
                f.latency_ms(100.0)
            );
            if ratio < args.min_throughput_ratio {
                failures.push(format!(
                    "the good client's throughput fell to {ratio:.2} of its baseline"
                ));
            }
        }
        Err(e) => failures.push(format!("the good client failed under attack: {e:#}")),
    }
    if let Some(f) = watch.failure.lock().ok().and_then(|mut f| f.take()) {
        failures.push(f);
    }
    let rss_max = watch.rss_max.load(Ordering::Relaxed);
    if rss_max > args.rss_limit_mib * 1024 * 1024 {
        failures.push(format!("the broker's RSS reached {:.1} MiB", mib(rss_max)));
    }
    let probe = good::probe(addr, bound).await;
    if let Err(e) = judge_end(broker, probe.err().map(|e| format!("{e:#}"))) {
        failures.push(format!("{e:#}"));
    }
    if failures.is_empty() {
        println!("netfuzz: passed (seed {seed})");
        Ok(())
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
        println!("replay an episode with --seed {seed} or --replay {seed}:ATTACKER:EPISODE");
        bail!(
            "netfuzz found {} problem(s) with seed {seed}",
            failures.len()
        )
    }
}

/// After the attack: the broker is alive, logged no panic, and answers a last probe.
fn judge_end(broker: &mut Broker, probe_failure: Option<String>) -> anyhow::Result<()> {
    if let Some(why) = broker.died() {
        bail!("the broker died: {why}");
    }
    let panics = broker.panics();
    if !panics.is_empty() {
        bail!("the broker panicked: {}", panics.join(" | "));
    }
    if let Some(e) = probe_failure {
        bail!("the last probe failed: {e}");
    }
    Ok(())
}
