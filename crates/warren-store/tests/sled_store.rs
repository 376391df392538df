//! The behavioural suite on [`SledStore`], where `reopen` drops the store and opens the same
//! directory again, and what only the disk store has: format versioning and real flushes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::{SledHarness, TempDir, enqueue, entries, put, remove};
use warren_store::{FORMAT_VERSION, MessageStore, SledStore, StoreError};

// A new store: message bodies in the message log.
behaviour_suite!(SledHarness::new());

/// The same behaviours on a store an older build made, which keeps one record per message.
mod unpacked {
    use super::*;

    behaviour_suite!(SledHarness::unpacked());
}

/// The same behaviours on a store of the packed layout (several messages per sled record).
mod packed {
    use super::*;

    behaviour_suite!(SledHarness::packed());
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_missing_or_empty_directory_becomes_a_store() {
    let missing = TempDir::new("missing");
    drop(SledStore::open(&missing.path().join("deeper")).unwrap());
    let empty = TempDir::new("empty");
    fs::create_dir_all(empty.path()).unwrap();
    drop(SledStore::open(empty.path()).unwrap());
    assert_eq!(
        fs::read_to_string(empty.path().join("FORMAT")).unwrap(),
        "warren-store format 4\n"
    );
    assert_eq!(FORMAT_VERSION, 4);
}

#[test]
fn a_non_empty_directory_without_a_version_is_refused_untouched() {
    let dir = TempDir::new("foreign");
    fs::create_dir_all(dir.path()).unwrap();
    fs::write(dir.path().join("notes.txt"), "not a store").unwrap();
    let err = SledStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnsupportedFormat {
                found: None,
                supported: 4
            }
        ),
        "{err}"
    );
    assert_eq!(listing(dir.path()), ["notes.txt"]);
}

#[test]
fn a_directory_of_a_newer_version_is_refused_untouched() {
    let dir = TempDir::new("newer");
    drop(SledStore::open(dir.path()).unwrap());
    fs::write(dir.path().join("FORMAT"), "warren-store format 5\n").unwrap();
    let before = listing(&dir.path().join("sled"));
    let err = SledStore::open(dir.path()).unwrap_err();
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
    assert!(err.to_string().contains("found version 5"));
    assert_eq!(listing(&dir.path().join("sled")), before);
    fs::write(dir.path().join("FORMAT"), "garbage").unwrap();
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::UnsupportedFormat { found: None, .. })
    ));
}

#[test]
fn the_meta_key_inside_sled_is_checked_too() {
    let dir = TempDir::new("meta");
    drop(SledStore::open(dir.path()).unwrap());
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        db.insert(b"\x00format_version", &5u32.to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    common::wait_sled_unlocked(dir.path());
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::UnsupportedFormat { found: Some(5), .. })
    ));
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        db.remove(b"\x00format_version").unwrap();
        db.insert(b"someone else's key", &b"value"[..]).unwrap();
        db.flush().unwrap();
    }
    common::wait_sled_unlocked(dir.path());
    // Data but no meta key: not ours.
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::UnsupportedFormat { found: None, .. })
    ));
}

#[test]
fn a_crash_while_writing_the_marker_leaves_a_fresh_directory() {
    let dir = TempDir::new("tmp-marker");
    fs::create_dir_all(dir.path()).unwrap();
    fs::write(dir.path().join("FORMAT.tmp"), "warren-st").unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    assert_eq!(listing(dir.path()), ["FORMAT", "messages", "sled"]);
}

#[test]
fn a_second_open_of_a_directory_in_use_fails_cleanly() {
    let h = SledHarness::new();
    let err = SledStore::open(h.dir()).unwrap_err();
    assert!(err.is_io(), "{err}");
}

#[test]
fn concurrent_syncs_share_flushes() {
    let calls = 8 * 25;
    let h = SledHarness::new();
    let flushes = common::suite::concurrent_writers_each_followed_by_sync_all_succeed(h);
    eprintln!("{flushes} flushes for {calls} concurrent write+sync calls");
    assert!(
        flushes < calls,
        "{flushes} flushes for {calls} concurrent syncs"
    );
}

#[test]
fn messages_of_blob_size_survive_reopen() {
    // 17 messages of 16 KiB fill a leaf past sled's blob threshold (segment_size / 4).
    let mut h = SledHarness::new();
    let big = "x".repeat(16 * 1024);
    for i in 0..40u64 {
        common::Harness::store(&h)
            .write(&[
                put(i + 1, &format!("{i}{big}")),
                enqueue("/", "big", i, i + 1),
            ])
            .unwrap();
    }
    common::Harness::store(&h).sync().unwrap();
    common::Harness::reopen(&mut h);
    let loaded = entries(common::Harness::store(&h), "/", "big");
    assert_eq!(loaded.len(), 40);
    assert!(
        loaded
            .iter()
            .enumerate()
            .all(|(i, e)| e.3 == format!("{i}{big}"))
    );
}

/// The messages of one queue, as sled's own keys show them: how many records carry messages
/// (tag 0x06 one each; 0x16 blocks of four).
fn raw_tags(dir: &std::path::Path) -> (usize, usize) {
    let db = sled::open(dir.join("sled")).unwrap();
    let count = |tag: u8| db.scan_prefix([tag]).count();
    let tags = (count(0x06), count(0x16));
    drop(db);
    common::wait_sled_unlocked(dir);
    tags
}

