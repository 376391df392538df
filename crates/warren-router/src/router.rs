//! The topology of one virtual host: which exchanges and queues exist and how they are bound,
//! with RabbitMQ's rules for declaring, binding, unbinding and deleting, including auto-delete
//! cascades. Routing a message over this topology is in `route.rs`.

use std::collections::HashMap;

use ahash::RandomState;
use smallvec::SmallVec;
use warren_codec::{FieldTable, ShortStr};

use crate::binding::{BindingRef, Destination};
use crate::error::RouterError;
use crate::exchange::{self, Declared, ExchangeDef, ExchangeKind};
use crate::headers;
use crate::index::{Dest, Index};
use crate::slab::Slab;

/// Source exchange ids with how many bindings each has to one destination.
type Sources = SmallVec<[(u32, u32); 2]>;

fn add_source(sources: &mut Sources, source: u32) {
    match sources.iter_mut().find(|(s, _)| *s == source) {
        Some(entry) => entry.1 += 1,
        None => sources.push((source, 1)),
    }
}

fn remove_source(sources: &mut Sources, source: u32, count: u32) {
    if let Some(i) = sources.iter().position(|(s, _)| *s == source) {
        sources[i].1 = sources[i].1.saturating_sub(count);
        if sources[i].1 == 0 {
            sources.swap_remove(i);
        }
    }
}

#[derive(Debug, Clone)]
struct BindingSpec {
    key: ShortStr,
    /// Sorted by key, as RabbitMQ stores binding arguments; part of the binding's identity.
    args: FieldTable,
}

#[derive(Debug, Clone)]
pub(crate) struct ExchangeSlot {
    pub(crate) def: ExchangeDef,
    pub(crate) alternate: Option<bytes::Bytes>,
    pub(crate) index: Index,
    /// Bindings with this exchange as source, grouped by destination for removal by destination.
    outgoing: HashMap<Dest, SmallVec<[BindingSpec; 1]>, RandomState>,
    /// Exchanges bound to this one.
    incoming: Sources,
}

#[derive(Debug, Clone)]
pub(crate) struct QueueSlot<Q> {
    pub(crate) name: ShortStr,
    pub(crate) handle: Q,
    incoming: Sources,
}

/// The exchanges, queues and bindings of one virtual host. `Q` is the broker's queue handle.
#[derive(Debug, Clone)]
pub struct Router<Q> {
    pub(crate) vhost: ShortStr,
    pub(crate) exchanges: Slab<ExchangeSlot>,
    pub(crate) queues: Slab<QueueSlot<Q>>,
    binding_count: usize,
}

impl<Q: Clone> Default for Router<Q> {
    fn default() -> Self {
        Self::new()
    }
}

fn sorted(args: FieldTable) -> FieldTable {
    let mut entries: Vec<(ShortStr, warren_codec::FieldValue)> =
        args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // Stable, like lists:keysort: duplicate keys keep their order.
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    entries.into_iter().collect()
}

impl<Q: Clone> Router<Q> {
    /// A router for the virtual host `/`.
    pub fn new() -> Self {
        Self::with_vhost("/")
    }

    /// A router for the named virtual host, with RabbitMQ's predeclared exchanges: the default
    /// exchange, `amq.direct`, `amq.fanout`, `amq.topic`, `amq.headers` and `amq.match`.
    pub fn with_vhost(vhost: impl Into<ShortStr>) -> Self {
        let mut r = Router {
            vhost: vhost.into(),
            exchanges: Slab::default(),
            queues: Slab::default(),
            binding_count: 0,
        };
        let predeclared = [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ];
        for (name, kind) in predeclared {
            let mut def = ExchangeDef::new(ShortStr::from_static(name), kind);
            def.durable = true;
            r.insert_exchange(def);
        }
        r
    }

    /// The virtual host named in error texts.
    pub fn vhost(&self) -> &ShortStr {
        &self.vhost
    }

    fn insert_exchange(&mut self, def: ExchangeDef) {
        let index = if def.name.is_empty() {
            Index::Default
        } else {
            Index::new(def.kind)
        };
        let slot = ExchangeSlot {
            alternate: def.alternate_bytes(),
            index,
            outgoing: HashMap::default(),
            incoming: Sources::new(),
            def,
        };
        self.exchanges.insert(slot.def.name.bytes().clone(), slot);
    }

    pub(crate) fn exchange_not_found(&self, name: &[u8]) -> RouterError {
        RouterError::ExchangeNotFound {
            name: name.into(),
            vhost: self.vhost.clone(),
        }
    }

