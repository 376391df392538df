//! Content headers and the `basic` class's fourteen properties.
//!
//! A content header is kept as the bytes it arrived in ([`RawProperties`]) so that a delivery can
//! send it on without re-encoding; [`RawProperties::decode`] parses it when the broker needs a
//! field (delivery mode, priority, expiration, headers).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::FieldError;
use crate::field_table::FieldTable;
use crate::strings::ShortStr;
use crate::wire::{self, Reader};

/// The properties of a `basic` message. `None` means the property is absent (its flag bit clear).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicProperties {
    /// MIME content type.
    pub content_type: Option<ShortStr>,
    /// MIME content encoding.
    pub content_encoding: Option<ShortStr>,
    /// Application headers.
    pub headers: Option<FieldTable>,
    /// 1 for transient, 2 for persistent.
    pub delivery_mode: Option<u8>,
    /// Message priority, 0 to 9 by convention.
    pub priority: Option<u8>,
    /// Application correlation identifier.
    pub correlation_id: Option<ShortStr>,
    /// Address to reply to.
    pub reply_to: Option<ShortStr>,
    /// Message expiration in milliseconds, as a decimal string.
    pub expiration: Option<ShortStr>,
    /// Application message identifier.
    pub message_id: Option<ShortStr>,
    /// Message timestamp, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Message type name (`type` on the wire).
    pub kind: Option<ShortStr>,
    /// Creating user id.
    pub user_id: Option<ShortStr>,
    /// Creating application id.
    pub app_id: Option<ShortStr>,
    /// Reserved; RabbitMQ calls it `cluster-id`.
    pub cluster_id: Option<ShortStr>,
}

/// Bit positions of each property in the property-flags word, highest first.
mod flag {
    pub const CONTENT_TYPE: u16 = 1 << 15;
    pub const CONTENT_ENCODING: u16 = 1 << 14;
    pub const HEADERS: u16 = 1 << 13;
    pub const DELIVERY_MODE: u16 = 1 << 12;
    pub const PRIORITY: u16 = 1 << 11;
    pub const CORRELATION_ID: u16 = 1 << 10;
    pub const REPLY_TO: u16 = 1 << 9;
    pub const EXPIRATION: u16 = 1 << 8;
    pub const MESSAGE_ID: u16 = 1 << 7;
    pub const TIMESTAMP: u16 = 1 << 6;
    pub const TYPE: u16 = 1 << 5;
    pub const USER_ID: u16 = 1 << 4;
    pub const APP_ID: u16 = 1 << 3;
    pub const CLUSTER_ID: u16 = 1 << 2;
    /// Another flags word follows; the basic class never needs one.
    pub const CONTINUATION: u16 = 1;
}

/// How one property's value is laid out on the wire.
#[derive(Clone, Copy)]
enum Layout {
    ShortStr,
    Table,
    Octet,
    LongLong,
}

/// The basic class's properties in wire order, for walks that only check.
const LAYOUT: [(u16, Layout); 14] = [
    (flag::CONTENT_TYPE, Layout::ShortStr),
    (flag::CONTENT_ENCODING, Layout::ShortStr),
    (flag::HEADERS, Layout::Table),
    (flag::DELIVERY_MODE, Layout::Octet),
    (flag::PRIORITY, Layout::Octet),
    (flag::CORRELATION_ID, Layout::ShortStr),
    (flag::REPLY_TO, Layout::ShortStr),
    (flag::EXPIRATION, Layout::ShortStr),
    (flag::MESSAGE_ID, Layout::ShortStr),
    (flag::TIMESTAMP, Layout::LongLong),
    (flag::TYPE, Layout::ShortStr),
    (flag::USER_ID, Layout::ShortStr),
    (flag::APP_ID, Layout::ShortStr),
    (flag::CLUSTER_ID, Layout::ShortStr),
];

impl BasicProperties {
    /// The property-flags word for the properties present.
    pub fn flags(&self) -> u16 {
        let mut f = 0;
        let mut set = |present: bool, bit: u16| {
            if present {
                f |= bit;
            }
        };
        set(self.content_type.is_some(), flag::CONTENT_TYPE);
        set(self.content_encoding.is_some(), flag::CONTENT_ENCODING);
        set(self.headers.is_some(), flag::HEADERS);
        set(self.delivery_mode.is_some(), flag::DELIVERY_MODE);
        set(self.priority.is_some(), flag::PRIORITY);
        set(self.correlation_id.is_some(), flag::CORRELATION_ID);
        set(self.reply_to.is_some(), flag::REPLY_TO);
        set(self.expiration.is_some(), flag::EXPIRATION);
        set(self.message_id.is_some(), flag::MESSAGE_ID);
        set(self.timestamp.is_some(), flag::TIMESTAMP);
        set(self.kind.is_some(), flag::TYPE);
        set(self.user_id.is_some(), flag::USER_ID);
        set(self.app_id.is_some(), flag::APP_ID);
        set(self.cluster_id.is_some(), flag::CLUSTER_ID);
        f
    }

