//! The packed key space against the plain one: generated sequences of writes, reads and scans
//! give the same answers, and every prefix of an in-order write keeps "no index entry without
//! its message".

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use proptest::prelude::*;

use super::*;
use crate::backend::collect::{scan_from, scan_prefix};
use crate::backend::{Atomicity, Backend, Changes, Visit, VisitWhile};
use crate::keys;
use crate::memory::MemoryBackend;

/// Queue names whose length bytes make prefixes interesting: `q` and `qq` in `/`, `q` in `v`.
const QUEUES: [(&[u8], &[u8]); 3] = [(b"/", b"q"), (b"/", b"qq"), (b"v", b"q")];

fn index_key(queue: usize, seq: u64) -> Vec<u8> {
    let (vhost, name) = QUEUES[queue];
    keys::index(vhost, name, seq).unwrap()
}

fn queue_prefix(queue: usize) -> Vec<u8> {
    let (vhost, name) = QUEUES[queue];
    keys::queue_index_prefix(vhost, name).unwrap()
}

/// A key of every kind the engine writes: messages, index entries and others.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (0u64..48).prop_map(|id| keys::message(id).to_vec()),
        4 => (0usize..3, 0u64..48).prop_map(|(q, seq)| index_key(q, seq)),
        1 => (0usize..3).prop_map(|q| keys::extent(&queue_prefix(q))),
        1 => Just(keys::MAX_ID_KEY.to_vec()),
        1 => Just(vec![keys::QUEUE, 1, b'/', 1, b'q']),
    ]
}

/// A prefix or a start bound as the engine passes them, and some it does not (a number cut
/// short, a key with a byte after it).
fn bound() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![keys::MESSAGE]),
        Just(vec![keys::INDEX]),
        Just(vec![keys::INDEX, 1, b'/']),
        Just(vec![keys::EXTENT]),
        Just(vec![keys::QUEUE]),
        (0usize..3).prop_map(queue_prefix),
        (0usize..3, 0u64..48, 0usize..9).prop_map(|(q, seq, cut)| {
            let mut k = index_key(q, seq);
            k.truncate(k.len() - cut);
            k
        }),
        (0u64..48, 0usize..9).prop_map(|(id, cut)| {
            let mut k = keys::message(id).to_vec();
            k.truncate(k.len() - cut);
            k
        }),
        key().prop_map(|mut k| {
            k.push(0);
            k
        }),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Apply(Vec<(Vec<u8>, Option<Vec<u8>>)>, bool),
    Get(Vec<u8>),
    ScanPrefix(Vec<u8>),
    ScanFrom(Vec<u8>, Vec<u8>, usize),
    LastKey(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    let change = (
        key(),
        prop::option::weighted(0.7, prop::collection::vec(any::<u8>(), 0..12)),
    );
    prop_oneof![
        6 => (prop::collection::vec(change, 1..24), any::<bool>())
            .prop_map(|(c, batch)| Op::Apply(c, batch)),
        3 => key().prop_map(Op::Get),
        2 => bound().prop_map(Op::ScanPrefix),
        2 => (bound(), bound(), 1usize..40).prop_map(|(p, s, n)| Op::ScanFrom(p, s, n)),
        1 => prop_oneof![
            Just(vec![keys::MESSAGE]),
            Just(vec![keys::INDEX]),
            (0usize..3).prop_map(queue_prefix),
        ]
        .prop_map(Op::LastKey),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WARREN_PACKED_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_packed_key_space_answers_as_the_plain_one(ops in prop::collection::vec(op(), 1..60)) {
        let plain = MemoryBackend::default();
        let packed = Packed::new(MemoryBackend::default(), true);
        for op in ops {
            match op {
                Op::Apply(changes, batch) => {
                    let changes: Changes = changes
                        .into_iter()
                        .map(|(k, v)| (k, v.map(Bytes::from)))
                        .collect();
                    let a = if batch { Atomicity::Batch } else { Atomicity::InOrder };
                    plain.apply(changes.clone(), a).unwrap();
                    packed.apply(changes, a).unwrap();
                }
                Op::Get(k) => prop_assert_eq!(plain.get(&k).unwrap(), packed.get(&k).unwrap()),
                Op::ScanPrefix(p) => {
                    prop_assert_eq!(scan_prefix(&plain, &p), scan_prefix(&packed, &p), "prefix {:?}", p)
                }
                // Callers start within the prefix (the scan stops at the first key outside it).
                Op::ScanFrom(p, s, n) if s.starts_with(&p) => prop_assert_eq!(
                    scan_from(&plain, &p, &s, n),
                    scan_from(&packed, &p, &s, n),
                    "prefix {:?} from {:?}", p, s
                ),
                Op::ScanFrom(p, _, n) => prop_assert_eq!(
                    scan_from(&plain, &p, &p, n),
                    scan_from(&packed, &p, &p, n),
                    "prefix {:?}", p
                ),
                Op::LastKey(p) => {
                    prop_assert_eq!(plain.last_key(&p).unwrap(), packed.last_key(&p).unwrap())
                }
            }
            // Far fewer records below: blocks, and no message or index key of its own.
            prop_assert!(scan_prefix(&*packed, &[keys::MESSAGE]).is_empty());
            prop_assert!(scan_prefix(&*packed, &[keys::INDEX]).is_empty());
        }
    }
}

/// Records every change the key space below is given, in order.
#[derive(Clone, Default)]
struct Recording {
    inner: MemoryBackend,
    log: Arc<Mutex<Changes>>,
}

impl Backend for Recording {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key)
    }
    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StoreError> {
        self.inner.scan_prefix(prefix, visit)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut VisitWhile<'_>,
    ) -> Result<(), StoreError> {
        self.inner.scan_from(prefix, start, visit)
    }
    fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty()
    }
    fn apply(&self, changes: Changes, a: Atomicity) -> Result<(), StoreError> {
        self.log.lock().extend(changes.iter().cloned());
        self.inner.apply(changes, a)
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One step of a queue history as the engine writes it: a message put, then its entries in
/// one or more queues (fan-out); or an entry removed, then its message once no entry holds it.
#[derive(Debug, Clone)]
enum Step {
    Publish(Vec<usize>),
    Remove(usize),
    Extent(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => prop::collection::btree_set(0usize..3, 1..4)
            .prop_map(|qs| Step::Publish(qs.into_iter().collect())),
        2 => any::<prop::sample::Index>().prop_map(|i| Step::Remove(i.index(1 << 16))),
        1 => (0usize..3).prop_map(Step::Extent),
    ]
}

/// The engine's view of a history: entries (queue, seq, id) and the next id and seqs.
#[derive(Default)]
struct History {
    entries: Vec<(usize, u64, u64)>,
    next_id: u64,
    next_seq: [u64; 3],
}

impl History {
    /// The changes of `steps`, in the engine's crash-safe order.
    fn changes(&mut self, steps: &[Step]) -> Changes {
        let mut out = Changes::new();
        for s in steps {
            match s {
                Step::Publish(queues) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    out.push((
                        keys::message(id).to_vec(),
                        Some(Bytes::from(vec![7u8; 1 + id as usize % 5])),
                    ));
                    for &q in queues {
                        let seq = self.next_seq[q];
                        self.next_seq[q] += 1;
                        let mut v = id.to_be_bytes().to_vec();
                        v.push(0);
                        out.push((index_key(q, seq), Some(Bytes::from(v))));
                        self.entries.push((q, seq, id));
                    }
                }
                Step::Remove(i) => {
                    if self.entries.is_empty() {
                        continue;
                    }
                    let (q, seq, id) = self.entries.remove(i % self.entries.len());
                    out.push((index_key(q, seq), None));
                    if !self.entries.iter().any(|e| e.2 == id) {
                        out.push((keys::message(id).to_vec(), None));
                    }
                }
                Step::Extent(q) => out.push((
                    keys::extent(&queue_prefix(*q)),
                    Some(Bytes::from(self.next_seq[*q].to_be_bytes().to_vec())),
                )),
            }
        }
        out
    }
}

