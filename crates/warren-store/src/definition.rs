//! Durable definitions: virtual hosts (and their limits), users, exchanges, queues, bindings
//! and runtime parameters (policies among them), and the
//! [`DefinitionStore`] trait that stores them.
//!
//! Records hold the broker's own serialisation as opaque bytes (`arguments` is an encoded
//! field table, `tags` whatever the broker's user model writes); this crate never parses them.

use bytes::Bytes;

use crate::StoreError;

/// A durable exchange of one virtual host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExchangeRecord {
    /// The exchange name.
    pub name: Bytes,
    /// The exchange type as declared ("direct", "topic", ...).
    pub kind: Bytes,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Clients cannot publish to it directly.
    pub internal: bool,
    /// The declare arguments, encoded by the broker.
    pub arguments: Bytes,
}

/// A durable queue of one virtual host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueRecord {
    /// The queue name.
    pub name: Bytes,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// The declare arguments, encoded by the broker.
    pub arguments: Bytes,
}

/// A binding from an exchange to a queue or to another exchange.
///
/// A binding is identified by all of its fields: two bindings that differ only in `arguments`
/// are two bindings, as in RabbitMQ.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindingRecord {
    /// The exchange messages flow from.
    pub source: Bytes,
    /// The queue or exchange messages flow to.
    pub destination: Bytes,
    /// `destination` names an exchange, not a queue.
    pub destination_is_exchange: bool,
    /// The binding key.
    pub routing_key: Bytes,
    /// The bind arguments, encoded by the broker.
    pub arguments: Bytes,
}

/// A user of the broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserRecord {
    /// The user name.
    pub name: Bytes,
    /// The password hash, encoded by the broker (algorithm and salt included).
    pub password_hash: Bytes,
    /// The user's tags, encoded by the broker.
    pub tags: Bytes,
    /// The virtual hosts the user may use and what it may do there, encoded by the broker.
    pub permissions: Bytes,
}

/// A runtime parameter of one virtual host (RabbitMQ's `rabbit_runtime_parameters`): policies
/// (component `policy`), operator policies (`operator_policy`) and other components' values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParameterRecord {
    /// The component (`policy`, `operator_policy`, ...).
    pub component: Bytes,
    /// The parameter's name within its component.
    pub name: Bytes,
    /// The value, encoded by the broker (JSON).
    pub value: Bytes,
}

/// Everything [`DefinitionStore::load_definitions`] returns, each list in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definitions {
    /// Virtual host names.
    pub vhosts: Vec<Bytes>,
    /// Users.
    pub users: Vec<UserRecord>,
    /// Exchanges with their virtual host.
    pub exchanges: Vec<(Bytes, ExchangeRecord)>,
    /// Queues with their virtual host.
    pub queues: Vec<(Bytes, QueueRecord)>,
    /// Bindings with their virtual host.
    pub bindings: Vec<(Bytes, BindingRecord)>,
    /// Virtual host limits (RabbitMQ's `vhost-limits` parameter), encoded by the broker, with
    /// their virtual host.
    pub vhost_limits: Vec<(Bytes, Bytes)>,
    /// Runtime parameters (policies included) with their virtual host.
    pub parameters: Vec<(Bytes, ParameterRecord)>,
    /// Global runtime parameters: name and value (encoded by the broker).
    pub global_parameters: Vec<(Bytes, Bytes)>,
}

/// Stores definitions. Every call is durable when it returns `Ok` (definitions change rarely,
/// so each call flushes). Puts overwrite; deletes of something absent succeed.
pub trait DefinitionStore: Send + Sync {
    /// Stores a virtual host.
    fn put_vhost(&self, name: &[u8]) -> Result<(), StoreError>;
    /// Deletes a virtual host and everything in it: exchanges, queues, bindings, messages.
    fn delete_vhost(&self, name: &[u8]) -> Result<(), StoreError>;
    /// Stores (or replaces) a user.
    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Deletes a user.
    fn delete_user(&self, name: &[u8]) -> Result<(), StoreError>;
    /// Stores (or replaces) an exchange.
    fn put_exchange(&self, vhost: &[u8], x: &ExchangeRecord) -> Result<(), StoreError>;
    /// Deletes an exchange and every binding to or from it.
    fn delete_exchange(&self, vhost: &[u8], name: &[u8]) -> Result<(), StoreError>;
    /// Stores (or replaces) a queue.
    fn put_queue(&self, vhost: &[u8], q: &QueueRecord) -> Result<(), StoreError>;
    /// Deletes a queue, its bindings, its index entries and messages no other queue holds.
    fn delete_queue(&self, vhost: &[u8], name: &[u8]) -> Result<(), StoreError>;
    /// Stores a binding.
    fn put_binding(&self, vhost: &[u8], b: &BindingRecord) -> Result<(), StoreError>;
    /// Deletes the binding equal to `b` in every field.
    fn delete_binding(&self, vhost: &[u8], b: &BindingRecord) -> Result<(), StoreError>;
    /// Stores (or replaces) a virtual host's limits, encoded by the broker.
    fn put_vhost_limits(&self, vhost: &[u8], limits: &[u8]) -> Result<(), StoreError>;
    /// Deletes a virtual host's limits.
    fn delete_vhost_limits(&self, vhost: &[u8]) -> Result<(), StoreError>;
    /// Stores (or replaces) a runtime parameter of a virtual host.
    fn put_parameter(&self, vhost: &[u8], p: &ParameterRecord) -> Result<(), StoreError>;
    /// Deletes a runtime parameter of a virtual host.
    fn delete_parameter(
        &self,
        vhost: &[u8],
        component: &[u8],
        name: &[u8],
    ) -> Result<(), StoreError>;
    /// Stores (or replaces) a global runtime parameter.
    fn put_global_parameter(&self, name: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Deletes a global runtime parameter.
    fn delete_global_parameter(&self, name: &[u8]) -> Result<(), StoreError>;
    /// Reads every stored definition.
    fn load_definitions(&self) -> Result<Definitions, StoreError>;
}
