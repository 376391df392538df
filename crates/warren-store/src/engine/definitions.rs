//! [`DefinitionStore`] on the engine: each call is one atomic batch followed by a flush.

use bytes::Bytes;

use crate::backend::Backend;
use crate::engine::Engine;
use crate::keys::{
    self, BINDING, EXCHANGE, GLOBAL_PARAMETER, INDEX, PARAMETER, QUEUE, USER, VHOST, VHOST_LIMITS,
};
use crate::plan::Plan;
use crate::record_codec::{
    decode_binding, decode_exchange, decode_global_parameter, decode_parameter, decode_queue,
    decode_user, encode_binding, encode_exchange, encode_global_parameter, encode_parameter,
    encode_queue, encode_user,
};
use crate::{
    BindingRecord, DefinitionStore, Definitions, ExchangeRecord, ParameterRecord, QueueRecord,
    StoreError, UserRecord,
};

impl<B: Backend> Engine<B> {
    /// Deletes the bindings of `vhost` for which `doomed` holds.
    fn delete_bindings_where(
        &self,
        plan: &mut Plan<'_, B>,
        vhost: &[u8],
        doomed: impl Fn(&BindingRecord) -> bool,
    ) -> Result<(), StoreError> {
        let mut found = Vec::new();
        self.backend
            .scan_prefix(&keys::vhost_prefix(BINDING, vhost)?, &mut |k, v| {
                if doomed(&decode_binding(v)?) {
                    found.push(k.to_vec());
                }
                Ok(())
            })?;
        for key in found {
            plan.delete(key);
        }
        Ok(())
    }

    /// A queue deletion's commit point: its record and bindings go, durably, and its extent
    /// is dropped; its entries are left to the chunked removal.
    pub(crate) fn delete_queue_record(&self, vhost: &[u8], name: &[u8]) -> Result<(), StoreError> {
        let key = keys::named(QUEUE, vhost, "queue", name)?;
        let index = keys::queue_index_prefix(vhost, name)?;
        self.mutate_durably(|p| {
            p.delete(key);
            self.delete_bindings_where(p, vhost, |b| {
                !b.destination_is_exchange && b.destination == name
            })?;
            p.start_dropping(&index)?;
            Ok(())
        })
    }

