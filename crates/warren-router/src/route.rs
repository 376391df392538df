//! Routing one message over the topology: the hot path of every publish.
//!
//! Follows `rabbit_exchange:route/2` of RabbitMQ 3.10: the default exchange delivers to the
//! queues named by the routing keys; any other exchange is walked with a worklist, each exchange
//! visited at most once (the first one counts as visited), and an exchange whose own bindings
//! matched nothing at all, neither queue nor exchange, hands the message to its alternate
//! exchange, if that exists. Queues reached by several paths are delivered once.
//!
//! Nothing here allocates while fewer than 32 queue ids and 8 exchanges are involved and `out`
//! has room; larger fan-outs spill the scratch buffers to the heap once per call.

use smallvec::{SmallVec, smallvec};
use warren_codec::FieldTable;

use crate::error::RouterError;
use crate::index::Dest;
use crate::router::Router;

impl<Q: Clone> Router<Q> {
    /// Routes a message published to `exchange`. `routing_keys` is the routing key followed by
    /// any CC and BCC keys. Appends each destination queue's handle at most once to `out`.
    /// A missing exchange is `NotFound`; `internal` is not checked here (see
    /// [`Router::check_publish`]).
    pub fn route(
        &self,
        exchange: &[u8],
        routing_keys: &[&[u8]],
        headers: Option<&FieldTable>,
        out: &mut Vec<Q>,
    ) -> Result<(), RouterError> {
        let start = self
            .exchanges
            .id(exchange)
            .ok_or_else(|| self.exchange_not_found(exchange))?;
        let mut queues: SmallVec<[u32; 32]> = SmallVec::new();
        let may_repeat = if exchange.is_empty() {
            for rk in routing_keys {
                if let Some(q) = self.queues.id(rk) {
                    queues.push(q);
                }
            }
            true
        } else {
            self.walk(start, routing_keys, headers, &mut queues)
        };
        if may_repeat && queues.len() > 1 {
            queues.sort_unstable();
            queues.dedup();
        }
        out.reserve(queues.len());
        for q in queues {
            if let Some(slot) = self.queues.get(q) {
                out.push(slot.handle.clone());
            }
        }
        Ok(())
    }

    /// Collects queue ids reachable from `start`; returns whether any id may be repeated.
    fn walk(
        &self,
        start: u32,
        routing_keys: &[&[u8]],
        headers: Option<&FieldTable>,
        queues: &mut SmallVec<[u32; 32]>,
    ) -> bool {
        // Linear `contains` is cheaper than hashing for the handful of exchanges a route visits.
        let mut seen: SmallVec<[u32; 8]> = smallvec![start];
        let mut work: SmallVec<[u32; 8]> = smallvec![start];
        // A single fanout exchange's queues are distinct already; sorting 100,000 ids to
        // deduplicate them would cost more than delivering to them.
        let mut contributors = 0u32;
        let mut may_repeat = false;
        while let Some(id) = work.pop() {
            let Some(x) = self.exchanges.get(id) else {
                continue;
            };
            let before = queues.len();
            let mut routed = false;
            x.index.for_each_match(routing_keys, headers, |d| {
                routed = true;
                match d {
                    Dest::Queue(q) => queues.push(q),
                    Dest::Exchange(e) => {
                        if !seen.contains(&e) {
                            seen.push(e);
                            work.push(e);
                        }
                    }
                }
            });
            if queues.len() > before {
                contributors += 1;
                may_repeat |= !x.index.emits_distinct();
            }
            if routed {
                continue;
            }
            let alternate = x.alternate.as_ref().and_then(|ae| self.exchanges.id(ae));
            if let Some(ae) = alternate {
                if !seen.contains(&ae) {
                    seen.push(ae);
                    work.push(ae);
                }
            }
        }
        may_repeat || contributors > 1
    }
}
