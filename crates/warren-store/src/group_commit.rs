//! Group commit: concurrent `sync` callers share flushes.
//!
//! At most one flush runs; callers arriving while it runs cannot use it (it may have started
//! before their write returned), so they wait for the next one, which the first of them to
//! wake starts. Every caller that arrived during flush N returns together when flush N+1 ends:
//! one flush in progress, at most one queued, however many callers.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::StoreError;

#[derive(Debug)]
struct State {
    /// Flushes started so far; the one running, if any, is number `started`.
    started: u64,
    /// Flushes finished so far.
    finished: u64,
    running: bool,
    /// Callers blocked waiting for a flush (observability; tests use it to avoid sleeps).
    waiting: usize,
    /// The outcome of flush number `finished`.
    last: Result<(), StoreError>,
}

/// Shares flushes between concurrent callers.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    flushes: AtomicU64,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                started: 0,
                finished: 0,
                running: false,
                waiting: 0,
                last: Ok(()),
            }),
            done: Condvar::new(),
            flushes: AtomicU64::new(0),
        }
    }
}

impl GroupCommit {
    /// Returns once a flush that started after this call began has finished; runs `flush`
    /// itself when no flush is running. Every caller of a failed flush gets its error.
    pub(crate) fn sync(
        &self,
        flush: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        // The first flush that starts after now covers every write that returned before now.
        let target = st.started + 1;
        loop {
            if st.finished >= target {
                // A later flush succeeding covers us too, so the latest outcome is the answer.
                return st.last.clone();
            }
            if !st.running {
                st.started += 1;
                st.running = true;
                drop(st);
                let outcome = flush();
                self.flushes.fetch_add(1, Ordering::Relaxed);
                let mut st = self.state.lock();
                st.finished = st.started;
                st.running = false;
                st.last = outcome.clone();
                self.done.notify_all();
                return outcome;
            }
            st.waiting += 1;
            self.done.wait(&mut st);
            st.waiting -= 1;
        }
    }

    /// Counts a flush made outside [`GroupCommit::sync`] (a definition change's own log
    /// record), so the count stays every flush made.
    pub(crate) fn count_flush(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Flushes performed so far.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::Duration;

    use super::*;

    #[test]
    fn callers_arriving_during_a_flush_share_the_next_one() {
        let gc = Arc::new(GroupCommit::default());
        let in_flush = Arc::new(Barrier::new(2));
        let first = {
            let (gc, in_flush) = (gc.clone(), in_flush.clone());
            thread::spawn(move || {
                let inner = gc.clone();
                gc.sync(move || {
                    in_flush.wait();
                    // Hold flush 1 until all eight callers are blocked behind it.
                    while inner.state.lock().waiting < 8 {
                        thread::sleep(Duration::from_millis(1));
                    }
                    Ok(())
                })
            })
        };
        in_flush.wait();
        // Flush 1 is running: these eight must not return on it, and must share flush 2.
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let gc = gc.clone();
                thread::spawn(move || {
                    gc.sync(|| {
                        thread::sleep(Duration::from_millis(20));
                        Ok(())
                    })
                })
            })
            .collect();
        first.join().unwrap().unwrap();
        for w in waiters {
            w.join().unwrap().unwrap();
        }
        assert_eq!(gc.flushes(), 2);
    }

    #[test]
    fn a_failed_flush_fails_every_caller_that_shared_it_and_the_next_may_succeed() {
        let gc = GroupCommit::default();
        let err = gc
            .sync(|| Err(StoreError::from(std::io::Error::other("boom"))))
            .unwrap_err();
        assert!(err.is_io());
        gc.sync(|| Ok(())).unwrap();
        assert_eq!(gc.flushes(), 2);
    }
}
