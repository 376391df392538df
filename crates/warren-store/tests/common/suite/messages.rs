//! Cases about messages, queue indexes, ids and flushes.

use std::sync::Barrier;
use std::thread;

use warren_store::{DefinitionStore, MessageOp, MessageStore, StoreError};

use crate::common::{Harness, enqueue, entries, put, redeliver, remove};

pub fn messages_round_trip_through_reopen(mut h: impl Harness) {
    let s = h.store();
    s.write(&[put(10, "hello"), enqueue("/", "q", 0, 10)])
        .unwrap();
    s.write(&[put(11, "world"), enqueue("/", "q", 1, 11)])
        .unwrap();
    s.sync().unwrap();
    h.reopen();
    assert_eq!(
        entries(h.store(), "/", "q"),
        [
            (0, 10, false, "hello".into()),
            (1, 11, false, "world".into())
        ]
    );
    let stats = h.store().stats();
    assert_eq!((stats.messages, stats.queue_entries), (2, 2));
}

pub fn a_message_in_two_queues_is_stored_once_and_deleted_after_both_removes(mut h: impl Harness) {
    let s = h.store();
    s.write(&[
        put(1, "shared"),
        enqueue("/", "a", 5, 1),
        enqueue("/", "b", 9, 1),
    ])
    .unwrap();
    let stats = s.stats();
    assert_eq!((stats.messages, stats.queue_entries), (1, 2));
    s.write(&[remove("/", "a", 5, 1)]).unwrap();
    h.reopen();
    let s = h.store();
    assert_eq!(s.stats().messages, 1);
    assert!(entries(s, "/", "a").is_empty());
    assert_eq!(entries(s, "/", "b"), [(9, 1, false, "shared".into())]);
    s.write(&[remove("/", "b", 9, 1)]).unwrap();
    assert_eq!(s.stats().messages, 0);
    // The bytes are gone: enqueueing the id again is refused.
    assert!(matches!(
        s.write(&[enqueue("/", "c", 1, 1)]),
        Err(StoreError::UnknownMessage { id: 1 })
    ));
    h.reopen();
    let stats = h.store().stats();
    assert_eq!((stats.messages, stats.queue_entries), (0, 0));
    assert!(matches!(
        h.store().write(&[enqueue("/", "c", 1, 1)]),
        Err(StoreError::UnknownMessage { id: 1 })
    ));
}

pub fn load_queue_returns_entries_in_seq_order(mut h: impl Harness) {
    let s = h.store();
    let seqs = [70_000u64, 3, 256, 255, u64::MAX, 0, 1 << 40, 65_536];
    for (i, &seq) in seqs.iter().enumerate() {
        let id = i as u64 + 1;
        s.write(&[put(id, &format!("m{seq}")), enqueue("/", "q", seq, id)])
            .unwrap();
    }
    h.reopen();
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    let loaded: Vec<u64> = entries(h.store(), "/", "q").iter().map(|e| e.0).collect();
    assert_eq!(loaded, sorted);
    assert!(
        entries(h.store(), "/", "q")
            .iter()
            .all(|(seq, _, _, m)| *m == format!("m{seq}"))
    );
}

pub fn queues_and_vhosts_whose_names_are_prefixes_do_not_mix(mut h: impl Harness) {
    let s = h.store();
    s.write(&[
        put(1, "x"),
        enqueue("a", "q", 1, 1),
        enqueue("a", "q2", 1, 1),
        enqueue("ab", "q", 1, 1),
        enqueue("", "", 1, 1),
    ])
    .unwrap();
    h.reopen();
    for (v, q) in [("a", "q"), ("a", "q2"), ("ab", "q"), ("", "")] {
        assert_eq!(entries(h.store(), v, q).len(), 1, "{v}/{q}");
    }
}

