//! The ready list against a model: per priority a plain vector of every ready message with its
//! position, deadline, returns and redelivered flag. Generated sequences push backlogs deep
//! enough to be packed into runs, and pop, expire, requeue and clear them; the model does not
//! know which messages are packed, nor (in the second run, with a one-byte memory budget, so
//! that every segment the list completes goes to disk) which are spilled.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use warren_codec::BasicProperties;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// Pushes `n` messages of this priority, with a deadline (`ttl` after `seq`) or none, and
    /// the redelivered flag of a recovered message.
    Push {
        n: usize,
        priority: u8,
        ttl: Option<u64>,
        redelivered: bool,
        shared: bool,
    },
    /// Pops up to `n` messages, keeping them to requeue later.
    Pop(usize),
    /// The same as dispatch does: a message whose spilled segment is not back yet is not
    /// waited for; the test polls until the I/O thread brings it.
    PopReady(usize),
    /// Expires at `seq + now` (deadlines are in seq units).
    Expire(u64),
    /// Requeues every other message popped so far.
    Requeue,
    /// Clears the list.
    Clear,
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..1500, prop_oneof![3 => Just(0u8), 1 => 0u8..3], proptest::option::of(0u64..3000), any::<bool>(), proptest::bool::weighted(0.1))
            .prop_map(|(n, priority, ttl, redelivered, shared)| Op::Push { n, priority, ttl, redelivered, shared }),
        2 => (1usize..600).prop_map(Op::Pop),
        1 => (1usize..600).prop_map(Op::PopReady),
        1 => (0u64..3000).prop_map(Op::Expire),
        1 => Just(Op::Requeue),
        1 => (0u8..8).prop_map(|n| if n == 0 { Op::Clear } else { Op::Pop(usize::from(n)) }),
    ]
}

fn make(seq: u64, priority: u8) -> Arc<Message> {
    let props = BasicProperties {
        priority: Some(priority),
        ..Default::default()
    };
    let body = Bytes::from(format!("m{seq}{}", "-".repeat((seq % 40) as usize)));
    Arc::new(
        Message::new("".into(), "q".into(), props.to_raw(), body, 7)
            .unwrap()
            .with_store_id(if seq % 4 == 0 { seq + 1 } else { 0 }),
    )
}

type Model = Vec<Vec<Ready>>;

fn key(r: &Ready) -> (u64, Message, u64, u32, bool) {
    (
        r.seq,
        (*r.message).clone(),
        r.deadline,
        r.returns,
        r.redelivered,
    )
}

fn model_pop(m: &mut Model) -> Option<Ready> {
    let l = m.iter_mut().rev().find(|l| !l.is_empty())?;
    Some(l.remove(0))
}

/// One spill area for every case, with a one-byte budget per queue.
static AREA: LazyLock<Arc<crate::spill::SpillArea>> = LazyLock::new(|| {
    let dir = crate::spill::tests::temp_dir("ready-model");
    crate::spill::SpillArea::open(&dir, 1, 0).expect("spill area")
});

