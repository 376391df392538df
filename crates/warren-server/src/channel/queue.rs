//! The `queue` class: declare, bind, unbind, purge, delete.

use warren_broker::QueueDeclare as Declare;
use warren_codec::{
    QueueBind, QueueBindOk, QueueDeclare, QueueDeclareOk, QueueDelete, QueueDeleteOk, QueuePurge,
    QueuePurgeOk, QueueUnbind, QueueUnbindOk,
};

use warren_broker::{Access, generate_queue_name};
use warren_codec::{FieldValue, ShortStr};

use super::access::Kind;
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
        // A server-named queue is named here, so that its name is what the permission check
        // sees (RabbitMQ checks configure on the generated name too).
        let server_name =
            (!m.passive && name.is_empty()).then(|| ShortStr::from(generate_queue_name()));
        if !m.passive {
            self.check_queue_declare(ctx, server_name.as_ref().unwrap_or(&name), &m)?;
        }
        let d = Declare {
            name,
            passive: m.passive,
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: m.arguments,
            connection: ctx.id,
        };
        let declared = match server_name {
            Some(generated) => ctx.vhost.declare_server_named_queue(d, generated),
            None => ctx.vhost.declare_queue(d),
        }?;
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
        self.check_binding(ctx, Kind::Queue, &queue, &m.exchange)?;
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
        self.check_binding(ctx, Kind::Queue, &queue, &m.exchange)?;
        super::exchange::check_topic_read(ctx, &m.exchange, &queue, &m.routing_key)?;
        ctx.vhost
            .unbind_queue(&queue, &m.exchange, &m.routing_key, &m.arguments, ctx.id)?;
        ctx.send(self.id, QueueUnbindOk);
        Ok(())
    }

    pub(super) fn queue_purge(&mut self, ctx: &mut Ctx, m: QueuePurge) -> AmqpResult {
        let queue = self.resolve_queue(&m.queue)?;
        self.access
            .check(ctx, Access::Read, Kind::Queue, queue.as_bytes())?;
        let q = ctx.vhost.queue(&queue, ctx.id)?;
        if q.purge_may_block() {
            // Spilled segments or stored entries to read: not on this task.
            ctx.purge_blocking(self.id, m.no_wait, move || q.purge());
            return Ok(());
        }
        let message_count = q.purge();
        if !m.no_wait {
            ctx.send(self.id, QueuePurgeOk { message_count });
        }
        Ok(())
    }

    pub(super) fn queue_delete(&mut self, ctx: &mut Ctx, mut m: QueueDelete) -> AmqpResult {
        strip_cr_lf(&mut m.queue);
        let queue = self.resolve_queue(&m.queue)?;
        self.access
            .check(ctx, Access::Configure, Kind::Queue, queue.as_bytes())?;
        let message_count = ctx
            .vhost
            .delete_queue(&queue, m.if_unused, m.if_empty, ctx.id)?;
        ctx.exclusive_queues.retain(|q| !q.is_deleted());
        if !m.no_wait {
            ctx.send(self.id, QueueDeleteOk { message_count });
        }
        Ok(())
    }

    /// `queue.declare`'s permissions (not passive): configure on the queue, after the broker's
    /// refusal of a client-chosen `amq.*` name; creating it with an `x-dead-letter-exchange`
    /// also needs read on the queue and write on the dead-letter exchange.
    fn check_queue_declare(
        &mut self,
        ctx: &mut Ctx,
        name: &ShortStr,
        m: &QueueDeclare,
    ) -> AmqpResult {
        if !m.queue.is_empty() && m.queue.as_bytes().starts_with(b"amq.") {
            return Ok(());
        }
        self.access
            .check(ctx, Access::Configure, Kind::Queue, name.as_bytes())?;
        if ctx.vhost.topology().queue(name.as_bytes()).is_some() {
            return Ok(());
        }
        if let Some(FieldValue::LongStr(dlx)) = m.arguments.get("x-dead-letter-exchange") {
            self.access
                .check(ctx, Access::Read, Kind::Queue, name.as_bytes())?;
            self.access
                .check(ctx, Access::Write, Kind::Exchange, dlx.as_bytes())?;
        }
        Ok(())
    }
}
