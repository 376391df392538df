//! What a connection's channels share: the context handlers write into ([`Ctx`]), the mailbox
//! queues and store syncs post to ([`ConnSink`], [`ConnEvent`]), and the server-wide signals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use warren_broker::{
    Broker, Delivery, DeliverySink, Message, Queue, TopicAccess, TopicAction, VHost,
};
use warren_codec::{Method, ReplyCode, ShortStr, encode_method};
use warren_router::ExchangeKind;

use crate::channel::ReplyRegistry;
use crate::config::Config;
use crate::connection::{AmqpError, AmqpResult};

/// What queues send a connection.
#[derive(Debug)]
pub enum ConnEvent {
    /// A message for one of its consumers.
    Deliver(Delivery),
    /// A reply for a direct reply-to consumer.
    Reply {
        /// The reply consumer's channel.
        channel: u16,
        /// The address key the reply was published to; a stale one is dropped.
        key: Bytes,
        /// The reply.
        message: Arc<Message>,
    },
    /// A consumer was cancelled by the broker (its queue was deleted).
    Cancelled {
        /// The consumer's channel.
        channel: u16,
        /// The consumer's tag.
        tag: ShortStr,
    },
    /// A spilled segment a parked `basic.get` waited for may be back: try it again.
    GetReady,
    /// A parked `queue.purge` finished.
    Purged {
        /// The channel it came on.
        channel: u16,
        /// Messages purged.
        message_count: u32,
        /// No `queue.purge-ok` wanted.
        no_wait: bool,
    },
    /// A queue that paused this connection's reading got its spilled segments written.
    SpillWritten,
    /// A store sync this connection asked for finished.
    Synced {
        /// The channel that asked.
        channel: u16,
        /// What it was for.
        purpose: SyncPurpose,
        /// False when the store failed to sync.
        ok: bool,
    },
}

/// Why a channel asked for a store sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPurpose {
    /// Publishes up to this confirm sequence number may be acked once durable.
    Confirms {
        /// The last publish the sync covers.
        upto: u64,
    },
    /// A `tx.commit` waits for it.
    Commit,
}

/// Delivery weight a connection may hold (in its mailbox or its unwritten output) before queues
/// stop handing it more: enough to keep a fast consumer's socket busy between two writes, small
/// enough that a slow consumer's backlog stays in its queue. See [`delivery_weight`].
pub const MAX_PENDING_DELIVERIES: u32 = 4096;

/// What one delivery counts against [`MAX_PENDING_DELIVERIES`]: one, plus one per KiB of body,
/// so the limit holds 4096 small messages but only a few MiB of large ones.
pub fn delivery_weight(body_len: usize) -> u32 {
    1 + (body_len >> 10).min(u32::MAX as usize >> 1) as u32
}

/// The connection's mailbox, as queues see it.
#[derive(Debug)]
pub struct ConnSink {
    pub(super) tx: mpsc::UnboundedSender<ConnEvent>,
    /// Weight of the deliveries sent and not yet written to the socket.
    pub(super) pending: AtomicU32,
}

impl ConnSink {
    /// Counts `n` deliveries as written; true when that took the connection out of saturation,
    /// so queues that stopped at the limit must be asked to dispatch again.
    pub(super) fn written(&self, n: u32) -> bool {
        let before = self.pending.fetch_sub(n, Ordering::AcqRel);
        before >= MAX_PENDING_DELIVERIES && before.saturating_sub(n) < MAX_PENDING_DELIVERIES
    }
}

impl ConnSink {
    /// Hands a direct reply-to reply to the connection (never blocks).
    pub fn reply(&self, channel: u16, key: Bytes, message: Arc<Message>) {
        // A finished connection has no reply consumer left: the reply is dropped, as in RabbitMQ.
        let _ = self.tx.send(ConnEvent::Reply {
            channel,
            key,
            message,
        });
    }
}

