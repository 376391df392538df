//! Settling deliveries: `basic.ack`, `basic.nack`, `basic.reject`, and the acknowledgement
//! timeout (`consumer_timeout`) for deliveries that are never settled.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use warren_broker::Settle;
use warren_codec::{BasicAck, BasicNack, BasicReject, ReplyCode};

use super::{Channel, Mode, Unacked, settle_grouped};
use crate::connection::{AmqpError, AmqpResult, Ctx};

impl Channel {
    pub(super) fn basic_ack(&mut self, _ctx: &mut Ctx, m: BasicAck) -> AmqpResult {
        self.settle(m.delivery_tag, m.multiple, Settle::Ack)
    }

    pub(super) fn basic_nack(&mut self, _ctx: &mut Ctx, m: BasicNack) -> AmqpResult {
        let how = if m.requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        };
        self.settle(m.delivery_tag, m.multiple, how)
    }

    pub(super) fn basic_reject(&mut self, _ctx: &mut Ctx, m: BasicReject) -> AmqpResult {
        let how = if m.requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        };
        self.settle(m.delivery_tag, false, how)
    }

    /// Takes the deliveries a tag names off the unacked map: with `multiple`, every tag up to it
    /// (all of them for tag 0); an unknown tag is a 406 channel error, as in RabbitMQ, with
    /// `multiple` too: RabbitMQ's `collect_acks` must meet the tag itself, and settles nothing
    /// when it does not.
    fn take_unacked(&mut self, tag: u64, multiple: bool) -> AmqpResult<Vec<(u64, Unacked)>> {
        let unknown = || {
            AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!("unknown delivery tag {tag}"),
            )
        };
        if multiple {
            if tag != 0 && !self.unacked.contains_key(&tag) {
                return Err(unknown());
            }
            let upto = if tag == 0 { u64::MAX } else { tag };
            let keep = self.unacked.split_off(&upto.saturating_add(1));
            let taken = std::mem::replace(&mut self.unacked, keep);
            Ok(taken.into_iter().collect())
        } else {
            let u = self.unacked.remove(&tag).ok_or_else(unknown)?;
            Ok(vec![(tag, u)])
        }
    }

    fn settle(&mut self, tag: u64, multiple: bool, how: Settle) -> AmqpResult {
        let taken = self.take_unacked(tag, multiple)?;
        if how == Settle::Ack {
            self.stats.ack.add(taken.len() as u64);
        }
        if let Mode::Tx(tx) = &mut self.mode {
            tx.settles.push((how, taken));
            return Ok(());
        }
        self.apply_settle(taken, how);
        Ok(())
    }

    /// Closes the channel with 406 when its oldest unsettled delivery (consumer or `basic.get`)
    /// has waited longer than `consumer_timeout`, as RabbitMQ's channel tick does; closing
    /// requeues every delivery it holds. Acks held by an open transaction are settled already.
    pub fn check_ack_timeout(&mut self, ctx: &mut Ctx, now: Instant) {
        let timeout = ctx.config.consumer_timeout;
        // Delivery tags grow with time, so the lowest tag is the oldest delivery.
        let Some((tag, oldest)) = self.unacked.first_key_value() else {
            return;
        };
        if now.saturating_duration_since(oldest.delivered_at) <= Duration::from_millis(timeout) {
            return;
        }
        tracing::warn!(
            channel = self.id,
            delivery_tag = *tag,
            timeout_ms = timeout,
            "delivery acknowledgement timed out"
        );
        let e = AmqpError::new(
            ReplyCode::PreconditionFailed,
            format!(
                "delivery acknowledgement on channel {} timed out. Timeout value used: {timeout} \
                 ms. This timeout value can be configured, see consumers doc guide to learn more",
                self.id
            ),
        );
        self.close_with(ctx, e);
    }

    /// Settles taken deliveries with their queues and releases prefetch credit.
    pub(super) fn apply_settle(&mut self, taken: Vec<(u64, Unacked)>, how: Settle) {
        let counted = taken.iter().filter(|(_, u)| u.counted).count() as u32;
        let global_limited = self.limit.global_prefetch.load(Ordering::Relaxed) != 0;
        if !global_limited {
            self.limit.release(counted);
            settle_grouped(taken.into_iter().map(|(_, u)| u), how);
            return;
        }
        // Settled before the credit is released, so the settling queue cannot take it back at
        // once; then the freed credit is offered to the channel's queues in turn.
        settle_grouped(taken.into_iter().map(|(_, u)| u), how);
        self.limit.release(counted);
        if counted > 0 {
            self.redispatch_fair();
        }
    }
}
