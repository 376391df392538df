//! A published message, shared by every queue it is routed to.

use bytes::Bytes;
use warren_codec::{RawProperties, ShortStr};

/// A message as published: immutable, shared by `Arc` between the queues it reached, never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The exchange it was published to.
    pub exchange: ShortStr,
    /// The routing key it was published with.
    pub routing_key: ShortStr,
    /// The content header's property list, as received.
    pub properties: RawProperties,
    /// The body.
    pub body: Bytes,
    /// Delivery mode 2.
    pub persistent: bool,
}

impl Message {
    /// Size of the body in bytes.
    pub fn body_size(&self) -> usize {
        self.body.len()
    }
}
