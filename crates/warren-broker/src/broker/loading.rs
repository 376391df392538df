//! The loader: reads the stored messages of durable queues back after a restart, in batches,
//! on its own thread, while the broker already serves clients.
//!
//! Queues take turns, one batch each, so every queue gets its first messages (and its
//! consumers their first deliveries) early whatever the size of the others. A queue that
//! finishes loading drops what expired while the broker was down and arms its timers.

use std::sync::{Arc, Weak};

use warren_store::StoreError;

use crate::queue::{LOAD_BATCH, Queue};

/// The durable queues whose stored messages are still to load.
///
/// It holds them weakly: a queue deleted, or a broker dropped, while loading is not kept
/// alive (with its store) by the loader.
#[derive(Debug, Default)]
pub struct Loader {
    queues: Vec<Weak<Queue>>,
    batch: usize,
}

impl Loader {
    /// A loader for `queues`, as recovery left them.
    pub(crate) fn new(queues: Vec<Arc<Queue>>) -> Self {
        Loader {
            queues: queues.iter().map(Arc::downgrade).collect(),
            batch: LOAD_BATCH,
        }
    }

    /// Reads at most `batch` entries per queue and turn (tests use small batches).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// True once every queue is loaded.
    pub fn is_done(&self) -> bool {
        self.queues.is_empty()
    }

    /// One turn: a batch for each queue still loading. Returns whether any is left. A queue
    /// whose batch fails to load stays loading (its error is returned after the turn).
    pub fn step(&mut self) -> Result<bool, StoreError> {
        let mut failed = None;
        let batch = self.batch;
        self.queues.retain(|q| {
            let Some(q) = q.upgrade() else {
                return false;
            };
            match q.load_batch(batch) {
                Ok(true) => true,
                Ok(false) => {
                    // Dead letters of messages that expired while down go out now.
                    q.recovered();
                    false
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(!self.queues.is_empty()),
        }
    }

    /// Loads everything, turn after turn.
    pub fn run(mut self) -> Result<(), StoreError> {
        while self.step()? {}
        Ok(())
    }

    /// Loads everything on a thread of its own (store reads block: never on the async
    /// runtime), logging how long it took.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("warren-loader".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let queues = self.queues.len();
                match self.run() {
                    Ok(()) => tracing::info!(
                        queues,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "stored messages loaded"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "cannot load stored messages: the queues concerned stay partly loaded"
                    ),
                }
            })
    }
}
