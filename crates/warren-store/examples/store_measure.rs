//! Measures the sled store: write throughput, space after churn, recovery time.
//!
//! ```sh
//! cargo run --release -p warren-store --example store_measure              # everything, 1M scale
//! cargo run --release -p warren-store --example store_measure -- --scale 200000 --only b
//! ```
//!
//! Options: `--scale N` messages for (b) and (c) (default 1,000,000), `--runs N` (default 3),
//! `--only a|b|c|d`, `--dir PATH` (default: the system temp dir), `--cache-mib N` (sled's cache;
//! default [`SledOptions`]'), `--sizes 100,1024` (message sizes of (d)). Each run uses a fresh directory, removed afterwards.
//!
//! (a) 1 KiB messages, one `write` (Put + Enqueue) per message, `sync` every 1,000 messages;
//!     and the same with one `write` per 1,000 messages.
//! (b) `scale` 1 KiB messages written 100 per `write`, the oldest 90% removed (acked in FIFO
//!     order, 100 per `write`, `sync` every 1,000), then bytes on disk (as `du -sb`: apparent
//!     file sizes; `du -s` allocated blocks beside) per stored message: right after, per sled's
//!     `size_on_disk`, after closing and reopening, after more churn, and after
//!     [`warren_store::compact`] (its time, and the time to open the compacted store).
//! (c) `scale` 100-byte messages in one queue; close; time to reopen and to `load_queue`.
//! (d) the decision matrix of issue 16: for 100 B and 1 KiB, `scale` messages written 1,000
//!     per `write` with a `sync` per write and with none (sled's background flush only); the
//!     read-back rate (`visit_queue`); disk after removing 90 % and after removing all (store
//!     open, and 60 s later); and the process's resident memory once filled (sled's cache and
//!     page table plus the store's reference table), after a reopen, and when drained.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_store::{MessageOp, MessageStore, SledOptions, SledStore};

type Res<T> = Result<T, Box<dyn Error>>;

/// Bumped by every store call, watched by [`watchdog`].
static PROGRESS: AtomicU64 = AtomicU64::new(0);

