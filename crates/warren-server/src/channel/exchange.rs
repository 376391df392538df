//! The `exchange` class: declare, delete, bind, unbind.

use warren_codec::{
    ExchangeBind, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete,
    ExchangeDeleteOk, ExchangeUnbind, ExchangeUnbindOk,
};

use super::{Channel, strip_cr_lf};
use crate::connection::{AmqpResult, Ctx};

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
        ctx.vhost
            .unbind_exchange(&m.destination, &m.source, &m.routing_key, &m.arguments)?;
        if !m.no_wait {
            ctx.send(self.id, ExchangeUnbindOk);
        }
        Ok(())
    }
}
