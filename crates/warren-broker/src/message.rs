//! A published message, shared by every queue it is routed to, and its stored form.

use std::num::NonZeroU64;

use bytes::{BufMut, Bytes, BytesMut};
use warren_codec::{
    FieldError, FieldTable, FieldValue, RawProperties, ShortStr, wire, wire::Reader,
};

use warren_store::MessageId;

use crate::BrokerError;

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
    /// The `priority` property (0 when absent); a priority queue caps it at its maximum.
    pub priority: u8,
    /// The `expiration` property: a per-message TTL in milliseconds.
    pub expiration_ms: Option<u64>,
    /// When the message was published (or dead-lettered), milliseconds since the Unix epoch:
    /// TTLs count from here, also across a restart.
    pub timestamp_ms: u64,
    /// The id the store keeps it under, set before the message is shared when a durable queue
    /// will store it: queues name it in their store ops, so the store never reads an index
    /// entry to learn it. `NonZeroU64` keeps the option at 8 bytes (ids start at 1).
    pub(crate) store_id: Option<NonZeroU64>,
}

/// Version byte of [`Message::encode`]'s layout. Version 1 lacked the timestamp.
const STORED_FORMAT: u8 = 2;

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
    /// A message as published at `timestamp_ms`, with the fields the broker acts on read from
    /// its properties. An `expiration` that is not a non-negative integer is refused with
    /// RabbitMQ's 406 text.
    pub fn new(
        exchange: ShortStr,
        routing_key: ShortStr,
        properties: RawProperties,
        body: Bytes,
        timestamp_ms: u64,
    ) -> Result<Message, BrokerError> {
        let fields = properties.broker_fields();
        let expiration_ms = match &fields.expiration {
            Some(text) => Some(parse_expiration(text.as_bytes()).map_err(|why| {
                BrokerError::precondition(format!("invalid expiration '{text}': {why}"))
            })?),
            None => None,
        };
        Ok(Message {
            exchange,
            routing_key,
            properties,
            body,
            persistent: fields.delivery_mode == Some(2),
            priority: fields.priority.unwrap_or(0),
            expiration_ms,
            timestamp_ms,
            store_id: None,
        })
    }

    /// The message, to be stored under `id` (an id of 0, which the store never hands out,
    /// leaves it unstored).
    pub fn with_store_id(mut self, id: MessageId) -> Message {
        self.store_id = NonZeroU64::new(id);
        self
    }

    /// The id the store keeps it under; `None` when no durable queue stores it.
    pub fn store_id(&self) -> Option<MessageId> {
        self.store_id.map(NonZeroU64::get)
    }

    /// A copy carrying `x-delivery-count = count` in its headers, as a queue with a delivery
    /// limit marks a returned message. The body is shared, not copied.
    pub fn with_delivery_count(&self, count: u32) -> Message {
        let mut m = self.clone();
        if let Ok(mut p) = self.properties.decode() {
            p.headers
                .get_or_insert_with(FieldTable::new)
                .insert("x-delivery-count", FieldValue::I64(i64::from(count)));
            m.properties = p.to_raw();
        }
        m
    }

    /// Size of the body in bytes.
    pub fn body_size(&self) -> usize {
        self.body.len()
    }

    /// The form kept by the message store: version, exchange, routing key, properties, body.
    pub fn encode(&self) -> Bytes {
        let props = self.properties.as_bytes();
        let mut buf = BytesMut::with_capacity(
            1 + 8
                + 2
                + self.exchange.len()
                + self.routing_key.len()
                + 4
                + props.len()
                + self.body.len(),
        );
        buf.put_u8(STORED_FORMAT);
        buf.put_u64(self.timestamp_ms);
        wire::put_short_str(&mut buf, &self.exchange);
        wire::put_short_str(&mut buf, &self.routing_key);
        wire::put_long_bytes(&mut buf, props);
        buf.put_slice(&self.body);
        buf.freeze()
    }

    /// Reads back [`Message::encode`]'s output; the fields are slices of `stored`, not copies.
    /// Messages stored by version 1, which kept no timestamp, take `now_ms`.
    pub fn decode(stored: &Bytes, now_ms: u64) -> Result<Message, StoredMessageError> {
        let mut r = Reader::new(stored);
        let version = r.octet()?;
        let timestamp_ms = match version {
            1 => now_ms,
            STORED_FORMAT => r.longlong()?,
            other => return Err(StoredMessageError::Version(other)),
        };
        let exchange = r.short_str()?;
        let routing_key = r.short_str()?;
        let properties = RawProperties::check(r.long_bytes()?)?;
        let body = r.take(r.remaining())?;
        let fields = properties.broker_fields();
        Ok(Message {
            exchange,
            routing_key,
            properties,
            body,
            persistent: fields.delivery_mode == Some(2),
            priority: fields.priority.unwrap_or(0),
            // Checked at publish; a value that no longer parses is treated as absent.
            expiration_ms: fields
                .expiration
                .and_then(|e| parse_expiration(e.as_bytes()).ok()),
            timestamp_ms,
            store_id: None,
        })
    }
}

/// Parses an `expiration` property as RabbitMQ does, with its error terms as the reason.
fn parse_expiration(text: &[u8]) -> Result<u64, String> {
    let s = std::str::from_utf8(text).map_err(|_| "no_integer".to_string())?;
    let digits_end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, rest) = s.split_at(digits_end);
    let n: i64 = number.parse().map_err(|_| "no_integer".to_string())?;
    if !rest.is_empty() {
        return Err(format!("{{leftover_string,\"{rest}\"}}"));
    }
    if n < 0 {
        return Err(format!("{{value_negative,{n}}}"));
    }
    Ok(n as u64)
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
            priority: 0,
            expiration_ms: None,
            timestamp_ms: 1_700_000_000_123,
            store_id: None,
        };
        assert_eq!(Message::decode(&m.encode(), 5), Ok(m));
    }

    #[test]
    fn expiration_is_parsed_as_rabbitmq_does() {
        assert_eq!(parse_expiration(b"0"), Ok(0));
        assert_eq!(parse_expiration(b"60000"), Ok(60000));
        assert_eq!(parse_expiration(b"abc"), Err("no_integer".to_string()));
        assert_eq!(parse_expiration(b""), Err("no_integer".to_string()));
        assert_eq!(
            parse_expiration(b"-5"),
            Err("{value_negative,-5}".to_string())
        );
        assert_eq!(
            parse_expiration(b"10s"),
            Err("{leftover_string,\"s\"}".to_string())
        );
    }

    #[test]
    fn new_reads_priority_and_expiration_and_refuses_a_bad_one() {
        let props = |exp: &str| {
            BasicProperties {
                priority: Some(7),
                expiration: Some(exp.into()),
                ..Default::default()
            }
            .to_raw()
        };
        let m = Message::new("".into(), "k".into(), props("250"), Bytes::new(), 9).unwrap();
        assert_eq!(
            (m.priority, m.expiration_ms, m.timestamp_ms),
            (7, Some(250), 9)
        );
        let e = Message::new("".into(), "k".into(), props("x"), Bytes::new(), 9).unwrap_err();
        assert_eq!(e.text, "invalid expiration 'x': no_integer");
    }

    #[test]
    fn unknown_layout_and_truncation_are_errors() {
        assert_eq!(
            Message::decode(&Bytes::from_static(&[9, 0, 0]), 0),
            Err(StoredMessageError::Version(9))
        );
        assert!(Message::decode(&Bytes::from_static(&[1, 5, b'a']), 0).is_err());
    }
}
