//! The `exchange` class: declare, delete, bind, unbind.

use warren_codec::{
    ExchangeBind, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete,
    ExchangeDeleteOk, ExchangeUnbind, ExchangeUnbindOk,
};

use warren_codec::ShortStr;

use super::{Channel, strip_cr_lf};
use crate::connection::{AmqpResult, Ctx};

/// The topic permission check of a bind or unbind (RabbitMQ's `binding_action`): after the
/// default exchange is refused (left to the vhost, so `destination` empty skips it here) and
/// only when the source exists; `read` must match the binding key.
pub(super) fn check_topic_read(
    ctx: &Ctx,
    source: &ShortStr,
    destination: &ShortStr,
    routing_key: &ShortStr,
) -> AmqpResult {
    if ctx.topic_access.is_unrestricted() || source.is_empty() || destination.is_empty() {
        return Ok(());
    }
    let topology = ctx.vhost.topology();
    let kind = topology.exchange(source.as_bytes()).map(|x| &x.kind);
    ctx.check_topic(
        kind,
        source.as_bytes(),
        routing_key.as_bytes(),
        warren_broker::TopicAction::Read,
    )
}

impl Channel {
    pub(super) fn exchange_declare(&mut self, ctx: &mut Ctx, mut m: ExchangeDeclare) -> AmqpResult {
        strip_cr_lf(&mut m.exchange);
        ctx.vhost.declare_exchange(
            &m.exchange,
            &m.kind,
            m.passive,
            m.durable,
            m.auto_delete,
            m.internal,
            &m.arguments,
        )?;
        if !m.no_wait {
            ctx.send(self.id, ExchangeDeclareOk);
        }
        Ok(())
    }

    pub(super) fn exchange_delete(&mut self, ctx: &mut Ctx, mut m: ExchangeDelete) -> AmqpResult {
        strip_cr_lf(&mut m.exchange);
        ctx.vhost.delete_exchange(&m.exchange, m.if_unused)?;
        if !m.no_wait {
            ctx.send(self.id, ExchangeDeleteOk);
        }
        Ok(())
    }

    pub(super) fn exchange_bind(&mut self, ctx: &mut Ctx, mut m: ExchangeBind) -> AmqpResult {
        strip_cr_lf(&mut m.source);
        strip_cr_lf(&mut m.destination);
        check_topic_read(ctx, &m.source, &m.destination, &m.routing_key)?;
        ctx.vhost
            .bind_exchange(&m.destination, &m.source, &m.routing_key, &m.arguments)?;
        if !m.no_wait {
            ctx.send(self.id, ExchangeBindOk);
        }
        Ok(())
    }

    pub(super) fn exchange_unbind(&mut self, ctx: &mut Ctx, mut m: ExchangeUnbind) -> AmqpResult {
        strip_cr_lf(&mut m.source);
        strip_cr_lf(&mut m.destination);
        check_topic_read(ctx, &m.source, &m.destination, &m.routing_key)?;
        ctx.vhost
            .unbind_exchange(&m.destination, &m.source, &m.routing_key, &m.arguments)?;
        if !m.no_wait {
            ctx.send(self.id, ExchangeUnbindOk);
        }
        Ok(())
    }
}
