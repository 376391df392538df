//! Online compaction: generated store operations interleaved with the compaction's steps keep
//! exactly what a model says, and a compaction stopped where a crash could stop it leaves a
//! directory that opens on every record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;

use super::super::tests::Scratch;
use super::{Compaction, OnlineStep};
use crate::{MessageOp, MessageStore, SledOptions, SledStore};

/// No background threads: the test drives every step.
fn options() -> SledOptions {
    SledOptions {
        background_flush: None,
        online_compaction: None,
        cache_capacity: 4 << 20,
        ..SledOptions::default()
    }
}

const QUEUES: [&str; 2] = ["a", "b"];

/// What each queue holds: seq -> (id, body).
type Model = BTreeMap<&'static str, BTreeMap<u64, (u64, Bytes)>>;

/// The store's queues, read back.
fn contents(s: &SledStore) -> Model {
    let mut out = Model::new();
    for q in QUEUES {
        let entries = s.load_queue(b"/", q.as_bytes()).unwrap();
        out.insert(
            q,
            entries
                .into_iter()
                .map(|e| (e.seq, (e.id, e.message)))
                .collect(),
        );
    }
    out
}

fn empty_model() -> Model {
    QUEUES.iter().map(|q| (*q, BTreeMap::new())).collect()
}

#[derive(Debug, Clone)]
enum Op {
    /// Publish `n` messages of `size` bytes to queue `q`.
    Publish { q: usize, n: u8, size: u16 },
    /// Ack the oldest `n` of queue `q`.
    Ack { q: usize, n: u8 },
    /// `sync` (hands pending writes to sled, so the copy and the mirror see them).
    Sync,
    /// A checkpoint, as the drain thread's (after a failed swap it suspends the store).
    Checkpoint,
    /// Start a compaction if none runs.
    Begin,
    /// Copy `n` records of the running compaction.
    Copy { n: u8 },
    /// Finish the running compaction (copying what is left first).
    Finish,
    /// The same, its swap failing right after the commit rename: the database is closed and
    /// the store serves only writes and syncs (into the log) until the next reopen.
    FinishFailingAtCommit,
    /// Close and reopen the store (abandoning a running compaction).
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 1..40u8, 1..300u16).prop_map(|(q, n, size)| Op::Publish { q, n, size }),
        3 => (0..2usize, 1..40u8).prop_map(|(q, n)| Op::Ack { q, n }),
        2 => Just(Op::Sync),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::Begin),
        3 => (1..50u8).prop_map(|n| Op::Copy { n }),
        2 => Just(Op::Finish),
        1 => Just(Op::FinishFailingAtCommit),
        1 => Just(Op::Reopen),
    ]
}

fn body(id: u64, size: u16) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| (id as u8).wrapping_mul(31).wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