/// Pops like dispatch, polling while the message is in a segment on its way back.
fn pop_ready(list: &mut ReadyList) -> Option<Ready> {
    let start = Instant::now();
    loop {
        if let Some(r) = list.pop_front_ready() {
            return Some(r);
        }
        if list.is_empty() || start.elapsed() > Duration::from_secs(10) {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Expires like the queue does: what is due at a head in a spilled segment not back yet is
/// not waited for (the queue expires again when it arrives); the test polls until it is.
fn expire_all(list: &mut ReadyList, now: u64, got: &mut Vec<Ready>) {
    let start = Instant::now();
    loop {
        list.pop_expired(now, got);
        if list.next_deadline() > now || start.elapsed() > Duration::from_secs(10) {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_ready_list_behaves_as_its_model(ops in proptest::collection::vec(any_op(), 1..40)) {
        check(ops, false)?;
    }

    #[test]
    fn a_ready_list_that_spills_everything_behaves_as_its_model(ops in proptest::collection::vec(any_op(), 1..40)) {
        check(ops, true)?;
    }
}

fn check(ops: Vec<Op>, spill: bool) -> Result<(), TestCaseError> {
    {
        let mut list = ReadyList::new(2);
        if spill {
            list.set_spill(Some(super::SpillTo {
                area: AREA.clone(),
                wake: None,
                writes: Default::default(),
            }));
        }
        let mut model: Model = vec![Vec::new(); 3];
        let mut popped: Vec<Ready> = Vec::new();
        let mut keep_alive = Vec::new();
        let mut seq = 0u64;
        for op in ops {
            match op {
                Op::Push {
                    n,
                    priority,
                    ttl,
                    redelivered,
                    shared,
                } => {
                    for _ in 0..n {
                        let message = make(seq, priority);
                        if shared {
                            keep_alive.push(message.clone());
                        }
                        let r = Ready {
                            seq,
                            message,
                            deadline: ttl.map_or(NEVER, |t| seq + t),
                            returns: 0,
                            redelivered,
                        };
                        // A copy: sharing the `Arc` with the model would keep it from being packed.
                        let copy = Ready {
                            message: Arc::new((*r.message).clone()),
                            ..r.clone()
                        };
                        model[usize::from(priority)].push(copy);
                        list.push_back(r);
                        seq += 1;
                    }
                }
                Op::Pop(n) | Op::PopReady(n) => {
                    for _ in 0..n {
                        let want = model_pop(&mut model);
                        let got = if matches!(op, Op::Pop(_)) {
                            list.pop_front()
                        } else {
                            pop_ready(&mut list)
                        };
                        prop_assert_eq!(got.as_ref().map(key), want.as_ref().map(key));
                        let Some(r) = got else { break };
                        popped.push(r);
                    }
                }
                Op::Expire(at) => {
                    let now = seq.saturating_sub(at);
                    let mut got = Vec::new();
                    expire_all(&mut list, now, &mut got);
                    let mut want = Vec::new();
                    for l in &mut model {
                        while l.first().is_some_and(|r| r.deadline <= now) {
                            want.push(l.remove(0));
                        }
                    }
                    // Levels expire independently: a level whose head was still on its way
                    // back from the spill area yields its expired messages in a later pass, so
                    // compare level by level (a stable sort keeps each level's own order).
                    let by_level = |v: &[Ready]| {
                        let mut k: Vec<_> = v.iter().map(key).collect();
                        k.sort_by_key(|k| k.1.priority.min(2));
                        k
                    };
                    prop_assert_eq!(by_level(&got), by_level(&want));
                }
                Op::Requeue => {
                    let back: Vec<Ready> = popped
                        .drain(..)
                        .enumerate()
                        .filter(|(i, _)| i % 2 == 0)
                        .map(|(_, mut r)| {
                            r.returns += 1;
                            r.redelivered = true;
                            r
                        })
                        .collect();
                    for r in &back {
                        let l = &mut model[usize::from(r.message.priority.min(2))];
                        let at = l.partition_point(|x| x.seq < r.seq);
                        l.insert(at, r.clone());
                    }
                    list.requeue(back);
                }
                Op::Clear => {
                    let mut gone = Vec::new();
                    list.clear(Some(&mut gone));
                    let mut want: Vec<(u64, u64)> = model
                        .iter_mut()
                        .flat_map(|l| l.drain(..))
                        .filter_map(|r| Some((r.seq, r.message.store_id()?)))
                        .collect();
                    gone.sort_unstable();
                    want.sort_unstable();
                    prop_assert_eq!(gone, want);
                }
            }
            let len: usize = model.iter().map(Vec::len).sum();
            let bytes: u64 = model
                .iter()
                .flatten()
                .map(|r| r.message.body.len() as u64)
                .sum();
            let deadline = model
                .iter()
                .filter_map(|l| l.first().map(|r| r.deadline))
                .min();
            prop_assert_eq!((list.len(), list.bytes()), (len, bytes));
            prop_assert_eq!(list.next_deadline(), deadline.unwrap_or(NEVER));
        }
        while let Some(want) = model_pop(&mut model) {
            prop_assert_eq!(list.pop_front().as_ref().map(key), Some(key(&want)));
        }
        prop_assert!(list.pop_front().is_none());
    }
    Ok(())
}

#[test]
fn a_deep_backlog_is_one_entry_per_run() {
    let mut list = ReadyList::new(0);
    let n = PACK_AFTER as u64 + 100_000;
    for seq in 0..n {
        list.push_back(Ready {
            seq,
            message: make(seq, 0),
            deadline: 1_000 + seq,
            returns: 0,
            redelivered: seq % 3 == 0,
        });
    }
    assert_eq!(list.packed_count(), 100_000);
    assert_eq!(list.entry_count(), PACK_AFTER + 1);
    for seq in 0..n {
        let r = list.pop_front().unwrap();
        assert_eq!(
            (r.seq, r.deadline, r.redelivered, r.returns),
            (seq, 1_000 + seq, seq % 3 == 0, 0)
        );
        assert_eq!(r.message, make(seq, 0));
    }
    assert_eq!(list.entry_count(), 0);
}

#[test]
fn a_deep_backlog_over_its_budget_lives_on_disk_and_comes_back_in_order() {
    let mut list = ReadyList::new(0);
    list.set_spill(Some(super::SpillTo {
        area: AREA.clone(),
        wake: None,
        writes: Default::default(),
    }));
    let n = PACK_AFTER as u64 + 100_000;
    for seq in 0..n {
        list.push_back(Ready {
            seq,
            message: make(seq, 0),
            deadline: NEVER,
            returns: 0,
            redelivered: false,
        });
    }
    let fifo = list.levels[0].packed.as_ref().unwrap();
    // ~3.5 MB of records, ~53 segments of 64 KiB: all but the front and the back on disk.
    assert!(fifo.spilled() >= 45, "{} spilled", fifo.spilled());
    assert!(fifo.allocated() <= 3 * 64 * 1024, "{}", fifo.allocated());
    for seq in 0..n {
        let r = pop_ready(&mut list).unwrap();
        assert_eq!((r.seq, &r.message), (seq, &make(seq, 0)));
    }
    assert!(list.is_empty());
}