    /// Declares an exchange, or checks that an existing one is equivalent (RabbitMQ compares
    /// type, durable, auto_delete, internal and the `alternate-exchange` argument only).
    pub fn declare_exchange(&mut self, def: ExchangeDef) -> Result<Declared, RouterError> {
        if def.name.is_empty() {
            return Err(RouterError::DefaultExchange);
        }
        if let Some(existing) = self.exchanges.by_name(def.name.as_bytes()) {
            exchange::assert_equivalent(&existing.def, &def, &self.vhost)?;
            return Ok(Declared::Existing);
        }
        exchange::validate_new(&def, &self.vhost)?;
        self.insert_exchange(def);
        Ok(Declared::Created)
    }

    /// Sets the alternate exchange a policy names for an exchange; an `alternate-exchange`
    /// argument, when the exchange has one, still wins (RabbitMQ's `get_arg`). False when the
    /// exchange does not exist.
    pub fn set_policy_alternate(&mut self, name: &[u8], policy: Option<bytes::Bytes>) -> bool {
        let Some(slot) = self
            .exchanges
            .id(name)
            .and_then(|id| self.exchanges.get_mut(id))
        else {
            return false;
        };
        slot.alternate = slot.def.alternate_bytes().or(policy);
        true
    }

    /// The exchange's declaration, when it exists (the default exchange is `""`).
    pub fn exchange(&self, name: &[u8]) -> Option<&ExchangeDef> {
        self.exchanges.by_name(name).map(|x| &x.def)
    }

    /// Every exchange, the default one included.
    pub fn exchanges(&self) -> impl Iterator<Item = &ExchangeDef> {
        self.exchanges.iter().map(|(_, x)| &x.def)
    }

    /// The exchange a client may publish to: refuses missing (404) and internal (403) exchanges.
    /// Routing itself does not check `internal`, because exchanges and dead-lettering may route
    /// to internal exchanges.
    pub fn check_publish(&self, name: &[u8]) -> Result<&ExchangeDef, RouterError> {
        let def = self
            .exchange(name)
            .ok_or_else(|| self.exchange_not_found(name))?;
        if def.internal {
            return Err(RouterError::InternalExchange {
                name: def.name.clone(),
                vhost: self.vhost.clone(),
            });
        }
        Ok(def)
    }

    /// Deletes an exchange and every binding to or from it. A missing exchange is `NotFound`,
    /// which the broker answers with `delete-ok` as RabbitMQ 3.10 does.
    pub fn delete_exchange(&mut self, name: &[u8], if_unused: bool) -> Result<(), RouterError> {
        self.delete_exchange_cascading(name, if_unused).map(drop)
    }

    /// As [`Router::delete_exchange`], returning the auto-delete exchanges that lost their last
    /// binding as a result and went too.
    pub fn delete_exchange_cascading(
        &mut self,
        name: &[u8],
        if_unused: bool,
    ) -> Result<Vec<ShortStr>, RouterError> {
        if name.is_empty() {
            return Err(RouterError::DefaultExchange);
        }
        if name.starts_with(b"amq.") {
            return Err(RouterError::SystemExchange {
                name: name.into(),
                vhost: self.vhost.clone(),
            });
        }
        let x = self
            .exchanges
            .by_name(name)
            .ok_or_else(|| self.exchange_not_found(name))?;
        if if_unused && !x.outgoing.is_empty() {
            return Err(RouterError::InUse {
                name: name.into(),
                vhost: self.vhost.clone(),
            });
        }
        let mut pending = Vec::new();
        self.delete_exchange_slot(name, &mut pending);
        Ok(self.drain_auto_delete(pending))
    }

    /// Registers a queue, reachable through the default exchange by its name. Re-adding a name
    /// replaces the handle and keeps the queue's bindings.
    pub fn add_queue(&mut self, name: ShortStr, queue: Q) {
        if let Some(id) = self.queues.id(name.as_bytes()) {
            if let Some(slot) = self.queues.get_mut(id) {
                slot.handle = queue;
            }
            return;
        }
        let slot = QueueSlot {
            name: name.clone(),
            handle: queue,
            incoming: Sources::new(),
        };
        self.queues.insert(name.into_bytes(), slot);
    }

    /// The queue's handle, when it exists.
    pub fn queue(&self, name: &[u8]) -> Option<&Q> {
        self.queues.by_name(name).map(|q| &q.handle)
    }

    /// Every queue's handle (for listings; order is not meaningful).
    pub fn queues(&self) -> impl Iterator<Item = &Q> {
        self.queues.iter().map(|(_, q)| &q.handle)
    }

    /// Number of registered queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Number of explicit bindings (the default exchange's implicit ones are not counted).
    pub fn binding_count(&self) -> usize {
        self.binding_count
    }

