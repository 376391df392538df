//! Publisher confirms: `confirm.select`, and acknowledging publishes once they are safe — at
//! once for messages only held in memory, after a store sync for persistent messages in durable
//! queues. Acks are batched with `multiple=true`.

use warren_codec::{BasicAck, BasicNack, ConfirmSelect, ConfirmSelectOk, ReplyCode};

use super::publish::Routed;
use super::{Channel, Mode};
use crate::connection::{AmqpError, AmqpResult, Ctx, SyncPurpose};

/// A confirm-mode channel's counters; every number is a publish sequence number.
#[derive(Debug, Default)]
pub struct Confirms {
    /// The last publish.
    last_seq: u64,
    /// The highest seq acked or nacked to the client.
    settled: u64,
    /// The highest seq whose publish wrote to the store.
    stored: u64,
    /// The highest seq a completed store sync covers.
    synced: u64,
    /// A sync is running for this channel.
    syncing: bool,
}

impl Confirms {
    /// Publishes not yet acked or nacked to the client.
    pub fn unconfirmed(&self) -> u64 {
        self.last_seq - self.settled
    }
}

impl Channel {
    pub(super) fn confirm_select(&mut self, ctx: &mut Ctx, m: ConfirmSelect) -> AmqpResult {
        match self.mode {
            Mode::Tx(_) => {
                return Err(AmqpError::new(
                    ReplyCode::PreconditionFailed,
                    "cannot switch from tx to confirm mode",
                ));
            }
            Mode::Plain => self.mode = Mode::Confirm(Confirms::default()),
            Mode::Confirm(_) => {}
        }
        if !m.nowait {
            ctx.send(self.id, ConfirmSelectOk);
        }
        Ok(())
    }

    /// Accounts for one routed publish on a confirm channel.
    pub(super) fn confirm_publish(&mut self, ctx: &mut Ctx, routed: Routed) {
        let Mode::Confirm(c) = &mut self.mode else {
            return;
        };
        c.last_seq += 1;
        let seq = c.last_seq;
        self.stats.publish_confirm.add(1);
        if routed.store_failed || routed.rejected {
            // Refused by the store or a full queue: this one is nacked on its own, at once. Later multiple acks
            // do not cover it again: clients drop a settled tag from their outstanding set.
            ctx.send(
                self.id,
                BasicNack {
                    delivery_tag: seq,
                    multiple: false,
                    requeue: false,
                },
            );
            if c.settled + 1 == seq {
                c.settled = seq;
            }
        } else if routed.stored {
            c.stored = seq;
        }
        if !ctx.confirms_due.contains(&self.id) {
            ctx.confirms_due.push(self.id);
        }
    }

    /// Sends one `basic.ack` for every publish that is safe, and starts a store sync for those
    /// that wait on one.
    pub fn flush_confirms(&mut self, ctx: &mut Ctx) {
        let Mode::Confirm(c) = &mut self.mode else {
            return;
        };
        // Everything is safe up to the last publish, unless a stored one is not yet synced.
        let safe = if c.stored > c.synced {
            c.synced
        } else {
            c.last_seq
        };
        if safe > c.settled {
            self.stats.confirm.add(safe - c.settled);
            let multiple = safe - c.settled > 1;
            c.settled = safe;
            ctx.send(
                self.id,
                BasicAck {
                    delivery_tag: safe,
                    multiple,
                },
            );
        }
        if c.stored > c.synced && !c.syncing {
            c.syncing = true;
            ctx.request_sync(self.id, SyncPurpose::Confirms { upto: c.last_seq });
        }
    }

    /// A store sync started for confirms finished.
    pub fn confirms_synced(&mut self, ctx: &mut Ctx, upto: u64, ok: bool) {
        let Mode::Confirm(c) = &mut self.mode else {
            return;
        };
        c.syncing = false;
        if ok {
            c.synced = c.synced.max(upto);
        } else if upto > c.settled {
            // The store could not make them durable: the publisher must not count on them.
            ctx.send(
                self.id,
                BasicNack {
                    delivery_tag: upto,
                    multiple: upto - c.settled > 1,
                    requeue: false,
                },
            );
            c.settled = upto;
            c.synced = c.synced.max(upto);
        }
        self.flush_confirms(ctx);
    }
}
