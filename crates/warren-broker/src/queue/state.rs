//! A queue's state and rules, without locks or I/O: ready messages in order, messages delivered
//! but not settled, and consumers served round-robin within their credit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::consumer::{Consumer, ConsumerId, Delivery};
use super::{Queue, Settle};
use crate::{BrokerError, Message};

/// A message waiting for a consumer.
#[derive(Debug, Clone)]
struct Ready {
    seq: u64,
    message: Arc<Message>,
    redelivered: bool,
}

/// A message handed out and not yet settled.
#[derive(Debug, Clone)]
struct InFlight {
    message: Arc<Message>,
    /// The consumer it went to; `None` for `basic.get`.
    consumer: Option<ConsumerId>,
}

/// Everything a queue holds.
#[derive(Debug, Default)]
pub struct QueueState {
    ready: VecDeque<Ready>,
    unacked: HashMap<u64, InFlight>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    next_seq: u64,
    /// Persistent messages here are in the store, so their comings and goings are reported.
    durable: bool,
}

/// A message taken by `basic.get`.
#[derive(Debug, Clone)]
pub struct Got {
    /// Its position in the queue.
    pub seq: u64,
    /// The message.
    pub message: Arc<Message>,
    /// True when it was delivered before.
    pub redelivered: bool,
    /// Messages still ready after this one.
    pub remaining: u32,
}

impl QueueState {
    /// An empty queue; a `durable` one reports persistent messages' deliveries and removals.
    pub fn new(durable: bool) -> Self {
        QueueState {
            durable,
            ..Default::default()
        }
    }

    /// Messages ready for delivery.
    pub fn ready_count(&self) -> usize {
        self.ready.len()
    }

    /// Messages delivered and not yet settled.
    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    /// Attached consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Appends a message.
    pub fn push(&mut self, message: Arc<Message>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ready.push_back(Ready {
            seq,
            message,
            redelivered: false,
        });
        seq
    }

    /// Attaches a consumer, enforcing exclusive consumers as RabbitMQ does.
    pub fn add_consumer(
        &mut self,
        consumer: Consumer,
        queue_desc: &str,
    ) -> Result<(), BrokerError> {
        let exclusive_held = self.consumers.iter().any(|c| c.exclusive);
        if exclusive_held || (consumer.exclusive && !self.consumers.is_empty()) {
            return Err(BrokerError::access_refused(format!(
                "{queue_desc} in exclusive use"
            )));
        }
        self.consumers.push(consumer);
        Ok(())
    }

    /// Detaches a consumer; its unacked messages stay with its channel until settled.
    pub fn remove_consumer(&mut self, id: ConsumerId) -> Option<Consumer> {
        let at = self.consumers.iter().position(|c| c.id == id)?;
        if at < self.next_consumer {
            self.next_consumer -= 1;
        }
        Some(self.consumers.remove(at))
    }

    /// Detaches every consumer (the queue is going away).
    pub fn take_consumers(&mut self) -> Vec<Consumer> {
        self.next_consumer = 0;
        std::mem::take(&mut self.consumers)
    }