fn tick() {
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// Exits when no store call completes for a minute: sled 0.34.7 can deadlock when a file
/// truncation queues behind log writes blocked on its segment accountant (sled PR #1269 fixed
/// it after 0.34.7). Better a clear exit than a hung measurement.
fn watchdog() {
    std::thread::spawn(|| {
        let mut last = PROGRESS.load(Ordering::Relaxed);
        let mut still = 0;
        loop {
            std::thread::sleep(Duration::from_secs(5));
            let now = PROGRESS.load(Ordering::Relaxed);
            still = if now == last { still + 5 } else { 0 };
            last = now;
            if still >= 60 {
                eprintln!("no store call completed for 60 s: sled deadlock; aborting");
                std::process::exit(2);
            }
        }
    });
}

struct Args {
    scale: u64,
    runs: usize,
    only: Option<String>,
    dir: PathBuf,
    cache_mib: Option<u64>,
    sizes: Vec<usize>,
}

impl Args {
    fn options(&self) -> SledOptions {
        // sled's own behaviour is measured: the store's online compaction stays off.
        let mut options = SledOptions {
            online_compaction: None,
            ..SledOptions::default()
        };
        if let Some(mib) = self.cache_mib {
            options.cache_capacity = mib << 20;
        }
        options
    }
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        scale: 1_000_000,
        runs: 3,
        only: None,
        dir: std::env::temp_dir(),
        cache_mib: None,
        sizes: vec![100, 1024],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scale" => args.scale = value.parse()?,
            "--runs" => args.runs = value.parse()?,
            "--only" => args.only = Some(value),
            "--dir" => args.dir = PathBuf::from(value),
            "--cache-mib" => args.cache_mib = Some(value.parse()?),
            "--sizes" => args.sizes = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(args)
}

/// A fresh directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(base: &Path, tag: &str, run: usize) -> Self {
        let path = base.join(format!(
            "warren-store-measure-{}-{tag}-{run}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Apparent size of every file under `dir`, as `du -sb` reports it.
fn du_sb(dir: &Path) -> Res<u64> {
    let mut total = std::fs::metadata(dir)?.len();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            du_sb(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Allocated size of every file under `dir`, as `du -s --block-size=1` reports it.
#[cfg(unix)]
fn du_alloc(dir: &Path) -> Res<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = std::fs::metadata(dir)?.blocks() * 512;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            du_alloc(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

#[cfg(not(unix))]
fn du_alloc(dir: &Path) -> Res<u64> {
    du_sb(dir)
}

/// Incompressible-looking payload bytes (xorshift), different per message.
fn payload(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn vq() -> (Bytes, Bytes) {
    (Bytes::from_static(b"/"), Bytes::from_static(b"measure"))
}

/// Writes `count` messages of `size` bytes, `per_write` messages per `write`, syncing every
/// `sync_every` messages. Returns the elapsed time.
fn fill(s: &SledStore, count: u64, size: usize, per_write: u64, sync_every: u64) -> Res<Duration> {
    let (vhost, queue) = vq();
    let started = Instant::now();
    let mut ops = Vec::with_capacity(2 * per_write as usize);
    for seq in 0..count {
        let id = s.next_message_id()?;
        ops.push(MessageOp::Put {
            id,
            message: payload(size, id),
        });
        ops.push(MessageOp::Enqueue {
            vhost: vhost.clone(),
            queue: queue.clone(),
            seq,
            id,
        });
        if (seq + 1) % per_write == 0 || seq + 1 == count {
            s.write(&ops)?;
            tick();
            ops.clear();
        }
        if (seq + 1) % sync_every == 0 || seq + 1 == count {
            s.sync()?;
            tick();
        }
    }
    Ok(started.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn measure_a(args: &Args) -> Res<()> {
    let count = 100_000u64;
    for per_write in [1u64, 1000] {
        let mut rates = Vec::new();
        for run in 0..args.runs {
            let dir = Scratch::new(&args.dir, "a", run);
            let s = SledStore::open_with(&dir.0, &args.options())?;
            let elapsed = fill(&s, count, 1024, per_write, 1000)?;
            let rate = count as f64 / elapsed.as_secs_f64();
            println!(
                "  (a) run {run}: {count} x 1 KiB, {per_write}/write, sync/1000: {elapsed:.2?} = {rate:.0} msg/s"
            );
            rates.push(rate);
        }
        let m = median(rates);
        println!(
            "(a) median {m:.0} msg/s = {:.1} MiB/s ({per_write} message(s) per write, sync every 1,000)",
            m * 1024.0 / 1048576.0
        );
    }
    Ok(())
}

/// Messages per `write` in (b): a queue's batch, as the broker's queue actor would write it.
const PER_WRITE_B: u64 = 100;

fn measure_b(args: &Args) -> Res<()> {
    let total = args.scale;
    let removed = total / 10 * 9;
    let kept = total - removed;
    let dir = Scratch::new(&args.dir, "b", 0);
    let s = SledStore::open_with(&dir.0, &args.options())?;
    let took = fill(&s, total, 1024, PER_WRITE_B, 1000)?;
    let full = du_sb(&dir.0)?;
    println!(
        "(b) wrote {total} x 1 KiB ({PER_WRITE_B}/write) in {took:.2?}: {full} bytes on disk = {:.0} B/msg",
        full as f64 / total as f64
    );
    let (vhost, queue) = vq();
    // Remove needs each entry's message id; fill enqueued seq 0.. in order.
    let ids: Vec<u64> = s.load_queue(&vhost, &queue)?.iter().map(|e| e.id).collect();
    let started = Instant::now();
    let mut ops = Vec::with_capacity(PER_WRITE_B as usize);
    for (seq, &id) in (0..removed).zip(&ids) {
        ops.push(MessageOp::Remove {
            vhost: vhost.clone(),
            queue: queue.clone(),
            seq,
            id,
        });
        if (seq + 1) % PER_WRITE_B == 0 || seq + 1 == removed {
            s.write(&ops)?;
            tick();
            ops.clear();
        }
        if (seq + 1) % 1000 == 0 {
            s.sync()?;
        }
    }
    s.sync()?;
    let took = started.elapsed();
    let after = du_sb(&dir.0)?;
    let per = |bytes: u64| bytes as f64 / kept as f64;
    println!("(b) removed {removed} (FIFO) in {took:.2?}; {kept} left");
    println!(
        "(b) after removes:          du -sb {after:>12} B = {:>8.0} B per stored message (du -s {} B)",
        per(after),
        du_alloc(&dir.0)?
    );
    let sled_says = s.size_on_disk()?;
    println!(
        "(b) sled size_on_disk:             {sled_says:>12} B = {:>8.0} B per stored message",
        per(sled_says)
    );
    drop(s);
    let closed = du_sb(&dir.0)?;
    println!(
        "(b) after close:            du -sb {closed:>12} B = {:>8.0} B per stored message",
        per(closed)
    );
    let started = Instant::now();
    let s = SledStore::open_with(&dir.0, &args.options())?;
    let opened = started.elapsed();
    s.sync()?;
    let reopened = du_sb(&dir.0)?;
    println!(
        "(b) after reopen ({opened:.2?}):   du -sb {reopened:>12} B = {:>8.0} B per stored message",
        per(reopened)
    );
    // sled cleans segments as new writes arrive: a little more traffic shows what it reclaims.
    let extra = (kept / 10).max(1000);
    let more = fill_more(&s, removed + kept, extra)?;
    let churned = du_sb(&dir.0)?;
    println!(
        "(b) after {extra} more put+remove ({more:.2?}): du -sb {churned:>12} B = {:>8.0} B per stored message",
        per(churned)
    );
    drop(s);
    let before = du_sb(&dir.0)?;
    let started = Instant::now();
    let report = warren_store::compact(&dir.0, &args.options())?;
    let took = started.elapsed();
    let compacted = du_sb(&dir.0)?;
    println!(
        "(b) compacted in {took:.2?} (copy+swap {:.2?}; {} records, {} live bytes): du -sb {before} -> {compacted} B = {:>8.0} B per stored message (du -s {} B)",
        report.elapsed,
        report.records,
        report.live_bytes,
        per(compacted),
        du_alloc(&dir.0)?
    );
    let started = Instant::now();
    let s = SledStore::open_with(&dir.0, &args.options())?;
    let opened = started.elapsed();
    let loaded = s.load_queue(b"/", b"measure")?.len();
    println!(
        "(b) compacted store opened in {opened:.2?}; {loaded} messages load; du -sb {} B",
        du_sb(&dir.0)?
    );
    println!("(b) payload is 1024 B per message");
    Ok(())
}

/// Puts and immediately removes `extra` more messages, to let sled's segment cleaner run.
fn fill_more(s: &SledStore, first_seq: u64, extra: u64) -> Res<Duration> {
    let (vhost, queue) = vq();
    let started = Instant::now();
    for seq in first_seq..first_seq + extra {
        let id = s.next_message_id()?;
        s.write(&[
            MessageOp::Put {
                id,
                message: payload(1024, id),
            },
            MessageOp::Enqueue {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq,
                id,
            },
        ])?;
        s.write(&[MessageOp::Remove {
            vhost: vhost.clone(),
            queue: queue.clone(),
            seq,
            id,
        }])?;
        tick();
        if seq % 1000 == 0 {
            s.sync()?;
        }
    }
    s.sync()?;
    Ok(started.elapsed())
}

fn measure_c(args: &Args) -> Res<()> {
    let count = args.scale;
    let dir = Scratch::new(&args.dir, "c", 0);
    {
        let s = SledStore::open_with(&dir.0, &args.options())?;
        let took = fill(&s, count, 100, 1000, 1000)?;
        println!(
            "(c) wrote {count} x 100 B (1000/write) in {took:.2?}; {} bytes on disk",
            du_sb(&dir.0)?
        );
    }
    let (mut opens, mut loads) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        let started = Instant::now();
        let s = SledStore::open_with(&dir.0, &args.options())?;
        let open = started.elapsed();
        let started = Instant::now();
        let entries = s.load_queue(b"/", b"measure")?;
        let load = started.elapsed();
        if entries.len() as u64 != count {
            return Err(format!("loaded {} of {count}", entries.len()).into());
        }
        println!("  (c) run {run}: open {open:.2?}, load_queue {load:.2?}");
        opens.push(open.as_secs_f64());
        loads.push(load.as_secs_f64());
    }
    println!(
        "(c) median open {:.2}s (rebuilds refcounts from the index), load_queue {:.2}s for {count} x 100 B",
        median(opens),
        median(loads)
    );
    // What the startup compaction policy sees for a store that only grew (no churn).
    let ratio = |s: &SledStore| -> Res<String> {
        let (disk, live) = (s.disk_bytes()?, s.live_bytes_at_open());
        Ok(format!(
            "files {disk} B, live {live} B, ratio {:.2}",
            disk as f64 / live.max(1) as f64
        ))
    };
    println!(
        "(c) as filled: {}",
        ratio(&SledStore::open_with(&dir.0, &args.options())?)?
    );
    let report = warren_store::compact(&dir.0, &args.options())?;
    println!(
        "(c) compacted in {:.2?}: {}",
        report.elapsed,
        ratio(&SledStore::open_with(&dir.0, &args.options())?)?
    );
    Ok(())
}

fn main() -> Res<()> {
    let args = parse_args()?;
    watchdog();
    let run = |part: &str| args.only.as_deref().is_none_or(|o| o == part);
    if run("a") {
        measure_a(&args)?;
    }
    if run("b") {
        measure_b(&args)?;
    }
    if run("c") {
        measure_c(&args)?;
    }
    if run("d") {
        measure_d(&args)?;
    }
    Ok(())
}

/// The process's resident memory, in MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Removes entries `from..to` of the measure queue (ids from `ids`), 1,000 per write, a sync
/// per write.
fn remove_range(s: &SledStore, ids: &[u64], from: u64, to: u64) -> Res<()> {
    let (vhost, queue) = vq();
    let mut ops = Vec::with_capacity(1000);
    for (seq, &id) in (from..to).zip(&ids[from as usize..]) {
        ops.push(MessageOp::Remove {
            vhost: vhost.clone(),
            queue: queue.clone(),
            seq,
            id,
        });
        if ops.len() == 1000 || seq + 1 == to {
            s.write(&ops)?;
            s.sync()?;
            tick();
            ops.clear();
        }
    }
    Ok(())
}

fn measure_d(args: &Args) -> Res<()> {
    let count = args.scale;
    for &size in &args.sizes {
        for synced in [true, false] {
            let dir = Scratch::new(&args.dir, &format!("d{size}{synced}"), 0);
            let rss0 = rss_mib();
            let s = SledStore::open_with(&dir.0, &args.options())?;
            let took = fill(&s, count, size, 1000, if synced { 1000 } else { u64::MAX })?;
            s.sync()?;
            let rate = count as f64 / took.as_secs_f64();
            let full = du_sb(&dir.0)?;
            let rss_full = rss_mib() - rss0;
            let live = count * (size as u64 + 9 + 40);
            println!(
                "(d) {size} B, sync {}: write {rate:.0} msg/s = {:.1} MiB/s; disk full {:.0} MiB ({:.2}x key+value bytes); RSS +{rss_full:.0} MiB",
                if synced { "every 1,000" } else { "never" },
                rate * size as f64 / 1048576.0,
                full as f64 / 1048576.0,
                full as f64 / live as f64
            );
            if !synced {
                continue;
            }
            drop(s);
            let s = SledStore::open_with(&dir.0, &args.options())?;
            let (vhost, queue) = vq();
            let started = Instant::now();
            let mut ids = Vec::with_capacity(count as usize);
            s.visit_queue(&vhost, &queue, &mut |e| {
                ids.push(e.id);
                Ok(())
            })?;
            let read = started.elapsed();
            println!(
                "(d) {size} B: reopened, read back {} in {read:.2?} = {:.0} msg/s; RSS +{:.0} MiB",
                ids.len(),
                ids.len() as f64 / read.as_secs_f64(),
                rss_mib() - rss0
            );
            let ninety = count / 10 * 9;
            remove_range(&s, &ids, 0, ninety)?;
            let after90 = du_sb(&dir.0)?;
            remove_range(&s, &ids, ninety, count)?;
            let after_all = du_sb(&dir.0)?;
            // The watchdog counts store calls: tick while waiting.
            for _ in 0..60 {
                std::thread::sleep(Duration::from_secs(1));
                tick();
            }
            let later = du_sb(&dir.0)?;
            println!(
                "(d) {size} B: disk after removing 90 % {:.0} MiB ({:.0} B per remaining message), all {:.0} MiB, 60 s later {:.0} MiB; RSS +{:.0} MiB",
                after90 as f64 / 1048576.0,
                after90 as f64 / (count - ninety).max(1) as f64,
                after_all as f64 / 1048576.0,
                later as f64 / 1048576.0,
                rss_mib() - rss0
            );
        }
    }
    Ok(())
}
