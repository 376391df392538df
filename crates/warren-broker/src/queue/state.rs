//! A queue's state and rules, without locks or I/O: ready messages in delivery order, messages
//! delivered but not settled, consumers, and the limits of the queue's arguments (TTL, length,
//! overflow, delivery limit, `x-expires`).
//!
//! Operations take the current time as an argument and report what the caller must act on in
//! [`Effects`]: store changes and messages to dead-letter. So the state is tested with plain
//! numbers for time, and the locked wrapper ([`super::Queue`]) does the I/O after unlocking.

// The management API's read of a queue: a child module, so it can take the queue's lock.
mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;

use super::args::{Overflow, QueueArgs};
use super::consumer::{Consumer, ConsumerId};
use super::loading::Loading;
use super::ready::{NEVER, Ready, ReadyList};
use super::utilisation::{Utilisation, monotonic_us};
use super::{Queue, Settle};
use crate::dead_letter::{DeadLetter, DeathReason};
use warren_store::MessageId;

use crate::snapshot::QueueCounters;
use crate::{BrokerError, Message};

/// A message handed out and not yet settled.
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    pub(super) message: Arc<Message>,
    /// The consumer it went to; `None` for `basic.get`.
    pub(super) consumer: Option<ConsumerId>,
    deadline: u64,
    returns: u32,
}

/// What an operation on the state asks the caller to do once the queue is unlocked.
#[derive(Debug, Default)]
pub struct Effects {
    /// Stored messages delivered for the first time, `(seq, store id)`: mark them redelivered
    /// in the store.
    pub first: Vec<(u64, MessageId)>,
    /// Stored messages that left the queue for good, `(seq, store id)`: remove them from the
    /// store.
    pub gone: Vec<(u64, MessageId)>,
    /// Messages that died (rejected, expired, over the length or delivery limit): dead-letter
    /// them if the queue has a dead-letter exchange, then remove the stored ones.
    pub dead: Vec<DeadLetter>,
}

impl Effects {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty() && self.gone.is_empty() && self.dead.is_empty()
    }
}

/// What became of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Enqueued (and maybe already delivered, dropped or expired) at this position.
    Enqueued(u64),
    /// Refused by `x-overflow=reject-publish(-dlx)`: the publisher gets a nack.
    Rejected,
}

/// Everything a queue holds.
#[derive(Debug, Default)]
pub struct QueueState {
    pub(super) ready: ReadyList,
    // ahash, not SipHash: one insert and one remove per acknowledged delivery.
    pub(super) unacked: HashMap<u64, InFlight, ahash::RandomState>,
    pub(super) consumers: Vec<Consumer>,
    pub(super) next_consumer: usize,
    /// False when some consumer has another priority than the rest, so picking one has to look
    /// at all of them.
    pub(super) uniform_priority: bool,
    pub(super) next_seq: u64,
    /// Set while stored messages are still being read back after a restart (see `loading`).
    pub(super) loading: Option<Loading>,
    /// Stored entries below this `seq` that the loader still reads were purged: it removes
    /// them from the store instead of queueing them.
    pub(super) sweep_below: u64,
    /// Where the loader starts reading the stored region of a queue that began loading while
    /// running, until it does (the loader's cursor is set under its own lock, which comes
    /// before this state's). A purge keeps it: the sweep reads from there.
    pub(super) resume_at: Option<u64>,
    /// Persistent messages here are in the store, so their comings and goings are reported.
    pub(super) durable: bool,
    /// Where a durable queue whose backlog passed a window asks for its stored messages back,
    /// and that window (see `loading::QueueState::leave_in_store`); `None`: it keeps them all.
    pub(super) store_backlog: Option<(
        std::sync::Arc<super::loading::LoadRequests>,
        super::loading::Window,
    )>,
    pub(super) args: QueueArgs,
    /// Last `basic.get`, redeclare or consumer activity (epoch ms), for `x-expires`.
    last_used: u64,
    /// The deadline the timer thread will wake this queue at, or [`NEVER`].
    pub(super) timer_at: u64,
    /// Message counters for the management API and Prometheus: plain adds under the lock the
    /// operation holds anyway.
    pub(super) counters: QueueCounters,
    /// Body bytes of the messages in `unacked` (`message_bytes_unacknowledged`).
    pub(super) unacked_bytes: u64,
    /// Whether a consumer could take a message at once, and the moving average of it.
    pub(super) utilisation: Utilisation,
}