    /// Hands ready messages to consumers with credit, round-robin, until either runs out.
    ///
    /// Persistent messages delivered for the first time are listed in `first`; persistent
    /// messages that left the queue for good (no-ack deliveries) in `gone`, so a durable queue
    /// can record both in its store.
    pub fn dispatch(&mut self, queue: &Arc<Queue>, first: &mut Vec<u64>, gone: &mut Vec<u64>) {
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            let n = self.consumers.len();
            let start = self.next_consumer % n;
            let Some(pick) = (0..n)
                .map(|i| (start + i) % n)
                .find(|&i| self.consumers[i].has_credit())
            else {
                return;
            };
            self.next_consumer = pick + 1;
            let Some(ready) = self.ready.pop_front() else {
                return;
            };
            let consumer = &mut self.consumers[pick];
            if self.durable && ready.message.persistent {
                if consumer.no_ack {
                    gone.push(ready.seq);
                } else if !ready.redelivered {
                    first.push(ready.seq);
                }
            }
            if !consumer.no_ack {
                consumer.unacked += 1;
                consumer
                    .channel_limit
                    .unacked
                    .fetch_add(1, Ordering::AcqRel);
                self.unacked.insert(
                    ready.seq,
                    InFlight {
                        message: ready.message.clone(),
                        consumer: Some(consumer.id),
                    },
                );
            }
            consumer.sink.deliver(Delivery {
                channel: consumer.channel,
                consumer_tag: consumer.tag.clone(),
                queue: queue.clone(),
                seq: ready.seq,
                message: ready.message,
                redelivered: ready.redelivered,
                no_ack: consumer.no_ack,
            });
        }
    }

    /// Takes the next ready message for `basic.get`.
    pub fn get(&mut self, no_ack: bool) -> Option<Got> {
        let ready = self.ready.pop_front()?;
        if !no_ack {
            self.unacked.insert(
                ready.seq,
                InFlight {
                    message: ready.message.clone(),
                    consumer: None,
                },
            );
        }
        Some(Got {
            seq: ready.seq,
            message: ready.message,
            redelivered: ready.redelivered,
            remaining: self.ready.len() as u32,
        })
    }

    /// Settles delivered messages. Requeued ones go back in their original order, ahead of
    /// messages that were never delivered, flagged as redelivered. Persistent messages that
    /// leave for good are listed in `gone`.
    pub fn settle(&mut self, seqs: &[u64], how: Settle, gone: &mut Vec<u64>) {
        let mut requeued = Vec::new();
        for seq in seqs {
            let Some(inflight) = self.unacked.remove(seq) else {
                continue;
            };
            if self.durable && how != Settle::Requeue && inflight.message.persistent {
                gone.push(*seq);
            }
            if let Some(id) = inflight.consumer
                && let Some(c) = self.consumers.iter_mut().find(|c| c.id == id)
            {
                c.unacked = c.unacked.saturating_sub(1);
            }
            if how == Settle::Requeue {
                requeued.push(Ready {
                    seq: *seq,
                    message: inflight.message,
                    redelivered: true,
                });
            }
        }
        if requeued.is_empty() {
            return;
        }
        requeued.sort_by_key(|r| r.seq);
        let fits_in_front = match (requeued.last(), self.ready.front()) {
            (Some(last), Some(first)) => last.seq < first.seq,
            _ => true,
        };
        if fits_in_front {
            for r in requeued.into_iter().rev() {
                self.ready.push_front(r);
            }
        } else {
            let mut all: Vec<Ready> = self.ready.drain(..).chain(requeued).collect();
            all.sort_by_key(|r| r.seq);
            self.ready = all.into();
        }
    }

    /// Drops every ready message, returning how many there were; persistent ones are listed in
    /// `gone`.
    pub fn purge(&mut self, gone: &mut Vec<u64>) -> usize {
        let n = self.ready.len();
        let durable = self.durable;
        gone.extend(
            self.ready
                .drain(..)
                .filter(|r| durable && r.message.persistent)
                .map(|r| r.seq),
        );
        n
    }

    /// Takes back the newest message, if it has sequence number `seq` (a store write for it
    /// failed before anyone could see it).
    pub fn unpush(&mut self, seq: u64) -> bool {
        if self.ready.back().is_some_and(|r| r.seq == seq) {
            self.ready.pop_back();
            return true;
        }
        false
    }

    /// Appends a message recovered from the store with its stored sequence number.
    pub fn push_recovered(&mut self, seq: u64, message: Arc<Message>, redelivered: bool) {
        self.next_seq = self.next_seq.max(seq + 1);
        self.ready.push_back(Ready {
            seq,
            message,
            redelivered,
        });
    }
}
