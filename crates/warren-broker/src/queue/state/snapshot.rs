//! What the management API reads of a queue: its counts and consumers, copied under the queue's
//! lock when asked. Nothing is counted on the message path for it: the counts are the lengths
//! the queue already keeps.

use crate::queue::Queue;
use crate::snapshot::{ConsumerSnapshot, QueueSnapshot};

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
        }
    }
}