impl DeliverySink for ConnSink {
    fn saturated(&self) -> bool {
        self.pending.load(Ordering::Acquire) >= MAX_PENDING_DELIVERIES
    }

    fn deliver(&self, delivery: Delivery) {
        self.pending.fetch_add(
            delivery_weight(delivery.message.body.len()),
            Ordering::AcqRel,
        );
        // The receiver lives until the connection has detached all its consumers and drained the
        // mailbox, so a failed send cannot lose a message a queue still tracks.
        if self.tx.send(ConnEvent::Deliver(delivery)).is_err() {
            tracing::debug!("delivery to a finished connection dropped");
        }
    }

    fn cancelled(&self, channel: u16, tag: ShortStr) {
        let _ = self.tx.send(ConnEvent::Cancelled { channel, tag });
    }
}

/// Connection-wide state every channel handler may use.
pub struct Ctx {
    /// Connection id, unique in the process.
    pub id: u64,
    /// The broker (store, message ids).
    pub broker: Arc<Broker>,
    /// The vhost opened.
    pub vhost: Arc<VHost>,
    /// The authenticated user's name (a publish's `user_id` must match it).
    pub user: String,
    /// The user may publish with another `user_id` (the `impersonator` tag).
    pub impersonator: bool,
    /// Server configuration.
    pub config: Arc<Config>,
    /// Bytes waiting to be written.
    pub out: BytesMut,
    /// Negotiated frame size.
    pub frame_max: u32,
    /// Where this connection's consumers receive deliveries.
    pub sink: Arc<ConnSink>,
    /// Exclusive queues declared by this connection, deleted when it closes.
    pub exclusive_queues: Vec<Arc<Queue>>,
    /// The client handles `basic.cancel` from the server.
    pub consumer_cancel_notify: bool,
    /// Channels with publisher confirms to send at the end of this batch.
    pub confirms_due: Vec<u16>,
    /// Reused by every publish for the queues a message routes to.
    pub route_scratch: Vec<Arc<Queue>>,
    /// The connection has published since an alarm was set (or since the last check while
    /// none was): the alarm blocks it.
    pub published: bool,
    /// The wall clock (epoch ms) read once per batch of input: the publish time of the
    /// batch's messages, from which their TTLs count.
    pub batch_time_ms: u64,
    /// Live direct reply-to addresses of every connection.
    pub replies: Arc<ReplyRegistry>,
    /// When the connection task last woke; stamps deliveries for the acknowledgement timeout.
    pub now: Instant,
    /// The user's topic permissions in this vhost, compiled; refreshed once per batch of input
    /// when [`Broker::topic_generation`] moved.
    pub topic_access: Arc<TopicAccess>,
    /// The generation `topic_access` was compiled at.
    pub topic_generation: u64,
    /// The queues under spill back-pressure (`Queue::spill_pressure`) that messages of this
    /// batch went to: the connection pauses reading after the batch, until they are written.
    pub spill_pressing: Vec<Arc<warren_broker::Queue>>,
    /// A `basic.get` whose queue head is being read back from the spill area or the store: the
    /// connection handles no more input (later methods must follow its answer) until it is
    /// answered.
    pub get_parked: Option<ParkedGet>,
    /// A `queue.purge` running on a blocking thread (it reads the disk): held back as
    /// [`Ctx::get_parked`] is, until [`ConnEvent::Purged`] answers it.
    pub purge_parked: bool,
}

/// A `basic.get` waiting for its queue's spilled or stored head (see [`Ctx::get_parked`]).
#[derive(Debug)]
pub struct ParkedGet {
    /// The channel it came on.
    pub channel: u16,
    /// The queue it reads.
    pub queue: Arc<warren_broker::Queue>,
    /// Its `no-ack` flag.
    pub no_ack: bool,
    /// Set by the task that read the store for it when the read failed for good: the retry
    /// answers with what is loaded instead of reading again.
    pub load_failed: Arc<std::sync::atomic::AtomicBool>,
}

