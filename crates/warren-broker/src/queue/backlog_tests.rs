//! Queues holding a backlog long enough to be packed (`ready::PACK_AFTER`): what consumers,
//! `basic.get`, TTLs, length limits and purges see must not change.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use warren_codec::{BasicProperties, FieldTable, FieldValue, ShortStr};

use super::ready::PACK_AFTER;
use super::*;
use crate::dead_letter::DeathReason;

const T0: u64 = 1_000_000;
const N: usize = PACK_AFTER + 1000;

#[derive(Default)]
struct Recorder {
    deliveries: Mutex<Vec<Delivery>>,
}

impl DeliverySink for Recorder {
    fn deliver(&self, d: Delivery) {
        self.deliveries.lock().push(d);
    }
    fn cancelled(&self, _channel: u16, _tag: ShortStr) {}
}

/// Message `i`, made the same way each time so a test can compare without keeping a second
/// reference (which would stop the queue from packing it).
fn make(i: usize, expiration: Option<&str>, priority: Option<u8>) -> Message {
    let mut headers = FieldTable::new();
    headers.insert("i", FieldValue::I64(i as i64));
    let props = BasicProperties {
        headers: Some(headers),
        delivery_mode: Some(2),
        expiration: expiration.map(ShortStr::from),
        priority,
        ..Default::default()
    }
    .to_raw();
    let body = Bytes::from(format!("m{i:05}"));
    Message::new("ex".into(), "rk".into(), props, body, T0 + i as u64 / 100)
        .unwrap()
        .with_store_id(i as u64 + 1)
}

fn plain(i: usize) -> Message {
    make(i, None, None)
}

fn handle() -> Arc<Queue> {
    Queue::new(
        "q".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    )
}

fn consumer(sink: &Arc<Recorder>, prefetch: u32) -> Consumer {
    Consumer::new(
        1,
        "c".into(),
        1,
        1,
        sink.clone(),
        true,
        false,
        prefetch,
        Arc::new(ChannelLimit::default()),
    )
}

/// A queue state holding messages `0..n` of `make`, published at `T0`.
fn filled(args: QueueArgs, n: usize, make: impl Fn(usize) -> Message) -> (QueueState, Effects) {
    let q = handle();
    let mut s = QueueState::with_args(true, args, T0);
    let mut fx = Effects::default();
    for i in 0..n {
        s.publish(Arc::new(make(i)), T0, &q, &mut fx);
    }
    assert!(s.ready.packed_count() > 0, "the backlog is packed");
    (s, fx)
}

fn bodies(ms: impl Iterator<Item = Arc<Message>>) -> Vec<String> {
    ms.map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

fn dead(fx: &mut Effects) -> Vec<(Message, DeathReason)> {
    std::mem::take(&mut fx.dead)
        .into_iter()
        .map(|d| ((*d.message).clone(), d.reason))
        .collect()
}

#[test]
fn a_packed_backlog_reaches_its_consumer_in_order_with_its_content() {
    let q = handle();
    for i in 0..N {
        q.publish(Arc::new(plain(i)));
    }
    assert_eq!(q.state.lock().ready.packed_count(), N - PACK_AFTER);
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(&sink, 0)).unwrap();
    let got = std::mem::take(&mut *sink.deliveries.lock());
    assert_eq!(got.len(), N);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(
            (d.seq, &*d.message, d.redelivered),
            (i as u64, &plain(i), false)
        );
    }
    assert_eq!(q.message_count(), 0);
}

#[test]
fn basic_get_and_requeue_of_packed_messages_keep_order_and_content() {
    let (mut s, mut fx) = filled(QueueArgs::default(), N, plain);
    for _ in 0..N - 2 {
        s.get(true, T0, &mut fx).unwrap();
    }
    let a = s.get(false, T0, &mut fx).unwrap();
    let b = s.get(false, T0, &mut fx).unwrap();
    assert_eq!((&*a.message, &*b.message), (&plain(N - 2), &plain(N - 1)));
    s.settle(&[b.seq, a.seq], Settle::Requeue, T0, &mut fx);
    let again = s.get(true, T0, &mut fx).unwrap();
    assert_eq!((&*again.message, again.redelivered), (&plain(N - 2), true));
}

#[test]
fn priorities_order_a_packed_backlog_highest_first_and_fifo_within() {
    let args = QueueArgs {
        max_priority: Some(3),
        ..Default::default()
    };
    let prio = |i: usize| (i % 5) as u8;
    let (mut s, mut fx) = filled(args, N, |i| make(i, None, Some(prio(i))));
    let mut expected: Vec<usize> = (0..N).collect();
    // Priority 4 is above the maximum and counts as 3.
    expected.sort_by_key(|&i| std::cmp::Reverse(prio(i).min(3)));
    let got = bodies(std::iter::from_fn(|| s.get(true, T0, &mut fx)).map(|g| g.message));
    let want = bodies(
        expected
            .into_iter()
            .map(|i| Arc::new(make(i, None, Some(prio(i))))),
    );
    assert_eq!(got, want);
}

#[test]
fn queue_ttl_expires_packed_messages_with_their_content() {
    let args = QueueArgs {
        message_ttl: Some(100),
        ..Default::default()
    };
    let (mut s, mut fx) = filled(args, N, plain);
    s.expire(T0 + 99, &mut fx);
    assert_eq!(s.ready_count(), N);
    // Each message's deadline counts from its own timestamp.
    s.expire(T0 + 100 + (N as u64 - 1) / 100, &mut fx);
    assert_eq!(s.ready_count(), 0);
    let died = dead(&mut fx);
    assert_eq!(died.len(), N);
    for (i, (m, why)) in died.iter().enumerate() {
        assert_eq!((m, *why), (&plain(i), DeathReason::Expired));
    }
}

