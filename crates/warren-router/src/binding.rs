//! Bindings as the router lists them for the broker's persistence and management listings.

use warren_codec::{FieldTable, ShortStr};

/// Where a listed binding leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    /// A queue, by name.
    Queue(&'a ShortStr),
    /// An exchange, by name.
    Exchange(&'a ShortStr),
}

/// One binding, borrowed from the router, for listing and persistence.
#[derive(Debug, Clone, Copy)]
pub struct BindingRef<'a> {
    /// The source exchange.
    pub source: &'a ShortStr,
    /// The destination queue or exchange.
    pub destination: Destination<'a>,
    /// The binding key.
    pub routing_key: &'a ShortStr,
    /// The binding arguments, sorted by key as RabbitMQ stores them.
    pub arguments: &'a FieldTable,
}
