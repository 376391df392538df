//! Compaction: the live records survive exactly, the files shrink, and a crash between any two
//! steps of the swap leaves a directory that opens on one complete database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;

use super::{CompactPolicy, Outcome, Step, compact, run};
use crate::backend::Backend;
use crate::{
    DefinitionStore, MessageOp, MessageStore, QueueRecord, SledOptions, SledStore, StoreError,
};

/// A fresh directory under the temp dir, removed on drop (also used by `online::tests`).
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "warren-compact-test-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Every key and value of the store, in key order.
fn records(s: &SledStore) -> Records {
    // Synced writes are in the write-ahead log until a checkpoint hands them to sled.
    s.engine.checkpoint().unwrap();
    let mut out = Vec::new();
    s.engine
        .backend()
        .scan_prefix(&[], &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
    out
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

const MESSAGES: u64 = 2_000;

/// A store that held 2,000 messages of 1 KiB in queue `a` (every tenth also in `b`) and had
/// 90% of `a` acked; a few of the rest are marked redelivered.
/// Bodies in sled (no message log): the layout whose files compaction shrinks.
fn churned(dir: &Path) -> SledStore {
    churned_with(dir, false)
}

/// [`churned`], with message bodies in the message log or not.
fn churned_with(dir: &Path, log_messages: bool) -> SledStore {
    let options = SledOptions {
        log_messages,
        ..SledOptions::default()
    };
    let s = SledStore::open_with(dir, &options).unwrap();
    s.put_vhost(b"/").unwrap();
    for q in ["a", "b"] {
        s.put_queue(
            b"/",
            &QueueRecord {
                name: b(q),
                auto_delete: false,
                arguments: Bytes::from_static(b"\x00\x00\x00\x00"),
            },
        )
        .unwrap();
    }
    let mut ids = Vec::with_capacity(MESSAGES as usize);
    for seq in 0..MESSAGES {
        let id = s.next_message_id().unwrap();
        ids.push(id);
        let mut ops = vec![
            MessageOp::Put {
                id,
                message: Bytes::from(vec![(seq % 251) as u8; 1024]),
            },
            MessageOp::Enqueue {
                vhost: b("/"),
                queue: b("a"),
                seq,
                id,
            },
        ];
        if seq % 10 == 0 {
            ops.push(MessageOp::Enqueue {
                vhost: b("/"),
                queue: b("b"),
                seq: seq / 10,
                id,
            });
        }
        s.write(&ops).unwrap();
    }
    // On disk before the acks: acked while still pending, they would never have been written.
    s.sync().unwrap();
    // In sled before the acks (a checkpoint: a sync only logs): acked while still pending,
    // they would never have been written to sled.
    s.engine.checkpoint().unwrap();
    let acked: Vec<MessageOp> = (0..MESSAGES / 10 * 9)
        .map(|seq| MessageOp::Remove {
            vhost: b("/"),
            queue: b("a"),
            seq,
            id: ids[seq as usize],
        })
        .collect();
    s.write(&acked).unwrap();
    s.write(&[MessageOp::MarkRedelivered {
        vhost: b("/"),
        queue: b("a"),
        seq: MESSAGES - 1,
        id: ids[MESSAGES as usize - 1],
    }])
    .unwrap();
    s.sync().unwrap();
    s
}

/// A file sled ignores, left in the old database's directory so a test can tell the old
/// database from the copy (which is built without it).
const OLD_TAG: &str = "old-database-tag";

fn tag_old(dir: &Path) {
    fs::write(dir.join("sled").join(OLD_TAG), "x").unwrap();
}

fn is_old(dir: &Path) -> bool {
    dir.join("sled").join(OLD_TAG).exists()
}

#[test]
fn compaction_keeps_every_record_and_the_format_and_shrinks_the_files() {
    let dir = Scratch::new("keeps");
    let s = churned(&dir.0);
    let before = records(&s);
    let format_file = fs::read(dir.0.join("FORMAT")).unwrap();
    let (s, report) = s.compact().unwrap();
    assert_eq!(records(&s), before);
    // The extents are kept keys (see `engine::extents`), in `records` like the rest.
    assert_eq!(report.records, before.len() as u64);
    assert!(
        report.disk_after < report.disk_before,
        "compaction did not shrink the files: {report:?}"
    );
    assert!(s.disk_bytes().unwrap() < report.disk_before);
    assert_eq!(fs::read(dir.0.join("FORMAT")).unwrap(), format_file);
    assert!(records(&s).iter().any(|(k, v)| {
        k.as_slice() == crate::keys::FORMAT_VERSION_KEY
            && v.as_slice() == crate::format::SLED_LAYOUT_UNPACKED.to_be_bytes()
    }));
    assert_eq!(listing(&dir.0), ["FORMAT", "sled"]);
    // The queues load as before, and ids are never reused.
    let a = s.load_queue(b"/", b"a").unwrap();
    assert_eq!(a.len() as u64, MESSAGES / 10);
    assert!(a.last().unwrap().redelivered && !a[0].redelivered);
    assert_eq!(
        s.load_queue(b"/", b"b").unwrap().len() as u64,
        MESSAGES / 10
    );
    assert!(s.next_message_id().unwrap() > MESSAGES); // ids 1..=MESSAGES were stored
    // And it goes on working, also after a reopen.
    let id = s.next_message_id().unwrap();
    s.write(&[
        MessageOp::Put {
            id,
            message: b("new"),
        },
        MessageOp::Enqueue {
            vhost: b("/"),
            queue: b("b"),
            seq: MESSAGES,
            id,
        },
    ])
    .unwrap();
    s.sync().unwrap();
    drop(s);
    let s = SledStore::open(&dir.0).unwrap();
    assert_eq!(s.load_queue(b"/", b"b").unwrap().last().unwrap().id, id);
}

#[test]
fn offline_compaction_of_a_closed_directory() {
    let dir = Scratch::new("offline");
    let before = {
        let s = churned(&dir.0);
        records(&s)
    };
    let report = compact(&dir.0, &SledOptions::default()).unwrap();
    // The extents are kept keys, already among `before` (see above).
    assert_eq!(report.records, before.len() as u64);
    let s = SledStore::open(&dir.0).unwrap();
    assert_eq!(records(&s), before);
}

#[test]
fn a_crash_between_any_two_steps_opens_on_one_complete_database() {
    // (where it stops, what the directory holds then, whether the old database is the one kept)
    let cases = [
        (Step::Built, ["FORMAT", "sled", "sled.building"], true),
        (Step::Committed, ["FORMAT", "sled", "sled.compact"], false),
        (
            Step::OldAside,
            ["FORMAT", "sled.compact", "sled.old"],
            false,
        ),
        (Step::Swapped, ["FORMAT", "sled", "sled.old"], false),
    ];
    for (step, left, keeps_old) in cases {
        let dir = Scratch::new("crash");
        let s = churned(&dir.0);
        let before = records(&s);
        tag_old(&dir.0);
        assert!(matches!(run(s, Some(step)).unwrap(), Outcome::Stopped));
        assert_eq!(listing(&dir.0), left, "after {step:?}");
        let s = SledStore::open(&dir.0).unwrap();
        assert_eq!(records(&s), before, "after {step:?}");
        assert_eq!(listing(&dir.0), ["FORMAT", "sled"], "after {step:?}");
        assert_eq!(is_old(&dir.0), keeps_old, "after {step:?}");
        // Whichever database it is, it takes writes and a later compaction.
        drop(s);
        compact(&dir.0, &SledOptions::default()).unwrap();
        assert_eq!(records(&SledStore::open(&dir.0).unwrap()), before);
    }
}

#[test]
fn a_half_written_copy_is_discarded_and_a_half_removed_old_database_finished() {
    let dir = Scratch::new("torn");
    let before = {
        let s = churned(&dir.0);
        records(&s)
    };
    tag_old(&dir.0);
    // A crash in the middle of the copy: a sled database with part of the records.
    {
        let db = sled::open(dir.0.join("sled.building")).unwrap();
        db.insert(b"\x06partial", &b"copy"[..]).unwrap();
        db.flush().unwrap();
    }
    let s = SledStore::open(&dir.0).unwrap();
    assert_eq!(records(&s), before);
    assert!(is_old(&dir.0));
    assert_eq!(listing(&dir.0), ["FORMAT", "sled"]);
    // A crash while removing the replaced database: some of its files are gone already.
    assert!(matches!(
        run(s, Some(Step::Swapped)).unwrap(),
        Outcome::Stopped
    ));
    fs::remove_file(dir.0.join("sled.old").join("db")).unwrap();
    let s = SledStore::open(&dir.0).unwrap();
    assert_eq!(records(&s), before);
    assert_eq!(listing(&dir.0), ["FORMAT", "sled"]);
}

#[test]
fn a_newer_format_directory_is_refused_untouched_by_compaction_and_open() {
    let dir = Scratch::new("newer");
    drop(churned(&dir.0));
    // As a later build might leave it, mid-compaction.
    fs::create_dir_all(dir.0.join("sled.compact")).unwrap();
    fs::write(dir.0.join("FORMAT"), "warren-store format 5\n").unwrap();
    let before = listing(&dir.0);
    let sled_before = listing(&dir.0.join("sled"));
    let err = compact(&dir.0, &SledOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnsupportedFormat {
                found: Some(5),
                supported: 4
            }
        ),
        "{err}"
    );
    assert!(matches!(
        SledStore::open(&dir.0),
        Err(StoreError::UnsupportedFormat { found: Some(5), .. })
    ));
    assert_eq!(listing(&dir.0), before);
    assert_eq!(listing(&dir.0.join("sled")), sled_before);
}

#[test]
fn compaction_refuses_what_is_not_a_store_and_a_store_in_use() {
    let dir = Scratch::new("absent");
    let err = compact(&dir.0, &SledOptions::default()).unwrap_err();
    assert!(
        err.is_io() && err.to_string().contains("does not exist"),
        "{err}"
    );
    assert!(!dir.0.exists());
    fs::create_dir_all(&dir.0).unwrap();
    assert!(matches!(
        compact(&dir.0, &SledOptions::default()),
        Err(StoreError::UnsupportedFormat { found: None, .. })
    ));
    assert!(listing(&dir.0).is_empty());

    let dir = Scratch::new("in-use");
    let s = churned(&dir.0);
    let err = compact(&dir.0, &SledOptions::default()).unwrap_err();
    assert!(err.is_io() && err.to_string().contains("in use"), "{err}");
    drop(s);
}

#[test]
fn policy_compacts_only_large_files_far_above_the_live_data() {
    let p = CompactPolicy {
        ratio: 4.0,
        min_disk_bytes: 1000,
    };
    assert!(p.wants(5000, 1000, 0));
    assert!(!p.wants(4000, 1000, 0));
    // Each record is reckoned at its bytes plus sled's own cost.
    assert!(!p.wants(5000, 1000, 4));
    assert!(p.wants(5000, 1000 - 4 * crate::RECORD_OVERHEAD, 3));
    assert!(!p.wants(999, 0, 0));
    assert!(p.wants(1000, 0, 0));
    let off = CompactPolicy { ratio: 0.0, ..p };
    assert!(!off.wants(u64::MAX, 0, 0));

    let dir = Scratch::new("policy");
    let s = churned(&dir.0);
    drop(s);
    let s = SledStore::open(&dir.0).unwrap();
    let (disk, live) = (s.disk_bytes().unwrap(), s.live_bytes_at_open());
    // 380 messages of 1 KiB (20 of `a`'s last 200 are also in `b`), 400 index entries and
    // the extents of `a` and `b` (see `engine::extents`).
    assert_eq!(live, 380 * (9 + 1024) + 400 * (13 + 9) + 2 * (6 + 16));
    assert_eq!(s.live_records_at_open(), 782);
    let never = CompactPolicy {
        ratio: disk as f64 / live as f64 + 1.0,
        min_disk_bytes: 0,
    };
    let (s, report) = s.compact_if(&never).unwrap();
    assert!(report.is_none());
    let now = CompactPolicy {
        ratio: 1.0,
        min_disk_bytes: 0,
    };
    let before = records(&s);
    let (s, report) = s.compact_if(&now).unwrap();
    assert!(report.unwrap().disk_after < disk);
    assert_eq!(records(&s), before);
}

/// A queue's entries as `(seq, id, redelivered, message)`.
fn queue(s: &SledStore, name: &[u8]) -> Vec<(u64, u64, bool, Bytes)> {
    s.load_queue(b"/", name)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.id, e.redelivered, e.message))
        .collect()
}