#[test]
fn per_message_expiration_applies_to_packed_messages() {
    let (mut s, mut fx) = filled(QueueArgs::default(), N, |i| make(i, Some("50"), None));
    s.expire(T0 + 49, &mut fx);
    assert_eq!(s.ready_count(), N);
    s.expire(T0 + 60, &mut fx);
    let died = dead(&mut fx);
    assert_eq!(died.len(), N - s.ready_count());
    let last = died.last().unwrap();
    assert_eq!(last.0.expiration_ms, Some(50));
    assert_eq!(last.0, make(died.len() - 1, Some("50"), None));
}

#[test]
fn drop_head_over_max_length_kills_packed_heads_in_order() {
    let args = QueueArgs {
        max_length: Some(PACK_AFTER as u64 + 500),
        ..Default::default()
    };
    let (mut s, mut fx) = filled(args, N, plain);
    let died = dead(&mut fx);
    assert_eq!(died.len(), 500);
    assert!(
        died.iter()
            .enumerate()
            .all(|(i, (m, why))| *m == plain(i) && *why == DeathReason::Maxlen)
    );
    assert_eq!(s.ready_count(), PACK_AFTER + 500);
    let got = bodies(std::iter::from_fn(|| s.get(true, T0, &mut fx)).map(|g| g.message));
    assert_eq!(got, bodies((500..N).map(|i| Arc::new(plain(i)))));
}

#[test]
fn max_length_bytes_counts_packed_bodies() {
    // Every body is 6 bytes.
    let limit = 6 * (PACK_AFTER as u64 + 200);
    let args = QueueArgs {
        max_length_bytes: Some(limit),
        overflow: Overflow::RejectPublish,
        ..Default::default()
    };
    let (mut s, mut fx) = filled(args, N, plain);
    assert_eq!(
        (s.ready_count(), s.ready.bytes()),
        (PACK_AFTER + 200, limit)
    );
    for _ in 0..300 {
        s.get(true, T0, &mut fx).unwrap();
    }
    assert_eq!(s.ready.bytes(), limit - 6 * 300);
    assert!(!s.refuses(&plain(0)));
    while s.get(true, T0, &mut fx).is_some() {}
    assert_eq!(s.ready.bytes(), 0);
}

#[test]
fn purging_a_durable_packed_backlog_lists_every_stored_message() {
    let (mut s, _) = filled(QueueArgs::default(), N, plain);
    let mut fx = Effects::default();
    assert_eq!(s.purge(&mut fx), N);
    let want: Vec<(u64, u64)> = (0..N).map(|i| (i as u64, i as u64 + 1)).collect();
    assert_eq!(fx.gone, want);
    assert_eq!(s.ready_count(), 0);
}

#[test]
fn a_message_routed_to_two_queues_stays_shared_in_both() {
    let (a, b) = (handle(), handle());
    for i in 0..N {
        let copies = std::iter::repeat_n(Arc::new(plain(i)), 2);
        for (q, m) in [&a, &b].into_iter().zip(copies) {
            q.publish(m);
        }
    }
    assert_eq!(a.state.lock().ready.packed_count(), 0);
    assert_eq!(b.state.lock().ready.packed_count(), 0);
    let (x, y) = (a.get(true).unwrap(), b.get(true).unwrap());
    assert!(Arc::ptr_eq(&x.message, &y.message));
}

/// A queue whose backlog spills every segment past the first (a one-byte budget).
fn spilling() -> (Arc<Queue>, Arc<crate::spill::SpillArea>, std::path::PathBuf) {
    let dir = crate::spill::tests::temp_dir("backlog");
    let area = crate::spill::SpillArea::open(&dir, 1, 0).unwrap();
    let q = handle();
    q.spill_to(area.clone());
    (q, area, dir)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed().as_secs() < 20,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn a_spilled_backlog_pauses_dispatch_until_its_segments_are_back_then_delivers_all_in_order() {
    let (q, area, dir) = spilling();
    let n = PACK_AFTER + 60_000;
    for i in 0..n {
        q.publish(Arc::new(plain(i)));
    }
    assert!(q.state.lock().ready.packed_count() > 0);
    wait_for("the writer", || area.pending_bytes() == 0);
    let sink = Arc::new(Recorder::default());
    q.consume(consumer(&sink, 0)).unwrap();
    // The consumer got what is in memory at once; the rest arrives as the I/O thread reads
    // segments back and wakes the queue (no other call drives it).
    let first = sink.deliveries.lock().len();
    assert!(
        first < n,
        "the spilled part cannot be delivered synchronously ({first})"
    );
    wait_for("every delivery", || sink.deliveries.lock().len() == n);
    let got = std::mem::take(&mut *sink.deliveries.lock());
    assert_eq!(
        bodies(got.into_iter().map(|d| d.message)),
        bodies((0..n).map(|i| Arc::new(plain(i))))
    );
    assert_eq!(q.message_count(), 0);
    drop(q);
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_spilled_backlog_answers_get_purge_and_counts_without_waiting() {
    let (q, area, dir) = spilling();
    let n = PACK_AFTER + 30_000;
    for i in 0..n {
        q.publish(Arc::new(plain(i)));
    }
    assert_eq!(q.message_count() as usize, n);
    for i in 0..PACK_AFTER + 10_000 {
        let got = q.get(true).unwrap();
        assert_eq!(got.message.body, plain(i).body);
    }
    assert_eq!(q.message_count() as usize, 20_000);
    assert_eq!(q.purge() as usize, 20_000);
    assert!(q.get(true).is_none());
    drop(q);
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