fn write_messages(s: &SledStore, from: u64, n: u64) {
    for i in from..from + n {
        let id = s.next_message_id().unwrap();
        s.write(&[put(id, &format!("m{i}")), enqueue("/", "q", i, id)])
            .unwrap();
    }
    s.sync().unwrap();
}

#[test]
fn a_store_created_packed_packs_messages_and_an_older_one_keeps_one_record_per_message() {
    let without_log = warren_store::SledOptions {
        log_messages: false,
        ..warren_store::SledOptions::default()
    };
    let plain = TempDir::new("plain");
    let s = SledStore::open_with(plain.path(), &without_log).unwrap();
    assert!(!s.is_packed(), "without the log, packing is off by default");
    write_messages(&s, 0, 8);
    drop(s);
    assert_eq!(raw_tags(plain.path()), (8, 0));

    let new = TempDir::new("packed");
    let options = warren_store::SledOptions {
        pack_new_store: true,
        ..without_log
    };
    let s = SledStore::open_with(new.path(), &options).unwrap();
    assert!(s.is_packed());
    write_messages(&s, 0, 40);
    s.checkpoint().unwrap();
    drop(s);
    // Ids from the store's counter (consecutive, from 1), four per block.
    assert_eq!(raw_tags(new.path()), (0, 11));
    let s = SledStore::open(new.path()).unwrap();
    assert!(
        s.is_packed(),
        "a store keeps its layout whatever the options"
    );
    assert_eq!(entries(&s, "/", "q").len(), 40);
    drop(s);

    let old = TempDir::new("unpacked");
    common::make_format_3_dir(old.path());
    let s = SledStore::open(old.path()).unwrap();
    assert!(!s.is_packed());
    write_messages(&s, 0, 40);
    drop(s);
    assert_eq!(
        fs::read_to_string(old.path().join("FORMAT")).unwrap(),
        "warren-store format 4\n"
    );
    let s = SledStore::open(old.path()).unwrap();
    assert!(!s.is_packed(), "an older store keeps its layout");
    write_messages(&s, 40, 10);
    let loaded = entries(&s, "/", "q");
    assert_eq!(loaded.len(), 50);
    assert_eq!(loaded[49].3, "m49");
    drop(s);
    assert_eq!(raw_tags(old.path()), (50, 0));
}

#[test]
fn a_store_created_with_the_message_log_keeps_bodies_out_of_sled_and_keeps_its_layout() {
    let dir = TempDir::new("logged");
    let options = warren_store::SledOptions {
        log_messages: true,
        ..warren_store::SledOptions::default()
    };
    let s = SledStore::open_with(dir.path(), &options).unwrap();
    assert!(s.logs_messages());
    write_messages(&s, 0, 40);
    s.checkpoint().unwrap();
    drop(s);
    // Sixteen twelve-byte locations per block (ids 1..=40: blocks 0, 1 and 2), no message
    // record of its own; the bodies are in the segments.
    assert_eq!(raw_tags(dir.path()), (0, 3));
    let db = sled::open(dir.path().join("sled")).unwrap();
    assert!(
        db.scan_prefix([0x16u8])
            .values()
            .all(|v| !String::from_utf8_lossy(&v.unwrap()).contains("m1")),
        "no body in sled"
    );
    drop(db);
    common::wait_sled_unlocked(dir.path());
    let segments = fs::read_dir(dir.path().join("messages")).unwrap().count();
    assert!(segments >= 1);
    // Default options: the store keeps its layout, and every body reads back.
    let s = SledStore::open(dir.path()).unwrap();
    assert!(
        s.logs_messages(),
        "a store keeps its layout whatever the options"
    );
    write_messages(&s, 40, 10);
    let loaded = entries(&s, "/", "q");
    assert_eq!(loaded.len(), 50);
    assert_eq!(loaded[7].3, "m7");
    assert_eq!(loaded[49].3, "m49");
    drop(s);
    let default = TempDir::new("default");
    let s = SledStore::open(default.path()).unwrap();
    assert!(s.logs_messages(), "the message log is on by default");
}

#[test]
fn an_idle_store_gives_back_the_message_segments_nothing_needs_after_a_restart() {
    let dir = TempDir::new("idle-log");
    let options = warren_store::SledOptions {
        background_flush: None, // the test runs the drain thread's checkpoints itself
        ..warren_store::SledOptions::default()
    };
    let segments = || fs::read_dir(dir.path().join("messages")).unwrap().count();
    let s = SledStore::open_with(dir.path(), &options).unwrap();
    let ids: Vec<u64> = (0..100).map(|_| s.next_message_id().unwrap()).collect();
    for (seq, id) in ids.iter().enumerate() {
        s.write(&[put(*id, "body"), enqueue("/", "q", seq as u64, *id)])
            .unwrap();
    }
    s.checkpoint().unwrap(); // the bodies reach the log
    for (seq, id) in ids.iter().enumerate() {
        s.write(&[remove("/", "q", seq as u64, *id)]).unwrap();
    }
    s.checkpoint().unwrap();
    drop(s);
    // Reopened: a new segment is written; the old one holds nothing live, which only the
    // recount can tell, and nothing is written that would make a checkpoint flush.
    let s = SledStore::open_with(dir.path(), &options).unwrap();
    assert_eq!(segments(), 2);
    for _ in 0..3 {
        s.checkpoint_aged().unwrap();
    }
    assert_eq!(
        segments(),
        1,
        "the emptied segment is unlinked without new writes"
    );
    assert!(entries(&s, "/", "q").is_empty());
}
