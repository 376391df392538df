//! Handing ready messages to consumers: round-robin among the consumers of the highest priority
//! (`x-priority`) that have credit, or only the active one on a single-active-consumer queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Queue;
use super::consumer::Delivery;
use super::state::{Effects, QueueState};
use crate::dead_letter::DeathReason;

impl QueueState {
    /// The consumer to take the next message, if any has credit.
    fn pick(&self) -> Option<usize> {
        let n = self.consumers.len();
        if n == 0 {
            return None;
        }
        if self.args.single_active_consumer {
            // The first consumer attached is the active one until it goes.
            return self.consumers.first().filter(|c| c.has_credit()).map(|_| 0);
        }
        let start = self.next_consumer % n;
        let order = (0..n).map(|i| (start + i) % n);
        if self.uniform_priority {
            return order.into_iter().find(|&i| self.consumers[i].has_credit());
        }
        // Consumers of lower priority get messages only while all higher ones are out of credit.
        let mut best: Option<(i32, usize)> = None;
        for i in order {
            let c = &self.consumers[i];
            if best.is_none_or(|(p, _)| c.priority > p) && c.has_credit() {
                best = Some((c.priority, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Hands ready messages to consumers with credit until either runs out. Messages whose
    /// deadline passed before `now` die instead of being delivered.
    pub fn dispatch(&mut self, queue: &Arc<Queue>, now: u64, fx: &mut Effects) {
        if !queue.delivering() || self.priority_loading() {
            return;
        }
        if self.ready.is_empty() {
            // Credit came back (an ack, `basic.qos`, flow on, a drained socket) with nothing
            // waiting: the queue could deliver at once again.
            if self.utilisation.is_inactive() && self.pick().is_some() {
                self.note_active();
            }
            return;
        }
        while !self.ready.is_empty() {
            let Some(pick) = self.pick() else {
                // A message waits and no consumer can take it.
                self.note_inactive();
                return;
            };
            // A consumer can take one (a branch per message; the clock only on the change).
            self.note_active();
            // A spilled segment not back yet pauses delivery; its arrival wakes the queue.
            let Some(ready) = self.ready.pop_front_ready() else {
                return;
            };
            if ready.deadline < now {
                self.die(ready.seq, ready.message, DeathReason::Expired, fx);
                continue;
            }
            self.next_consumer = pick + 1;
            let (no_ack, id) = {
                let c = &self.consumers[pick];
                (c.no_ack, c.id)
            };
            if no_ack {
                self.counters.deliver_no_ack += 1;
            } else {
                self.counters.deliver += 1;
            }
            self.hand_out(&ready, Some(id), no_ack, fx);
            let consumer = &mut self.consumers[pick];
            if !no_ack {
                consumer.unacked += 1;
                consumer
                    .channel_limit
                    .unacked
                    .fetch_add(1, Ordering::AcqRel);
            }
            consumer.sink.deliver(Delivery {
                channel: consumer.channel,
                consumer_tag: consumer.tag.clone(),
                queue: queue.clone(),
                seq: ready.seq,
                message: ready.message,
                redelivered: ready.redelivered,
                no_ack,
            });
        }
    }
}
