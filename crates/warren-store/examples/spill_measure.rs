//! Measures what a queue's spill area needs from its storage: write 64 KiB blobs, read them back
//! in order, delete them, and the disk size afterwards; for a never-flushed sled tree and for
//! plain append-only segment files (one file per `--file-mib`, deleted when all its blobs are
//! consumed). The figures are in `docs/decisions.md` ("Spill area").
//!
//! ```sh
//! cargo run --release -p warren-store --example spill_measure -- --mib 512 --runs 3
//! ```
//!
//! Options: `--mib N` data per run (default 512), `--runs N` (default 3), `--file-mib N` segment
//! file size (default 16), `--dir PATH` (default: the system temp dir).

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

const BLOB: usize = 64 * 1024;

struct Opts {
    mib: usize,
    runs: usize,
    file_mib: usize,
    dir: PathBuf,
}

fn opts() -> Res<Opts> {
    let mut o = Opts {
        mib: 512,
        runs: 3,
        file_mib: 16,
        dir: std::env::temp_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or("missing value")?;
        match a.as_str() {
            "--mib" => o.mib = v.parse()?,
            "--runs" => o.runs = v.parse()?,
            "--file-mib" => o.file_mib = v.parse()?,
            "--dir" => o.dir = PathBuf::from(v),
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    Ok(o)
}

/// Apparent bytes of every file under `p`.
fn du(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn blob(i: usize) -> Vec<u8> {
    let mut b = vec![0u8; BLOB];
    for (j, x) in b.iter_mut().enumerate() {
        *x = (i.wrapping_mul(31) ^ j) as u8;
    }
    b
}

/// (write MB/s, read MB/s, delete s, bytes on disk after the drain, peak bytes on disk)
type Figures = (f64, f64, f64, u64, u64);

fn sled_run(dir: &Path, n: usize) -> Res<Figures> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(16 << 20)
        .flush_every_ms(None)
        .open()?;
    let tree = db.open_tree("spill")?;
    let data: Vec<Vec<u8>> = (0..64).map(blob).collect();
    let t = Instant::now();
    for i in 0..n {
        tree.insert((i as u64).to_be_bytes(), &data[i % 64][..])?;
    }
    let w = t.elapsed().as_secs_f64();
    let peak = du(dir);
    let t = Instant::now();
    let mut got = 0usize;
    for i in 0..n {
        if let Some(v) = tree.get((i as u64).to_be_bytes())? {
            got += v.len();
        }
    }
    let r = t.elapsed().as_secs_f64();
    assert_eq!(got, n * BLOB);
    let t = Instant::now();
    for i in 0..n {
        tree.remove((i as u64).to_be_bytes())?;
    }
    let d = t.elapsed().as_secs_f64();
    let after = du(dir);
    let mb = (n * BLOB) as f64 / 1e6;
    Ok((mb / w, mb / r, d, after, peak))
}

fn files_run(dir: &Path, n: usize, file_mib: usize) -> Res<Figures> {
    fs::create_dir_all(dir)?;
    let per_file = (file_mib << 20) / BLOB;
    let data: Vec<Vec<u8>> = (0..64).map(blob).collect();
    let t = Instant::now();
    let mut f: Option<File> = None;
    for i in 0..n {
        if i % per_file == 0 {
            f = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{}", i / per_file)))?,
            );
        }
        f.as_mut().ok_or("no file")?.write_all(&data[i % 64])?;
    }
    drop(f);
    let w = t.elapsed().as_secs_f64();
    let peak = du(dir);
    let t = Instant::now();
    let mut d = 0.0;
    let mut buf = vec![0u8; BLOB];
    let mut got = 0usize;
    let mut cur: Option<File> = None;
    for i in 0..n {
        let name = dir.join(format!("{}", i / per_file));
        if i % per_file == 0 {
            cur = Some(File::open(&name)?);
        }
        let file = cur.as_mut().ok_or("no file")?;
        file.seek(SeekFrom::Start(((i % per_file) * BLOB) as u64))?;
        file.read_exact(&mut buf)?;
        got += buf.len();
        if (i + 1) % per_file == 0 || i + 1 == n {
            cur = None;
            let td = Instant::now();
            fs::remove_file(&name)?;
            d += td.elapsed().as_secs_f64();
        }
    }
    let r = t.elapsed().as_secs_f64() - d;
    assert_eq!(got, n * BLOB);
    let after = du(dir);
    let mb = (n * BLOB) as f64 / 1e6;
    Ok((mb / w, mb / r, d, after, peak))
}

fn main() -> Res<()> {
    let o = opts()?;
    let n = (o.mib << 20) / BLOB;
    println!(
        "{} blobs of 64 KiB ({} MiB) per run, {} runs",
        n, o.mib, o.runs
    );
    for run in 0..o.runs {
        let base = o
            .dir
            .join(format!("warren-spill-measure-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let s = sled_run(&base.join("sled"), n)?;
        let f = files_run(&base.join("files"), n, o.file_mib)?;
        for (name, (w, r, d, after, peak)) in [("sled tree", s), ("segment files", f)] {
            println!(
                "run {run} {name:14} write {w:7.0} MB/s  read {r:7.0} MB/s  delete {d:6.2} s  \
                 disk peak {:6.1} MiB  after drain {:6.1} MiB",
                peak as f64 / 1048576.0,
                after as f64 / 1048576.0
            );
        }
        fs::remove_dir_all(&base)?;
    }
    Ok(())
}
