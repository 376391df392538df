//! The logged key space against the plain one: generated sequences of writes, reads, scans,
//! flushes, reopens and crashes give the same answers, and no segment a durable location
//! points into is ever unlinked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use proptest::prelude::*;

use super::*;
use crate::backend::collect::{scan_from, scan_prefix};
use crate::backend::{Atomicity, Backend, Changes, Visit, VisitWhile};
use crate::keys;
use crate::memory::MemoryBackend;
use crate::packed::Packed;

type Map = BTreeMap<Vec<u8>, Bytes>;

fn fresh_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "warren-msglog-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn snapshot(b: &dyn Backend) -> Map {
    let mut out = Map::new();
    b.scan_prefix(&[], &mut |k, v| {
        out.insert(k.to_vec(), Bytes::copy_from_slice(v));
        Ok(())
    })
    .unwrap();
    out
}

fn memory_of(map: &Map) -> MemoryBackend {
    let m = MemoryBackend::default();
    let changes: Changes = map
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    if !changes.is_empty() {
        m.apply(changes, Atomicity::Batch).unwrap();
    }
    m
}

/// A key space that loses what its last flush did not make durable, on a crash or a reopen
/// (as sled after a failed write).
#[derive(Clone, Default)]
struct Durable {
    live: Arc<Mutex<MemoryBackend>>,
    durable: Arc<Mutex<Map>>,
    /// The next flush fails and makes nothing durable (a full disk).
    fail_flush: Arc<std::sync::atomic::AtomicBool>,
}

impl Durable {
    fn after_crash(&self) -> Durable {
        let durable = self.durable.lock().clone();
        Durable {
            live: Arc::new(Mutex::new(memory_of(&durable))),
            durable: Arc::new(Mutex::new(durable)),
            fail_flush: Arc::default(),
        }
    }
    fn live(&self) -> MemoryBackend {
        self.live.lock().clone()
    }
}

impl Backend for Durable {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.live().get(key)
    }
    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        self.live().scan_prefix(prefix, visit)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError> {
        self.live().scan_from(prefix, start, visit)
    }
    fn is_empty(&self) -> Result<bool, StoreError> {
        self.live().is_empty()
    }
    fn apply(&self, changes: Changes, a: Atomicity) -> Result<(), StoreError> {
        self.live().apply(changes, a)
    }
    fn flush(&self) -> Result<(), StoreError> {
        if self.fail_flush.swap(false, Ordering::Relaxed) {
            return Err(StoreError::Io(Arc::new(std::io::Error::other("disk full"))));
        }
        *self.durable.lock() = snapshot(&self.live());
        Ok(())
    }
    fn reopen(&self) -> Result<(), StoreError> {
        *self.live.lock() = memory_of(&self.durable.lock());
        Ok(())
    }
}

/// A key of every kind: messages (most), index entries and others.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (0u64..40).prop_map(|id| keys::message(id).to_vec()),
        2 => (0u64..8).prop_map(|seq| keys::index(b"/", b"q", seq).unwrap()),
        1 => Just(keys::MAX_ID_KEY.to_vec()),
    ]
}