/// Runs `ops` against a store and the model; checks the store against the model after
/// every compaction step and every reopen.
fn run(ops: &[Op]) {
    let dir = Scratch::new("model");
    let mut store = SledStore::open_with(&dir.0, &options()).unwrap();
    let mut model = empty_model();
    let mut next_seq = [0u64; 2];
    // A swap failed past its commit: compactions and reads wait for the reopen, and a sync
    // may be refused (a checkpoint that met the closed database suspends the store), the
    // writes it would have confirmed kept all the same by the resume of the store's drop.
    let mut broken = false;
    // The compaction borrows the store's backend; keep it in a scope per op sequence.
    let mut i = 0;
    while i < ops.len() {
        // Set when the inner loop ends for a reopen: the live count to expect after it.
        let mut reopen_expecting: Option<Option<(u64, u64)>> = None;
        let mut compaction: Option<Compaction<'_>> = None;
        while i < ops.len() {
            let op = &ops[i];
            i += 1;
            match op {
                Op::Publish { q, n, size } => {
                    let mut write = Vec::new();
                    for _ in 0..*n {
                        let id = store.next_message_id().unwrap();
                        let seq = next_seq[*q];
                        next_seq[*q] += 1;
                        let message = body(id, *size);
                        write.push(MessageOp::Put {
                            id,
                            message: message.clone(),
                        });
                        write.push(MessageOp::Enqueue {
                            vhost: Bytes::from_static(b"/"),
                            queue: Bytes::from_static(QUEUES[*q].as_bytes()),
                            seq,
                            id,
                        });
                        model
                            .get_mut(QUEUES[*q])
                            .unwrap()
                            .insert(seq, (id, message));
                    }
                    store.write(&write).unwrap();
                }
                Op::Ack { q, n } => {
                    let entries = model.get_mut(QUEUES[*q]).unwrap();
                    let oldest: Vec<(u64, u64)> = entries
                        .iter()
                        .take(*n as usize)
                        .map(|(seq, (id, _))| (*seq, *id))
                        .collect();
                    let write: Vec<MessageOp> = oldest
                        .iter()
                        .map(|&(seq, id)| {
                            entries.remove(&seq);
                            MessageOp::Remove {
                                vhost: Bytes::from_static(b"/"),
                                queue: Bytes::from_static(QUEUES[*q].as_bytes()),
                                seq,
                                id,
                            }
                        })
                        .collect();
                    if !write.is_empty() {
                        store.write(&write).unwrap();
                    }
                }
                Op::Sync if broken => drop(store.sync()),
                Op::Sync => store.sync().unwrap(),
                Op::Checkpoint if broken => drop(store.engine.checkpoint()),
                Op::Checkpoint => store.engine.checkpoint().unwrap(),
                Op::Begin | Op::Copy { .. } | Op::Finish | Op::FinishFailingAtCommit if broken => {}
                Op::FinishFailingAtCommit => {
                    if let Some(mut c) = compaction.take() {
                        while !c.copy_some(64).unwrap() {}
                        assert!(c.finish(Some(OnlineStep::Committed)).is_err());
                        broken = true;
                    }
                }
                Op::Begin => {
                    if compaction.is_none() {
                        compaction = Some(
                            Compaction::begin(store.engine.backend(), &dir.0, &options()).unwrap(),
                        );
                    }
                }
                Op::Copy { n } => {
                    if let Some(c) = compaction.as_mut() {
                        c.copy_some(*n as usize).unwrap();
                    }
                }
                Op::Finish => {
                    if let Some(mut c) = compaction.take() {
                        while !c.copy_some(64).unwrap() {}
                        c.finish(None).unwrap();
                        assert!(!dir.0.join(super::BUILDING).exists());
                        assert_eq!(contents(&store), model, "after a swap");
                        // The live count is exact, so the reopened store's scans agree.
                        reopen_expecting = Some(Some(store.live_now()));
                        break;
                    }
                }
                Op::Reopen => {
                    reopen_expecting = Some(None);
                    break;
                }
            }
        }
        drop(compaction);
        if broken && reopen_expecting.is_none() {
            reopen_expecting = Some(None);
        }
        if let Some(expect_live) = reopen_expecting {
            broken = false;
            store = reopen(store, &dir.0);
            assert!(!dir.0.join(super::BUILDING).exists());
            assert_eq!(contents(&store), model, "after a reopen");
            if let Some((bytes, records)) = expect_live {
                // Open counts messages and index entries; the running count also has the
                // meta keys written since (`max_message_id`: one record under 64 bytes).
                let (b, r) = store.live_now();
                assert!(b <= bytes && bytes - b < 64, "live bytes {b} vs {bytes}");
                assert!(
                    r <= records && records - r <= 1,
                    "live records {r} vs {records}"
                );
            }
        }
    }
    assert_eq!(contents(&store), model, "at the end");
}

/// Closes and reopens; the live count of the reopened store is its open scans' count,
/// which must equal the count kept across the run (definitions aside: there are none here
/// but the format key, which open does not count).
fn reopen(store: SledStore, dir: &Path) -> SledStore {
    drop(store);
    let store = SledStore::open_with(dir, &options()).unwrap();
    store.finish_open_scan().unwrap();
    store
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_operations_interleaved_with_compaction_steps_match_the_model(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        run(&ops);
    }
}

/// The shrunk case of the search above against a resume that reopened the old database
/// after a swap failed past its commit: the write taken while suspended, and the one before
/// the checkpoint, were lost at the next open.
#[test]
fn a_write_after_a_swap_failed_past_its_commit_survives_the_resume() {
    let publish = Op::Publish {
        q: 0,
        n: 1,
        size: 1,
    };
    run(&[
        Op::Begin,
        Op::FinishFailingAtCommit,
        publish.clone(),
        Op::Checkpoint,
        publish,
    ]);
}