/// Every index entry's message is stored.
fn no_dangling_entry(b: &dyn Backend) -> Result<(), String> {
    for (k, v) in scan_prefix(b, &[keys::INDEX]) {
        let id = u64::from_be_bytes(v[..8].try_into().unwrap());
        if b.get(&keys::message(id)).unwrap().is_none() {
            return Err(format!(
                "entry {k:02x?} points at message {id}, which is gone"
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WARREN_PACKED_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_prefix_of_an_in_order_write_keeps_each_entry_with_its_message(
        writes in prop::collection::vec(prop::collection::vec(step(), 1..40), 1..6),
    ) {
        let below = Recording::default();
        let packed = Packed::new(below.clone(), true);
        let mut history = History::default();
        for steps in &writes {
            let before = below.log.lock().len();
            packed.apply(history.changes(steps), Atomicity::InOrder).unwrap();
            let log = below.log.lock().clone();
            // A crash after any number of this write's changes reached the key space below.
            for cut in before..=log.len() {
                let crashed = MemoryBackend::default();
                crashed.apply(log[..cut].to_vec(), Atomicity::InOrder).unwrap();
                let view = Packed::new(crashed, true);
                if let Err(e) = no_dangling_entry(&view) {
                    return Err(TestCaseError::fail(format!("after {cut} of {} changes: {e}", log.len())));
                }
            }
        }
    }
}

#[test]
fn block_keys_and_malformed_keys_are_refused() {
    let packed = Packed::new(MemoryBackend::default(), true);
    for key in [
        vec![MESSAGE_BLOCK, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![INDEX_BLOCK, 1, b'/'],
        vec![keys::MESSAGE, 1, 2],
        vec![keys::INDEX, 1, b'/', 1, b'q', 0],
    ] {
        let err = packed
            .apply(vec![(key.clone(), Some(Bytes::new()))], Atomicity::InOrder)
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{key:?}: {err}");
    }
    assert!(
        packed.is_empty().unwrap(),
        "nothing of a refused write is applied"
    );
}

#[test]
fn an_unpacked_key_space_is_passed_through() {
    let packed = Packed::new(MemoryBackend::default(), false);
    packed
        .apply(
            vec![(keys::message(5).to_vec(), Some(Bytes::from_static(b"m")))],
            Atomicity::InOrder,
        )
        .unwrap();
    assert_eq!(
        scan_prefix(&*packed, &[keys::MESSAGE]),
        vec![(keys::message(5).to_vec(), b"m".to_vec())]
    );
}

#[test]
fn sixteen_entries_and_four_messages_share_a_record() {
    let packed = Packed::new(MemoryBackend::default(), true);
    let mut changes = Changes::new();
    for n in 0..32u64 {
        changes.push((keys::message(n).to_vec(), Some(Bytes::from_static(b"body"))));
        changes.push((index_key(0, n), Some(Bytes::from(n.to_be_bytes().to_vec()))));
    }
    packed.apply(changes, Atomicity::InOrder).unwrap();
    assert_eq!(scan_prefix(&*packed, &[MESSAGE_BLOCK]).len(), 8);
    assert_eq!(scan_prefix(&*packed, &[INDEX_BLOCK]).len(), 2);
    assert_eq!(scan_prefix(&packed, &[keys::INDEX]).len(), 32);
}
