//! A virtual host: its exchanges, bindings and queues, and the rules for changing them.
//!
//! The topology lives in a `warren_router::Router` behind a read-write lock: publishes take the
//! read side (once per batch in the server), declarations the write side.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use warren_codec::{FieldTable, FieldValue, ReplyCode, ShortStr};
use warren_router::{Router, RouterError};

use crate::limits::{VhostLimits, over};
use crate::persist::{self, SharedStore, store_failed};
use crate::queue::{Queue, QueueArgs, QueueOptions};
use crate::timers::Timers;
use crate::{BrokerError, generate_queue_name};

mod dead_letter;
mod exchange;
mod policies;
mod publish;

pub use publish::Published;

impl From<RouterError> for BrokerError {
    fn from(e: RouterError) -> Self {
        let code = ReplyCode::from_code(e.reply_code()).unwrap_or(ReplyCode::InternalError);
        BrokerError::new(code, e.reply_text())
    }
}

/// Arguments of `queue.declare`, after the channel resolved names.
#[derive(Debug, Clone, Default)]
pub struct QueueDeclare {
    /// The name; empty asks the server to generate one.
    pub name: ShortStr,
    /// Only check that the queue exists.
    pub passive: bool,
    /// Survive restarts.
    pub durable: bool,
    /// Owned by the declaring connection.
    pub exclusive: bool,
    /// Deleted when the last consumer goes.
    pub auto_delete: bool,
    /// `x-` arguments.
    pub arguments: FieldTable,
    /// The declaring connection.
    pub connection: u64,
}

/// What `queue.declare-ok` reports.
#[derive(Debug, Clone)]
pub struct DeclaredQueue {
    /// The queue.
    pub queue: Arc<Queue>,
    /// Ready messages.
    pub message_count: u32,
    /// Attached consumers.
    pub consumer_count: u32,
    /// True when this call created it.
    pub created: bool,
}

/// Queue arguments whose values must match on redeclaration, as RabbitMQ checks them.
const EQUIVALENT_ARGS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
];

/// A virtual host.
pub struct VHost {
    /// The vhost's name, e.g. `/`.
    pub name: String,
    topology: RwLock<Router<Arc<Queue>>>,
    /// Durable definitions and persistent messages go here.
    store: SharedStore,
    /// The broker's message id counter (dead letters are new messages).
    ids: Arc<AtomicU64>,
    /// The broker's timer thread, for queue deadlines.
    timers: Arc<Timers>,
    /// Where this vhost's queues spill (set once, before any queue exists).
    spill: std::sync::OnceLock<Arc<crate::spill::SpillArea>>,
    /// Where a deep durable queue asks for its stored backlog back, and the window it keeps
    /// in memory (set once, before any queue exists; see `queue::loading`).
    store_backlog: std::sync::OnceLock<(Arc<crate::queue::LoadRequests>, crate::queue::Window)>,
    /// This vhost, for the queues it creates.
    me: Weak<VHost>,
    /// The broker's "queues may deliver" flag, handed to every queue.
    pub(crate) delivering: Arc<AtomicBool>,
    /// The broker's queue lifecycle totals.
    queue_totals: Arc<crate::QueueTotals>,
    /// The `vhost-limits` parameter: `None` when never set (RabbitMQ lists a vhost whose limits
    /// were all cleared with an empty value, and one never limited not at all).
    limits: RwLock<Option<VhostLimits>>,
    /// Policies and operator policies (see `policies.rs` for the lock order).
    policies: RwLock<crate::policy::PolicySet>,
    /// Held while a policy change is applied, so changes apply in the order they were made.
    policy_change: Mutex<()>,
}

impl std::fmt::Debug for VHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VHost").field("name", &self.name).finish()
    }
}

fn default_exchange_refused() -> BrokerError {
    BrokerError::access_refused("operation not permitted on the default exchange")
}

