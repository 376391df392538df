//! A published message, shared by every queue it is routed to, and its stored form.

use bytes::{BufMut, Bytes, BytesMut};
use warren_codec::{FieldError, RawProperties, ShortStr, wire, wire::Reader};

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

/// Version byte of [`Message::encode`]'s layout.
const STORED_FORMAT: u8 = 1;

/// A stored message that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredMessageError {
    /// The layout version is not one this build reads.
    #[error("stored message has layout version {0}, this build reads {STORED_FORMAT}")]
    Version(u8),
    /// The bytes are cut short or malformed.
    #[error("stored message is malformed: {0}")]
    Malformed(#[from] FieldError),
}

impl Message {
    /// Size of the body in bytes.
    pub fn body_size(&self) -> usize {
        self.body.len()
    }

    /// The form kept by the message store: version, exchange, routing key, properties, body.
    pub fn encode(&self) -> Bytes {
        let props = self.properties.as_bytes();
        let mut buf = BytesMut::with_capacity(
            1 + 2
                + self.exchange.len()
                + self.routing_key.len()
                + 4
                + props.len()
                + self.body.len(),
        );
        buf.put_u8(STORED_FORMAT);
        wire::put_short_str(&mut buf, &self.exchange);
        wire::put_short_str(&mut buf, &self.routing_key);
        wire::put_long_bytes(&mut buf, props);
        buf.put_slice(&self.body);
        buf.freeze()
    }

    /// Reads back [`Message::encode`]'s output; the fields are slices of `stored`, not copies.
    pub fn decode(stored: &Bytes) -> Result<Message, StoredMessageError> {
        let mut r = Reader::new(stored);
        let version = r.octet()?;
        if version != STORED_FORMAT {
            return Err(StoredMessageError::Version(version));
        }
        let exchange = r.short_str()?;
        let routing_key = r.short_str()?;
        let (properties, _) = RawProperties::parse(r.long_bytes()?)?;
        let body = r.take(r.remaining())?;
        let persistent = properties.delivery_mode() == Some(2);
        Ok(Message {
            exchange,
            routing_key,
            properties,
            body,
            persistent,
        })
    }
}

#[cfg(test)]
mod tests {
    use warren_codec::BasicProperties;

    use super::*;

    #[test]
    fn stored_form_round_trips() {
        let m = Message {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            properties: BasicProperties {
                delivery_mode: Some(2),
                content_type: Some("t/p".into()),
                ..Default::default()
            }
            .to_raw(),
            body: Bytes::from_static(b"payload"),
            persistent: true,
        };
        assert_eq!(Message::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn unknown_layout_and_truncation_are_errors() {
        assert_eq!(
            Message::decode(&Bytes::from_static(&[9, 0, 0])),
            Err(StoredMessageError::Version(9))
        );
        assert!(Message::decode(&Bytes::from_static(&[1, 5, b'a'])).is_err());
    }
}
