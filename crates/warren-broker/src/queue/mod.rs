//! Queues: the shared handle ([`Queue`]) around the lock-free-of-I/O state ([`state::QueueState`]).

mod args;
mod consumer;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use warren_codec::{FieldTable, ShortStr};
use warren_store::{MessageId, MessageOp, StoreError};

pub use args::{Overflow, QueueArgs};
pub use consumer::{ChannelLimit, Consumer, ConsumerId, Delivery, DeliverySink};
pub use state::{Got, QueueState};

use crate::persist::SharedStore;
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
    /// Where a durable queue keeps its persistent messages; `None` for transient queues.
    store: Option<SharedStore>,
    /// The vhost name as the store's keys take it, made once rather than per message.
    vhost_key: Bytes,
}

impl std::fmt::Debug for dyn crate::persist::Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Queue {
    /// A new, empty, transient queue.
    pub fn new(name: ShortStr, vhost: &str, options: QueueOptions, args: QueueArgs) -> Arc<Queue> {
        Self::with_store(name, vhost, options, args, None)
    }

    /// A new, empty queue; a durable one keeps persistent messages in `store`.
    pub fn with_store(
        name: ShortStr,
        vhost: &str,
        options: QueueOptions,
        args: QueueArgs,
        store: Option<SharedStore>,
    ) -> Arc<Queue> {
        let store = if options.durable { store } else { None };
        Arc::new(Queue {
            name,
            vhost: vhost.to_string(),
            options,
            args,
            state: Mutex::new(QueueState::new(store.is_some())),
            deleted: AtomicBool::new(false),
            had_consumer: AtomicBool::new(false),
            store,
            vhost_key: Bytes::copy_from_slice(vhost.as_bytes()),
        })
    }

    /// True when persistent messages published here are written to the store.
    pub fn stores_persistent(&self) -> bool {
        self.store.is_some()
    }

    /// Records that stored messages were delivered (`first`) or left for good (`gone`). Called
    /// with the state locked, so the store sees a queue's changes in the order they happened.
    fn record(&self, first: &[u64], gone: &[u64]) {
        let Some(store) = &self.store else { return };
        if first.is_empty() && gone.is_empty() {
            return;
        }
        let vhost = self.vhost_key.clone();
        let queue = self.name.bytes().clone();
        let ops: Vec<MessageOp> = first
            .iter()
            .map(|&seq| MessageOp::MarkRedelivered {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq,
            })
            .chain(gone.iter().map(|&seq| MessageOp::Remove {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq,
            }))
            .collect();
        if let Err(e) = store.write(&ops) {
            // Not fatal: the worst outcome is a redelivery after a restart.
            tracing::error!(queue = %self.name, error = %e, "cannot record deliveries in the store");
        }
    }

    fn dispatch_locked(self: &Arc<Self>, s: &mut QueueState) {
        let mut first = Vec::new();
        let mut gone = Vec::new();
        s.dispatch(self, &mut first, &mut gone);
        self.record(&first, &gone);
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

    /// Enqueues a transient message (or any message into a transient queue).
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) {
        let _ = self.publish_stored(message, None);
    }

    /// Enqueues a message and hands out what consumers can take. A persistent message in a
    /// durable queue is written to the store first, under store id `id.0`; `id.1` carries the
    /// message's stored form when this write must also store the message itself (the first
    /// durable queue it reaches). Returns whether the store was written (the publish then needs
    /// a sync before it may be confirmed). On a store error nothing was enqueued.
    pub fn publish_stored(
        self: &Arc<Self>,
        message: Arc<Message>,
        id: Option<(MessageId, Option<Bytes>)>,
    ) -> Result<bool, StoreError> {
        let mut s = self.state.lock();
        // Routed just before the queue was deleted: nobody can ever consume it.
        if self.is_deleted() {
            return Ok(false);
        }
        let persistent = message.persistent;
        let seq = s.push(message);
        let mut written = false;
        if let (Some(store), Some((id, put)), true) = (&self.store, id, persistent) {
            let mut ops = Vec::with_capacity(2);
            if let Some(stored_form) = put {
                ops.push(MessageOp::Put {
                    id,
                    message: stored_form,
                });
            }
            ops.push(MessageOp::Enqueue {
                vhost: self.vhost_key.clone(),
                queue: self.name.bytes().clone(),
                seq,
                id,
            });
            if let Err(e) = store.write(&ops) {
                s.unpush(seq);
                return Err(e);
            }
            written = true;
        }
        self.dispatch_locked(&mut s);
        Ok(written)
    }

    /// Adds a message read back from the store at startup.
    pub fn recover(&self, seq: u64, message: Arc<Message>, redelivered: bool) {
        self.state.lock().push_recovered(seq, message, redelivered);
    }

    /// Attaches a consumer and starts delivering to it.
    pub fn consume(self: &Arc<Self>, consumer: Consumer) -> Result<(), BrokerError> {
        let mut s = self.state.lock();
        s.add_consumer(consumer, &self.describe())?;
        self.had_consumer.store(true, Ordering::Release);
        self.dispatch_locked(&mut s);
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
        self.dispatch_locked(&mut s);
        self.options.auto_delete && s.consumer_count() == 0
    }

    /// Settles delivered messages and hands out what freed credit allows.
    pub fn settle(self: &Arc<Self>, seqs: &[u64], how: Settle) {
        let mut s = self.state.lock();
        // A deleted queue takes nothing back.
        let how = if self.is_deleted() {
            Settle::Discard
        } else {
            how
        };
        let mut gone = Vec::new();
        s.settle(seqs, how, &mut gone);
        self.record(&[], &gone);
        self.dispatch_locked(&mut s);
    }

    /// Re-runs delivery after a consumer's or channel's credit grew.
    pub fn redispatch(self: &Arc<Self>) {
        let mut s = self.state.lock();
        self.dispatch_locked(&mut s);
    }

    /// `basic.get`: the next ready message, if any.
    pub fn get(&self, no_ack: bool) -> Option<Got> {
        let mut s = self.state.lock();
        let got = s.get(no_ack)?;
        if self.store.is_some() && got.message.persistent {
            if no_ack {
                self.record(&[], &[got.seq]);
            } else if !got.redelivered {
                self.record(&[got.seq], &[]);
            }
        }
        Some(got)
    }

    /// Drops all ready messages; returns how many.
    pub fn purge(&self) -> u32 {
        let mut s = self.state.lock();
        let mut gone = Vec::new();
        let n = s.purge(&mut gone);
        self.record(&[], &gone);
        n as u32
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
            // The store drops a deleted queue's messages with its record, in one go.
            let count = s.purge(&mut Vec::new()) as u32;
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