pub fn redelivered_flag_survives_reopen(mut h: impl Harness) {
    let s = h.store();
    s.write(&[
        put(1, "a"),
        enqueue("/", "q", 1, 1),
        put(2, "b"),
        enqueue("/", "q", 2, 2),
        enqueue("/", "r", 1, 2),
    ])
    .unwrap();
    s.write(&[redeliver("/", "q", 2, 2)]).unwrap();
    s.write(&[redeliver("/", "q", 2, 2)]).unwrap(); // idempotent
    h.reopen();
    assert_eq!(
        entries(h.store(), "/", "q"),
        [(1, 1, false, "a".into()), (2, 2, true, "b".into())]
    );
    // The flag is per entry, not per message.
    assert_eq!(entries(h.store(), "/", "r"), [(1, 2, false, "b".into())]);
}

pub fn ops_in_one_write_see_the_ops_before_them(mut h: impl Harness) {
    let s = h.store();
    s.write(&[
        put(1, "a"),
        enqueue("/", "q", 1, 1),
        redeliver("/", "q", 1, 1),
        put(2, "b"),
        enqueue("/", "q", 2, 2),
        remove("/", "q", 2, 2),
        enqueue("/", "q", 3, 1),
        remove("/", "q", 1, 1),
    ])
    .unwrap();
    h.reopen();
    assert_eq!(entries(h.store(), "/", "q"), [(3, 1, false, "a".into())]);
    assert_eq!(h.store().stats().messages, 1);
}

type IsExpected = fn(&StoreError) -> bool;

pub fn a_refused_write_changes_nothing(mut h: impl Harness) {
    let s = h.store();
    s.write(&[put(1, "a"), enqueue("/", "q", 1, 1)]).unwrap();
    // Only what a write can check without reading the disk is refused: its own earlier ops
    // and the in-memory reference counts. An occupied `seq` from an earlier write or a
    // `Remove` of an absent entry is the caller's bug and goes unnoticed (see `MessageOp`).
    let refused: [(Vec<MessageOp>, IsExpected); 9] = [
        (
            vec![
                put(2, "b"),
                enqueue("/", "q", 2, 2),
                enqueue("/", "q", 2, 2),
            ],
            |e| matches!(e, StoreError::DuplicateEntry { seq: 2, .. }),
        ),
        (vec![remove("/", "q", 1, 1), enqueue("/", "q", 5, 9)], |e| {
            matches!(e, StoreError::UnknownMessage { id: 9 })
        }),
        (
            vec![
                remove("/", "q", 1, 1),
                put(1, "again"),
                put(3, "lonely"),
                enqueue("/", "q", 4, 1),
            ],
            |e| matches!(e, StoreError::UnreferencedMessage { id: 3 }),
        ),
        (
            vec![
                redeliver("/", "q", 1, 1),
                remove("/", "q", 1, 1),
                remove("/", "q", 1, 1),
            ],
            |e| matches!(e, StoreError::EntryNotFound { seq: 1, .. }),
        ),
        (
            vec![remove("/", "q", 1, 1), redeliver("/", "q", 1, 1)],
            |e| matches!(e, StoreError::EntryNotFound { seq: 1, .. }),
        ),
        (
            vec![put(6, "d"), enqueue("/", "q", 6, 6), remove("/", "q", 6, 1)],
            |e| matches!(e, StoreError::EntryNotFound { seq: 6, .. }),
        ),
        (
            vec![redeliver("/", "q", 1, 1), remove("/", "q", 7, 9)],
            |e| matches!(e, StoreError::UnknownMessage { id: 9 }),
        ),
        (
            vec![put(4, "c"), enqueue("/", "q", 4, 4), put(1, "dup")],
            |e| matches!(e, StoreError::DuplicateMessage { id: 1 }),
        ),
        (
            vec![put(5, "c"), enqueue(&"v".repeat(256), "q", 1, 5)],
            |e| matches!(e, StoreError::NameTooLong { what: "vhost", .. }),
        ),
    ];
    for (ops, expected) in refused {
        let err = s.write(&ops).unwrap_err();
        assert!(expected(&err), "{ops:?} gave {err:?}");
        assert_eq!(
            entries(s, "/", "q"),
            [(1, 1, false, "a".into())],
            "after {ops:?}"
        );
    }
    let stats = s.stats();
    assert_eq!((stats.messages, stats.queue_entries), (1, 1));
    h.reopen();
    assert_eq!(entries(h.store(), "/", "q"), [(1, 1, false, "a".into())]);
    let stats = h.store().stats();
    assert_eq!((stats.messages, stats.queue_entries), (1, 1));
}

