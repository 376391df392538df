//! Measures what opening a sled 0.34 database costs in memory as a function of its number of
//! records, for the same messages stored two ways: as the store keeps them today (two records
//! per message: the message bytes and one queue index entry) and packed (several messages per
//! record, and several index entries per record). sled splits a leaf above 16 records and keeps
//! a page-table entry per node, so its open state should follow the record count rather than
//! the bytes. The figures are in `docs/decisions.md` ("A restart's 300 MiB ...").
//!
//! ```sh
//! cargo run --release -p warren-store --example sled_records -- fill DIR MESSAGES BODY MPACK IPACK
//! cargo run --release -p warren-store --example sled_records -- open DIR
//! ```
//!
//! `fill` writes `MESSAGES` messages of `BODY` bytes into a new database in `DIR`, `MPACK`
//! messages per record and `IPACK` index entries per record (1 and 1: as the store did up to
//! format 3), flushes and exits. `open` opens it with the store's
//! default cache (64 MiB), reads one key, and prints the time and the process's RSS (current
//! and peak) from `/proc/self/status`. Run `open` in a fresh process: RSS is the process's.

use std::error::Error;
use std::path::Path;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

/// The store's default sled cache (`SledOptions::default`).
const CACHE: u64 = 64 << 20;
/// An index prefix as the store writes it: `len, vhost, len, queue`.
const PREFIX: &[u8] = b"\x01/\x01q";

fn open(dir: &Path) -> Res<sled::Db> {
    Ok(sled::Config::new().path(dir).cache_capacity(CACHE).open()?)
}

fn key(tag: u8, prefix: &[u8], n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + prefix.len() + 8);
    k.push(tag);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// Packs `count` values starting at `first`: per value a slot byte, a length and the bytes.
fn block(first: u64, count: u64, value: impl Fn(u64) -> Vec<u8>) -> Vec<u8> {
    let mut block = Vec::new();
    for n in first..first + count {
        let v = value(n);
        block.push((n - first) as u8);
        block.extend_from_slice(&(v.len() as u32).to_be_bytes());
        block.extend_from_slice(&v);
    }
    block
}

fn fill(dir: &Path, messages: u64, body: usize, packs: (u64, u64)) -> Res<()> {
    let db = open(dir)?;
    let payload = vec![0x5au8; body];
    let started = Instant::now();
    let entry = |id: u64| {
        let mut entry = id.to_be_bytes().to_vec();
        entry.push(0);
        entry
    };
    for (tag, pack) in [(0x06u8, packs.0.max(1)), (0x07, packs.1.max(1))] {
        let prefix: &[u8] = if tag == 0x06 { b"" } else { PREFIX };
        let value = |id: u64| {
            if tag == 0x06 {
                payload.clone()
            } else {
                entry(id)
            }
        };
        let mut id = 0;
        while id < messages {
            if pack == 1 {
                db.insert(key(tag, prefix, id), value(id))?;
            } else {
                let n = pack.min(messages - id);
                db.insert(key(tag | 0x10, prefix, id / pack), block(id, n, value))?;
            }
            id += pack;
        }
    }
    db.flush()?;
    println!(
        "filled {messages} x {body} B (packs {packs:?}) in {:.1} s, {} records, {:.0} MB on disk",
        started.elapsed().as_secs_f64(),
        db.len(),
        db.size_on_disk()? as f64 / 1e6
    );
    Ok(())
}

fn status(field: &str) -> Res<u64> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or("no such field")?;
    let kib: u64 = line.split_whitespace().nth(1).ok_or("no value")?.parse()?;
    Ok(kib / 1024)
}

fn open_only(dir: &Path) -> Res<()> {
    let before = status("VmRSS:")?;
    let started = Instant::now();
    let db = open(dir)?;
    let first = db.iter().next().transpose()?.map(|(k, _)| k.len());
    println!(
        "opened in {:.2} s (first key {} B): RSS {} MiB (before {} MiB), peak {} MiB",
        started.elapsed().as_secs_f64(),
        first.unwrap_or(0),
        status("VmRSS:")?,
        before,
        status("VmHWM:")?
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["fill", dir, messages, body, message_pack, index_pack] => fill(
            Path::new(dir),
            messages.parse()?,
            body.parse()?,
            (message_pack.parse()?, index_pack.parse()?),
        ),
        ["open", dir] => open_only(Path::new(dir)),
        _ => Err(
            "usage: sled_records fill DIR MESSAGES BODY MESSAGE_PACK INDEX_PACK | open DIR".into(),
        ),
    }
}
