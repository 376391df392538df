//! [`MessageStore`] on the engine.

use std::sync::atomic::Ordering;

use crate::backend::{Atomicity, Backend};
use crate::engine::Engine;
use crate::keys::{self, IndexValue};
use crate::{MessageId, MessageOp, MessageStore, QueueExtent, StoreError, StoreStats, StoredEntry};

impl<B: Backend> MessageStore for Engine<B> {
    fn write(&self, ops: &[MessageOp]) -> Result<(), StoreError> {
        self.mutate(Atomicity::InOrder, |plan| {
            plan.expect_ops(ops.len());
            ops.iter().try_for_each(|op| plan.op(op))
        })
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.sync_backend()
    }

    fn load_queue(&self, vhost: &[u8], queue: &[u8]) -> Result<Vec<StoredEntry>, StoreError> {
        let mut entries = Vec::new();
        self.visit_queue(vhost, queue, &mut |e| {
            entries.push(e);
            Ok(())
        })?;
        Ok(entries)
    }

    fn visit_queue(
        &self,
        vhost: &[u8],
        queue: &[u8],
        visit: &mut dyn FnMut(StoredEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = keys::queue_index_prefix(vhost, queue)?;
        // The scan reads the backend: pending writes go there first.
        self.drain()?;
        self.backend.scan_prefix(&prefix, &mut |k, v| {
            let seq = keys::index_seq(k)?;
            let entry = IndexValue::decode(v)?;
            match self.backend.get(&keys::message(entry.id))? {
                Some(message) => visit(StoredEntry {
                    seq,
                    id: entry.id,
                    redelivered: entry.redelivered,
                    message,
                }),
                // Without the mutation lock a concurrent Remove may delete the entry and its
                // message between the scan and this read: gone is fine, dangling is not.
                None if self
                    .backend
                    .get(&keys::index(vhost, queue, seq)?)?
                    .is_none() =>
                {
                    Ok(())
                }
                None => Err(StoreError::corrupt(format!(
                    "entry {seq} of queue {} references message {}, which is not stored",
                    String::from_utf8_lossy(queue),
                    entry.id
                ))),
            }
        })
    }

    fn read_queue(
        &self,
        vhost: &[u8],
        queue: &[u8],
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let prefix = keys::queue_index_prefix(vhost, queue)?;
        let start = keys::index(vhost, queue, from)?;
        self.drain()?;
        let mut entries = Vec::with_capacity(max.min(4096));
        if max == 0 {
            return Ok(entries);
        }
        self.backend.scan_from(&prefix, &start, &mut |k, v| {
            let seq = keys::index_seq(k)?;
            let entry = IndexValue::decode(v)?;
            // As in `visit_queue`: an entry removed since the scan saw it is skipped.
            match self.backend.get(&keys::message(entry.id))? {
                Some(message) => entries.push(StoredEntry {
                    seq,
                    id: entry.id,
                    redelivered: entry.redelivered,
                    message,
                }),
                None if self.backend.get(k)?.is_none() => {}
                None => {
                    return Err(StoreError::corrupt(format!(
                        "entry {seq} of queue {} references message {}, which is not stored",
                        String::from_utf8_lossy(queue),
                        entry.id
                    )));
                }
            }
            Ok(entries.len() < max)
        })?;
        Ok(entries)
    }

    fn queue_extent(&self, vhost: &[u8], queue: &[u8]) -> Result<QueueExtent, StoreError> {
        Ok(self.extent(&keys::queue_index_prefix(vhost, queue)?))
    }

    fn next_message_id(&self) -> Result<MessageId, StoreError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id == u64::MAX {
            return Err(StoreError::corrupt("message ids exhausted"));
        }
        Ok(id)
    }

    fn stats(&self) -> StoreStats {
        let shared = self.shared.lock();
        StoreStats {
            messages: shared.refs.messages(),
            queue_entries: shared.refs.entries(),
            held: shared.refs.held(),
            flushes: self.commit.flushes(),
            cancelled_changes: shared.pending.cancelled(),
        }
    }
}