pub fn next_message_id_exceeds_every_id_ever_stored_across_reopen(mut h: impl Harness) {
    let s = h.store();
    let first = s.next_message_id().unwrap();
    let second = s.next_message_id().unwrap();
    assert!(second > first);
    // An id chosen by the caller above the counter moves the counter past it.
    s.write(&[put(1000, "m"), enqueue("/", "q", 1, 1000)])
        .unwrap();
    assert!(s.next_message_id().unwrap() > 1000);
    // Even once the highest message is gone, its id is not handed out again.
    s.write(&[remove("/", "q", 1, 1000)]).unwrap();
    h.reopen();
    assert!(h.store().next_message_id().unwrap() > 1000);
    h.reopen();
    assert!(h.store().next_message_id().unwrap() > 1000);
}

pub fn definition_changes_and_syncs_are_counted_as_flushes(h: impl Harness) {
    let s = h.store();
    let before = s.stats().flushes;
    s.put_vhost(b"v").unwrap();
    s.sync().unwrap();
    assert_eq!(s.stats().flushes, before + 2);
}

/// Returns the number of `sync` calls made, for stores that assert on the flush count.
pub fn concurrent_writers_each_followed_by_sync_all_succeed(mut h: impl Harness) -> u64 {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 25;
    let s = h.store();
    let start = Barrier::new(THREADS as usize);
    let flushes_before = s.stats().flushes;
    thread::scope(|scope| {
        for t in 0..THREADS {
            let start = &start;
            scope.spawn(move || {
                start.wait();
                for r in 0..ROUNDS {
                    let id = s.next_message_id().unwrap();
                    let queue = format!("q{t}");
                    s.write(&[put(id, &format!("{t}-{r}")), enqueue("/", &queue, r, id)])
                        .unwrap();
                    s.sync().unwrap();
                }
            });
        }
    });
    let flushes = s.stats().flushes - flushes_before;
    assert!(flushes <= THREADS * ROUNDS);
    h.reopen();
    for t in 0..THREADS {
        let loaded = entries(h.store(), "/", &format!("q{t}"));
        let expected: Vec<String> = (0..ROUNDS).map(|r| format!("{t}-{r}")).collect();
        assert_eq!(
            loaded.into_iter().map(|e| e.3).collect::<Vec<_>>(),
            expected
        );
    }
    flushes
}

fn hold(id: u64) -> MessageOp {
    MessageOp::Hold { id }
}

fn release(id: u64) -> MessageOp {
    MessageOp::Release { id }
}

/// Issue 11: a publish fans a persistent message out to queues `a` and `b` one at a time, and
/// `a` removes its entry (a no-ack consumer took it) before `b` enqueued it. The hold keeps
/// the message stored for `b`.
pub fn a_held_message_outlives_the_removal_of_its_first_entry(mut h: impl Harness) {
    let s = h.store();
    s.write(&[put(1, "fanned"), hold(1)]).unwrap();
    assert_eq!(s.stats().held, 1);
    s.write(&[enqueue("/", "a", 0, 1)]).unwrap();
    s.write(&[remove("/", "a", 0, 1)]).unwrap();
    s.write(&[enqueue("/", "b", 0, 1)]).unwrap();
    s.write(&[release(1)]).unwrap();
    let stats = s.stats();
    assert_eq!((stats.messages, stats.queue_entries, stats.held), (1, 1, 0));
    s.sync().unwrap();
    h.reopen();
    assert!(entries(h.store(), "/", "a").is_empty());
    assert_eq!(
        entries(h.store(), "/", "b"),
        [(0, 1, false, "fanned".into())]
    );
}

