//! The per-channel state machine. Each AMQP method is handled by a function named after it
//! (`queue_declare`, `basic_publish`, ...) in the module of its class.

mod access;
mod ack;
mod confirm;
mod consume;
mod exchange;
mod publish;
mod queue;
mod reply_to;
mod tx;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use warren_broker::{ChannelLimit, ConsumerId, Queue, Settle};
use warren_codec::{ChannelClose, ChannelFlowOk, Method, ReplyCode, ShortStr};

use crate::connection::{AmqpError, AmqpResult, Ctx};

pub use publish::ContentState;
pub use reply_to::ReplyRegistry;

/// A delivered, unsettled message, by delivery tag.
#[derive(Debug, Clone)]
struct Unacked {
    queue: Arc<Queue>,
    seq: u64,
    /// Counted against the channel's prefetch (consumer deliveries, not `basic.get`).
    counted: bool,
    /// When it was delivered, for the acknowledgement timeout (`consumer_timeout`).
    delivered_at: Instant,
}

/// A consumer registered on this channel.
#[derive(Debug, Clone)]
struct ConsumerEntry {
    queue: Arc<Queue>,
    id: ConsumerId,
}

/// Publisher confirms or transactions, which exclude each other.
#[derive(Debug, Default)]
enum Mode {
    #[default]
    Plain,
    Confirm(confirm::Confirms),
    Tx(tx::TxBuffer),
}

/// One open channel.
#[derive(Debug)]
pub struct Channel {
    id: u16,
    closing: bool,
    content: ContentState,
    next_tag: u64,
    unacked: BTreeMap<u64, Unacked>,
    // ahash, not SipHash: looked up by consumer tag for every delivery.
    consumers: HashMap<ShortStr, ConsumerEntry, ahash::RandomState>,
    /// The direct reply-to consumer, if any.
    reply: Option<reply_to::ReplyConsumer>,
    limit: Arc<ChannelLimit>,
    /// `basic.qos` with `global=false`: the prefetch given to consumers created afterwards.
    consumer_prefetch: u32,
    mode: Mode,
    /// The queue most recently declared on this channel, for empty queue names.
    last_queue: ShortStr,
    /// Where the next offer of freed channel-wide credit starts (see `redispatch_fair`).
    fair_next: usize,
    /// The user's configure/write/read permissions as this channel checks them.
    access: access::ChannelAccess,
    /// Counters and gauges for the statistics (written only by this connection's task).
    stats: Arc<warren_mgmt::ChannelStats>,
    /// This channel's index of its per-exchange counters (in `stats`), for the publish path.
    exchange_stats: warren_mgmt::ExchangeTable,
}

impl Channel {
    /// A freshly opened channel.
    pub fn new(id: u16) -> Self {
        Channel {
            id,
            closing: false,
            content: ContentState::Idle,
            next_tag: 0,
            unacked: BTreeMap::new(),
            consumers: HashMap::default(),
            reply: None,
            limit: Arc::new(ChannelLimit::default()),
            consumer_prefetch: 0,
            fair_next: 0,
            mode: Mode::Plain,
            last_queue: ShortStr::default(),
            access: access::ChannelAccess::default(),
            stats: Arc::default(),
            exchange_stats: warren_mgmt::ExchangeTable::default(),
        }
    }

    /// Copies the channel's gauges (prefetch, unacked, unconfirmed, consumers) into its
    /// statistics: once per connection-loop turn, not per message. Returns the publishes not
    /// yet confirmed (0 outside confirm mode), which the connection caps.
    pub fn refresh_gauges(&self) -> u64 {
        let s = &self.stats;
        s.prefetch_count.set(u64::from(self.consumer_prefetch));
        s.global_prefetch_count.set(u64::from(
            self.limit.global_prefetch.load(Ordering::Relaxed),
        ));
        s.messages_unacknowledged.set(self.unacked.len() as u64);
        s.consumer_count.set(self.consumers.len() as u64);
        let unconfirmed = match &self.mode {
            Mode::Confirm(c) => c.unconfirmed(),
            _ => 0,
        };
        s.messages_unconfirmed.set(unconfirmed);
        unconfirmed
    }