    /// Writes the flags word and the present properties.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.flags());
        let s = |buf: &mut BytesMut, v: &Option<ShortStr>| {
            if let Some(v) = v {
                wire::put_short_str(buf, v);
            }
        };
        s(buf, &self.content_type);
        s(buf, &self.content_encoding);
        if let Some(h) = &self.headers {
            h.encode(buf);
        }
        if let Some(v) = self.delivery_mode {
            buf.put_u8(v);
        }
        if let Some(v) = self.priority {
            buf.put_u8(v);
        }
        s(buf, &self.correlation_id);
        s(buf, &self.reply_to);
        s(buf, &self.expiration);
        s(buf, &self.message_id);
        if let Some(v) = self.timestamp {
            buf.put_u64(v);
        }
        s(buf, &self.kind);
        s(buf, &self.user_id);
        s(buf, &self.app_id);
        s(buf, &self.cluster_id);
    }

    /// Reads a flags word (and any continuation words) and the properties it announces.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, FieldError> {
        Self::walk(r, true)
    }

    /// Walks a property list; with `build` false, tables are only checked, not built, and the
    /// returned headers are always `None`.
    fn walk(r: &mut Reader<'_>, build: bool) -> Result<Self, FieldError> {
        let flags = r.short()?;
        let mut more = flags & flag::CONTINUATION != 0;
        // Continuation words announce properties the basic class does not have; skip them.
        while more {
            more = r.short()? & flag::CONTINUATION != 0;
        }
        let has = |bit: u16| flags & bit != 0;
        let mut p = BasicProperties::default();
        let ss = |r: &mut Reader<'_>, bit: u16| -> Result<Option<ShortStr>, FieldError> {
            if has(bit) {
                r.short_str().map(Some)
            } else {
                Ok(None)
            }
        };
        p.content_type = ss(r, flag::CONTENT_TYPE)?;
        p.content_encoding = ss(r, flag::CONTENT_ENCODING)?;
        if has(flag::HEADERS) {
            if build {
                p.headers = Some(FieldTable::decode(r)?);
            } else {
                FieldTable::skip(r)?;
            }
        }
        if has(flag::DELIVERY_MODE) {
            p.delivery_mode = Some(r.octet()?);
        }
        if has(flag::PRIORITY) {
            p.priority = Some(r.octet()?);
        }
        p.correlation_id = ss(r, flag::CORRELATION_ID)?;
        p.reply_to = ss(r, flag::REPLY_TO)?;
        p.expiration = ss(r, flag::EXPIRATION)?;
        p.message_id = ss(r, flag::MESSAGE_ID)?;
        if has(flag::TIMESTAMP) {
            p.timestamp = Some(r.longlong()?);
        }
        p.kind = ss(r, flag::TYPE)?;
        p.user_id = ss(r, flag::USER_ID)?;
        p.app_id = ss(r, flag::APP_ID)?;
        p.cluster_id = ss(r, flag::CLUSTER_ID)?;
        Ok(p)
    }

    /// Encodes the properties into a [`RawProperties`].
    pub fn to_raw(&self) -> RawProperties {
        let mut buf = BytesMut::with_capacity(64);
        self.encode(&mut buf);
        RawProperties(buf.freeze())
    }
}

/// A property list exactly as received (flags word(s) then values), checked to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawProperties(Bytes);

impl RawProperties {
    /// The encoding of "no properties": a zero flags word.
    pub const EMPTY: RawProperties = RawProperties(Bytes::from_static(&[0, 0]));

    /// The raw bytes, flags word first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Wraps bytes that are known to decode (for instance, read back from the broker's own store).
    pub fn from_trusted(bytes: Bytes) -> Self {
        RawProperties(bytes)
    }