/// A store of 3,000 messages in `a` with all but the newest 300 acked and synced, bodies in
/// sled (no message log): the files an online compaction shrinks.
fn churned(dir: &Path) -> (SledStore, Model) {
    let without_log = SledOptions {
        log_messages: false,
        ..options()
    };
    let s = SledStore::open_with(dir, &without_log).unwrap();
    let mut model = empty_model();
    let mut write = Vec::new();
    for seq in 0..3000u64 {
        let id = s.next_message_id().unwrap();
        let message = body(id, 1000);
        write.push(MessageOp::Put {
            id,
            message: message.clone(),
        });
        write.push(MessageOp::Enqueue {
            vhost: Bytes::from_static(b"/"),
            queue: Bytes::from_static(b"a"),
            seq,
            id,
        });
        model.get_mut("a").unwrap().insert(seq, (id, message));
    }
    s.write(&write).unwrap();
    s.sync().unwrap();
    // In sled before the acks (a checkpoint: a sync only logs): acked while still pending,
    // they would never have been written to sled.
    s.engine.checkpoint().unwrap();
    let acked: Vec<MessageOp> = model
        .get("a")
        .unwrap()
        .iter()
        .take(2700)
        .map(|(seq, (id, _))| MessageOp::Remove {
            vhost: Bytes::from_static(b"/"),
            queue: Bytes::from_static(b"a"),
            seq: *seq,
            id: *id,
        })
        .collect();
    s.write(&acked).unwrap();
    s.sync().unwrap();
    let a = model.get_mut("a").unwrap();
    *a = a.split_off(&2700);
    (s, model)
}

#[test]
fn an_online_compaction_keeps_every_record_and_gives_space_back() {
    let dir = Scratch::new("shrink");
    let (s, model) = churned(&dir.0);
    // Synced writes are in the write-ahead log until a checkpoint hands them to sled.
    s.engine.checkpoint().unwrap();
    let (live, records) = s.live_now();
    assert_eq!(
        records,
        600 + 2,
        "300 messages, 300 entries, the max_message_id key, the queue's extent"
    );
    let report = s.compact_online().unwrap().unwrap();
    assert!(
        report.disk_after < report.disk_before,
        "{} -> {}",
        report.disk_before,
        report.disk_after
    );
    assert_eq!(report.live_bytes, live);
    assert_eq!(contents(&s), model);
    // Writes go on, on the swapped-in database, and survive a reopen.
    s.write(&[
        MessageOp::Put {
            id: 99_999,
            message: body(1, 10),
        },
        MessageOp::Enqueue {
            vhost: Bytes::from_static(b"/"),
            queue: Bytes::from_static(b"b"),
            seq: 0,
            id: 99_999,
        },
    ])
    .unwrap();
    s.sync().unwrap();
    drop(s);
    let s = SledStore::open_with(&dir.0, &options()).unwrap();
    let mut expected = model;
    expected
        .get_mut("b")
        .unwrap()
        .insert(0, (99_999, body(1, 10)));
    assert_eq!(contents(&s), expected);
}

/// Publishes one message of `size` bytes to `a` at position 5000 and syncs it, into `model`.
fn publish_confirmed(s: &SledStore, model: &mut Model, size: u16) {
    let id = s.next_message_id().unwrap();
    s.write(&[
        MessageOp::Put {
            id,
            message: body(id, size),
        },
        MessageOp::Enqueue {
            vhost: Bytes::from_static(b"/"),
            queue: Bytes::from_static(b"a"),
            seq: 5000,
            id,
        },
    ])
    .unwrap();
    s.sync().unwrap();
    model
        .get_mut("a")
        .unwrap()
        .insert(5000, (id, body(id, size)));
}

#[test]
fn stopped_after_the_copy_the_old_database_stands_and_the_copy_is_discarded() {
    let dir = Scratch::new("copied");
    let (s, mut model) = churned(&dir.0);
    assert!(s.compact_online_until(Some(OnlineStep::Copied)).is_err());
    assert!(dir.0.join(super::BUILDING).exists());
    // The store goes on serving without the mirror.
    publish_confirmed(&s, &mut model, 5);
    drop(s);
    let s = SledStore::open_with(&dir.0, &options()).unwrap();
    assert!(!dir.0.join(super::BUILDING).exists());
    assert_eq!(contents(&s), model);
}

/// A swap that failed past its commit point leaves the old database beside the committed
/// copy. Messages confirmed after it (in the log only) must survive the resume that follows
/// (the drop's, here): its reopen finishes the swap and replays the log into the copy. It
/// replayed into the old database, which the next open then threw away.
#[test]
fn a_resume_after_a_swap_failed_past_its_commit_replays_into_the_copy() {
    let dir = Scratch::new("resumed");
    let (s, mut model) = churned(&dir.0);
    assert!(s.compact_online_until(Some(OnlineStep::Committed)).is_err());
    publish_confirmed(&s, &mut model, 7);
    // The checkpoint before a definition meets the closed database: the store suspends.
    assert!(crate::DefinitionStore::put_vhost(&s, b"refused").is_err());
    drop(s);
    let s = SledStore::open_with(&dir.0, &options()).unwrap();
    assert!(!dir.0.join(super::COMPACT).exists());
    assert_eq!(contents(&s), model);
    assert!(s.disk_bytes().unwrap() < 3000 * 1000, "the copy is in use");
}