/// The release of the last reference deletes the message, pending writes and all.
pub fn releasing_the_last_reference_deletes_the_message(mut h: impl Harness) {
    let s = h.store();
    s.write(&[put(1, "gone"), hold(1), enqueue("/", "a", 0, 1)])
        .unwrap();
    s.write(&[remove("/", "a", 0, 1)]).unwrap();
    assert_eq!(s.stats().messages, 1, "still held");
    s.write(&[release(1)]).unwrap();
    let stats = s.stats();
    assert_eq!((stats.messages, stats.queue_entries, stats.held), (0, 0, 0));
    assert!(matches!(
        s.write(&[enqueue("/", "b", 0, 1)]),
        Err(StoreError::UnknownMessage { id: 1 })
    ));
    // A message held by nobody but its publish, which then kept it nowhere.
    s.write(&[put(2, "refused everywhere"), hold(2)]).unwrap();
    s.write(&[release(2)]).unwrap();
    s.sync().unwrap();
    h.reopen();
    let stats = h.store().stats();
    assert_eq!((stats.messages, stats.queue_entries), (0, 0));
}

/// A release needs a hold: without one it would drop a queue's reference.
pub fn a_release_without_a_hold_is_refused_and_changes_nothing(mut h: impl Harness) {
    let s = h.store();
    s.write(&[put(1, "m"), enqueue("/", "a", 0, 1)]).unwrap();
    assert!(matches!(
        s.write(&[release(1)]),
        Err(StoreError::NotHeld { id: 1 })
    ));
    s.write(&[hold(1)]).unwrap();
    // Two releases of one hold: the second is refused, and the whole write with it.
    assert!(matches!(
        s.write(&[release(1), release(1)]),
        Err(StoreError::NotHeld { id: 1 })
    ));
    assert_eq!(s.stats().held, 1);
    s.write(&[release(1)]).unwrap();
    let stats = s.stats();
    assert_eq!((stats.messages, stats.queue_entries, stats.held), (1, 1, 0));
    assert!(matches!(
        s.write(&[hold(7)]),
        Err(StoreError::UnknownMessage { id: 7 })
    ));
    h.reopen();
    assert_eq!(entries(h.store(), "/", "a"), [(0, 1, false, "m".into())]);
}

/// Holds live in memory: a restart drops them, keeps what queues hold, and deletes a held
/// message no queue had enqueued yet.
pub fn a_restart_drops_holds_and_keeps_entries(mut h: impl Harness) {
    let s = h.store();
    s.write(&[put(1, "enqueued"), hold(1), enqueue("/", "a", 0, 1)])
        .unwrap();
    s.write(&[put(2, "not yet"), hold(2)]).unwrap();
    s.sync().unwrap();
    h.reopen();
    let s = h.store();
    let stats = s.stats();
    assert_eq!((stats.messages, stats.queue_entries, stats.held), (1, 1, 0));
    assert_eq!(entries(s, "/", "a"), [(0, 1, false, "enqueued".into())]);
    // The queue's entry is now the only reference.
    s.write(&[remove("/", "a", 0, 1)]).unwrap();
    assert_eq!(s.stats().messages, 0);
}

/// Deleting a queue while a publish holds a message it had enqueued keeps the message for the
/// queues after it.
pub fn deleting_a_queue_keeps_a_held_message(mut h: impl Harness) {
    let s = h.store();
    s.write(&[put(1, "m"), hold(1), enqueue("/", "a", 0, 1)])
        .unwrap();
    s.delete_queue(b"/", b"a").unwrap();
    assert_eq!(s.stats().messages, 1);
    s.write(&[enqueue("/", "b", 3, 1), release(1)]).unwrap();
    s.sync().unwrap();
    h.reopen();
    assert_eq!(entries(h.store(), "/", "b"), [(3, 1, false, "m".into())]);
    assert!(entries(h.store(), "/", "a").is_empty());
}
