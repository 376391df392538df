//! Queues: the shared handle ([`Queue`]) around the lock-free-of-I/O state ([`state::QueueState`]).

mod args;
mod consumer;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use warren_codec::{FieldTable, ShortStr};

pub use args::{Overflow, QueueArgs};
pub use consumer::{ChannelLimit, Consumer, ConsumerId, Delivery, DeliverySink};
pub use state::{Got, QueueState};

use crate::{BrokerError, Message};

/// How a delivered message is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Acknowledged: gone.
    Ack,
    /// Rejected or nacked with requeue: ready again, flagged redelivered.
    Requeue,
    /// Rejected or nacked without requeue: gone (dead-lettered when the queue has a DLX).
    Discard,
}

/// The declared properties of a queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueOptions {
    /// Survives a broker restart.
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<u64>,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// The arguments as declared.
    pub arguments: FieldTable,
}

/// A queue, shared by the vhost's router, the channels that consume from it, and its deliveries.
#[derive(Debug)]
pub struct Queue {
    /// The queue's name.
    pub name: ShortStr,
    /// The vhost's name, for error texts.
    pub vhost: String,
    /// Declared properties.
    pub options: QueueOptions,
    /// Parsed arguments.
    pub args: QueueArgs,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
    /// Set once the queue had a consumer, so auto-delete fires only after one leaves.
    had_consumer: AtomicBool,
}

impl Queue {
    /// A new, empty queue.
    pub fn new(name: ShortStr, vhost: &str, options: QueueOptions, args: QueueArgs) -> Arc<Queue> {
        Arc::new(Queue {
            name,
            vhost: vhost.to_string(),
            options,
            args,
            state: Mutex::new(QueueState::default()),
            deleted: AtomicBool::new(false),
            had_consumer: AtomicBool::new(false),
        })
    }

    /// `queue 'name' in vhost 'v'`, as RabbitMQ words it.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.name, self.vhost)
    }

    /// True once the queue was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// True when `connection` may use the queue (it is not another connection's exclusive queue).
    pub fn accessible_by(&self, connection: u64) -> bool {
        self.options.exclusive_owner.is_none_or(|o| o == connection)
    }

    /// Enqueues a message and hands out what consumers can take.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) {
        let mut s = self.state.lock();
        // Routed just before the queue was deleted: nobody can ever consume it.
        if self.is_deleted() {
            return;
        }
        s.push(message);
        s.dispatch(self);
    }

    /// Attaches a consumer and starts delivering to it.
    pub fn consume(self: &Arc<Self>, consumer: Consumer) -> Result<(), BrokerError> {
        let mut s = self.state.lock();
        s.add_consumer(consumer, &self.describe())?;
        self.had_consumer.store(true, Ordering::Release);
        s.dispatch(self);
        Ok(())
    }

    /// Detaches a consumer. Returns true when the queue is auto-delete and now has no consumers,
    /// i.e. the caller should delete it.
    pub fn cancel(self: &Arc<Self>, id: ConsumerId) -> bool {
        let mut s = self.state.lock();
        if s.remove_consumer(id).is_none() {
            return false;
        }
        // Others may now get what the cancelled consumer's credit held back.
        s.dispatch(self);
        self.options.auto_delete && s.consumer_count() == 0
    }

    /// Settles delivered messages and hands out what freed credit allows.
    pub fn settle(self: &Arc<Self>, seqs: &[u64], how: Settle) {
        let mut s = self.state.lock();
        // A deleted queue takes nothing back.
        let how = if self.is_deleted() { Settle::Discard } else { how };
        s.settle(seqs, how);
        s.dispatch(self);
    }

    /// Re-runs delivery after a consumer's or channel's credit grew.
    pub fn redispatch(self: &Arc<Self>) {
        self.state.lock().dispatch(self);
    }

    /// `basic.get`: the next ready message, if any.
    pub fn get(&self, no_ack: bool) -> Option<Got> {
        self.state.lock().get(no_ack)
    }

    /// Drops all ready messages; returns how many.
    pub fn purge(&self) -> u32 {
        self.state.lock().purge() as u32
    }

    /// Ready messages.
    pub fn message_count(&self) -> u32 {
        self.state.lock().ready_count() as u32
    }

    /// Attached consumers.
    pub fn consumer_count(&self) -> u32 {
        self.state.lock().consumer_count() as u32
    }

    /// Ready messages and consumers, under one lock.
    pub fn counts(&self) -> (u32, u32) {
        let s = self.state.lock();
        (s.ready_count() as u32, s.consumer_count() as u32)
    }

    /// Marks the queue deleted and detaches its consumers, telling each it was cancelled.
    /// Returns the number of ready messages it held.
    pub fn delete(&self) -> u32 {
        self.deleted.store(true, Ordering::Release);
        let (consumers, count) = {
            let mut s = self.state.lock();
            let count = s.purge() as u32;
            (s.take_consumers(), count)
        };
        for c in consumers {
            c.sink.cancelled(c.channel, c.tag.clone());
        }
        count
    }
}

#[cfg(test)]
mod tests;
