//! Transactions: `tx.select`, `tx.commit`, `tx.rollback`. Publishes and settlements are held
//! until commit; a commit that stored persistent messages answers only after a store sync.

use bytes::Bytes;
use warren_broker::Settle;
use warren_codec::{BasicPublish, RawProperties, ReplyCode, TxCommitOk, TxRollbackOk, TxSelectOk};

use super::{Channel, Mode, Unacked};
use crate::connection::{AmqpError, AmqpResult, Ctx, SyncPurpose};

/// Publishes and settlements held by a transaction until commit.
#[derive(Debug, Default)]
pub struct TxBuffer {
    /// Complete messages, in publish order.
    pub(super) publishes: Vec<(BasicPublish, RawProperties, Bytes)>,
    /// Settlements, with the deliveries they took off the unacked map.
    pub(super) settles: Vec<(Settle, Vec<(u64, Unacked)>)>,
}

impl Channel {
    pub(super) fn tx_select(&mut self, ctx: &mut Ctx) -> AmqpResult {
        match self.mode {
            Mode::Confirm(_) => {
                return Err(AmqpError::new(
                    ReplyCode::PreconditionFailed,
                    "cannot switch from confirm to tx mode",
                ));
            }
            Mode::Plain => self.mode = Mode::Tx(TxBuffer::default()),
            Mode::Tx(_) => {}
        }
        ctx.send(self.id, TxSelectOk);
        Ok(())
    }

    fn take_tx(&mut self) -> AmqpResult<TxBuffer> {
        match &mut self.mode {
            Mode::Tx(tx) => Ok(std::mem::take(tx)),
            _ => Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                "channel is not transactional",
            )),
        }
    }

    pub(super) fn tx_commit(&mut self, ctx: &mut Ctx) -> AmqpResult {
        let tx = self.take_tx()?;
        let mut stored = false;
        for (publish, properties, body) in tx.publishes {
            let failure = match self.route(ctx, publish, properties, body) {
                Ok(routed) if routed.store_failed => Some(AmqpError::new(
                    ReplyCode::InternalError,
                    "the message store refused a message of this transaction",
                )),
                Ok(routed) => {
                    stored |= routed.stored;
                    None
                }
                Err(e) => Some(e),
            };
            if let Some(e) = failure {
                // The commit fails: its held acks are unacked again, so closing the channel
                // requeues those messages instead of leaving them in flight forever.
                for (_, taken) in tx.settles {
                    self.unacked.extend(taken);
                }
                return Err(e);
            }
        }
        for (how, taken) in tx.settles {
            self.apply_settle(taken, how);
        }
        if stored {
            // commit-ok promises durability: it goes out when the sync is done.
            ctx.request_sync(self.id, SyncPurpose::Commit);
        } else {
            ctx.send(self.id, TxCommitOk);
        }
        Ok(())
    }

    /// The sync a commit waited on finished.
    pub fn commit_synced(&mut self, ctx: &mut Ctx, ok: bool) -> AmqpResult {
        if !ok {
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                "the message store could not make the transaction durable",
            )
            .at(90, 20));
        }
        ctx.send(self.id, TxCommitOk);
        Ok(())
    }

    pub(super) fn tx_rollback(&mut self, ctx: &mut Ctx) -> AmqpResult {
        let tx = self.take_tx()?;
        // Rolled-back acks never happened: those deliveries are unacked again.
        for (_, taken) in tx.settles {
            self.unacked.extend(taken);
        }
        ctx.send(self.id, TxRollbackOk);
        Ok(())
    }
}
