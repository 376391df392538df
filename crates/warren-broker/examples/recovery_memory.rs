//! Where a recovering broker's memory goes: opens a (stopped) Warren data directory and
//! recovers it in-process, printing time and resident memory after each phase.
//!
//! ```sh
//! cargo run --release -p warren-broker --example recovery_memory -- DATA_DIR [CACHE_MIB]
//! ```
//!
//! `CACHE_MIB` is sled's cache (default: `SledOptions`' default). Linux only (reads
//! `/proc/self/status`).

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use warren_broker::Broker;
use warren_store::{MessageStore, SledOptions, SledStore};

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or("?".to_owned(), |kb| format!("{:.0}", kb / 1024.0))
    };
    format!("RSS {} MiB (peak {} MiB)", field("VmRSS:"), field("VmHWM:"))
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: recovery_memory DATA_DIR [CACHE_MIB]")?,
    );
    let mut options = SledOptions::default();
    if let Some(mib) = args.next() {
        options.cache_capacity = mib.parse::<u64>()? << 20;
    }
    println!("start: {}", rss());
    let started = Instant::now();
    let store = SledStore::open_with(&dir, &options)?;
    let stats = store.stats();
    println!(
        "store opened in {:.2?} ({} messages, {} entries): {}",
        started.elapsed(),
        stats.messages,
        stats.queue_entries,
        rss()
    );
    let broker = Broker::with_store(Arc::new(store));
    let started = Instant::now();
    let found = broker.recover()?;
    println!(
        "recovered {} messages in {:.2?}: {}",
        found.messages,
        started.elapsed(),
        rss()
    );
    drop(broker);
    println!("broker and store dropped: {}", rss());
    Ok(())
}