    /// Removes a queue and its bindings; returns the auto-delete exchanges that lost their last
    /// binding and were deleted, cascading through exchange-to-exchange bindings.
    pub fn remove_queue(&mut self, name: &[u8]) -> Vec<ShortStr> {
        let Some((id, slot)) = self.queues.remove(name) else {
            return Vec::new();
        };
        let mut pending = Vec::new();
        self.remove_bindings_to(Dest::Queue(id), &slot.incoming, &mut pending);
        self.drain_auto_delete(pending)
    }

    fn source_id(&self, source: &[u8]) -> Result<u32, RouterError> {
        self.exchanges
            .id(source)
            .ok_or_else(|| self.exchange_not_found(source))
    }

    /// Binds a queue to an exchange. Binding twice is harmless. Missing exchange (checked first)
    /// or queue is 404; the default exchange is 403; a bad `x-match` on a headers exchange 406.
    pub fn bind_queue(
        &mut self,
        exchange: &[u8],
        queue: &[u8],
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<(), RouterError> {
        if exchange.is_empty() {
            return Err(RouterError::DefaultExchange);
        }
        let source = self.source_id(exchange)?;
        let queue_id = self
            .queues
            .id(queue)
            .ok_or_else(|| RouterError::QueueNotFound {
                name: queue.into(),
                vhost: self.vhost.clone(),
            })?;
        self.bind(source, Dest::Queue(queue_id), routing_key, arguments)
    }

    /// Binds exchange `destination` to exchange `source`. Errors as for [`Router::bind_queue`].
    pub fn bind_exchange(
        &mut self,
        destination: &[u8],
        source: &[u8],
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<(), RouterError> {
        if destination.is_empty() || source.is_empty() {
            return Err(RouterError::DefaultExchange);
        }
        let source = self.source_id(source)?;
        let dest = self.source_id(destination)?;
        self.bind(source, Dest::Exchange(dest), routing_key, arguments)
    }

    /// Removes a queue binding; returns the auto-delete exchanges deleted as a result. As in
    /// RabbitMQ 3.10 (`rabbit_binding:remove/3` reports only absent, not missing, resources), a
    /// missing binding, exchange or queue is not an error; only the default exchange is (403).
    pub fn unbind_queue(
        &mut self,
        exchange: &[u8],
        queue: &[u8],
        routing_key: &[u8],
        arguments: &FieldTable,
    ) -> Result<Vec<ShortStr>, RouterError> {
        if exchange.is_empty() {
            return Err(RouterError::DefaultExchange);
        }
        match (self.exchanges.id(exchange), self.queues.id(queue)) {
            (Some(s), Some(q)) => Ok(self.unbind(s, Dest::Queue(q), routing_key, arguments)),
            _ => Ok(Vec::new()),
        }
    }

    /// True when `queue` is bound to `exchange` with exactly this key and these arguments.
    pub fn has_queue_binding(
        &self,
        exchange: &[u8],
        queue: &[u8],
        routing_key: &[u8],
        arguments: &FieldTable,
    ) -> bool {
        let (Some(s), Some(q)) = (self.exchanges.id(exchange), self.queues.id(queue)) else {
            return false;
        };
        let args = sorted(arguments.clone());
        self.exchanges
            .get(s)
            .and_then(|src| src.outgoing.get(&Dest::Queue(q)))
            .is_some_and(|specs| {
                specs.iter().any(|spec| {
                    spec.key.as_bytes() == routing_key
                        && crate::erlang::tables_identical(&spec.args, &args)
                })
            })
    }

    /// Removes an exchange-to-exchange binding. Errors as for [`Router::unbind_queue`].
    pub fn unbind_exchange(
        &mut self,
        destination: &[u8],
        source: &[u8],
        routing_key: &[u8],
        arguments: &FieldTable,
    ) -> Result<Vec<ShortStr>, RouterError> {
        if destination.is_empty() || source.is_empty() {
            return Err(RouterError::DefaultExchange);
        }
        match (self.exchanges.id(source), self.exchanges.id(destination)) {
            (Some(s), Some(d)) => Ok(self.unbind(s, Dest::Exchange(d), routing_key, arguments)),
            _ => Ok(Vec::new()),
        }
    }

    /// True when the exchange exists and is the source of at least one explicit binding.
    pub fn has_bindings_as_source(&self, exchange: &[u8]) -> bool {
        self.exchanges
            .by_name(exchange)
            .is_some_and(|x| !x.outgoing.is_empty())
    }

    /// Every explicit binding, in no particular order.
    pub fn bindings(&self) -> impl Iterator<Item = BindingRef<'_>> {
        self.exchanges.iter().flat_map(move |(_, x)| {
            x.outgoing.iter().flat_map(move |(dest, specs)| {
                let destination = self.destination_name(*dest);
                specs.iter().filter_map(move |spec| {
                    Some(BindingRef {
                        source: &x.def.name,
                        destination: destination?,
                        routing_key: &spec.key,
                        arguments: &spec.args,
                    })
                })
            })
        })
    }

    fn destination_name(&self, dest: Dest) -> Option<Destination<'_>> {
        Some(match dest {
            Dest::Queue(id) => Destination::Queue(&self.queues.get(id)?.name),
            Dest::Exchange(id) => Destination::Exchange(&self.exchanges.get(id)?.def.name),
        })
    }