    /// Checks that `bytes` decode as a whole property list and wraps them, building nothing:
    /// every content header is checked on arrival, and the broker reads only a few fields later
    /// ([`Self::broker_fields`]), so this is the per-message check (about a tenth of a 16-byte
    /// message's broker CPU went to building and dropping a [`BasicProperties`] here).
    pub fn check(bytes: Bytes) -> Result<Self, FieldError> {
        let mut r = Reader::new(&bytes);
        let flags = r.short()?;
        let mut more = flags & flag::CONTINUATION != 0;
        while more {
            more = r.short()? & flag::CONTINUATION != 0;
        }
        for (bit, layout) in LAYOUT {
            if flags & bit == 0 {
                continue;
            }
            match layout {
                Layout::ShortStr => r.skip_short_str()?,
                Layout::Table => FieldTable::skip(&mut r)?,
                Layout::Octet => {
                    r.octet()?;
                }
                Layout::LongLong => {
                    r.longlong()?;
                }
            }
        }
        r.finish()?;
        Ok(RawProperties(bytes))
    }

    /// Checks that `bytes` decode as a whole property list and wraps them, returning the parsed
    /// properties except `headers`, which are checked but not built (ask [`Self::decode`]).
    pub fn parse(bytes: Bytes) -> Result<(Self, BasicProperties), FieldError> {
        let mut r = Reader::new(&bytes);
        let props = BasicProperties::walk(&mut r, false)?;
        r.finish()?;
        Ok((RawProperties(bytes), props))
    }

    /// The delivery mode (2 is persistent), found without decoding the rest.
    pub fn delivery_mode(&self) -> Option<u8> {
        self.broker_fields().delivery_mode
    }

    /// The fields the broker acts on for every message (delivery mode, priority, reply-to,
    /// expiration), found in one pass without building the headers table. Malformed or
    /// continued flag words give the fields read before the problem (the list was validated on
    /// arrival, so that does not happen for received properties).
    pub fn broker_fields(&self) -> BrokerFields {
        let mut out = BrokerFields::default();
        let mut r = Reader::new(&self.0);
        let Ok(flags) = r.short() else { return out };
        if flags & flag::CONTINUATION != 0 {
            if let Ok(p) = self.decode() {
                out.delivery_mode = p.delivery_mode;
                out.priority = p.priority;
                out.reply_to = p.reply_to;
                out.expiration = p.expiration;
            }
            return out;
        }
        let _ = Self::walk_broker_fields(&mut r, flags, &mut out);
        out
    }

    fn walk_broker_fields(
        r: &mut Reader<'_>,
        flags: u16,
        out: &mut BrokerFields,
    ) -> Result<(), FieldError> {
        if flags & flag::CONTENT_TYPE != 0 {
            r.skip_short_str()?;
        }
        if flags & flag::CONTENT_ENCODING != 0 {
            r.skip_short_str()?;
        }
        if flags & flag::HEADERS != 0 {
            FieldTable::skip(r)?;
        }
        if flags & flag::DELIVERY_MODE != 0 {
            out.delivery_mode = Some(r.octet()?);
        }
        if flags & flag::PRIORITY != 0 {
            out.priority = Some(r.octet()?);
        }
        if flags & flag::CORRELATION_ID != 0 {
            r.skip_short_str()?;
        }
        if flags & flag::REPLY_TO != 0 {
            out.reply_to = Some(r.short_str()?);
        }
        if flags & flag::EXPIRATION != 0 {
            out.expiration = Some(r.short_str()?);
        }
        Ok(())
    }

    /// The `reply-to` property, found without building the rest; one flag test when absent
    /// (every publish asks, for direct reply-to).
    pub fn reply_to(&self) -> Option<ShortStr> {
        let flags = u16::from_be_bytes([*self.0.first()?, *self.0.get(1)?]);
        if flags & flag::REPLY_TO == 0 {
            return None;
        }
        self.broker_fields().reply_to
    }

    /// True when the headers flag is set.
    pub fn has_headers(&self) -> bool {
        self.0.first().is_some_and(|b| b & 0x20 != 0)
    }

    /// True when the `user_id` flag is set (read from the flags word alone, so the publish
    /// path pays for the check only when a message claims a user).
    pub fn has_user_id(&self) -> bool {
        self.0
            .get(1)
            .is_some_and(|b| u16::from(*b) & flag::USER_ID != 0)
    }

    /// Parses the properties.
    pub fn decode(&self) -> Result<BasicProperties, FieldError> {
        BasicProperties::decode(&mut Reader::new(&self.0))
    }
}