/// `basic.get` found the head in a spilled segment that is not back yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadPending;

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
    /// An empty queue without arguments; a `durable` one reports persistent messages' deliveries
    /// and removals.
    pub fn new(durable: bool) -> Self {
        Self::with_args(durable, QueueArgs::default(), 0)
    }

    /// An empty queue with the limits of `args`, created at `now` (epoch ms).
    pub fn with_args(durable: bool, args: QueueArgs, now: u64) -> Self {
        QueueState {
            ready: ReadyList::new(args.max_priority.unwrap_or(0)),
            durable,
            args,
            last_used: now,
            timer_at: NEVER,
            uniform_priority: true,
            ..Default::default()
        }
    }

    /// Messages ready for delivery, including stored ones not loaded yet.
    pub fn ready_count(&self) -> usize {
        self.ready.len() + self.not_loaded() as usize
    }

    /// Messages delivered and not yet settled.
    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    /// Attached consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// The store id of `m` when this queue's store holds it: a durable queue stores every
    /// message that has an id (the publish path gives ids to persistent messages only).
    pub(super) fn stored(&self, m: &Message) -> Option<MessageId> {
        if self.durable { m.store_id() } else { None }
    }

    fn deadline(&self, m: &Message) -> u64 {
        let ttl = match (self.args.message_ttl, m.expiration_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ttl.map_or(NEVER, |t| m.timestamp_ms.saturating_add(t))
    }

    /// True when a TTL may apply, so operations need the real time.
    pub fn needs_clock(&self, m: Option<&Message>) -> bool {
        self.args.message_ttl.is_some()
            || m.is_some_and(|m| m.expiration_ms.is_some())
            || self.ready.next_deadline() != NEVER
    }

    /// True when `x-overflow=reject-publish(-dlx)` refuses `m` (RabbitMQ's `will_overflow`).
    pub fn refuses(&self, m: &Message) -> bool {
        if self.args.overflow == Overflow::DropHead {
            return false;
        }
        let too_long = self
            .args
            .max_length
            .is_some_and(|max| self.ready_count() as u64 + 1 > max);
        let too_big = self
            .args
            .max_length_bytes
            .is_some_and(|max| self.ready.bytes() + self.held_bytes() + m.body.len() as u64 > max);
        too_long || too_big
    }

    /// The position the next published message will take.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Publishes a message at `now`: refused when the overflow policy says so, otherwise
    /// enqueued, handed to a consumer if one has credit, and the head dropped while the queue is
    /// over its length limits (`drop-head`).
    pub fn publish(
        &mut self,
        message: Arc<Message>,
        now: u64,
        queue: &Arc<Queue>,
        fx: &mut Effects,
    ) -> Pushed {
        if self.refuses(&message) {
            if self.args.overflow == Overflow::RejectPublishDlx {
                fx.dead
                    .push(DeadLetter::new(message, DeathReason::Maxlen, None));
            }
            return Pushed::Rejected;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.counters.publish += 1;
        let deadline = self.deadline(&message);
        // A message due the moment it was published (TTL 0) may still go to a consumer that
        // can take it at once; the clock read since then must not expire it first.
        let dispatch_now = now.min(message.timestamp_ms);
        let ready = Ready {
            seq,
            message,
            deadline,
            returns: 0,
            redelivered: false,
        };
        // A deep durable queue leaves new stored messages in the store; while stored messages
        // load, a new one waits behind them.
        self.leave_in_store(&ready);
        if let Some(ready) = self.hold(ready) {
            self.ready.push_back(ready);
        }
        self.dispatch(queue, dispatch_now, fx);
        self.drop_over_limit(fx);
        self.expire(now, fx);
        Pushed::Enqueued(seq)
    }

    fn over_limit(&self) -> bool {
        self.args
            .max_length
            .is_some_and(|max| self.ready_count() as u64 > max)
            || self
                .args
                .max_length_bytes
                .is_some_and(|max| self.ready.bytes() + self.held_bytes() > max)
    }

    pub(super) fn drop_over_limit(&mut self, fx: &mut Effects) {
        if self.args.overflow != Overflow::DropHead {
            return;
        }
        while self.over_limit() {
            let Some(r) = self.ready.pop_front_ready() else {
                if self.ready.head_pending() {
                    // The head is in a spilled segment not back yet: it is dropped when the
                    // segment arrives (`Queue::segment_arrived`), not read here under the lock.
                    return;
                }
                // Still loading: the head is a stored message not loaded yet, or a held one.
                if self.drop_unloaded_head(fx) {
                    continue;
                }
                return;
            };
            self.die(r.seq, r.message, DeathReason::Maxlen, fx);
        }
    }

    pub(super) fn die(
        &self,
        seq: u64,
        message: Arc<Message>,
        reason: DeathReason,
        fx: &mut Effects,
    ) {
        let stored = self.stored(&message).is_some();
        fx.dead
            .push(DeadLetter::new(message, reason, stored.then_some(seq)));
    }

    /// Drops expired messages from the heads of the queue.
    pub fn expire(&mut self, now: u64, fx: &mut Effects) {
        let mut expired = Vec::new();
        self.ready.pop_expired(now, &mut expired);
        for r in expired {
            self.die(r.seq, r.message, DeathReason::Expired, fx);
        }
    }

    /// Takes the next ready message for `basic.get`: `Ok(None)` when there is none, `Err`
    /// when the head is in a spilled segment not back yet (it has been asked for; the queue's
    /// waker runs when it arrives, and the get is to be tried again then).
    pub fn try_get(
        &mut self,
        no_ack: bool,
        now: u64,
        fx: &mut Effects,
    ) -> Result<Option<Got>, HeadPending> {
        self.last_used = now;
        self.expire(now, fx);
        let Some(ready) = self.ready.pop_front_ready() else {
            if self.ready.head_pending() {
                return Err(HeadPending);
            }
            self.counters.get_empty += 1;
            return Ok(None);
        };
        // RabbitMQ drops what expired behind the message before it counts what remains.
        self.expire(now, fx);
        if no_ack {
            self.counters.get_no_ack += 1;
        } else {
            self.counters.get += 1;
        }
        self.hand_out(&ready, None, no_ack, fx);
        Ok(Some(Got {
            seq: ready.seq,
            message: ready.message,
            redelivered: ready.redelivered,
            remaining: self.ready_count() as u32,
        }))
    }

    /// [`QueueState::try_get`] for tests: a pending head is waited for (the spill area's
    /// thread reads it meanwhile), polling, since a bare state has no waker of its own.
    #[cfg(test)]
    pub fn get(&mut self, no_ack: bool, now: u64, fx: &mut Effects) -> Option<Got> {
        loop {
            match self.try_get(no_ack, now, fx) {
                Ok(got) => return got,
                Err(HeadPending) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }

    /// Hands out a ready message (to `consumer`, or to `basic.get` when `None`): tracks it as
    /// unacked unless `no_ack`, and reports what the store must learn (first delivery, or gone
    /// for good).
    pub(super) fn hand_out(
        &mut self,
        ready: &Ready,
        consumer: Option<ConsumerId>,
        no_ack: bool,
        fx: &mut Effects,
    ) {
        if ready.redelivered {
            self.counters.redeliver += 1;
        }
        if let Some(stored) = self.stored(&ready.message) {
            if no_ack {
                fx.gone.push((ready.seq, stored));
            } else if !ready.redelivered {
                fx.first.push((ready.seq, stored));
            }
        }
        if no_ack {
            return;
        }
        self.unacked_bytes += ready.message.body.len() as u64;
        self.unacked.insert(
            ready.seq,
            InFlight {
                message: ready.message.clone(),
                consumer,
                deadline: ready.deadline,
                returns: ready.returns,
            },
        );
    }

    /// Settles delivered messages. Requeued ones go back in their original order, ahead of
    /// messages that were never delivered, flagged as redelivered (and dead-lettered instead
    /// once past `x-delivery-limit`); discarded ones die as `rejected`.
    pub fn settle(&mut self, seqs: &[u64], how: Settle, now: u64, fx: &mut Effects) {
        let mut requeued = Vec::new();
        for seq in seqs {
            let Some(inflight) = self.unacked.remove(seq) else {
                continue;
            };
            self.unacked_bytes = self
                .unacked_bytes
                .saturating_sub(inflight.message.body.len() as u64);
            if let Some(id) = inflight.consumer
                && let Some(c) = self.consumers.iter_mut().find(|c| c.id == id)
            {
                c.unacked = c.unacked.saturating_sub(1);
            }
            match how {
                Settle::Ack => {
                    self.counters.ack += 1;
                    if let Some(stored) = self.stored(&inflight.message) {
                        fx.gone.push((*seq, stored));
                    }
                }
                Settle::Discard => self.die(*seq, inflight.message, DeathReason::Rejected, fx),
                Settle::Requeue => {
                    let returns = inflight.returns.saturating_add(1);
                    let message = match self.args.delivery_limit {
                        Some(limit) if u64::from(returns) > limit => {
                            self.die(*seq, inflight.message, DeathReason::DeliveryLimit, fx);
                            continue;
                        }
                        Some(_) => Arc::new(inflight.message.with_delivery_count(returns)),
                        None => inflight.message,
                    };
                    requeued.push(Ready {
                        seq: *seq,
                        message,
                        deadline: inflight.deadline,
                        returns,
                        redelivered: true,
                    });
                }
            }
        }
        if !requeued.is_empty() {
            self.ready.requeue(requeued);
            // A requeued message can push a drop-head queue over its limit (reject-publish
            // queues may exceed it this way, as in RabbitMQ).
            self.drop_over_limit(fx);
            self.expire(now, fx);
        }
    }

    /// Drops every ready message, returning how many there were; stored ones are listed in
    /// `gone`.
    pub fn purge(&mut self, fx: &mut Effects) -> usize {
        let n = self.ready.len();
        self.ready.clear(self.durable.then_some(&mut fx.gone));
        n + self.purge_unloaded(fx)
    }

    /// As [`QueueState::purge`], except that a durable queue's ready list with spilled
    /// segments is handed back whole instead of listed in `gone`: listing its stored messages
    /// reads those segments, which the caller does without the state lock.
    pub fn purge_taking(&mut self, fx: &mut Effects) -> (usize, Option<ReadyList>) {
        if !self.durable || self.ready.spilled() == 0 {
            return (self.purge(fx), None);
        }
        let n = self.ready.len();
        let empty = self.ready.empty_like();
        let taken = std::mem::replace(&mut self.ready, empty);
        (n + self.purge_unloaded(fx), Some(taken))
    }

    /// True when a purge may read the disk: a durable queue's spilled segments, or stored
    /// entries not loaded yet.
    pub fn purge_may_block(&self) -> bool {
        self.durable && (self.ready.spilled() > 0 || self.loading.is_some() || self.sweep_below > 0)
    }

    /// Drops every ready message without listing stored ones (the queue is being deleted, and
    /// the store drops its records in one go), so spilled segments are not read; returns how
    /// many there were.
    pub fn purge_all(&mut self) -> usize {
        let n = self.ready.len();
        self.ready.clear(None);
        n + self.purge_unloaded(&mut Effects::default())
    }

    /// Appends a message recovered from the store with its stored sequence number.
    pub fn push_recovered(&mut self, seq: u64, message: Arc<Message>, redelivered: bool) {
        self.next_seq = self.next_seq.max(seq + 1);
        let deadline = self.deadline(&message);
        self.ready.push_back(Ready {
            seq,
            message,
            deadline,
            returns: 0,
            redelivered,
        });
    }

    /// Notes a use of the queue (`basic.get`, redeclaration, a consumer leaving) for `x-expires`.
    pub fn touch(&mut self, now: u64) {
        self.last_used = now;
    }

    /// When the queue itself expires (`x-expires`), or [`NEVER`] while it has consumers.
    fn expires_at(&self) -> u64 {
        match self.args.expires {
            Some(ms) if self.consumers.is_empty() => self.last_used.saturating_add(ms),
            _ => NEVER,
        }
    }

    /// The next moment the queue has something to do on its own, or [`NEVER`].
    pub fn next_wakeup(&self) -> u64 {
        self.ready.next_deadline().min(self.expires_at())
    }

    /// True when the queue has been unused for its `x-expires` period at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at() <= now
    }
}

impl QueueState {
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
        self.note_priorities();
        self.note_active();
        Ok(())
    }

    /// Detaches a consumer; its unacked messages stay with its channel until settled.
    pub fn remove_consumer(&mut self, id: ConsumerId, now: u64) -> Option<Consumer> {
        let at = self.consumers.iter().position(|c| c.id == id)?;
        if at < self.next_consumer {
            self.next_consumer -= 1;
        }
        let c = self.consumers.remove(at);
        self.note_priorities();
        if self.consumers.is_empty() {
            self.last_used = now;
        }
        Some(c)
    }

    /// Detaches every consumer (the queue is going away).
    pub fn take_consumers(&mut self) -> Vec<Consumer> {
        self.next_consumer = 0;
        std::mem::take(&mut self.consumers)
    }

    /// A consumer could take a message now (RabbitMQ's `update_use(_, active)`); reads the
    /// clock only on the transition.
    pub(super) fn note_active(&mut self) {
        if self.utilisation.is_inactive() {
            self.utilisation.activate(monotonic_us());
        }
    }

    /// A delivery attempt found no consumer with credit; reads the clock only on the
    /// transition.
    pub(super) fn note_inactive(&mut self) {
        if !self.utilisation.is_inactive() {
            self.utilisation.deactivate(monotonic_us());
        }
    }

    /// Consumer utilisation now, between 0 and 1: the moving average of the share of time a
    /// consumer could take a message at once.
    pub fn consumer_utilisation(&self) -> f64 {
        self.utilisation.at(monotonic_us())
    }

    fn note_priorities(&mut self) {
        let first = self.consumers.first().map(|c| c.priority);
        self.uniform_priority = self.consumers.iter().all(|c| Some(c.priority) == first);
    }
}