    /// The channel's counters, shared with the statistics readers.
    pub fn stats(&self) -> &Arc<warren_mgmt::ChannelStats> {
        &self.stats
    }

    /// True after the server sent `channel.close`.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The 505 error for a method arriving while this channel's content is due, if it is.
    pub fn content_expected(&self) -> Option<AmqpError> {
        (!matches!(self.content, ContentState::Idle)).then(|| self.content.unexpected_frame())
    }

    /// Handles one method (never `channel.open` or `channel.close`: the connection does those).
    pub fn handle(&mut self, ctx: &mut Ctx, method: Method) -> AmqpResult {
        if !matches!(self.content, ContentState::Idle) {
            return Err(self.content.unexpected_frame());
        }
        match method {
            // RabbitMQ 3.10 does not let a client stop its own deliveries: `active=false` closes
            // the connection with 540 (a client library checks for exactly that code).
            Method::ChannelFlow(m) if !m.active => {
                Err(AmqpError::new(ReplyCode::NotImplemented, "active=false").at(20, 20))
            }
            Method::ChannelFlow(m) => {
                self.limit
                    .active
                    .store(m.active, std::sync::atomic::Ordering::Release);
                if m.active {
                    self.redispatch_all();
                }
                ctx.send(self.id, ChannelFlowOk { active: m.active });
                Ok(())
            }
            Method::ChannelFlowOk(_) => Ok(()),
            Method::ExchangeDeclare(m) => self.exchange_declare(ctx, m),
            Method::ExchangeDelete(m) => self.exchange_delete(ctx, m),
            Method::ExchangeBind(m) => self.exchange_bind(ctx, m),
            Method::ExchangeUnbind(m) => self.exchange_unbind(ctx, m),
            Method::QueueDeclare(m) => self.queue_declare(ctx, m),
            Method::QueueBind(m) => self.queue_bind(ctx, m),
            Method::QueueUnbind(m) => self.queue_unbind(ctx, m),
            Method::QueuePurge(m) => self.queue_purge(ctx, m),
            Method::QueueDelete(m) => self.queue_delete(ctx, m),
            Method::BasicQos(m) => self.basic_qos(ctx, m),
            Method::BasicConsume(m) => self.basic_consume(ctx, m),
            Method::BasicCancel(m) => self.basic_cancel(ctx, m),
            Method::BasicPublish(m) => self.basic_publish(ctx, m),
            Method::BasicGet(m) => self.basic_get(ctx, m),
            Method::BasicAck(m) => self.basic_ack(ctx, m),
            Method::BasicReject(m) => self.basic_reject(ctx, m),
            Method::BasicNack(m) => self.basic_nack(ctx, m),
            Method::BasicRecover(m) => self.basic_recover(ctx, m.requeue, true),
            Method::BasicRecoverAsync(m) => self.basic_recover(ctx, m.requeue, false),
            Method::ConfirmSelect(m) => self.confirm_select(ctx, m),
            Method::TxSelect(_) => self.tx_select(ctx),
            Method::TxCommit(_) => self.tx_commit(ctx),
            Method::TxRollback(_) => self.tx_rollback(ctx),
            other => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!("method {} is not sent by clients", other.name()),
            )),
        }
    }

    /// Closes the channel from our side with a soft error: replies `channel.close`, releases
    /// everything, and drops further frames until the client's close-ok.
    pub fn close_with(&mut self, ctx: &mut Ctx, e: AmqpError) {
        tracing::info!(channel = self.id, code = e.code.code(), text = %e.text, "closing channel");
        self.release(ctx);
        self.closing = true;
        ctx.send(
            self.id,
            ChannelClose {
                reply_code: e.code.code(),
                reply_text: ShortStr::from(e.text.as_str()),
                class_id: e.class_id,
                method_id: e.method_id,
            },
        );
    }

    /// Cancels this channel's consumers (and its direct reply-to consumer), deleting the
    /// auto-delete queues they leave empty of consumers. A closing connection does this for all
    /// its channels before any of them requeues what it holds, so that a requeued message cannot
    /// go to a no-ack consumer of the same closing connection and be lost (found by the
    /// client-level model test, issue 11).
    pub fn detach_consumers(&mut self, ctx: &mut Ctx) {
        self.release_reply(ctx);
        for (_, c) in std::mem::take(&mut self.consumers) {
            if c.queue.cancel(c.id) {
                ctx.vhost.remove_queue(&c.queue);
            }
        }
    }

    /// Detaches this channel's consumers and requeues its unacked messages.
    pub fn release(&mut self, ctx: &mut Ctx) {
        self.detach_consumers(ctx);
        // Acks held by an uncommitted transaction never happened: those go back too.
        if let Mode::Tx(tx) = &mut self.mode {
            let held = std::mem::take(tx);
            self.unacked
                .extend(held.settles.into_iter().flat_map(|(_, taken)| taken));
        }
        let unacked = std::mem::take(&mut self.unacked);
        settle_grouped(unacked.into_values(), Settle::Requeue);
        self.limit
            .unacked
            .store(0, std::sync::atomic::Ordering::Release);
        self.content = ContentState::Idle;
    }

    /// Re-runs delivery on every queue this channel consumes from (credit grew channel-wide).
    /// Asks every queue this channel consumes from to dispatch again.
    pub fn redispatch_all(&self) {
        let mut seen: Vec<&Arc<Queue>> = Vec::new();
        for c in self.consumers.values() {
            if !seen.iter().any(|q| Arc::ptr_eq(q, &c.queue)) {
                seen.push(&c.queue);
                c.queue.redispatch();
            }
        }
    }

    /// Offers channel-wide credit (`basic.qos` global) that settlements freed to the channel's
    /// queues in turn, starting after the queue that took the last offer, so that one queue
    /// with a backlog cannot take every slot while the others wait. RabbitMQ's limiter gets the
    /// same effect by unblocking the queues in the order they were blocked; found by probing a
    /// channel with global prefetch 1 on three queues (issue 12).
    pub fn redispatch_fair(&mut self) {
        let mut queues: Vec<&Arc<Queue>> = Vec::new();
        for c in self.consumers.values() {
            if !queues.iter().any(|q| Arc::ptr_eq(q, &c.queue)) {
                queues.push(&c.queue);
            }
        }
        if queues.is_empty() {
            return;
        }
        // A stable order while the set of queues stays the same.
        queues.sort_by_key(|q| Arc::as_ptr(q) as usize);
        let n = queues.len();
        let start = self.fair_next % n;
        for i in (0..n).map(|i| (start + i) % n) {
            if !self.limit.has_credit() {
                return;
            }
            let before = self.limit.unacked.load(Ordering::Acquire);
            queues[i].redispatch();
            if self.limit.unacked.load(Ordering::Acquire) > before {
                self.fair_next = i + 1;
            }
        }
    }

    /// An empty queue name means the queue most recently declared on this channel.
    fn resolve_queue(&self, name: &ShortStr) -> AmqpResult<ShortStr> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        if self.last_queue.is_empty() {
            return Err(AmqpError::new(
                ReplyCode::NotFound,
                "no previously declared queue",
            ));
        }
        Ok(self.last_queue.clone())
    }
}

/// Removes CR and LF from a queue or exchange name, as RabbitMQ's channel does for declares,
/// deletes and bindings (`strip_cr_lf` in rabbit_channel; not for publish, consume, get or
/// purge). A name without them is left as it is, without a copy.
pub(super) fn strip_cr_lf(name: &mut ShortStr) {
    if name.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n')) {
        let kept: Vec<u8> = name
            .as_bytes()
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect();
        *name = ShortStr::from(kept.as_slice());
    }
}

/// Settles messages, one call per queue.
fn settle_grouped(items: impl IntoIterator<Item = Unacked>, how: Settle) {
    let mut groups: Vec<(Arc<Queue>, Vec<u64>)> = Vec::new();
    for u in items {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, seqs)) => seqs.push(u.seq),
            None => groups.push((u.queue, vec![u.seq])),
        }
    }
    for (q, seqs) in groups {
        q.settle(&seqs, how);
    }
}
