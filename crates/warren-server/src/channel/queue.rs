//! The `queue` class: declare, bind, unbind, purge, delete.

use warren_broker::QueueDeclare as Declare;
use warren_codec::{
    QueueBind, QueueBindOk, QueueDeclare, QueueDeclareOk, QueueDelete, QueueDeleteOk, QueuePurge,
    QueuePurgeOk, QueueUnbind, QueueUnbindOk,
};

use super::reply_to::PSEUDO_QUEUE;
use super::{Channel, strip_cr_lf};
use crate::connection::{AmqpResult, Ctx};

impl Channel {
    pub(super) fn queue_declare(&mut self, ctx: &mut Ctx, mut m: QueueDeclare) -> AmqpResult {
        strip_cr_lf(&mut m.queue);
        if m.queue.as_bytes().starts_with(PSEUDO_QUEUE) {
            return self.reply_declare(ctx, m);
        }
        // RabbitMQ does not expand the empty name to the last queue for a passive declare: it
        // looks up a queue named '' and answers 404.
        let name = m.queue.clone();
        let declared = ctx.vhost.declare_queue(Declare {
            name,
            passive: m.passive,
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: m.arguments,
            connection: ctx.id,
        })?;
        if declared.created && declared.queue.options.exclusive_owner.is_some() {
            ctx.exclusive_queues.push(declared.queue.clone());
        }
        self.last_queue = declared.queue.name.clone();
        if !m.no_wait {
            ctx.send(
                self.id,
                QueueDeclareOk {
                    queue: declared.queue.name.clone(),
                    message_count: declared.message_count,
                    consumer_count: declared.consumer_count,
                },
            );
        }
        Ok(())
    }

    pub(super) fn queue_bind(&mut self, ctx: &mut Ctx, mut m: QueueBind) -> AmqpResult {
        strip_cr_lf(&mut m.queue);
        strip_cr_lf(&mut m.exchange);
        let queue = self.resolve_queue(&m.queue)?;
        // An empty routing key with an empty queue name means "the last queue's name" too.
        let key = if m.queue.is_empty() && m.routing_key.is_empty() {
            queue.clone()
        } else {
            m.routing_key
        };
        super::exchange::check_topic_read(ctx, &m.exchange, &queue, &key)?;
        ctx.vhost
            .bind_queue(&queue, &m.exchange, &key, &m.arguments, ctx.id)?;
        if !m.no_wait {
            ctx.send(self.id, QueueBindOk);
        }
        Ok(())
    }

    pub(super) fn queue_unbind(&mut self, ctx: &mut Ctx, mut m: QueueUnbind) -> AmqpResult {
        strip_cr_lf(&mut m.queue);
        strip_cr_lf(&mut m.exchange);
        let queue = self.resolve_queue(&m.queue)?;
        super::exchange::check_topic_read(ctx, &m.exchange, &queue, &m.routing_key)?;
        ctx.vhost
            .unbind_queue(&queue, &m.exchange, &m.routing_key, &m.arguments, ctx.id)?;
        ctx.send(self.id, QueueUnbindOk);
        Ok(())
    }

    pub(super) fn queue_purge(&mut self, ctx: &mut Ctx, m: QueuePurge) -> AmqpResult {
        let queue = self.resolve_queue(&m.queue)?;
        let message_count = ctx.vhost.purge_queue(&queue, ctx.id)?;
        if !m.no_wait {
            ctx.send(self.id, QueuePurgeOk { message_count });
        }
        Ok(())
    }

    pub(super) fn queue_delete(&mut self, ctx: &mut Ctx, mut m: QueueDelete) -> AmqpResult {
        strip_cr_lf(&mut m.queue);
        let queue = self.resolve_queue(&m.queue)?;
        let message_count = ctx
            .vhost
            .delete_queue(&queue, m.if_unused, m.if_empty, ctx.id)?;
        ctx.exclusive_queues.retain(|q| !q.is_deleted());
        if !m.no_wait {
            ctx.send(self.id, QueueDeleteOk { message_count });
        }
        Ok(())
    }
}