#[test]
fn compaction_repacks_a_store_of_the_unpacked_layout() {
    let dir = Scratch::new("repack");
    let s = churned(&dir.0);
    assert!(!s.is_packed());
    let (a, b) = (queue(&s, b"a"), queue(&s, b"b"));
    assert_eq!((a.len(), b.len()), (200, 200));
    let unpacked = records(&s);
    assert!(unpacked.iter().any(|(k, _)| k[0] == crate::keys::MESSAGE));
    drop(s);
    // Offline, asked to pack (without it a compaction keeps the layout, see above).
    let options = SledOptions {
        pack_new_store: true,
        ..SledOptions::default()
    };
    let report = compact(&dir.0, &options).unwrap();
    let s = SledStore::open(&dir.0).unwrap();
    assert!(s.is_packed(), "the copy is repacked and opens packed");
    assert_eq!(
        report.records,
        unpacked.len() as u64,
        "every record, counted as the engine sees it"
    );
    assert_eq!((queue(&s, b"a"), queue(&s, b"b")), (a.clone(), b.clone()));
    let packed = records(&s);
    assert!(
        packed
            .iter()
            .all(|(k, _)| k[0] != crate::keys::MESSAGE && k[0] != crate::keys::INDEX),
        "no message or entry left one per record"
    );
    assert!(
        packed.len() < unpacked.len() / 2,
        "{} records for {}",
        packed.len(),
        unpacked.len()
    );
    // It stays packed, and serves as before, across a reopen.
    drop(s);
    let s = SledStore::open(&dir.0).unwrap();
    assert!(s.is_packed());
    assert_eq!((queue(&s, b"a"), queue(&s, b"b")), (a, b));
}

#[test]
fn compaction_of_a_store_with_the_message_log_keeps_every_message_and_the_layout() {
    let dir = Scratch::new("logged");
    let s = churned_with(&dir.0, true);
    assert!(s.logs_messages());
    let (a, b) = (queue(&s, b"a"), queue(&s, b"b"));
    assert_eq!((a.len(), b.len()), (200, 200));
    drop(s);
    compact(&dir.0, &SledOptions::default()).unwrap();
    let s = SledStore::open(&dir.0).unwrap();
    assert!(
        s.logs_messages(),
        "the copy keeps locations, the bodies stay in the log"
    );
    assert_eq!((queue(&s, b"a"), queue(&s, b"b")), (a, b));
}
