//! A spilling queue over a disk that cannot keep up (the spill writer slowed by its test hook):
//! the queue presses its publishers instead of keeping segments in memory, segments kept in
//! memory anyway (publishers that ignore the pressure) go out once the writer catches up, and
//! nothing is lost or reordered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warren_codec::BasicProperties;

use super::*;

/// A 1 KiB transient message numbered `i`.
fn kib(i: usize) -> Message {
    let mut body = format!("m{i:07}").into_bytes();
    body.resize(1024, b'.');
    Message::new(
        "ex".into(),
        "rk".into(),
        BasicProperties::default().to_raw(),
        Bytes::from(body),
        0,
    )
    .unwrap()
}

/// A queue spilling every segment past the first, to an area whose writer sleeps `delay`
/// before each segment.
fn slow(delay: Duration) -> (Arc<Queue>, Arc<crate::spill::SpillArea>, std::path::PathBuf) {
    let dir = crate::spill::tests::temp_dir("pressure");
    let area = crate::spill::SpillArea::open(&dir, 1, 0).unwrap();
    area.set_write_delay(delay);
    let q = Queue::new(
        "q".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    );
    q.spill_to(area.clone());
    (q, area, dir)
}

/// What `Queue::spill_pressure` answers.
fn pressed(q: &Queue, _area: &crate::spill::SpillArea) -> bool {
    q.spill_pressure()
}

fn drain_in_order(q: &Arc<Queue>, n: usize) {
    for i in 0..n {
        let got = q.get(true).expect("every message comes back");
        assert_eq!(
            &got.message.body[..8],
            format!("m{i:07}").as_bytes(),
            "message {i}"
        );
    }
    assert!(q.get(true).is_none());
}

#[test]
fn a_publisher_that_pauses_under_pressure_keeps_the_queue_within_its_budget() {
    let (q, area, dir) = slow(Duration::from_millis(3));
    // 48 MiB: three times what the writer may have pending before it is behind.
    let n = 48 * 1024;
    let (mut pauses, mut most_in_memory, mut most_pending) = (0, 0, 0);
    for i in 0..n {
        q.publish(Arc::new(kib(i)));
        // A connection looks once per batch of input.
        if i % 64 == 0 && pressed(&q, &area) {
            pauses += 1;
            while q.spill_pressure() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let s = q.state.lock();
        most_in_memory = most_in_memory.max(s.ready.in_memory());
        most_pending = most_pending.max(area.pending_bytes());
        assert_eq!(s.ready.held_back(), 0, "no segment kept in memory");
    }
    assert!(pauses > 0, "the slow writer pressed the publisher");
    // Front, back and the budget's one: a few segments, not the backlog.
    assert!(
        most_in_memory <= 4 * super::segments::SEGMENT,
        "{most_in_memory}"
    );
    assert!(most_pending <= 20 << 20, "{most_pending}");
    area.set_write_delay(Duration::ZERO);
    drain_in_order(&q, n);
    assert_eq!(area.lost_segments(), 0);
    drop(q);
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segments_kept_in_memory_while_the_writer_was_behind_are_spilled_once_it_catches_up() {
    // 20 ms a segment (3.2 MiB/s): slow enough that a publisher on a loaded machine outruns it.
    let (q, area, dir) = slow(Duration::from_millis(20));
    // 80 MiB, ignoring the pressure: past what the writer may have pending at all.
    let n = 80 * 1024;
    for i in 0..n {
        q.publish(Arc::new(kib(i)));
    }
    let held = q.state.lock().ready.held_back();
    assert!(
        held > 0,
        "the writer was too far behind to take every segment"
    );
    assert!(pressed(&q, &area));
    area.set_write_delay(Duration::ZERO);
    let start = std::time::Instant::now();
    while area.pending_bytes() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the writer never caught up"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        !pressed(&q, &area),
        "the pressure ends with the backlog written"
    );
    // The next completed segment takes the held ones out with it.
    for i in n..n + 200 {
        q.publish(Arc::new(kib(i)));
    }
    let s = q.state.lock();
    assert_eq!(s.ready.held_back(), 0);
    assert!(s.ready.in_memory() <= 4 * super::segments::SEGMENT);
    drop(s);
    drain_in_order(&q, n + 200);
    assert_eq!(area.lost_segments(), 0);
    drop(q);
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_the_queue_whose_writes_are_behind_presses_and_its_waiter_is_woken_when_written() {
    let (a, area, dir) = slow(Duration::from_millis(20));
    let b = Queue::new(
        "b".into(),
        "/",
        QueueOptions::default(),
        QueueArgs::default(),
    );
    b.spill_to(area.clone());
    let mut i = 0;
    while !a.spill_pressure() {
        a.publish(Arc::new(kib(i)));
        i += 1;
        assert!(i < 80 * 1024, "the slow writer never fell behind");
    }
    // Well past the share, so that the writer cannot bring A back under it before the wait
    // below is registered.
    for _ in 0..8 * 1024 {
        a.publish(Arc::new(kib(i)));
        i += 1;
    }
    assert!(area.behind(), "the writer is behind");
    // B holds a few messages and spills nothing: its publishers go on.
    for j in 0..100 {
        b.publish(Arc::new(kib(j)));
    }
    assert!(
        !b.spill_pressure(),
        "a queue with nothing unwritten never presses"
    );
    assert!(
        !b.wait_spill_written(Arc::new(|| {})),
        "nothing to wait for on B"
    );
    let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = woken.clone();
    let wake: crate::spill::Waker = Arc::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    });
    assert!(a.wait_spill_written(wake), "A's publishers wait");
    assert_eq!(woken.load(Ordering::SeqCst), 0);
    area.set_write_delay(Duration::ZERO);
    let start = std::time::Instant::now();
    while woken.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "never woken");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(woken.load(Ordering::SeqCst), 1, "woken once");
    assert!(!a.spill_pressure(), "woken only once within its share");
    drain_in_order(&a, i);
    drop((a, b));
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