#[test]
fn stopped_at_the_commit_the_copy_is_swapped_in_at_the_next_open() {
    let dir = Scratch::new("committed");
    let (s, model) = churned(&dir.0);
    assert!(s.compact_online_until(Some(OnlineStep::Committed)).is_err());
    assert!(dir.0.join(super::COMPACT).exists());
    // The database was closed for the swap: what needs it is refused. A definition change
    // is made in the write-ahead log (as a `sync` is), which the next open replays; its
    // write to the closed database fails and suspends the store.
    crate::DefinitionStore::put_vhost(&s, b"other").unwrap();
    assert!(s.load_queue(b"/", b"a").is_err());
    drop(s);
    let s = SledStore::open_with(&dir.0, &options()).unwrap();
    assert!(!dir.0.join(super::COMPACT).exists());
    assert!(!dir.0.join(super::OLD).exists());
    assert_eq!(contents(&s), model);
    let vhosts = crate::DefinitionStore::load_definitions(&s).unwrap().vhosts;
    assert!(vhosts.iter().any(|v| v.as_ref() == b"other"), "{vhosts:?}");
    assert!(s.disk_bytes().unwrap() < 3000 * 1000);
}

#[test]
fn writes_from_another_thread_during_an_online_compaction_are_kept() {
    let dir = Scratch::new("concurrent");
    let (s, mut model) = churned(&dir.0);
    let s = std::sync::Arc::new(s);
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut added = Vec::new();
            for seq in 10_000..12_000u64 {
                let id = s.next_message_id().unwrap();
                s.write(&[
                    MessageOp::Put {
                        id,
                        message: body(id, 200),
                    },
                    MessageOp::Enqueue {
                        vhost: Bytes::from_static(b"/"),
                        queue: Bytes::from_static(b"b"),
                        seq,
                        id,
                    },
                ])
                .unwrap();
                if seq % 50 == 0 {
                    s.sync().unwrap();
                }
                added.push((seq, id));
            }
            s.sync().unwrap();
            added
        })
    };
    for _ in 0..3 {
        s.compact_online().unwrap();
    }
    for (seq, id) in writer.join().unwrap() {
        model.get_mut("b").unwrap().insert(seq, (id, body(id, 200)));
    }
    assert_eq!(contents(&s), model);
    let s = std::sync::Arc::into_inner(s).unwrap();
    drop(s);
    let s = SledStore::open_with(&dir.0, &options()).unwrap();
    assert_eq!(contents(&s), model);
}

#[test]
fn the_policy_waits_after_a_compaction_as_long_as_the_next_should_take() {
    use std::time::{Duration, Instant};
    let policy = crate::CompactPolicy {
        ratio: 2.0,
        min_disk_bytes: 1000,
    };
    // 10,000 bytes of files for 1,000 bytes in 10 records (1,800 needed): over the ratio.
    assert!(super::wanted(&policy, 10_000, (1000, 10), None));
    assert!(
        !super::wanted(&policy, 3_000, (1000, 10), None),
        "under the ratio"
    );
    assert!(
        !super::wanted(&policy, 900, (0, 0), None),
        "under the minimum size"
    );
    let last = |ended: Instant, took: u64, live_bytes: u64| {
        Some(super::LastCompaction {
            ended,
            took: Duration::from_secs(took),
            live_bytes,
        })
    };
    assert!(!super::wanted(
        &policy,
        10_000,
        (1000, 10),
        last(Instant::now(), 1, 1000)
    ));
    let long_ago = Instant::now().checked_sub(Duration::from_secs(60));
    if let Some(ended) = long_ago {
        assert!(super::wanted(
            &policy,
            10_000,
            (1000, 10),
            last(ended, 20, 1000)
        ));
        assert!(!super::wanted(
            &policy,
            10_000,
            (1000, 10),
            last(ended, 90, 1000)
        ));
        // The same long compaction, but nine tenths of what it copied are gone since: the
        // next copy should take 9 s, so the 10 s minimum is all that is left to wait.
        assert!(super::wanted(
            &policy,
            10_000,
            (1000, 10),
            last(ended, 90, 10_000)
        ));
        let recently = Instant::now().checked_sub(Duration::from_secs(5));
        if let Some(ended) = recently {
            assert!(!super::wanted(
                &policy,
                10_000,
                (1000, 10),
                last(ended, 90, 10_000)
            ));
        }
    }
}