    fn incoming_mut(&mut self, dest: Dest) -> Option<&mut Sources> {
        match dest {
            Dest::Queue(id) => self.queues.get_mut(id).map(|q| &mut q.incoming),
            Dest::Exchange(id) => self.exchanges.get_mut(id).map(|x| &mut x.incoming),
        }
    }

    fn bind(
        &mut self,
        source: u32,
        dest: Dest,
        key: ShortStr,
        args: FieldTable,
    ) -> Result<(), RouterError> {
        let Some(src) = self.exchanges.get_mut(source) else {
            return Ok(());
        };
        if src.def.kind == ExchangeKind::Headers {
            headers::validate(&args)?;
        }
        let args = sorted(args);
        let specs = src.outgoing.entry(dest).or_default();
        let exists = specs
            .iter()
            .any(|s| s.key == key && crate::erlang::tables_identical(&s.args, &args));
        if exists {
            return Ok(());
        }
        src.index.add(dest, key.bytes(), &args);
        specs.push(BindingSpec { key, args });
        self.binding_count += 1;
        if let Some(incoming) = self.incoming_mut(dest) {
            add_source(incoming, source);
        }
        Ok(())
    }

    fn unbind(&mut self, source: u32, dest: Dest, key: &[u8], args: &FieldTable) -> Vec<ShortStr> {
        let args = sorted(args.clone());
        let Some(src) = self.exchanges.get_mut(source) else {
            return Vec::new();
        };
        let Some(specs) = src.outgoing.get_mut(&dest) else {
            return Vec::new();
        };
        let Some(i) = specs.iter().position(|s| {
            s.key.as_bytes() == key && crate::erlang::tables_identical(&s.args, &args)
        }) else {
            return Vec::new();
        };
        let spec = specs.swap_remove(i);
        if specs.is_empty() {
            src.outgoing.remove(&dest);
        }
        src.index.remove(dest, spec.key.as_bytes(), &spec.args);
        self.binding_count -= 1;
        if let Some(incoming) = self.incoming_mut(dest) {
            remove_source(incoming, source, 1);
        }
        self.drain_auto_delete(vec![source])
    }

    /// Removes every binding leading to `dest` from the listed sources, queueing those sources
    /// for the auto-delete check.
    fn remove_bindings_to(&mut self, dest: Dest, sources: &Sources, pending: &mut Vec<u32>) {
        for &(sid, _) in sources {
            let Some(src) = self.exchanges.get_mut(sid) else {
                continue;
            };
            if let Some(specs) = src.outgoing.remove(&dest) {
                for spec in &specs {
                    src.index.remove(dest, spec.key.as_bytes(), &spec.args);
                }
                self.binding_count -= specs.len();
                pending.push(sid);
            }
        }
    }

    fn delete_exchange_slot(&mut self, name: &[u8], pending: &mut Vec<u32>) {
        let Some((id, slot)) = self.exchanges.remove(name) else {
            return;
        };
        for (dest, specs) in &slot.outgoing {
            self.binding_count -= specs.len();
            let count = u32::try_from(specs.len()).unwrap_or(u32::MAX);
            if let Some(incoming) = self.incoming_mut(*dest) {
                remove_source(incoming, id, count);
            }
        }
        self.remove_bindings_to(Dest::Exchange(id), &slot.incoming, pending);
    }

    /// `rabbit_exchange:maybe_auto_delete/2` over a worklist: an auto-delete exchange goes when
    /// it is no longer the source of any binding, which may in turn strip other exchanges.
    fn drain_auto_delete(&mut self, mut pending: Vec<u32>) -> Vec<ShortStr> {
        let mut deleted = Vec::new();
        while let Some(id) = pending.pop() {
            let Some(x) = self.exchanges.get(id) else {
                continue;
            };
            if !x.def.auto_delete || !x.outgoing.is_empty() {
                continue;
            }
            let name = x.def.name.clone();
            self.delete_exchange_slot(name.as_bytes(), &mut pending);
            deleted.push(name);
        }
        deleted
    }
}
