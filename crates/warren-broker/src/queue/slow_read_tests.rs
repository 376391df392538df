//! A queue whose head is in a spilled segment on a slow disk (the spill area's reads slowed by
//! its test hook): `basic.get`, expiry and drop-head do not read the segment under the queue's
//! lock or in the caller's thread, so another queue, and this queue's publishers, go on while
//! it is read; the get is answered once it is back, in order, and nothing is lost.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_codec::BasicProperties;

use super::*;

/// A 1 KiB transient message numbered `i`, published now.
fn kib(i: usize) -> Arc<Message> {
    let mut body = format!("m{i:07}").into_bytes();
    body.resize(1024, b'.');
    let m = Message::new(
        "ex".into(),
        "rk".into(),
        BasicProperties::default().to_raw(),
        Bytes::from(body),
        now_ms(),
    )
    .unwrap();
    Arc::new(m)
}

/// A queue with `args` spilling every segment past the first to `area`.
fn spilling(area: &Arc<crate::spill::SpillArea>, args: QueueArgs) -> Arc<Queue> {
    let q = Queue::new("q".into(), "/", QueueOptions::default(), args);
    q.spill_to(area.clone());
    q
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A waker that counts its calls.
fn counting() -> (Arc<AtomicUsize>, crate::spill::Waker) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    (
        n,
        Arc::new(move || {
            m.fetch_add(1, Ordering::SeqCst);
        }),
    )
}

#[test]
fn a_get_on_a_slowly_read_head_waits_without_holding_up_another_queue() {
    let dir = crate::spill::tests::temp_dir("slow-read");
    let area = crate::spill::SpillArea::open(&dir, 1, 0).unwrap();
    let a = spilling(&area, QueueArgs::default());
    let b = spilling(&area, QueueArgs::default());
    let n = 3000;
    for i in 0..n {
        a.publish(kib(i));
    }
    wait_until("every segment written", || area.pending_bytes() == 0);
    assert!(a.state.lock().ready.spilled() > 0, "the backlog spilled");
    // Every read now takes two seconds: far longer than anything below needs.
    area.set_read_delay(Duration::from_secs(2));
    let (woken, wake) = counting();
    let mut next = 0;
    let waited_at = loop {
        match a.try_get(true, || wake.clone()) {
            GetResult::Got(g) => {
                assert_eq!(&g.message.body[..8], format!("m{next:07}").as_bytes());
                next += 1;
            }
            GetResult::Wait => break next,
            GetResult::Empty | GetResult::Load => panic!("the spilled head was never waited for"),
        }
    };
    // While A's head is read: B publishes and gets, A takes a publish and counts right, and
    // none of it waited for the read (A's waiter has not run yet).
    b.publish(kib(0));
    let got = b.get(true).expect("B's message");
    assert_eq!(&got.message.body[..8], b"m0000000");
    assert_eq!(a.publish(kib(n)), Enqueued::default());
    assert_eq!(a.message_count() as usize, n + 1 - waited_at);
    assert_eq!(
        woken.load(Ordering::SeqCst),
        0,
        "the read was still going on"
    );
    // A get asked again meanwhile still waits; it never answers get-empty.
    assert!(matches!(a.try_get(true, || wake.clone()), GetResult::Wait));
    wait_until("the waiter woken", || woken.load(Ordering::SeqCst) > 0);
    area.set_read_delay(Duration::ZERO);
    for i in waited_at..=n {
        let got = a.get(true).expect("every message comes back");
        assert_eq!(&got.message.body[..8], format!("m{i:07}").as_bytes());
    }
    assert!(a.get(true).is_none());
    area.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spilled_messages_past_their_ttl_expire_once_read_and_are_never_delivered() {
    let dir = crate::spill::tests::temp_dir("slow-ttl");
    let area = crate::spill::SpillArea::open(&dir, 1, 0).unwrap();
    let args = QueueArgs {
        message_ttl: Some(200),
        ..QueueArgs::default()
    };
    let a = spilling(&area, args);
    let n = 3000;
    for i in 0..n {
        a.publish(kib(i));
    }
    wait_until("every segment written", || area.pending_bytes() == 0);
    area.set_read_delay(Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(250));
    // Expiry takes what is in memory and asks for the rest without waiting for it.
    let (_, wake) = counting();
    assert!(a.state.lock().ready.spilled() > 0, "the backlog spilled");
    assert!(matches!(a.try_get(true, || wake.clone()), GetResult::Wait));
    area.set_read_delay(Duration::ZERO);
    wait_until("every message expired", || a.message_count() == 0);
    assert!(a.get(true).is_none(), "no expired message is delivered");
    area.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn drop_head_of_a_spilled_head_completes_when_the_segment_is_back() {
    let dir = crate::spill::tests::temp_dir("slow-drop");
    let area = crate::spill::SpillArea::open(&dir, 1, 0).unwrap();
    let a = spilling(&area, QueueArgs::default());
    let n = 3000;
    for i in 0..n {
        a.publish(kib(i));
    }
    wait_until("every segment written", || area.pending_bytes() == 0);
    // Take the unpacked head and the front segment, up to the first spilled one.
    let (_, wake) = counting();
    let mut taken = 0;
    while let GetResult::Got(_) = a.try_get(true, || wake.clone()) {
        taken += 1;
    }
    wait_until("the head is back", || {
        matches!(a.try_get(false, || wake.clone()), GetResult::Got(_))
    });
    taken += 1;
    area.set_read_delay(Duration::from_millis(200));
    // A length limit far below the count: drop-head needs the spilled messages.
    let max = 10;
    a.state.lock().args.max_length = Some(max);
    a.publish(kib(n));
    // The publish did not read the head: the queue is over its limit until it is back.
    assert!(a.message_count() as u64 > max);
    area.set_read_delay(Duration::ZERO);
    wait_until("dropped down to the limit", || {
        a.message_count() as u64 == max
    });
    for i in n + 1 - max as usize..=n {
        let got = a.get(true).expect("the newest messages stay");
        assert_eq!(&got.message.body[..8], format!("m{i:07}").as_bytes());
    }
    assert!(a.get(true).is_none());
    assert!(taken > 0);
    area.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
