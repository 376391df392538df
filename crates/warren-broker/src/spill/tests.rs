//! The spill area alone: segments go to disk and come back, files go when emptied, and a start
//! discards what a previous run left.

use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use super::*;

/// A fresh directory under the system temp dir, removed by the caller.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("warren-spill-{name}-{}-{n}", std::process::id()))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn on_disk(slot: &Slot) -> bool {
    matches!(*slot.state.lock(), SlotState::OnDisk(_))
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn opening_discards_what_a_previous_run_left() {
    let dir = temp_dir("open");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("00000000.seg"), b"old").unwrap();
    let area = SpillArea::open(&dir, 0, 0).unwrap();
    assert_eq!(files(&dir), 0);
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_written_segment_leaves_memory_and_comes_back_with_a_wake_up() {
    let dir = temp_dir("roundtrip");
    let area = SpillArea::open(&dir, 0, 0).unwrap();
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let slot = area.write(bytes.clone()).unwrap();
    wait_until("written", || on_disk(&slot));
    let woken = Arc::new(AtomicUsize::new(0));
    let w = woken.clone();
    let wake: Waker = Arc::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    });
    let first = area.take(&slot, Some(wake.clone()));
    assert!(matches!(first, Taken::Pending | Taken::Ready(_)));
    if matches!(first, Taken::Pending) {
        wait_until("woken", || woken.load(Ordering::SeqCst) == 1);
        // Asking again while it is loaded does not ask twice.
        match area.take(&slot, Some(wake)) {
            Taken::Ready(b) => assert_eq!(b, bytes),
            _ => panic!("loaded segment not ready"),
        }
    }
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_segment_can_be_read_at_once_by_the_caller() {
    let dir = temp_dir("now");
    let area = SpillArea::open(&dir, 0, 0).unwrap();
    let slots: Vec<_> = (0..5u8)
        .map(|i| area.write(vec![i; 65_536]).unwrap())
        .collect();
    for (i, s) in slots.iter().enumerate() {
        wait_until("written", || on_disk(s));
        assert_eq!(area.take_now(s), Some(vec![i as u8; 65_536]));
    }
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_is_deleted_once_no_segment_points_into_it() {
    let dir = temp_dir("delete");
    let area = SpillArea::open(&dir, 0, 0).unwrap();
    // 16 MiB files: 300 segments of 64 KiB fill two files and start a third.
    let mut slots: Vec<_> = (0..300)
        .map(|_| {
            loop {
                match area.write(vec![7u8; 65_536]) {
                    Ok(s) => break s,
                    // Over the pending limit: let the writer catch up.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
        .collect();
    wait_until("all written", || slots.iter().all(|s| on_disk(s)));
    assert_eq!(files(&dir), 2);
    slots.drain(..256);
    wait_until("first file deleted", || files(&dir) == 1);
    slots.clear();
    // The current file stays open for appending until the next segment needs a new one.
    area.stop();
    drop(area);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_budget_is_fixed_or_a_share_of_the_total() {
    let dir = temp_dir("budget");
    let fixed = SpillArea::open(&dir, 5 << 20, 0).unwrap();
    fixed.register();
    fixed.register();
    assert_eq!(fixed.budget(), 5 << 20);
    fixed.stop();
    let shared = SpillArea::open(&dir, 0, 64 << 20).unwrap();
    assert_eq!(shared.budget(), MAX_BUDGET);
    for _ in 0..8 {
        shared.register();
    }
    assert_eq!(shared.budget(), 8 << 20);
    for _ in 0..1000 {
        shared.register();
    }
    assert_eq!(shared.budget(), MIN_BUDGET);
    shared.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segments_whose_write_failed_stay_readable_and_are_written_once_the_disk_has_room() {
    let dir = temp_dir("enospc");
    let area = SpillArea::open(&dir, 0, 0).unwrap();
    area.set_fail_writes(true);
    let slots: Vec<_> = (0..3u8)
        .map(|i| area.write(vec![i; 65_536]).unwrap())
        .collect();
    wait_until("the writes tried", || area.pending_bytes() == 0);
    for (i, slot) in slots.iter().enumerate() {
        assert!(
            matches!(*slot.state.lock(), SlotState::Writing(ref b) if b[0] == i as u8),
            "segment {i} stays in memory"
        );
    }
    // The disk has room again: the periodic retry writes them, with no other write needed.
    area.set_fail_writes(false);
    wait_until("all written", || slots.iter().all(|s| on_disk(s)));
    for (i, slot) in slots.iter().enumerate() {
        let Taken::Ready(bytes) = take_blocking(&area, slot) else {
            panic!("segment {i} lost");
        };
        assert_eq!(bytes, vec![i as u8; 65_536]);
    }
    assert_eq!(area.lost_segments(), 0);
    area.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Takes a slot's bytes, waiting for the I/O thread's read.
fn take_blocking(area: &SpillArea, slot: &Arc<Slot>) -> Taken {
    let start = Instant::now();
    loop {
        match area.take(slot, None) {
            Taken::Pending if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            t => return t,
        }
    }
}