impl VHost {
    /// A vhost with the predeclared exchanges, keeping durable state in `store`, taking message
    /// ids from `ids` and queue deadlines to `timers`; its queues deliver while `delivering`.
    pub fn new(
        name: &str,
        store: SharedStore,
        ids: Arc<AtomicU64>,
        timers: Arc<Timers>,
        delivering: Arc<AtomicBool>,
        queue_totals: Arc<crate::QueueTotals>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| VHost {
            name: name.to_string(),
            topology: RwLock::new(Router::with_vhost(name)),
            store,
            ids,
            timers,
            spill: std::sync::OnceLock::new(),
            store_backlog: std::sync::OnceLock::new(),
            me: me.clone(),
            delivering,
            queue_totals,
            limits: RwLock::new(None),
            policies: RwLock::default(),
            policy_change: Mutex::new(()),
        })
    }

    /// A fresh id for a message about to be stored.
    pub fn next_message_id(&self) -> warren_store::MessageId {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The vhost, letting its queues spill to `area`.
    pub fn with_spill(self: Arc<Self>, area: Option<Arc<crate::spill::SpillArea>>) -> Arc<Self> {
        if let Some(area) = area {
            let _ = self.spill.set(area);
        }
        self
    }

    pub(crate) fn spill(&self) -> Option<&Arc<crate::spill::SpillArea>> {
        self.spill.get()
    }

    /// The vhost, letting its deep durable queues leave their stored backlog in the store past
    /// `window`, to be loaded back through `requests`.
    pub fn with_store_backlog(
        self: Arc<Self>,
        requests: Arc<crate::queue::LoadRequests>,
        window: crate::queue::Window,
    ) -> Arc<Self> {
        let _ = self.store_backlog.set((requests, window));
        self
    }

    pub(crate) fn store_backlog(
        &self,
    ) -> Option<&(Arc<crate::queue::LoadRequests>, crate::queue::Window)> {
        self.store_backlog.get()
    }

    pub(crate) fn timers(&self) -> &Timers {
        &self.timers
    }

    pub(super) fn key(&self) -> &[u8] {
        self.name.as_bytes()
    }

    /// Rebuilds a durable queue at startup (empty; its messages are added by the caller).
    pub fn recover_queue(
        &self,
        name: ShortStr,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Result<Arc<Queue>, BrokerError> {
        let args = QueueArgs::parse(&arguments, &name.to_string(), &self.name)?;
        let options = QueueOptions {
            durable: true,
            exclusive_owner: None,
            auto_delete,
            arguments,
        };
        let limits = self.queue_limits(&name.to_string(), &args, &options.arguments);
        let queue = Queue::with_store(
            name.clone(),
            &self.name,
            options,
            args,
            Some(self.store.clone()),
            self.me.clone(),
        );
        queue.set_limits(&limits);
        self.topology.write().add_queue(name, queue.clone());
        Ok(queue)
    }

    /// The vhost's limits parameter, if it was ever set.
    pub fn limits(&self) -> Option<VhostLimits> {
        self.limits.read().clone()
    }

    /// Replaces the limits (the broker writes the store first).
    pub(crate) fn set_limits(&self, limits: Option<VhostLimits>) {
        *self.limits.write() = limits;
    }

    /// Read access to the topology, for routing a batch of publishes under one lock.
    pub fn topology(&self) -> RwLockReadGuard<'_, Router<Arc<Queue>>> {
        self.topology.read()
    }

    /// Looks up a queue `connection` may use: 404 when missing, 405 when another connection's
    /// exclusive queue.
    pub fn queue(&self, name: &ShortStr, connection: u64) -> Result<Arc<Queue>, BrokerError> {
        let topology = self.topology.read();
        let queue = topology.queue(name.as_bytes()).cloned();
        drop(topology);
        self.check_access(queue, name, connection)
    }

    fn check_access(
        &self,
        queue: Option<Arc<Queue>>,
        name: &ShortStr,
        connection: u64,
    ) -> Result<Arc<Queue>, BrokerError> {
        match queue {
            None => Err(BrokerError::not_found(format!(
                "no queue '{name}' in vhost '{}'",
                self.name
            ))),
            Some(q) if !q.accessible_by(connection) => Err(locked(&q)),
            Some(q) => Ok(q),
        }
    }

    /// `queue.declare`.
    pub fn declare_queue(&self, d: QueueDeclare) -> Result<DeclaredQueue, BrokerError> {
        if d.passive {
            let q = self.queue(&d.name, d.connection)?;
            q.touch();
            let (message_count, consumer_count) = q.counts();
            return Ok(DeclaredQueue {
                queue: q,
                message_count,
                consumer_count,
                created: false,
            });
        }
        let name = if d.name.is_empty() {
            ShortStr::from(generate_queue_name())
        } else {
            if d.name.as_bytes().starts_with(b"amq.") {
                return Err(BrokerError::access_refused(format!(
                    "queue name '{}' contains reserved prefix 'amq.*'",
                    d.name
                )));
            }
            d.name.clone()
        };
        self.declare_named_queue(d, name)
    }

    /// `queue.declare` of a server-named queue (not passive, `d.name` empty) under `name`,
    /// which the caller generated with [`crate::generate_queue_name`] (the channel names it
    /// first so that its permission check sees the name the queue gets).
    pub fn declare_server_named_queue(
        &self,
        d: QueueDeclare,
        name: ShortStr,
    ) -> Result<DeclaredQueue, BrokerError> {
        self.declare_named_queue(d, name)
    }

    fn declare_named_queue(
        &self,
        d: QueueDeclare,
        name: ShortStr,
    ) -> Result<DeclaredQueue, BrokerError> {
        // Counted before the equivalence check, as RabbitMQ's channel does.
        self.queue_totals.declared();
        let mut topology = self.topology.write();
        // An existing queue is checked for equivalence only (exclusive access, flags, then
        // arguments), as RabbitMQ's `assert_equivalence` does; arguments are validated when a
        // queue is created.
        if let Some(existing) = topology.queue(name.as_bytes()).cloned() {
            drop(topology);
            self.check_equivalent(&existing, &d)?;
            existing.touch();
            let (message_count, consumer_count) = existing.counts();
            return Ok(DeclaredQueue {
                queue: existing,
                message_count,
                consumer_count,
                created: false,
            });
        }
        // RabbitMQ enforces `max-queues` on queues about to be created only, before it looks at
        // their arguments (`rabbit_channel:check_vhost_queue_limit`).
        let max_queues = self
            .limits
            .read()
            .as_ref()
            .and_then(VhostLimits::max_queues);
        if over(max_queues, topology.queue_count() as u64) {
            return Err(BrokerError::precondition(format!(
                "cannot declare queue '{name}': queue limit in vhost '{}' ({}) is reached",
                self.name,
                max_queues.unwrap_or(0)
            )));
        }
        let args = QueueArgs::parse(&d.arguments, &name.to_string(), &self.name)?;
        let options = QueueOptions {
            durable: d.durable,
            exclusive_owner: d.exclusive.then_some(d.connection),
            auto_delete: d.auto_delete,
            arguments: d.arguments.clone(),
        };
        if options.durable {
            let record = persist::queue_record(&name, options.auto_delete, &options.arguments);
            self.store
                .put_queue(self.key(), &record)
                .map_err(|e| store_failed(&e))?;
        }
        // Policies apply from the start (topology, then policies: see `policies.rs`).
        let limits = self.queue_limits(&name.to_string(), &args, &options.arguments);
        let queue = Queue::with_store(
            name.clone(),
            &self.name,
            options,
            args,
            Some(self.store.clone()),
            self.me.clone(),
        );
        queue.set_limits(&limits);
        topology.add_queue(name, queue.clone());
        self.queue_totals.created();
        Ok(DeclaredQueue {
            queue,
            message_count: 0,
            consumer_count: 0,
            created: true,
        })
    }

    fn check_equivalent(&self, q: &Queue, d: &QueueDeclare) -> Result<(), BrokerError> {
        let exclusive_matches = match q.options.exclusive_owner {
            Some(owner) => d.exclusive && owner == d.connection,
            None => !d.exclusive,
        };
        if !q.accessible_by(d.connection) || !exclusive_matches {
            return Err(locked(q));
        }
        let inequivalent = |arg: &str, received: String, current: String| {
            BrokerError::precondition(format!(
                "inequivalent arg '{arg}' for {}: received {received} but current is {current}",
                q.describe()
            ))
        };
        if q.options.durable != d.durable {
            return Err(inequivalent(
                "durable",
                format!("'{}'", d.durable),
                format!("'{}'", q.options.durable),
            ));
        }
        if q.options.auto_delete != d.auto_delete {
            return Err(inequivalent(
                "auto_delete",
                format!("'{}'", d.auto_delete),
                format!("'{}'", q.options.auto_delete),
            ));
        }
        for key in EQUIVALENT_ARGS {
            let received = d.arguments.get(key);
            let current = q.options.arguments.get(key);
            if !same_arg(received, current) {
                // Two values are shown bare; a missing side makes RabbitMQ name the other's type.
                let (r, c) = match (received, current) {
                    (Some(r), Some(c)) => (format!("'{}'", bare(r)), format!("'{}'", bare(c))),
                    (r, c) => (describe_arg(r), describe_arg(c)),
                };
                return Err(inequivalent(key, r, c));
            }
        }
        Ok(())
    }

    /// `queue.bind`.
    pub fn bind_queue(
        &self,
        queue: &ShortStr,
        exchange: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
        connection: u64,
    ) -> Result<(), BrokerError> {
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let mut topology = self.topology.write();
        // RabbitMQ looks the exchange up before the queue and its exclusive owner.
        if topology.exchange(exchange.as_bytes()).is_none() {
            return Err(RouterError::ExchangeNotFound {
                name: exchange.clone(),
                vhost: topology.vhost().clone(),
            }
            .into());
        }
        let q = topology.queue(queue.as_bytes()).cloned();
        self.check_access(q, queue, connection)?;
        topology.bind_queue(
            exchange.as_bytes(),
            queue.as_bytes(),
            routing_key.clone(),
            arguments.clone(),
        )?;
        let record = Self::durable_binding(
            &topology,
            exchange.as_bytes(),
            queue.as_bytes(),
            false,
            routing_key.as_bytes(),
            arguments,
        );
        self.save_binding(record)?;
        Ok(())
    }

    /// `queue.unbind`. Idempotent as in RabbitMQ 3.10: a missing queue, a missing exchange or a
    /// binding that does not exist is answered with `unbind-ok` (even on another connection's
    /// exclusive queue); removing an existing binding of another connection's exclusive queue
    /// is refused (405).
    pub fn unbind_queue(
        &self,
        queue: &ShortStr,
        exchange: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
        connection: u64,
    ) -> Result<(), BrokerError> {
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let mut topology = self.topology.write();
        match topology.queue(queue.as_bytes()).cloned() {
            None => return Ok(()),
            Some(q) if !q.accessible_by(connection) => {
                if topology.has_queue_binding(
                    exchange.as_bytes(),
                    queue.as_bytes(),
                    routing_key.as_bytes(),
                    arguments,
                ) {
                    return Err(locked(&q));
                }
                return Ok(());
            }
            Some(_) => {}
        }
        let record = Self::durable_binding(
            &topology,
            exchange.as_bytes(),
            queue.as_bytes(),
            false,
            routing_key.as_bytes(),
            arguments,
        );
        let gone = topology.unbind_queue(
            exchange.as_bytes(),
            queue.as_bytes(),
            routing_key.as_bytes(),
            arguments,
        )?;
        self.drop_binding(record)?;
        self.forget_exchanges(&gone)
    }

    /// `queue.delete`. Deleting a missing queue succeeds with a count of 0, as in RabbitMQ 3.10.
    pub fn delete_queue(
        &self,
        name: &ShortStr,
        if_unused: bool,
        if_empty: bool,
        connection: u64,
    ) -> Result<u32, BrokerError> {
        let queue = match self.queue(name, connection) {
            Ok(q) => q,
            Err(e) if e.code == warren_codec::ReplyCode::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let (messages, consumers) = queue.counts();
        if if_unused && consumers > 0 {
            return Err(BrokerError::precondition(format!(
                "{} in use",
                queue.describe()
            )));
        }
        if if_empty && messages > 0 {
            return Err(BrokerError::precondition(format!(
                "{} not empty",
                queue.describe()
            )));
        }
        Ok(self.remove_queue(&queue))
    }

    /// Removes a queue unconditionally (auto-delete, exclusive owner gone): unbinds it, cancels its
    /// consumers, drops its messages. Returns the ready message count it had.
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        let gone = {
            let mut topology = self.topology.write();
            // Only remove the entry if it is this very queue (a namesake may have replaced it,
            // and its store records are the namesake's: whoever removed this queue from the
            // topology deleted its records).
            if topology
                .queue(queue.name.as_bytes())
                .is_some_and(|q| Arc::ptr_eq(q, queue))
            {
                // No store op of the queue may follow the deletion of its records (see
                // `Queue::record`); holding the topology lock, as `declare_queue` does while it
                // writes the record, keeps a namesake's declaration out until the records are gone.
                queue.mark_deleted();
                if queue.options.durable
                    && let Err(e) = self.store.delete_queue(self.key(), queue.name.as_bytes())
                {
                    tracing::error!(queue = %queue.name, error = %e, "cannot delete the queue from the store");
                }
                self.queue_totals.deleted();
                topology.remove_queue(queue.name.as_bytes())
            } else {
                Vec::new()
            }
        };
        if let Err(e) = self.forget_exchanges(&gone) {
            tracing::error!(error = %e, "cannot delete auto-deleted exchanges from the store");
        }
        queue.delete()
    }
}

fn locked(q: &Queue) -> BrokerError {
    BrokerError::locked(format!(
        "cannot obtain exclusive access to locked {}. It could be originally declared on another \
         connection or the exclusive property value does not match that of the original declaration.",
        q.describe()
    ))
}

fn same_arg(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x == y,
        },
        (None, None) => true,
        _ => false,
    }
}

fn bare(v: &FieldValue) -> String {
    match (v.as_i64(), v.as_str()) {
        (Some(i), _) => i.to_string(),
        (_, Some(s)) => s.to_string(),
        _ => match v {
            FieldValue::Bool(b) => b.to_string(),
            other => format!("{other:?}"),
        },
    }
}

fn describe_arg(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".to_string(),
        Some(v) => format!(
            "the value '{}' of type '{}'",
            bare(v),
            crate::queue::type_name(v)
        ),
    }
}

#[cfg(test)]
mod publish_tests;
