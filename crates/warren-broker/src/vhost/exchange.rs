//! The exchange side of a vhost: `exchange.declare`, `delete`, `bind`, `unbind`, publishing
//! checks, and the binding records kept for durable ends.

use std::sync::Arc;

use warren_codec::{FieldTable, ShortStr};
use warren_router::{Declared, ExchangeDef, ExchangeKind, Router};
use warren_store::BindingRecord;

use super::{VHost, default_exchange_refused};
use crate::BrokerError;
use crate::persist::{self, store_failed};
use crate::queue::Queue;

fn display(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

impl VHost {
    /// Stores a binding record (both ends durable), if there is one.
    pub(super) fn save_binding(&self, record: Option<BindingRecord>) -> Result<(), BrokerError> {
        match record {
            Some(r) => self
                .store
                .put_binding(self.key(), &r)
                .map_err(|e| store_failed(&e)),
            None => Ok(()),
        }
    }

    /// Deletes a binding record, if there is one.
    pub(super) fn drop_binding(&self, record: Option<BindingRecord>) -> Result<(), BrokerError> {
        match record {
            Some(r) => self
                .store
                .delete_binding(self.key(), &r)
                .map_err(|e| store_failed(&e)),
            None => Ok(()),
        }
    }

    /// Forgets durable exchanges that went away with a change (auto-delete cascades).
    pub(super) fn forget_exchanges(&self, names: &[ShortStr]) -> Result<(), BrokerError> {
        for name in names {
            self.store
                .delete_exchange(self.key(), name.as_bytes())
                .map_err(|e| store_failed(&e))?;
        }
        Ok(())
    }

    /// The binding record, when both ends are durable (only those are stored).
    pub(super) fn durable_binding(
        topology: &Router<Arc<Queue>>,
        source: &[u8],
        destination: &[u8],
        to_exchange: bool,
        routing_key: &[u8],
        arguments: &FieldTable,
    ) -> Option<BindingRecord> {
        let source_durable = topology.exchange(source).is_some_and(|x| x.durable);
        let dest_durable = if to_exchange {
            topology.exchange(destination).is_some_and(|x| x.durable)
        } else {
            topology
                .queue(destination)
                .is_some_and(|q| q.options.durable)
        };
        (source_durable && dest_durable).then(|| BindingRecord {
            source: bytes::Bytes::copy_from_slice(source),
            destination: bytes::Bytes::copy_from_slice(destination),
            destination_is_exchange: to_exchange,
            routing_key: bytes::Bytes::copy_from_slice(routing_key),
            arguments: persist::encode_table(arguments),
        })
    }

    /// Rebuilds a durable exchange at startup.
    pub fn recover_exchange(&self, def: ExchangeDef) -> Result<(), BrokerError> {
        let name = def.name.clone();
        let mut topology = self.topology.write();
        topology.declare_exchange(def)?;
        self.apply_exchange_policy(&mut topology, name.as_bytes());
        Ok(())
    }

    /// Rebuilds a durable binding at startup.
    pub fn recover_binding(&self, b: &BindingRecord) -> Result<(), BrokerError> {
        let arguments = persist::decode_table(&b.arguments).map_err(|e| store_failed(&e))?;
        let mut topology = self.topology.write();
        if b.destination_is_exchange {
            topology.bind_exchange(
                &b.destination,
                &b.source,
                ShortStr::from(b.routing_key.clone()),
                arguments,
            )?;
        } else {
            topology.bind_queue(
                &b.source,
                &b.destination,
                ShortStr::from(b.routing_key.clone()),
                arguments,
            )?;
        }
        Ok(())
    }

    fn exchange_desc(&self, name: &[u8]) -> String {
        format!("exchange '{}' in vhost '{}'", display(name), self.name)
    }

    /// `exchange.declare`.
    #[allow(clippy::too_many_arguments)]
    pub fn declare_exchange(
        &self,
        name: &ShortStr,
        kind: &ShortStr,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: &FieldTable,
    ) -> Result<(), BrokerError> {
        if passive {
            if name.is_empty() {
                return Err(default_exchange_refused());
            }
            return match self.topology.read().exchange(name.as_bytes()) {
                Some(_) => Ok(()),
                None => Err(BrokerError::not_found(format!(
                    "no {}",
                    self.exchange_desc(name.as_bytes())
                ))),
            };
        }
        // RabbitMQ checks the type before anything else.
        let kind = ExchangeKind::parse(kind.as_bytes())?;
        let def = ExchangeDef {
            name: name.clone(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments: arguments.clone(),
        };
        let record = durable.then(|| persist::exchange_record(&def));
        let mut topology = self.topology.write();
        if topology.declare_exchange(def)? == Declared::Created {
            if let Some(record) = record
                && let Err(e) = self.store.put_exchange(self.key(), &record)
            {
                // Not on disk, so not declared: a durable exchange must survive a restart.
                let _ = topology.delete_exchange(name.as_bytes(), false);
                return Err(store_failed(&e));
            }
            self.apply_exchange_policy(&mut topology, name.as_bytes());
        }
        Ok(())
    }

    /// `exchange.delete`. Deleting a missing exchange succeeds, as in RabbitMQ 3.10.
    pub fn delete_exchange(&self, name: &ShortStr, if_unused: bool) -> Result<(), BrokerError> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.as_bytes().starts_with(b"amq.") {
            return Err(BrokerError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        let mut topology = self.topology.write();
        let Some(durable) = topology.exchange(name.as_bytes()).map(|x| x.durable) else {
            return Ok(());
        };
        let mut gone = topology.delete_exchange_cascading(name.as_bytes(), if_unused)?;
        if durable {
            gone.push(name.clone());
        }
        self.forget_exchanges(&gone)
    }

    /// `exchange.bind`.
    pub fn bind_exchange(
        &self,
        destination: &ShortStr,
        source: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<(), BrokerError> {
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        let mut topology = self.topology.write();
        topology.bind_exchange(
            destination.as_bytes(),
            source.as_bytes(),
            routing_key.clone(),
            arguments.clone(),
        )?;
        let record = Self::durable_binding(
            &topology,
            source.as_bytes(),
            destination.as_bytes(),
            true,
            routing_key.as_bytes(),
            arguments,
        );
        self.save_binding(record)?;
        Ok(())
    }

    /// `exchange.unbind`.
    pub fn unbind_exchange(
        &self,
        destination: &ShortStr,
        source: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<(), BrokerError> {
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        let mut topology = self.topology.write();
        let record = Self::durable_binding(
            &topology,
            source.as_bytes(),
            destination.as_bytes(),
            true,
            routing_key.as_bytes(),
            arguments,
        );
        let gone = topology.unbind_exchange(
            destination.as_bytes(),
            source.as_bytes(),
            routing_key.as_bytes(),
            arguments,
        )?;
        self.drop_binding(record)?;
        self.forget_exchanges(&gone)
    }

    /// Checks that a client may publish to `exchange`: it exists and is not internal.
    pub fn check_publish(
        topology: &Router<Arc<Queue>>,
        exchange: &ShortStr,
    ) -> Result<(), BrokerError> {
        topology.check_publish(exchange.as_bytes())?;
        Ok(())
    }
}