fn bound() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(vec![keys::MESSAGE]),
        Just(vec![keys::INDEX]),
        key(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Apply(Vec<(Vec<u8>, Option<Vec<u8>>)>, bool),
    Get(Vec<u8>),
    ScanPrefix(Vec<u8>),
    ScanFrom(Vec<u8>, usize),
    LastKey,
    Flush,
    /// A flush whose key space below fails to flush: nothing new is durable.
    FailedFlush,
    /// The key space below goes back to its last flush, the layer stays (a failed write).
    Reopen,
    /// Everything but the files and the durable key space is lost; the layer opens again.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let change = (
        key(),
        prop::option::weighted(0.6, prop::collection::vec(any::<u8>(), 0..40)),
    );
    prop_oneof![
        8 => (prop::collection::vec(change, 1..12), any::<bool>())
            .prop_map(|(c, batch)| Op::Apply(c, batch)),
        3 => key().prop_map(Op::Get),
        1 => bound().prop_map(Op::ScanPrefix),
        1 => (bound(), 1usize..20).prop_map(|(s, n)| Op::ScanFrom(s, n)),
        1 => Just(Op::LastKey),
        4 => Just(Op::Flush),
        1 => Just(Op::FailedFlush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// The segments the locations below point into.
fn referenced(below: &dyn Backend) -> BTreeSet<u32> {
    scan_prefix(below, &[keys::MESSAGE])
        .iter()
        .map(|(_, v)| Location::decode(v).unwrap().segment)
        .collect()
}

fn open(below: Durable, dir: &std::path::Path, recount: usize) -> MessageLog<Durable> {
    MessageLog::open_with(below, dir, 96, recount).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WARREN_MSGLOG_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_logged_key_space_answers_as_the_plain_one_across_crashes(
        ops in prop::collection::vec(op(), 1..80),
        recount in 1usize..6,
    ) {
        run(ops, recount, false)?;
    }

    /// The same with every message id put once (the engine's way): the counts stay exact,
    /// so every flush with a finished recount must leave no empty segment behind.
    #[test]
    fn segments_are_given_back_exactly_when_ids_are_put_once(
        ops in prop::collection::vec(op(), 1..80),
        recount in 1usize..6,
    ) {
        run(ops, recount, true)?;
    }
}

/// Makes the plain key space `plain` hold exactly `to` (what the last flush made durable).
fn reset(plain: &MemoryBackend, to: &Map) {
    let gone: Changes = snapshot(plain).into_keys().map(|k| (k, None)).collect();
    plain.apply(gone, Atomicity::Batch).unwrap();
    let back: Changes = to
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    plain.apply(back, Atomicity::Batch).unwrap();
}

/// Runs `ops` on the log (recounting `recount` keys per flush) and on the plain key space;
/// with `fresh`, a message id is put at most once in the whole run, as the engine writes.
fn run(ops: Vec<Op>, recount: usize, fresh: bool) -> Result<(), TestCaseError> {
    let dir = fresh_dir();
    let plain = MemoryBackend::default();
    let mut plain_durable = Map::new();
    let mut below = Durable::default();
    let mut logged = open(below.clone(), &dir, recount);
    let mut leaky = false;
    let mut put_ever: BTreeSet<Vec<u8>> = BTreeSet::new();
    for op in ops {
        match op {
            Op::Apply(changes, batch) => {
                let mut changes: Changes = changes
                    .into_iter()
                    .map(|(k, v)| (k, v.map(Bytes::from)))
                    .collect();
                if fresh {
                    // As the engine writes: a message id is put once, never again.
                    changes.retain(|(k, v)| {
                        k[0] != keys::MESSAGE || v.is_none() || put_ever.insert(k.clone())
                    });
                }
                // A put over a stored message leaves the old location counted (the
                // engine never does it but in a replay, which the recount covers).
                leaky |= changes.iter().any(|(k, v)| {
                    k[0] == keys::MESSAGE && v.is_some() && plain.get(k).unwrap().is_some()
                });
                let a = if batch {
                    Atomicity::Batch
                } else {
                    Atomicity::InOrder
                };
                plain.apply(changes.clone(), a).unwrap();
                logged.apply(changes, a).unwrap();
            }
            Op::Get(k) => prop_assert_eq!(plain.get(&k).unwrap(), logged.get(&k).unwrap()),
            Op::ScanPrefix(p) => prop_assert_eq!(scan_prefix(&plain, &p), scan_prefix(&logged, &p)),
            Op::ScanFrom(s, n) => {
                prop_assert_eq!(
                    scan_from(&plain, &[], &s, n),
                    scan_from(&logged, &[], &s, n)
                )
            }
            Op::LastKey => prop_assert_eq!(
                plain.last_key(&[keys::MESSAGE]).unwrap(),
                logged.last_key(&[keys::MESSAGE]).unwrap()
            ),
            Op::Flush => {
                let counted = logged.counted();
                let live_before = referenced(&*logged);
                let current_before = logged.current_segment().unwrap();
                logged.flush().unwrap();
                plain_durable = snapshot(&plain);
                if counted && !leaky {
                    // Every segment that held nothing live when the flush began is gone
                    // (a relocation may have started segments after the current one).
                    let on_disk: BTreeSet<u32> =
                        logged.segment_numbers().unwrap().into_iter().collect();
                    let stray: Vec<u32> = on_disk
                        .iter()
                        .copied()
                        .filter(|n| *n < current_before && !live_before.contains(n))
                        .collect();
                    prop_assert!(
                        stray.is_empty(),
                        "kept {:?}, on disk {:?}",
                        live_before,
                        on_disk
                    );
                }
            }
            Op::FailedFlush => {
                below.fail_flush.store(true, Ordering::Relaxed);
                prop_assert!(logged.flush().is_err());
            }
            Op::Reopen => {
                logged.reopen().unwrap();
                leaky = false;
                reset(&plain, &plain_durable);
            }
            Op::Crash => {
                below = below.after_crash();
                leaky = false;
                drop(logged);
                logged = open(below.clone(), &dir, recount);
                reset(&plain, &plain_durable);
            }
        }
        // Whatever happened, the whole key space reads as the plain one: no location
        // points at a removed or torn record.
        prop_assert_eq!(scan_prefix(&plain, &[]), scan_prefix(&logged, &[]));
        // The sweep's scan reads sizes without bodies: a message counts its location.
        let mut sizes = Vec::new();
        logged
            .scan_sizes_from(&[], &[], &mut |k, size| {
                sizes.push((k.to_vec(), size));
                Ok(true)
            })
            .unwrap();
        let expected: Vec<(Vec<u8>, u64)> = scan_prefix(&plain, &[])
            .into_iter()
            .map(|(k, v)| {
                let len = if k[0] == keys::MESSAGE {
                    LOCATION_LEN
                } else {
                    v.len()
                };
                let size = (k.len() + len) as u64;
                (k, size)
            })
            .collect();
        prop_assert_eq!(sizes, expected);
    }
    drop(logged);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn a_drained_log_gives_its_segments_back_after_two_flushes() {
    let dir = fresh_dir();
    let logged = open(Durable::default(), &dir, 1 << 16);
    let put: Changes = (0..200u64)
        .map(|id| (keys::message(id).to_vec(), Some(Bytes::from(vec![9u8; 50]))))
        .collect();
    logged.apply(put, Atomicity::InOrder).unwrap();
    // One apply writes one run of records; later ones go to new segments of 96 bytes.
    for id in 200..260u64 {
        let one = vec![(keys::message(id).to_vec(), Some(Bytes::from(vec![1u8; 50])))];
        logged.apply(one, Atomicity::InOrder).unwrap();
    }
    logged.flush().unwrap(); // counts
    let full = logged.segment_numbers().unwrap().len();
    assert!(full > 30, "{full} segments");
    let delete: Changes = (0..260u64)
        .filter(|id| *id != 230)
        .map(|id| (keys::message(id).to_vec(), None))
        .collect();
    logged.apply(delete, Atomicity::InOrder).unwrap();
    logged.flush().unwrap();
    let left = logged.segment_numbers().unwrap();
    assert!(
        left.len() <= 2,
        "left {left:?}: the one holding message 230, the current one"
    );
    assert_eq!(
        &logged.get(&keys::message(230)).unwrap().unwrap()[..],
        &[1u8; 50][..]
    );
    drop(logged);
    // Reopened: the recount finds message 230 and keeps its segment.
    let again = open(Durable::default(), &dir, 1 << 16);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn packed_locations_share_records_sixteen_to_one() {
    let dir = fresh_dir();
    let below = MemoryBackend::default();
    let logged = MessageLog::open(Packed::for_locations(below.clone()), &dir).unwrap();
    let put: Changes = (0..64u64)
        .map(|id| {
            (
                keys::message(id).to_vec(),
                Some(Bytes::from(vec![3u8; 1000])),
            )
        })
        .collect();
    logged.apply(put, Atomicity::InOrder).unwrap();
    assert_eq!(
        scan_prefix(&below, &[]).len(),
        4,
        "four blocks of sixteen locations"
    );
    assert_eq!(scan_prefix(&logged, &[keys::MESSAGE]).len(), 64);
    assert_eq!(
        &logged.get(&keys::message(17)).unwrap().unwrap()[..],
        &[3u8; 1000][..]
    );
    assert_eq!(
        logged.stored_size(&keys::message(1), &[0; 1000]),
        (9 + LOCATION_LEN) as u64,
        "the live count of the key space below holds locations, not bodies"
    );
    drop(logged);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sparse_segments_are_relocated_until_the_log_holds_at_most_twice_its_live_bytes() {
    let dir = fresh_dir();
    let below = Durable::default();
    let logged = MessageLog::open_with(below.clone(), &dir, 1024, 1 << 16).unwrap();
    make_sparse(&logged);
    let disk = |l: &MessageLog<Durable>| -> u64 {
        l.segment_numbers()
            .unwrap()
            .iter()
            .map(|n| std::fs::metadata(segments::path(&dir, *n)).unwrap().len())
            .sum()
    };
    let before = disk(&logged);
    for _ in 0..4 {
        logged.flush().unwrap();
    }
    let live = 40 * 66;
    let after = disk(&logged);
    assert!(
        after <= 2 * live + 2 * 1024,
        "{before} bytes before, {after} after, {live} live"
    );
    for id in (3..400u64).step_by(10) {
        assert_eq!(
            &logged.get(&keys::message(id)).unwrap().unwrap()[..],
            &[id as u8; 50][..]
        );
    }
    // What a crash now finds (the last flush's key space) reads back whole, too.
    drop(logged);
    let again = open(below.after_crash(), &dir, 1 << 16);
    assert_eq!(scan_prefix(&again, &[keys::MESSAGE]).len(), 40);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_key_changed_while_its_record_is_relocated_keeps_its_change() {
    let dir = fresh_dir();
    let logged = MessageLog::open_with(Durable::default(), &dir, 1024, 1 << 16).unwrap();
    make_sparse(&logged);
    let log = logged.log.as_ref().unwrap();
    let copied = logged
        .relocate_copy(log)
        .unwrap()
        .expect("sparse segments: a pass is due");
    // Between the copy and pointing the keys at it: one key deleted, one put again.
    logged
        .apply(
            vec![
                (keys::message(3).to_vec(), None),
                (
                    keys::message(13).to_vec(),
                    Some(Bytes::from_static(b"newer")),
                ),
            ],
            Atomicity::InOrder,
        )
        .unwrap();
    copied.writer.sync_data().unwrap();
    logged.relocate_point(log, copied).unwrap();
    assert_eq!(logged.get(&keys::message(3)).unwrap(), None);
    assert_eq!(
        &logged.get(&keys::message(13)).unwrap().unwrap()[..],
        b"newer"
    );
    for _ in 0..4 {
        logged.flush().unwrap();
    }
    for id in (23..400u64).step_by(10) {
        assert_eq!(
            &logged.get(&keys::message(id)).unwrap().unwrap()[..],
            &[id as u8; 50][..]
        );
    }
    assert_eq!(scan_prefix(&logged, &[keys::MESSAGE]).len(), 39);
    drop(logged);
    let _ = std::fs::remove_dir_all(&dir);
}

/// 400 records of 66 bytes, about fifteen per 1 KiB segment, counted; then all but one in
/// ten deleted (ids 3, 13, ..., 393 stay, each body `[id; 50]`).
fn make_sparse(logged: &MessageLog<Durable>) {
    for id in 0..400u64 {
        let one = vec![(
            keys::message(id).to_vec(),
            Some(Bytes::from(vec![id as u8; 50])),
        )];
        logged.apply(one, Atomicity::InOrder).unwrap();
    }
    logged.flush().unwrap(); // counts
    let delete: Changes = (0..400u64)
        .filter(|id| id % 10 != 3)
        .map(|id| (keys::message(id).to_vec(), None))
        .collect();
    logged.apply(delete, Atomicity::InOrder).unwrap();
}

#[test]
fn a_read_that_races_a_relocation_and_an_unlink_follows_the_key() {
    let dir = fresh_dir();
    let logged = MessageLog::open_with(Durable::default(), &dir, 1024, 1 << 16).unwrap();
    make_sparse(&logged);
    let key = keys::message(13).to_vec();
    // What a reader took from the key space below before the relocation.
    let stale = Backend::get(&*logged, &key).unwrap().unwrap();
    let old = Location::decode(&stale).unwrap();
    for _ in 0..4 {
        logged.flush().unwrap();
    }
    assert!(
        !logged.segment_numbers().unwrap().contains(&old.segment),
        "the record was relocated and its segment unlinked"
    );
    let log = logged.log.as_ref().unwrap();
    assert_eq!(
        &logged.read(log, &key, &stale).unwrap()[..],
        &[13u8; 50][..]
    );
    drop(logged);
    let _ = std::fs::remove_dir_all(&dir);
}
