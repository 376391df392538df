//! The behavioural suite on [`SledStore`], where `reopen` drops the store and opens the same
//! directory again, and what only the disk store has: format versioning and real flushes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::{SledHarness, TempDir, enqueue, entries, put};
use warren_store::{FORMAT_VERSION, MessageStore, SledStore, StoreError};

behaviour_suite!(SledHarness::new());

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
        "warren-store format 3\n"
    );
    assert_eq!(FORMAT_VERSION, 3);
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
                supported: 3
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
    fs::write(dir.path().join("FORMAT"), "warren-store format 4\n").unwrap();
    let before = listing(&dir.path().join("sled"));
    let err = SledStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnsupportedFormat {
                found: Some(4),
                supported: 3
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("found version 4"));
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
        db.insert(b"\x00format_version", &3u32.to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::UnsupportedFormat { found: Some(3), .. })
    ));
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        db.remove(b"\x00format_version").unwrap();
        db.insert(b"someone else's key", &b"value"[..]).unwrap();
        db.flush().unwrap();
    }
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
    assert_eq!(listing(dir.path()), ["FORMAT", "sled"]);
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
