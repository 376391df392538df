//! Node-wide queue lifecycle totals (RabbitMQ's `rabbitmq_queues_declared_total`,
//! `_created_total` and `_deleted_total`), shared by every vhost of a broker. Bumped once per
//! declaration or deletion, never on the message path.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many queues were declared, created and deleted since the broker started.
#[derive(Debug, Default)]
pub struct QueueTotals {
    declared: AtomicU64,
    created: AtomicU64,
    deleted: AtomicU64,
}

/// A reading of [`QueueTotals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueTotalsSnapshot {
    /// Non-passive `queue.declare`s that passed their permission check (new or existing, as
    /// RabbitMQ's `rabbit_core_metrics:queue_declared`).
    pub declared: u64,
    /// Declarations that created a queue.
    pub created: u64,
    /// Queues removed, however (delete, auto-delete, expiry, exclusive owner gone, vhost
    /// deleted).
    pub deleted: u64,
}

impl QueueTotals {
    pub(crate) fn declared(&self) {
        self.declared.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn deleted(&self) {
        self.deleted.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals now.
    pub fn get(&self) -> QueueTotalsSnapshot {
        QueueTotalsSnapshot {
            declared: self.declared.load(Ordering::Relaxed),
            created: self.created.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
        }
    }
}
