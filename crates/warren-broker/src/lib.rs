//! Warren's domain: virtual hosts, queues, consumers, deliveries and acknowledgements.
//!
//! Everything here is synchronous and knows nothing of sockets: the server crate turns frames into
//! calls on [`VHost`] and [`Queue`], and receives deliveries through the [`DeliverySink`] each
//! consumer carries. Routing is delegated to `warren-router`; persistence to `warren-store`, which
//! durable queues write under their own lock so the store sees each queue's changes in order.
//!
//! Locking: a [`Queue`]'s state is behind its own mutex, a [`VHost`]'s topology behind a read-write
//! lock. Lock order is topology, then one queue; no code holds two queue locks at once or holds a
//! lock across an `.await` (there is no `async` here). Dead letters are routed only after the
//! queue they died in is unlocked.
//!
//! Time: TTLs and `x-expires` deadlines are wall-clock milliseconds since the epoch (so they
//! survive a restart); one timer thread per broker wakes queues at their next deadline.

mod accounts;
mod broker;
mod dead_letter;
mod error;
mod limits;
mod md5;
mod message;
mod names;
mod password;
mod permissions;
mod persist;
pub mod policy;
mod queue;
mod queue_totals;
mod snapshot;
pub mod spill;
mod timers;
mod topic_permissions;
mod tracking;
mod vhost;

pub use accounts::{Admin, AdminError, FirstBoot, PasswordHash, User, compile_permission};
pub use broker::{
    Broker, Loader, ParameterError, Recovered, password_hash_from_rabbitmq, policy_kind,
    rabbitmq_password_hash,
};
pub use dead_letter::{DeadLetter, DeadLetterTarget, DeathReason};
pub use error::BrokerError;
pub use limits::{LimitError, USER_LIMIT_NAMES, UserLimits, VHOST_LIMIT_NAMES, VhostLimits};
pub use message::{Message, StoredMessageError};
pub use names::{generate_consumer_tag, generate_queue_name, generate_reply_key};
pub use password::HashAlgorithm;
pub use permissions::{Access, InvalidRegex, Permission, VhostPermissions, checked_exchange_name};
pub use persist::{SharedStore, Store};
pub use queue::{
    ChannelLimit, ConsumeArgs, Consumer, ConsumerId, Delivery, DeliverySink, Effects, Enqueued,
    GetResult, Got, HeadPending, LoadRequests, LoadStep, Overflow, Pushed, Queue, QueueArgs,
    QueueOptions, QueueState, Settle, StoreWrite, Window as LoadWindow,
    type_name as field_type_name,
};
pub use queue_totals::{QueueTotals, QueueTotalsSnapshot};
pub use snapshot::{ConsumerSnapshot, QueueCounters, QueueSnapshot};
pub use timers::now_ms;
pub use topic_permissions::{
    TopicAccess, TopicAction, TopicPermission, refusal_text as topic_refusal_text,
};
pub use tracking::ConnectionTicket;
pub use vhost::{DeclaredQueue, Published, QueueDeclare, VHost};
