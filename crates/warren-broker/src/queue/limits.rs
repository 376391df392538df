//! Changing a live queue's limits when a policy applied to it changes, as RabbitMQ's
//! `process_args_policy` does: the new limits take effect at once (a shorter `max-length`
//! drops or dead-letters the head under `drop-head`, a new `expires` starts counting now), while
//! messages already queued keep the expiry they got when published (RabbitMQ computes a
//! message's expiry once, at enqueue; a TTL set later applies to later messages only).

use std::sync::Arc;

use warren_codec::ShortStr;

use super::state::{Effects, QueueState};
use super::{Queue, QueueArgs};
use crate::dead_letter::DeadLetterTarget;
use crate::timers::now_ms;

/// The dead-letter target the limits name (none without an exchange, as in RabbitMQ).
pub(super) fn dead_letter_target(args: &QueueArgs) -> Option<DeadLetterTarget> {
    args.dead_letter_exchange
        .as_ref()
        .map(|x| DeadLetterTarget {
            exchange: ShortStr::from(x.as_str()),
            routing_key: args
                .dead_letter_routing_key
                .as_ref()
                .map(|k| ShortStr::from(k.as_str())),
        })
}

impl QueueState {
    /// Puts `limits` in force at `now`: the fields a policy can set are taken from it (TTL,
    /// expiry, lengths, overflow, dead-lettering); the others stay as declared.
    pub fn set_limits(&mut self, limits: &QueueArgs, now: u64, fx: &mut Effects) {
        if self.args.expires != limits.expires {
            // RabbitMQ restarts the expiry timer with the new period.
            self.touch(now);
        }
        self.args.message_ttl = limits.message_ttl;
        self.args.expires = limits.expires;
        self.args.max_length = limits.max_length;
        self.args.max_length_bytes = limits.max_length_bytes;
        self.args.overflow = limits.overflow;
        self.args.dead_letter_exchange = limits.dead_letter_exchange.clone();
        self.args.dead_letter_routing_key = limits.dead_letter_routing_key.clone();
        self.drop_over_limit(fx);
    }

    /// The limits in force.
    pub fn limits(&self) -> &QueueArgs {
        &self.args
    }
}

impl Queue {
    /// Puts the limits a policy change computed in force (see [`QueueState::set_limits`]), and
    /// buries what a shorter length limit pushed out. Does nothing on a deleted queue.
    pub fn set_limits(self: &Arc<Self>, limits: &QueueArgs) {
        let mut s = self.state.lock();
        if self.is_deleted() || s.args == *limits {
            return;
        }
        // The dead-letter target first, so what the new limits drop goes where they say.
        *self.dead_letter.write() = dead_letter_target(limits);
        let mut fx = Effects::default();
        s.set_limits(limits, now_ms(), &mut fx);
        self.conclude(s, fx);
    }

    /// The limits in force: the declared arguments as the policies change them.
    pub fn limits(&self) -> QueueArgs {
        self.state.lock().args.clone()
    }
}