    fn scan_records<T>(
        &self,
        tag: u8,
        decode: impl Fn(&[u8], &[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.backend.scan_prefix(&[tag], &mut |k, v| {
            out.push(decode(k, v)?);
            Ok(())
        })?;
        Ok(out)
    }
}

fn vhost_of(key: &[u8]) -> Result<Bytes, StoreError> {
    keys::vhost_of(key).map(Bytes::copy_from_slice)
}

impl<B: Backend> DefinitionStore for Engine<B> {
    fn put_vhost(&self, name: &[u8]) -> Result<(), StoreError> {
        keys::vhost_prefix(VHOST, name)?; // length check only
        self.mutate_durably(|p| {
            p.set(keys::simple(VHOST, name), Bytes::new());
            Ok(())
        })
    }

    fn delete_vhost(&self, name: &[u8]) -> Result<(), StoreError> {
        // The records go in one durable batch (the commit point), the entries in chunks
        // after it (see `engine::drop_entries`).
        let index = keys::vhost_prefix(INDEX, name)?;
        self.delete_then_drop(&index, || {
            self.mutate_durably(|p| {
                p.delete(keys::simple(VHOST, name));
                p.delete(keys::simple(VHOST_LIMITS, name));
                for tag in [EXCHANGE, QUEUE, BINDING, PARAMETER] {
                    p.delete_prefix(&keys::vhost_prefix(tag, name)?)?;
                }
                p.start_dropping(&index)?;
                Ok(())
            })
        })
    }

    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let value = encode_user(user)?;
        self.mutate_durably(|p| {
            p.set(keys::simple(USER, &user.name), value);
            Ok(())
        })
    }

    fn delete_user(&self, name: &[u8]) -> Result<(), StoreError> {
        self.mutate_durably(|p| {
            p.delete(keys::simple(USER, name));
            Ok(())
        })
    }

    fn put_exchange(&self, vhost: &[u8], x: &ExchangeRecord) -> Result<(), StoreError> {
        let key = keys::named(EXCHANGE, vhost, "exchange", &x.name)?;
        let value = encode_exchange(x)?;
        self.mutate_durably(|p| {
            p.set(key, value);
            Ok(())
        })
    }

    fn delete_exchange(&self, vhost: &[u8], name: &[u8]) -> Result<(), StoreError> {
        let key = keys::named(EXCHANGE, vhost, "exchange", name)?;
        self.mutate_durably(|p| {
            p.delete(key);
            self.delete_bindings_where(p, vhost, |b| {
                b.source == name || (b.destination_is_exchange && b.destination == name)
            })
        })
    }

    fn put_queue(&self, vhost: &[u8], q: &QueueRecord) -> Result<(), StoreError> {
        let key = keys::named(QUEUE, vhost, "queue", &q.name)?;
        let value = encode_queue(q)?;
        self.mutate_durably(|p| {
            p.set(key, value);
            Ok(())
        })
    }

    fn delete_queue(&self, vhost: &[u8], name: &[u8]) -> Result<(), StoreError> {
        let index = keys::queue_index_prefix(vhost, name)?;
        // The record and bindings go in one durable batch (the commit point), the entries in
        // chunks after it (see `engine::drop_entries`).
        self.delete_then_drop(&index, || self.delete_queue_record(vhost, name))
    }

    fn put_binding(&self, vhost: &[u8], b: &BindingRecord) -> Result<(), StoreError> {
        let key = keys::binding(vhost, b)?;
        let value = encode_binding(b)?;
        self.mutate_durably(|p| {
            p.set(key, value);
            Ok(())
        })
    }

    fn delete_binding(&self, vhost: &[u8], b: &BindingRecord) -> Result<(), StoreError> {
        let key = keys::binding(vhost, b)?;
        self.mutate_durably(|p| {
            p.delete(key);
            Ok(())
        })
    }

    fn put_vhost_limits(&self, vhost: &[u8], limits: &[u8]) -> Result<(), StoreError> {
        keys::vhost_prefix(VHOST_LIMITS, vhost)?; // length check only
        let value = Bytes::copy_from_slice(limits);
        self.mutate_durably(|p| {
            p.set(keys::simple(VHOST_LIMITS, vhost), value);
            Ok(())
        })
    }

    fn put_parameter(&self, vhost: &[u8], p: &ParameterRecord) -> Result<(), StoreError> {
        let key = keys::parameter(vhost, &p.component, &p.name)?;
        let value = encode_parameter(p)?;
        self.mutate_durably(|plan| {
            plan.set(key, value);
            Ok(())
        })
    }

    fn delete_vhost_limits(&self, vhost: &[u8]) -> Result<(), StoreError> {
        self.mutate_durably(|p| {
            p.delete(keys::simple(VHOST_LIMITS, vhost));
            Ok(())
        })
    }

    fn delete_parameter(
        &self,
        vhost: &[u8],
        component: &[u8],
        name: &[u8],
    ) -> Result<(), StoreError> {
        let key = keys::parameter(vhost, component, name)?;
        self.mutate_durably(|p| {
            p.delete(key);
            Ok(())
        })
    }

    fn put_global_parameter(&self, name: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let encoded = encode_global_parameter(name, value)?;
        self.mutate_durably(|p| {
            p.set(keys::simple(GLOBAL_PARAMETER, name), encoded);
            Ok(())
        })
    }

    fn delete_global_parameter(&self, name: &[u8]) -> Result<(), StoreError> {
        self.mutate_durably(|p| {
            p.delete(keys::simple(GLOBAL_PARAMETER, name));
            Ok(())
        })
    }

    fn load_definitions(&self) -> Result<Definitions, StoreError> {
        Ok(Definitions {
            vhosts: self.scan_records(VHOST, |k, _| Ok(Bytes::copy_from_slice(&k[1..])))?,
            users: self.scan_records(USER, |_, v| decode_user(v))?,
            exchanges: self
                .scan_records(EXCHANGE, |k, v| Ok((vhost_of(k)?, decode_exchange(v)?)))?,
            queues: self.scan_records(QUEUE, |k, v| Ok((vhost_of(k)?, decode_queue(v)?)))?,
            bindings: self.scan_records(BINDING, |k, v| Ok((vhost_of(k)?, decode_binding(v)?)))?,
            vhost_limits: self.scan_records(VHOST_LIMITS, |k, v| {
                Ok((Bytes::copy_from_slice(&k[1..]), Bytes::copy_from_slice(v)))
            })?,
            parameters: self
                .scan_records(PARAMETER, |k, v| Ok((vhost_of(k)?, decode_parameter(v)?)))?,
            global_parameters: self
                .scan_records(GLOBAL_PARAMETER, |_, v| decode_global_parameter(v))?,
        })
    }
}
