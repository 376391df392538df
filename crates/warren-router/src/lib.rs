//! Exchanges and bindings of one virtual host, and routing a message over them, with RabbitMQ
//! 3.10's semantics: direct, fanout, topic and headers exchanges, exchange-to-exchange bindings,
//! alternate exchanges, auto-delete cascades and the implicit default exchange.
//!
//! The crate owns the topology (which exchanges and queues exist, how they are bound) and the
//! routing decision. It does not own queues: a queue is an opaque, cheap-to-clone handle `Q`
//! supplied by the broker. It is pure and synchronous: no tokio, no I/O, no frame bytes, no
//! permissions, no policies, no persistence; the broker decides what to store and which reply to
//! send, using [`RouterError::reply_code`] and [`RouterError::reply_text`].
//!
//! ```
//! use warren_codec::FieldTable;
//! use warren_router::{ExchangeDef, ExchangeKind, Router};
//!
//! let mut router: Router<u32> = Router::new();
//! router.declare_exchange(ExchangeDef::new("logs", ExchangeKind::Topic))?;
//! router.add_queue("errors".into(), 7);
//! router.bind_queue(b"logs", b"errors", "*.error".into(), FieldTable::new())?;
//! let mut out = Vec::new();
//! router.route(b"logs", &[b"disk.error"], None, &mut out)?;
//! assert_eq!(out, [7]);
//! # Ok::<(), warren_router::RouterError>(())
//! ```

mod binding;
mod erlang;
mod error;
mod exchange;
mod headers;
mod index;
mod route;
mod router;
mod slab;
mod topic;

#[cfg(test)]
mod route_tests;
#[cfg(test)]
mod router_tests;

pub use binding::{BindingRef, Destination};
pub use error::{ACCESS_REFUSED, COMMAND_INVALID, NOT_FOUND, PRECONDITION_FAILED, RouterError};
pub use exchange::{ALTERNATE_EXCHANGE, Declared, ExchangeDef, ExchangeKind};
pub use headers::{HeadersMatcher, XMatch};
pub use router::Router;
pub use topic::TopicTrie;
