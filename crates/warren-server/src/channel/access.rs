//! Configure/write/read permission checks of a channel: what each AMQP method needs, as
//! RabbitMQ 3.10's `rabbit_channel` checks it, and the channel's cache of decisions.
//!
//! | method | needs |
//! |---|---|
//! | `exchange.declare` (not passive) | configure on the exchange; when it is created with an `alternate-exchange`, also read on it and write on the alternate |
//! | `exchange.delete` | configure on the exchange |
//! | `queue.declare` (not passive; server-named too) | configure on the queue; when it is created with an `x-dead-letter-exchange`, also read on the queue and write on the dead-letter exchange |
//! | `queue.delete` | configure on the queue |
//! | `queue.purge`, `basic.get`, `basic.consume` | read on the queue |
//! | `queue.bind`, `queue.unbind` | write on the queue, read on the exchange |
//! | `exchange.bind`, `exchange.unbind` | write on the destination, read on the source |
//! | `basic.publish` | write on the exchange (the default exchange is checked as `amq.default`) |
//!
//! Passive declares need nothing. A refusal is a 403 channel error, `access to queue 'q' in
//! vhost '/' refused for user 'u'`.
//!
//! Permission changes reach open channels through the broker's permission generation: each
//! check loads it (one atomic load) and re-reads the user's permission when it moved. Publishes
//! also keep their per-exchange decisions, so a publish to an exchange already judged at the
//! current generation costs that load and a short scan, never a regex or an allocation.
//! RabbitMQ instead remembers a channel's last 12 successful checks until the channel idles, so
//! a revoked permission may keep passing there for a busy channel; Warren applies it at the next
//! operation (see docs/security.md).

use warren_broker::{Access, Permission, checked_exchange_name};
use warren_codec::{ReplyCode, ShortStr};

use crate::connection::{AmqpError, Ctx};

/// How many exchanges' publish decisions a channel keeps; beyond, it starts again.
const PUBLISH_CACHE: usize = 16;

/// What a resource is, for the refusal's text.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Queue,
    Exchange,
}

/// A channel's view of its user's permissions on its vhost.
#[derive(Debug, Default)]
pub(super) struct ChannelAccess {
    /// The broker's permission generation `permission` was read at; `None` before the first.
    generation: Option<u64>,
    permission: Option<Permission>,
    /// Exchanges judged for publishing at `generation`.
    publish: Vec<(ShortStr, bool)>,
}

impl ChannelAccess {
    fn refresh(&mut self, ctx: &Ctx) {
        // Load the generation before reading the permission: a change landing in between is
        // seen again at the next check, never missed.
        let now = ctx.broker.permission_generation();
        if self.generation != Some(now) {
            self.permission = ctx.broker.permission(&ctx.user, &ctx.vhost.name);
            self.publish.clear();
            self.generation = Some(now);
        }
    }

    /// Requires `access` to the `kind` resource `name`, or answers RabbitMQ's 403.
    pub(super) fn check(
        &mut self,
        ctx: &Ctx,
        access: Access,
        kind: Kind,
        name: &[u8],
    ) -> Result<(), AmqpError> {
        self.refresh(ctx);
        let name = match kind {
            Kind::Exchange => checked_exchange_name(name),
            Kind::Queue => name,
        };
        if self
            .permission
            .as_ref()
            .is_some_and(|p| p.permits(access, name))
        {
            return Ok(());
        }
        Err(refused(ctx, kind, name))
    }

    /// Requires write on `exchange` for a publish, from the cache when it can.
    pub(super) fn check_publish(
        &mut self,
        ctx: &Ctx,
        exchange: &ShortStr,
    ) -> Result<(), AmqpError> {
        self.refresh(ctx);
        let known = self
            .publish
            .iter()
            // Empty names (the default exchange) match without `<[u8]>::eq`'s `memcmp` call: a
            // profile of the auto-ack path put that call at ~8 % of the broker's CPU.
            .find(|(x, _)| {
                let (x, e) = (x.as_bytes(), exchange.as_bytes());
                x.len() == e.len() && (e.is_empty() || x == e)
            })
            .map(|(_, ok)| *ok);
        let ok = match known {
            Some(ok) => ok,
            None => {
                let name = checked_exchange_name(exchange.as_bytes());
                let ok = self
                    .permission
                    .as_ref()
                    .is_some_and(|p| p.permits(Access::Write, name));
                if self.publish.len() >= PUBLISH_CACHE {
                    self.publish.clear();
                }
                self.publish.push((exchange.clone(), ok));
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err(refused(
                ctx,
                Kind::Exchange,
                checked_exchange_name(exchange.as_bytes()),
            ))
        }
    }
}

fn refused(ctx: &Ctx, kind: Kind, name: &[u8]) -> AmqpError {
    let kind = match kind {
        Kind::Queue => "queue",
        Kind::Exchange => "exchange",
    };
    tracing::debug!(user = %ctx.user, vhost = %ctx.vhost.name, kind, "resource access refused");
    AmqpError::new(
        ReplyCode::AccessRefused,
        format!(
            "access to {kind} '{}' in vhost '{}' refused for user '{}'",
            String::from_utf8_lossy(name),
            ctx.vhost.name,
            ctx.user
        ),
    )
}
