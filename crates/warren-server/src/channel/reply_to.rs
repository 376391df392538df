//! Direct reply-to, RabbitMQ's `amq.rabbitmq.reply-to`: a no-ack consumer on that pseudo-queue
//! (`basic.consume`, `basic.cancel`, `queue.declare`), the rewriting of a request's `reply-to`
//! property into an address naming that consumer, and the delivery of replies published to the
//! default exchange with the address as routing key: straight to the consumer's connection, with
//! no queue in between.
//!
//! Addresses live in a process-wide [`ReplyRegistry`] (RabbitMQ's name a channel process, which
//! every connection can reach). An address is `amq.rabbitmq.reply-to.` followed by a random key;
//! an unknown, malformed or stale key is simply unroutable. Queues know nothing of any of this.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use smallvec::SmallVec;
use warren_broker::{Message, VHost, generate_consumer_tag, generate_reply_key};
use warren_codec::{
    BasicConsume, BasicConsumeOk, BasicDeliver, Method, QueueDeclare, QueueDeclareOk,
    RawProperties, ReplyCode, ShortStr, encode_content,
};

use super::Channel;
use crate::connection::{AmqpError, AmqpResult, ConnSink, Ctx};

/// The pseudo-queue a requester consumes from and names in `reply-to`.
pub(super) const PSEUDO_QUEUE: &[u8] = b"amq.rabbitmq.reply-to";
/// How every reply address begins; the registry key follows.
const ADDRESS_PREFIX: &[u8] = b"amq.rabbitmq.reply-to.";

/// A channel's reply consumer.
#[derive(Debug, Clone)]
pub(super) struct ReplyConsumer {
    tag: ShortStr,
    /// The random part of its address: its key in the registry.
    key: Bytes,
}

/// Where replies to one address go.
#[derive(Debug, Clone)]
pub(super) struct ReplyTarget {
    sink: Arc<ConnSink>,
    channel: u16,
    key: Bytes,
}

/// The reply addresses a publish reached; almost always none or one.
pub(super) type Replies = SmallVec<[ReplyTarget; 1]>;

/// The reply consumers of every connection, by address key.
#[derive(Debug, Default)]
pub struct ReplyRegistry {
    targets: RwLock<HashMap<Bytes, (Arc<ConnSink>, u16)>>,
}

impl ReplyRegistry {
    /// Gives a channel's new reply consumer a fresh, unguessable key.
    fn register(&self, sink: Arc<ConnSink>, channel: u16) -> Bytes {
        let mut targets = self.targets.write();
        loop {
            let key = Bytes::from(generate_reply_key());
            if let Entry::Vacant(slot) = targets.entry(key.clone()) {
                slot.insert((sink, channel));
                return key;
            }
        }
    }

    fn unregister(&self, key: &[u8]) {
        self.targets.write().remove(key);
    }

    /// The live consumer a routing key addresses, if it is a reply address at all.
    fn target(&self, address: &[u8]) -> Option<ReplyTarget> {
        let key = address.strip_prefix(ADDRESS_PREFIX)?;
        let targets = self.targets.read();
        let (key, (sink, channel)) = targets.get_key_value(key)?;
        Some(ReplyTarget {
            sink: sink.clone(),
            channel: *channel,
            key: key.clone(),
        })
    }

    /// Adds the reply consumers addressed by a default-exchange publish's routing keys (`CC` and
    /// `BCC` keys included), each once however often it is named.
    pub(super) fn find(&self, keys: &[&[u8]], out: &mut Replies) {
        for key in keys {
            // The one test every default-exchange publish pays.
            if !key.starts_with(ADDRESS_PREFIX) {
                continue;
            }
            if let Some(t) = self.target(key)
                && !out.iter().any(|seen| seen.key == t.key)
            {
                out.push(t);
            }
        }
    }
}

/// Hands a routed reply to each reply consumer it reached. Replies do not count as routed: a
/// mandatory reply is also returned, as RabbitMQ 3.10 does.
pub(super) fn deliver_replies(replies: Replies, message: &Arc<Message>) {
    for t in replies {
        t.sink.reply(t.channel, t.key, message.clone());
    }
}

