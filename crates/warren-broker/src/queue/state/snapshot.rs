//! What the management API reads of a queue: its counts and consumers, copied under the queue's
//! lock when asked. The counts are the lengths the queue already keeps; the message counters
//! ([`QueueCounters`]) are plain fields of the state bumped by operations that hold the lock
//! anyway.

use crate::queue::Queue;
use crate::snapshot::{ConsumerSnapshot, QueueCounters, QueueSnapshot};

impl Queue {
    /// The queue's counts and consumers, read under its lock (one short critical section).
    pub fn snapshot(&self) -> QueueSnapshot {
        let s = self.state.lock();
        QueueSnapshot {
            ready: s.ready_count() as u64,
            unacked: s.unacked_count() as u64,
            consumers: s
                .consumers
                .iter()
                .map(|c| ConsumerSnapshot {
                    tag: c.tag.clone(),
                    channel: c.channel,
                    connection: c.connection,
                    ack_required: !c.no_ack,
                    exclusive: c.exclusive,
                    prefetch: c.prefetch,
                    priority: c.priority,
                })
                .collect(),
            ready_bytes: s.ready.bytes(),
            unacked_bytes: s.unacked_bytes,
            counters: s.counters,
            consumer_utilisation: s.consumer_utilisation(),
        }
    }

    /// The queue's message counters alone (the statistics sampler's read: no allocation).
    pub fn counters(&self) -> (QueueCounters, u64, u64) {
        let s = self.state.lock();
        (s.counters, s.ready_count() as u64, s.unacked_count() as u64)
    }
}
