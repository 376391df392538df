//! The `exchange` class: declare, delete, bind, unbind.

use warren_codec::{
    ExchangeBind, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete,
    ExchangeDeleteOk, ExchangeUnbind, ExchangeUnbindOk,
};

use warren_broker::Access;
use warren_codec::{FieldValue, ShortStr};

use super::access::Kind;
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
        self.check_exchange_declare(ctx, &m)?;
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
        // The default exchange and `amq.*` are refused for everyone first (by the broker).
        let name = m.exchange.as_bytes();
        if !name.is_empty() && !name.starts_with(b"amq.") {
            self.access
                .check(ctx, Access::Configure, Kind::Exchange, name)?;
        }
        ctx.vhost.delete_exchange(&m.exchange, m.if_unused)?;
        if !m.no_wait {
            ctx.send(self.id, ExchangeDeleteOk);
        }
        Ok(())
    }

    pub(super) fn exchange_bind(&mut self, ctx: &mut Ctx, mut m: ExchangeBind) -> AmqpResult {
        strip_cr_lf(&mut m.source);
        strip_cr_lf(&mut m.destination);
        self.check_binding(ctx, Kind::Exchange, &m.destination, &m.source)?;
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
        self.check_binding(ctx, Kind::Exchange, &m.destination, &m.source)?;
        check_topic_read(ctx, &m.source, &m.destination, &m.routing_key)?;
        ctx.vhost
            .unbind_exchange(&m.destination, &m.source, &m.routing_key, &m.arguments)?;
        if !m.no_wait {
            ctx.send(self.id, ExchangeUnbindOk);
        }
        Ok(())
    }

    /// `exchange.declare`'s permissions: configure on the exchange (after the broker's own
    /// refusals of an unknown type and of the default exchange); creating one with an
    /// `alternate-exchange` also needs read on it and write on the alternate.
    fn check_exchange_declare(&mut self, ctx: &mut Ctx, m: &ExchangeDeclare) -> AmqpResult {
        let name = m.exchange.as_bytes();
        if m.passive
            || name.is_empty()
            || warren_router::ExchangeKind::parse(m.kind.as_bytes()).is_err()
        {
            return Ok(());
        }
        self.access
            .check(ctx, Access::Configure, Kind::Exchange, name)?;
        if ctx.vhost.topology().exchange(name).is_some() {
            return Ok(());
        }
        if let Some(FieldValue::LongStr(alternate)) =
            m.arguments.get(warren_router::ALTERNATE_EXCHANGE)
        {
            self.access.check(ctx, Access::Read, Kind::Exchange, name)?;
            self.access
                .check(ctx, Access::Write, Kind::Exchange, alternate.as_bytes())?;
        }
        Ok(())
    }

    /// A binding's permissions, as RabbitMQ's `binding_action`: write on the destination, then
    /// (unless either end is the default exchange, which the broker refuses) read on the source.
    pub(super) fn check_binding(
        &mut self,
        ctx: &mut Ctx,
        destination_kind: Kind,
        destination: &warren_codec::ShortStr,
        source: &warren_codec::ShortStr,
    ) -> AmqpResult {
        self.access
            .check(ctx, Access::Write, destination_kind, destination.as_bytes())?;
        let default_end = source.is_empty()
            || (matches!(destination_kind, Kind::Exchange) && destination.is_empty());
        if !default_end {
            self.access
                .check(ctx, Access::Read, Kind::Exchange, source.as_bytes())?;
        }
        Ok(())
    }
}