impl Channel {
    /// `basic.consume` on `amq.rabbitmq.reply-to`: at most one reply consumer per channel, and it
    /// must be no-ack.
    pub(super) fn reply_consume(&mut self, ctx: &mut Ctx, m: BasicConsume) -> AmqpResult {
        if self.consumers.contains_key(&m.consumer_tag) {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag '{}'", m.consumer_tag),
            ));
        }
        if !m.no_ack {
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                "reply consumer cannot acknowledge",
            ));
        }
        if self.reply.is_some() {
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                "reply consumer already set",
            ));
        }
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(generate_consumer_tag())
        } else {
            m.consumer_tag
        };
        let key = ctx.replies.register(ctx.sink.clone(), self.id);
        self.reply = Some(ReplyConsumer {
            tag: tag.clone(),
            key,
        });
        if !m.no_wait {
            ctx.send(self.id, BasicConsumeOk { consumer_tag: tag });
        }
        Ok(())
    }

    /// `basic.cancel` of the reply consumer; false when `tag` names another consumer. The reply
    /// consumer wins over a queue consumer sharing its tag, as in RabbitMQ.
    pub(super) fn reply_cancel(&mut self, ctx: &mut Ctx, tag: &ShortStr) -> bool {
        if self.reply.as_ref().is_none_or(|r| r.tag != *tag) {
            return false;
        }
        self.release_reply(ctx);
        true
    }

    /// Forgets the reply consumer; replies still on their way are dropped.
    pub(super) fn release_reply(&mut self, ctx: &mut Ctx) {
        if let Some(r) = self.reply.take() {
            ctx.replies.unregister(&r.key);
        }
    }

    /// Rewrites `reply-to: amq.rabbitmq.reply-to` into this channel's reply address. Refuses it
    /// (406) when the channel has no reply consumer, after the exchange check RabbitMQ makes
    /// first. Other messages pass untouched after one flag test.
    pub(super) fn rewrite_reply_to(
        &self,
        ctx: &Ctx,
        exchange: &ShortStr,
        properties: RawProperties,
    ) -> AmqpResult<RawProperties> {
        if properties
            .reply_to()
            .is_none_or(|r| r.as_bytes() != PSEUDO_QUEUE)
        {
            return Ok(properties);
        }
        VHost::check_publish(&ctx.vhost.topology(), exchange)
            .map_err(|e| AmqpError::from(e).at(60, 40))?;
        let Some(reply) = &self.reply else {
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                "fast reply consumer does not exist",
            )
            .at(60, 40));
        };
        let mut parsed = properties.decode().map_err(|e| {
            AmqpError::new(ReplyCode::SyntaxError, format!("malformed properties: {e}")).at(60, 40)
        })?;
        let mut address = BytesMut::with_capacity(ADDRESS_PREFIX.len() + reply.key.len());
        address.extend_from_slice(ADDRESS_PREFIX);
        address.extend_from_slice(&reply.key);
        parsed.reply_to = Some(ShortStr::from_bytes(address.freeze()));
        Ok(parsed.to_raw())
    }

    /// A reply routed to this channel: delivered to the reply consumer it was addressed to, or
    /// dropped when that consumer is gone.
    pub fn deliver_reply(&mut self, ctx: &mut Ctx, key: Bytes, message: Arc<Message>) {
        let Some(reply) = self.reply.as_ref().filter(|r| r.key == key) else {
            return;
        };
        // RabbitMQ gives a reply the channel's next delivery tag without using it up: a reply is
        // never acknowledged, and the next real delivery still gets that tag.
        let method = Method::BasicDeliver(BasicDeliver {
            consumer_tag: reply.tag.clone(),
            delivery_tag: self.next_tag + 1,
            redelivered: false,
            exchange: message.exchange.clone(),
            routing_key: message.routing_key.clone(),
        });
        encode_content(
            &mut ctx.out,
            self.id,
            &method,
            &message.properties,
            &message.body,
            ctx.frame_max,
        );
    }

    /// `queue.declare` of any name beginning `amq.rabbitmq.reply-to`, passive or not: the
    /// pseudo-queue and live reply addresses exist (0 messages, 1 consumer, as RabbitMQ reports);
    /// anything else is 404.
    pub(super) fn reply_declare(&mut self, ctx: &mut Ctx, m: QueueDeclare) -> AmqpResult {
        let name = m.queue;
        let exists =
            name.as_bytes() == PSEUDO_QUEUE || ctx.replies.target(name.as_bytes()).is_some();
        if !exists {
            return Err(AmqpError::new(
                ReplyCode::NotFound,
                format!("no queue '{name}' in vhost '{}'", ctx.vhost.name),
            ));
        }
        self.last_queue = name.clone();
        if !m.no_wait {
            ctx.send(
                self.id,
                QueueDeclareOk {
                    queue: name,
                    message_count: 0,
                    consumer_count: 1,
                },
            );
        }
        Ok(())
    }
}