/// What the server tells every connection.
#[derive(Debug, Clone)]
pub struct Signals {
    /// Becomes true at shutdown.
    pub stop: watch::Receiver<bool>,
    /// The resource alarms in effect.
    pub alarms: watch::Receiver<crate::alarm::Alarms>,
    /// Where the connection is listed for the management API, which may ask it to close.
    pub registry: Arc<crate::registry::ConnectionRegistry>,
}

impl Ctx {
    /// Recompiles the topic permissions if they may have changed (one atomic load per batch).
    pub fn refresh_topic_access(&mut self) {
        let generation = self.broker.topic_generation();
        if generation != self.topic_generation {
            self.topic_generation = generation;
            self.topic_access = self.broker.topic_access(&self.user, &self.vhost.name);
        }
    }

    /// RabbitMQ's `check_topic_authorisation`: on a topic exchange, `routing_key` must match
    /// the user's `write` (publish) or `read` (bind, unbind) pattern for it; 403 otherwise.
    /// Free when the user has no topic permission in the vhost.
    pub fn check_topic(
        &self,
        kind: Option<&ExchangeKind>,
        exchange: &[u8],
        routing_key: &[u8],
        action: TopicAction,
    ) -> AmqpResult {
        if self.topic_access.is_unrestricted()
            || !matches!(kind, Some(ExchangeKind::Topic))
            || self.topic_access.allows(exchange, routing_key, action)
        {
            return Ok(());
        }
        Err(AmqpError::new(
            ReplyCode::AccessRefused,
            warren_broker::topic_refusal_text(exchange, &self.vhost.name, routing_key, &self.user),
        ))
    }

    /// Queues a method frame for writing.
    pub fn send(&mut self, channel: u16, method: impl Into<Method>) {
        encode_method(&mut self.out, channel, &method.into());
    }

    /// True while a `basic.get` or a `queue.purge` holds back the input that follows it.
    pub fn parked(&self) -> bool {
        self.get_parked.is_some() || self.purge_parked
    }

    /// Runs `purge` on tokio's blocking pool (it reads the disk) and holds input back until
    /// its answer arrives as [`ConnEvent::Purged`].
    pub fn purge_blocking(
        &mut self,
        channel: u16,
        no_wait: bool,
        purge: impl FnOnce() -> u32 + Send + 'static,
    ) {
        let tx = self.sink.tx.clone();
        self.purge_parked = true;
        tokio::task::spawn_blocking(move || {
            let message_count = purge();
            let _ = tx.send(ConnEvent::Purged {
                channel,
                message_count,
                no_wait,
            });
        });
    }

    /// A waker that tells this connection to try its parked `basic.get` again (runs on the
    /// spill area's I/O thread: a mailbox send, no lock held).
    pub fn get_waker(&self) -> warren_broker::spill::Waker {
        let tx = self.sink.tx.clone();
        Arc::new(move || {
            let _ = tx.send(ConnEvent::GetReady);
        })
    }

    /// A waker that tells this connection a queue that pressed it is written (runs on the
    /// spill area's I/O thread: a mailbox send).
    pub fn spill_waker(&self) -> warren_broker::spill::Waker {
        let tx = self.sink.tx.clone();
        Arc::new(move || {
            let _ = tx.send(ConnEvent::SpillWritten);
        })
    }

    /// Makes everything written to the store so far durable, off the connection task (fsync
    /// blocks), and reports back through the mailbox. Concurrent requests from every connection
    /// share flushes in the store (group commit).
    pub fn request_sync(&self, channel: u16, purpose: SyncPurpose) {
        let store = self.broker.store().clone();
        let tx = self.sink.tx.clone();
        tokio::task::spawn_blocking(move || {
            let ok = match store.sync() {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "store sync failed: publishes waiting on it are nacked");
                    false
                }
            };
            let _ = tx.send(ConnEvent::Synced {
                channel,
                purpose,
                ok,
            });
        });
    }
}