/// The properties a broker acts on, as [`RawProperties::broker_fields`] finds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerFields {
    /// 2 is persistent.
    pub delivery_mode: Option<u8>,
    /// The message's priority.
    pub priority: Option<u8>,
    /// The reply-to address.
    pub reply_to: Option<ShortStr>,
    /// The per-message TTL, milliseconds as a decimal string.
    pub expiration: Option<ShortStr>,
}

impl Default for RawProperties {
    fn default() -> Self {
        RawProperties::EMPTY
    }
}

/// A content header frame's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHeader {
    /// The class of the content's method; always 60 (`basic`) in 0-9-1.
    pub class_id: u16,
    /// Total size of the body that follows, in bytes.
    pub body_size: u64,
    /// The property list as received.
    pub properties: RawProperties,
}

impl ContentHeader {
    /// A `basic` content header.
    pub fn basic(body_size: u64, properties: RawProperties) -> Self {
        ContentHeader {
            class_id: crate::class::BASIC,
            body_size,
            properties,
        }
    }

    /// Decodes a header frame payload: class id, weight (ignored, always 0), body size, properties.
    pub fn decode(payload: &Bytes) -> Result<Self, FieldError> {
        let mut r = Reader::new(payload);
        let class_id = r.short()?;
        let _weight = r.short()?;
        let body_size = r.longlong()?;
        let rest = r.take(r.remaining())?;
        let properties = RawProperties::check(rest)?;
        Ok(ContentHeader {
            class_id,
            body_size,
            properties,
        })
    }

    /// Writes the header frame payload.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.class_id);
        buf.put_u16(0);
        buf.put_u64(self.body_size);
        buf.put_slice(self.properties.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_fourteen_properties_round_trip_in_flag_order() {
        let p = BasicProperties {
            content_type: Some("text/plain".into()),
            content_encoding: Some("gzip".into()),
            headers: Some([("a", 1)].into_iter().collect()),
            delivery_mode: Some(2),
            priority: Some(9),
            correlation_id: Some("c".into()),
            reply_to: Some("r".into()),
            expiration: Some("1000".into()),
            message_id: Some("m".into()),
            timestamp: Some(42),
            kind: Some("t".into()),
            user_id: Some("guest".into()),
            app_id: Some("app".into()),
            cluster_id: Some("cl".into()),
        };
        assert_eq!(p.flags(), 0xfffc);
        let raw = p.to_raw();
        assert_eq!(raw.decode().unwrap(), p);
    }

    #[test]
    fn delivery_mode_is_found_past_strings_and_headers() {
        let p = BasicProperties {
            content_type: Some("a/b".into()),
            content_encoding: Some("x".into()),
            headers: Some([("k", 1)].into_iter().collect()),
            delivery_mode: Some(2),
            priority: Some(1),
            ..Default::default()
        };
        assert_eq!(p.to_raw().delivery_mode(), Some(2));
        assert_eq!(BasicProperties::default().to_raw().delivery_mode(), None);
    }

    #[test]
    fn reply_to_is_found_past_every_earlier_property() {
        let p = BasicProperties {
            content_type: Some("a/b".into()),
            content_encoding: Some("x".into()),
            headers: Some([("k", 1)].into_iter().collect()),
            delivery_mode: Some(2),
            priority: Some(1),
            correlation_id: Some("c-1".into()),
            reply_to: Some("amq.rabbitmq.reply-to".into()),
            expiration: Some("10".into()),
            ..Default::default()
        };
        assert_eq!(
            p.to_raw().reply_to(),
            Some(ShortStr::from("amq.rabbitmq.reply-to"))
        );
        let without = BasicProperties {
            reply_to: None,
            ..p
        };
        assert_eq!(without.to_raw().reply_to(), None);
        assert_eq!(RawProperties::EMPTY.reply_to(), None);
    }

    #[test]
    fn no_properties_is_a_zero_flags_word() {
        assert_eq!(BasicProperties::default().to_raw(), RawProperties::EMPTY);
    }

    #[test]
    fn trailing_bytes_after_properties_are_refused() {
        let bytes = Bytes::from_static(&[0x10, 0x00, 2, 0xff]);
        assert_eq!(
            RawProperties::parse(bytes.clone()).map(|_| ()),
            Err(FieldError::TrailingBytes(1))
        );
        assert_eq!(
            RawProperties::check(bytes).map(|_| ()),
            Err(FieldError::TrailingBytes(1))
        );
    }
}
