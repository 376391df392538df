//! kill -9 during online compactions loses nothing confirmed: a child process publishes,
//! syncs and acks while another of its threads compacts the store over and over; the test
//! kills it at a random moment, reopens the directory and checks every message whose sync
//! returned is there (with its bytes) and every ack whose sync returned is not. Five kills
//! per run, the child resuming each time on what the last one left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_store::{MessageOp, MessageStore, SledOptions, SledStore};

const CHILD_ENV: &str = "WARREN_ONLINE_CRASH_DIR";

fn options() -> SledOptions {
    SledOptions {
        background_flush: Some(Duration::from_millis(20)),
        online_compaction: None, // the child's own thread compacts without pause
        ..SledOptions::default()
    }
}

/// The message bytes of `id`: one in 50 is 150 KiB, over sled's blob threshold.
fn body(id: u64) -> Bytes {
    let len = if id % 50 == 0 {
        150 * 1024
    } else {
        300 + (id % 700) as usize
    };
    Bytes::from(
        (0..len)
            .map(|i| (id as u8) ^ (i as u8).wrapping_mul(7))
            .collect::<Vec<u8>>(),
    )
}

fn vq() -> (Bytes, Bytes) {
    (Bytes::from_static(b"/"), Bytes::from_static(b"q"))
}

/// The child: runs until killed. Prints `C seq id` once the publish of `seq` is synced,
/// `R seq` before its ack is written (from then on it may be gone) and `A seq` once the ack
/// is synced (from then on it must be gone).
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Arc::new(SledStore::open_with(Path::new(&dir), &options()).unwrap());
    let (vhost, queue) = vq();
    let mut held: Vec<(u64, u64)> = store
        .load_queue(&vhost, &queue)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.id))
        .collect();
    let mut next_seq = held.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
    {
        let store = store.clone();
        std::thread::spawn(move || {
            loop {
                if store.compact_online().unwrap().is_some() {
                    println!("K");
                }
            }
        });
    }
    let stdout = std::io::stdout();
    loop {
        let mut ops = Vec::new();
        let mut published = Vec::new();
        for _ in 0..50 {
            let id = store.next_message_id().unwrap();
            ops.push(MessageOp::Put {
                id,
                message: body(id),
            });
            ops.push(MessageOp::Enqueue {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq: next_seq,
                id,
            });
            published.push((next_seq, id));
            next_seq += 1;
        }
        store.write(&ops).unwrap();
        store.sync().unwrap();
        {
            let mut out = stdout.lock();
            for (seq, id) in &published {
                writeln!(out, "C {seq} {id}").unwrap();
            }
            out.flush().unwrap();
        }
        held.extend(published);
        let acked: Vec<(u64, u64)> = held.drain(..40.min(held.len())).collect();
        {
            let mut out = stdout.lock();
            for (seq, _) in &acked {
                writeln!(out, "R {seq}").unwrap();
            }
            out.flush().unwrap();
        }
        let ops: Vec<MessageOp> = acked
            .iter()
            .map(|&(seq, id)| MessageOp::Remove {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq,
                id,
            })
            .collect();
        store.write(&ops).unwrap();
        store.sync().unwrap();
        let mut out = stdout.lock();
        for (seq, _) in &acked {
            writeln!(out, "A {seq}").unwrap();
        }
        out.flush().unwrap();
    }
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn kill_9_during_online_compactions_loses_nothing_confirmed() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir =
        Scratch(std::env::temp_dir().join(format!("warren-online-crash-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    // seq -> id of every publish whose sync returned and whose ack's sync did not.
    let mut confirmed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut acked: Vec<u64> = Vec::new();
    // Confirmed messages whose ack was written but not synced: present or not.
    let mut acking: std::collections::BTreeSet<u64> = Default::default();
    let mut rng = Instant::now().elapsed().as_nanos() as u64 | 1;
    let (mut compactions, mut interrupted) = (0, 0);
    for round in 0..5 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(400 + rng % 1200));
        child.kill().unwrap(); // SIGKILL
        let stdout = child.stdout.take().unwrap();
        child.wait().unwrap();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("C"), Some(seq), Some(id)) => {
                    confirmed.insert(seq.parse().unwrap(), id.parse().unwrap());
                }
                (Some("K"), None, None) => compactions += 1,
                (Some("R"), Some(seq), None) => {
                    acking.insert(seq.parse().unwrap());
                }
                (Some("A"), Some(seq), None) => {
                    let seq = seq.parse().unwrap();
                    confirmed.remove(&seq);
                    acking.remove(&seq);
                    acked.push(seq);
                }
                _ => {}
            }
        }
        if ["sled.building", "sled.compact", "sled.old"]
            .iter()
            .any(|d| dir.0.join(d).exists())
        {
            interrupted += 1;
        }
        let store = SledStore::open_with(&dir.0, &options()).unwrap();
        let (vhost, queue) = vq();
        let found: BTreeMap<u64, (u64, Bytes)> = store
            .load_queue(&vhost, &queue)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, (e.id, e.message)))
            .collect();
        // An ack written before the kill may have reached the disk.
        for seq in std::mem::take(&mut acking) {
            if !found.contains_key(&seq) {
                confirmed.remove(&seq);
                acked.push(seq);
            }
        }
        for (seq, id) in &confirmed {
            let (got_id, message) = found
                .get(seq)
                .unwrap_or_else(|| panic!("round {round}: confirmed message {seq} is lost"));
            assert_eq!(got_id, id, "round {round}: entry {seq}");
            assert_eq!(message, &body(*id), "round {round}: bytes of {seq}");
        }
        for seq in &acked {
            assert!(
                !found.contains_key(seq),
                "round {round}: acked message {seq} came back"
            );
        }
        assert!(
            !confirmed.is_empty(),
            "round {round}: the child confirmed nothing"
        );
        // The child resumes from what is there: adopt survivors it never confirmed.
        for (seq, (id, _)) in found {
            confirmed.entry(seq).or_insert(id);
        }
        drop(store);
    }
    eprintln!(
        "{compactions} online compactions finished; {interrupted} of 5 kills interrupted one"
    );
    assert!(
        compactions > 0,
        "no online compaction finished: the test tested nothing"
    );
}
