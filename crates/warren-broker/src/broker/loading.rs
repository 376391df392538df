//! The loader: reads the stored messages of durable queues back after a restart, in batches,
//! on its own thread, while the broker already serves clients.
//!
//! Queues take turns, one batch each, so every queue gets its first messages (and its
//! consumers their first deliveries) early whatever the size of the others. A queue holding
//! a full window of loaded messages ([`LoadWindow`]) is parked: it leaves the turns until its
//! consumers take it below the window's low mark and it asks again ([`LoadRequests`]). The
//! loader's thread lives as long as the broker, mostly asleep: a running durable queue whose
//! backlog passed its window leaves the rest in the store and asks it too. A queue that
//! finishes loading drops what expired while the broker was down and arms its timers.

use std::sync::{Arc, Weak};
use std::time::Duration;

use warren_store::StoreError;

use crate::queue::{LOAD_BATCH, LoadRequests, LoadStep, Queue, Window as LoadWindow};

/// How long the loader's thread sleeps between checks that its parked queues still exist.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The durable queues whose stored messages are still to load.
///
/// It holds them weakly: a queue deleted, or a broker dropped, while loading is not kept
/// alive (with its store) by the loader.
#[derive(Debug, Default)]
pub struct Loader {
    /// Queues taking turns now.
    active: Vec<Weak<Queue>>,
    /// Every queue not loaded yet, active or parked.
    loading: Vec<Weak<Queue>>,
    requests: Arc<LoadRequests>,
    batch: usize,
    window: LoadWindow,
}

impl Loader {
    /// A loader for `queues`, as recovery left them, serving also the running queues that
    /// ask through `requests` (deep durable queues that left their stored backlog in the store).
    pub(crate) fn new(
        queues: Vec<Arc<Queue>>,
        requests: Arc<LoadRequests>,
        window: LoadWindow,
    ) -> Self {
        let weak: Vec<Weak<Queue>> = queues.iter().map(Arc::downgrade).collect();
        Loader {
            active: weak.clone(),
            loading: weak,
            requests,
            batch: LOAD_BATCH,
            window,
        }
    }

    /// Reads at most `batch` entries per queue and turn (tests use small batches).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Keeps at most `window` of each queue's stored backlog in memory.
    pub fn with_window(mut self, window: LoadWindow) -> Self {
        self.window = window;
        self
    }

    /// True once every queue recovery left loading is loaded (or gone), and no running queue
    /// is being loaded.
    pub fn is_done(&self) -> bool {
        self.loading.is_empty() && self.active.is_empty()
    }

    /// True while the broker (through its queues and vhosts) may still ask this loader for
    /// more: some handle to its requests other than its own is alive.
    fn may_be_asked(&self) -> bool {
        Arc::strong_count(&self.requests) > 1
    }

    /// True when no queue is taking turns: the rest are parked until they ask.
    pub fn is_idle(&self) -> bool {
        self.active.is_empty()
    }

    /// One turn: takes the queues that asked for more, then a batch for each queue taking
    /// turns. Returns whether any is still taking turns (or asked for more meanwhile). A queue
    /// whose batch fails to load stays as it is, partly loaded, and keeps its turn (a store
    /// that met a full disk reads again once it resumed); the error is returned after the
    /// turn.
    pub fn step(&mut self) -> Result<bool, StoreError> {
        self.turn(None)
    }

    fn turn(&mut self, wait: Option<Duration>) -> Result<bool, StoreError> {
        let wait = wait.filter(|_| self.active.is_empty());
        // A queue asks only while parked, so it is not taking turns already.
        self.active.extend(self.requests.take(wait));
        let mut failed = None;
        let mut finished = std::collections::HashSet::new();
        let (batch, window, requests) = (self.batch, self.window, self.requests.clone());
        self.active.retain(|q| {
            let Some(q) = q.upgrade() else {
                return false;
            };
            match q.load_windowed(batch, &window, &requests) {
                Ok(LoadStep::More) => true,
                Ok(LoadStep::Parked) => false,
                Ok(LoadStep::Done) => {
                    // Dead letters of messages that expired while down go out now.
                    q.recovered();
                    finished.insert(Arc::as_ptr(&q));
                    false
                }
                Err(e) => {
                    failed = Some(e);
                    true
                }
            }
        });
        // A parked queue may finish without the loader: a `basic.get` or a publish loaded its
        // rest, or a purge swept it.
        self.loading.retain(|w| {
            if finished.contains(&w.as_ptr()) {
                return false;
            }
            let Some(q) = w.upgrade() else {
                return false;
            };
            if q.loading() {
                return true;
            }
            q.recovered();
            false
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(!self.active.is_empty() || self.requests.waiting()),
        }
    }

    /// Loads everything into memory, window or not, turn after turn (tests, and tools that
    /// want a loaded broker: nothing serves a parked queue once the loader is gone).
    pub fn run(self) -> Result<(), StoreError> {
        let mut queues: Vec<Arc<Queue>> = self.loading.iter().filter_map(Weak::upgrade).collect();
        let mut failed = None;
        while !queues.is_empty() {
            queues.retain(|q| match q.load_batch(self.batch) {
                Ok(true) => true,
                Ok(false) => {
                    q.recovered();
                    false
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            });
        }
        failed.map_or(Ok(()), Err)
    }

    /// Loads until every queue is loaded or parked (tests of windows; a server spawns).
    pub fn run_windowed(&mut self) -> Result<(), StoreError> {
        while self.step()? {}
        Ok(())
    }

    /// Loads on a thread of its own (store reads block: never on the async runtime) for as
    /// long as the broker lives, serving parked queues as they ask; logs how long the first
    /// windows took.
    pub fn spawn(mut self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("warren-loader".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let queues = self.loading.len();
                let mut announced = false;
                while !self.is_done() || self.may_be_asked() {
                    if let Err(e) = self.turn(Some(IDLE_CHECK)) {
                        tracing::error!(
                            error = %e,
                            "cannot load stored messages: the queue concerned stays partly \
                             loaded, and is tried again in a second"
                        );
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    if self.is_idle() && !announced {
                        announced = true;
                        tracing::info!(
                            queues,
                            loading = self.loading.len(),
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "stored messages loaded (deep queues up to their window)"
                        );
                    }
                }
                tracing::debug!("every stored message loaded");
            })
    }
}
