//! Warren's domain: virtual hosts, queues, consumers, deliveries and acknowledgements.
//!
//! Everything here is synchronous and knows nothing of sockets: the server crate turns frames into
//! calls on [`VHost`] and [`Queue`], and receives deliveries through the [`DeliverySink`] each
//! consumer carries. Routing is delegated to `warren-router`; persistence to `warren-store`, which
//! durable queues write under their own lock so the store sees each queue's changes in order.
//!
//! Locking: a [`Queue`]'s state is behind its own mutex, a [`VHost`]'s topology behind a read-write
//! lock. Lock order is topology, then one queue; no code holds two queue locks at once or holds a
//! lock across an `.await` (there is no `async` here).

mod broker;
mod error;
mod message;
mod names;
mod persist;
mod queue;
mod vhost;

pub use broker::{Broker, Recovered, User};
pub use error::BrokerError;
pub use message::{Message, StoredMessageError};
pub use names::{generate_consumer_tag, generate_queue_name, generate_reply_key};
pub use persist::{SharedStore, Store};
pub use queue::{
    ChannelLimit, Consumer, ConsumerId, Delivery, DeliverySink, Got, Overflow, Queue, QueueArgs,
    QueueOptions, QueueState, Settle,
};
pub use vhost::{DeclaredQueue, QueueDeclare, VHost};
