//! Publishing a routed message: handing it to every queue routing chose, and storing it once
//! when durable queues keep it. The one place that decides what is stored for a routed message;
//! `basic.publish` ([`VHost::publish`]) and dead-lettering both come through [`VHost::fan_out`].
//!
//! A persistent message bound for durable queues is stored once (`Put`) with an index entry per
//! durable queue (`Enqueue`), each written under that queue's lock so the store sees a queue's
//! changes in order. The queues take the message one after another, and a queue may remove its
//! entry as soon as it has it (a no-ack consumer takes it, `drop-head` or a TTL of 0 drops it,
//! `reject-publish` never enqueues it). So when two or more durable queues take the message, the
//! publish holds it in the store (`Hold`) until the last queue has its entry (`Release`): without
//! the hold, the first queue's removal would delete the message before the others enqueued it
//! (issue 11). A single durable queue needs no hold: its `Put` and `Enqueue` are one write.

use std::sync::Arc;

use bytes::Bytes;
use warren_store::MessageOp;

use super::VHost;
use crate::dead_letter::DeadLetter;
use crate::{Message, Queue};

/// What became of a routed message, for publisher confirms and transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// It was written to the store: it may be confirmed only after a sync.
    pub stored: bool,
    /// A durable queue could not store it: the publisher gets a nack.
    pub store_failed: bool,
    /// A queue's `x-overflow=reject-publish(-dlx)` refused it: the publisher gets a nack.
    pub rejected: bool,
}

impl VHost {
    /// Delivers a routed message to `queues` (routing's result, drained so the caller can reuse
    /// its capacity), storing it when it is persistent and a durable queue takes it, then
    /// dead-letters what the publish pushed out of its queues.
    pub fn publish(&self, message: Message, queues: &mut Vec<Arc<Queue>>) -> Published {
        let mut dead = Vec::new();
        let published = self.fan_out(message, queues, |q, letters| dead.push((q, letters)));
        for (q, letters) in dead {
            q.bury(letters);
        }
        published
    }

    /// [`VHost::publish`] without burying the dead letters: each queue's are handed to `dead`
    /// (dead-lettering follows chains with a work list, not recursion).
    pub(crate) fn fan_out(
        &self,
        message: Message,
        queues: &mut Vec<Arc<Queue>>,
        mut dead: impl FnMut(Arc<Queue>, Vec<DeadLetter>),
    ) -> Published {
        let mut published = Published::default();
        let durable = if message.persistent {
            queues.iter().filter(|q| q.stores_persistent()).count()
        } else {
            0
        };
        // A message a durable queue stores gets its store id before it is shared: queues name it
        // in their store ops (the store then never reads an entry to learn it).
        let message = if durable > 0 {
            message.with_store_id(self.next_message_id())
        } else {
            message
        };
        let id = message.store_id();
        let mut single_put: Option<Bytes> = None;
        let mut held = false;
        match (durable, id) {
            (1, _) => single_put = Some(message.encode()),
            (2.., Some(id)) => {
                let put = MessageOp::Put {
                    id,
                    message: message.encode(),
                };
                match self.store.write(&[put, MessageOp::Hold { id }]) {
                    Ok(()) => held = true,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot store a persistent message");
                        published.store_failed = true;
                        // Not stored: the durable queues cannot take it (their index entries
                        // would name a message the store does not have).
                        queues.retain(|q| !q.stores_persistent());
                    }
                }
            }
            _ => {}
        }
        // The last queue gets the `Arc` itself rather than a clone: a queue packs only a
        // message that it alone holds.
        let copies = std::iter::repeat_n(Arc::new(message), queues.len());
        for (q, message) in queues.drain(..).zip(copies) {
            let put = if q.stores_persistent() {
                single_put.take()
            } else {
                None
            };
            match q.publish_inner(message, put) {
                Ok((enqueued, letters)) => {
                    published.rejected |= enqueued.rejected;
                    published.stored |= enqueued.stored;
                    if !letters.is_empty() {
                        dead(q, letters);
                    }
                }
                Err(e) => {
                    tracing::error!(queue = %q.name, error = %e, "cannot store a persistent message");
                    published.store_failed = true;
                }
            }
        }
        if held && let Some(id) = id {
            // Every durable queue has its entry (or refused the message): the hold may go, and
            // with it the message if no queue kept it.
            if let Err(e) = self.store.write(&[MessageOp::Release { id }]) {
                tracing::error!(error = %e, "cannot release a stored message");
            }
        }
        published
    }
}
