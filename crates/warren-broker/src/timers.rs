//! Deadlines of queues (message TTL, `x-expires`): one thread per broker sleeps until the
//! earliest one and tells the queue, which decides what is due.
//!
//! A queue schedules only its next deadline, and only when that is earlier than what it already
//! scheduled, so a queue with a TTL costs one entry per head change, not one per message. A
//! wake-up that finds nothing due is harmless: the queue schedules its next deadline again.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use crate::Queue;

/// Milliseconds since the Unix epoch: the clock of TTLs and expiries, comparable across restarts.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Default)]
struct Pending {
    /// (deadline, tiebreak) → queue; the tiebreak keeps entries distinct in the heap.
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    queues: std::collections::HashMap<u64, Weak<Queue>>,
    next: u64,
    running: bool,
    stopped: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// The broker's timer thread and its schedule.
#[derive(Default)]
pub struct Timers {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timers")
    }
}

impl Timers {
    /// An empty schedule; the thread starts with the first deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `queue.on_timer()` at or after `at_ms` (epoch milliseconds).
    pub fn schedule(&self, at_ms: u64, queue: Weak<Queue>) {
        let mut p = self.shared.pending.lock();
        if p.stopped {
            return;
        }
        let key = p.next;
        p.next += 1;
        p.heap.push(Reverse((at_ms, key)));
        p.queues.insert(key, queue);
        if !p.running {
            p.running = true;
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("warren-timers".into())
                .spawn(move || run(&shared));
            if let Err(e) = spawned {
                p.running = false;
                tracing::error!(error = %e, "cannot start the timer thread; TTLs will not fire");
            }
        }
        // The new deadline may be earlier than the one the thread sleeps towards.
        self.shared.wake.notify_one();
    }

    /// Stops the thread; later schedules are ignored.
    pub fn stop(&self) {
        self.shared.pending.lock().stopped = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared) {
    let mut due = Vec::new();
    loop {
        {
            let mut p = shared.pending.lock();
            loop {
                if p.stopped {
                    return;
                }
                let now = now_ms();
                while let Some(Reverse((at, key))) = p.heap.peek().copied()
                    && at <= now
                {
                    p.heap.pop();
                    if let Some(q) = p.queues.remove(&key) {
                        due.push(q);
                    }
                }
                if !due.is_empty() {
                    break;
                }
                match p.heap.peek() {
                    Some(Reverse((at, _))) => {
                        let wait = Duration::from_millis(at.saturating_sub(now).max(1));
                        shared.wake.wait_for(&mut p, wait);
                    }
                    None => shared.wake.wait(&mut p),
                }
            }
        }
        // Queues are called without the schedule locked: they schedule again from inside.
        for q in due.drain(..) {
            if let Some(q) = q.upgrade() {
                q.on_timer();
            }
        }
    }
}
