//! Field tables and arrays, with the type tags RabbitMQ reads and writes.
//!
//! RabbitMQ's tags differ from the 0-9-1 spec's errata (for instance `s` is a signed 16-bit
//! integer and `l` a signed 64-bit one); clients follow RabbitMQ, so this module does too. Tables
//! keep their entries in the order received so that headers go back out byte for byte.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::FieldError;
use crate::strings::{LongStr, ShortStr};
use crate::wire::{self, Reader};

/// How deeply tables and arrays may nest before the decoder refuses them, so that a hostile frame
/// cannot exhaust the stack. RabbitMQ clients never come close.
pub const MAX_TABLE_DEPTH: usize = 64;

/// A decimal number: `value / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Decimal {
    /// Number of decimal digits after the point.
    pub scale: u8,
    /// The unscaled value.
    pub value: u32,
}

/// One value in a field table or array.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `t`: boolean.
    Bool(bool),
    /// `b`: signed 8-bit integer.
    I8(i8),
    /// `B`: unsigned 8-bit integer.
    U8(u8),
    /// `s`: signed 16-bit integer.
    I16(i16),
    /// `u`: unsigned 16-bit integer.
    U16(u16),
    /// `I`: signed 32-bit integer.
    I32(i32),
    /// `i`: unsigned 32-bit integer.
    U32(u32),
    /// `l`: signed 64-bit integer.
    I64(i64),
    /// `f`: 32-bit float.
    F32(f32),
    /// `d`: 64-bit float.
    F64(f64),
    /// `D`: decimal.
    Decimal(Decimal),
    /// `S`: long string.
    LongStr(LongStr),
    /// `A`: array.
    Array(Vec<FieldValue>),
    /// `T`: timestamp, seconds since the epoch.
    Timestamp(u64),
    /// `F`: nested table.
    Table(FieldTable),
    /// `V`: no value.
    Void,
    /// `x`: byte array.
    Bytes(Bytes),
}

impl FieldValue {
    /// The type tag this value is written with.
    pub fn tag(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal(_) => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::Bytes(_) => b'x',
        }
    }

    /// The value as a signed integer, when it is of any integer type.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value's bytes when it is a long string or byte array.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(s) => Some(s.as_bytes()),
            FieldValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value as text when it is a UTF-8 long string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongStr(s) => s.as_str(),
            _ => None,
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, depth: usize) -> Result<Self, FieldError> {
        let tag = r.octet()?;
        Ok(match tag {
            b't' => FieldValue::Bool(r.octet()? != 0),
            b'b' => FieldValue::I8(r.octet()? as i8),
            b'B' => FieldValue::U8(r.octet()?),
            b's' => FieldValue::I16(r.short()? as i16),
            b'u' => FieldValue::U16(r.short()?),
            b'I' => FieldValue::I32(r.long()? as i32),
            b'i' => FieldValue::U32(r.long()?),
            // py-amqp writes integers beyond 32 bits as 'L'; RabbitMQ reads it as a signed
            // 64-bit integer, the same as 'l', and so do we (re-encoding writes 'l').
            b'l' | b'L' => FieldValue::I64(r.longlong()? as i64),
            b'f' => FieldValue::F32(f32::from_bits(r.long()?)),
            b'd' => FieldValue::F64(f64::from_bits(r.longlong()?)),
            b'D' => FieldValue::Decimal(Decimal {
                scale: r.octet()?,
                value: r.long()?,
            }),
            b'S' => FieldValue::LongStr(r.long_str()?),
            b'A' => FieldValue::Array(decode_array(r, depth + 1)?),
            b'T' => FieldValue::Timestamp(r.longlong()?),
            b'F' => FieldValue::Table(FieldTable::decode_nested(r, depth + 1)?),
            b'V' => FieldValue::Void,
            b'x' => FieldValue::Bytes(r.long_bytes()?),
            other => return Err(FieldError::UnknownFieldType(other)),
        })
    }

    /// Checks that a value decodes, without building it: the hot path validates headers it will
    /// pass on untouched.
    pub(crate) fn skip(r: &mut Reader<'_>, depth: usize) -> Result<(), FieldError> {
        let tag = r.octet()?;
        let fixed = match tag {
            b't' | b'b' | b'B' => 1,
            b's' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'l' | b'L' | b'd' | b'T' => 8,
            b'D' => 5,
            b'V' => 0,
            b'S' | b'x' => {
                r.long_bytes()?;
                return Ok(());
            }
            b'A' => {
                if depth + 1 > MAX_TABLE_DEPTH {
                    return Err(FieldError::TooDeep);
                }
                let body = r.long_bytes()?;
                let mut inner = Reader::new(&body);
                while inner.remaining() > 0 {
                    FieldValue::skip(&mut inner, depth + 1)?;
                }
                return Ok(());
            }
            b'F' => return FieldTable::skip_nested(r, depth + 1),
            other => return Err(FieldError::UnknownFieldType(other)),
        };
        r.take(fixed).map(|_| ())
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.tag());
        match self {
            FieldValue::Bool(v) => buf.put_u8(u8::from(*v)),
            FieldValue::I8(v) => buf.put_i8(*v),
            FieldValue::U8(v) => buf.put_u8(*v),
            FieldValue::I16(v) => buf.put_i16(*v),
            FieldValue::U16(v) => buf.put_u16(*v),
            FieldValue::I32(v) => buf.put_i32(*v),
            FieldValue::U32(v) => buf.put_u32(*v),
            FieldValue::I64(v) => buf.put_i64(*v),
            FieldValue::F32(v) => buf.put_u32(v.to_bits()),
            FieldValue::F64(v) => buf.put_u64(v.to_bits()),
            FieldValue::Decimal(d) => {
                buf.put_u8(d.scale);
                buf.put_u32(d.value);
            }
            FieldValue::LongStr(s) => wire::put_long_str(buf, s),
            FieldValue::Array(items) => {
                let at = wire::begin_long_len(buf);
                for item in items {
                    item.encode(buf);
                }
                wire::patch_long_len(buf, at);
            }
            FieldValue::Timestamp(v) => buf.put_u64(*v),
            FieldValue::Table(t) => t.encode(buf),
            FieldValue::Void => {}
            FieldValue::Bytes(b) => wire::put_long_bytes(buf, b),
        }
    }
}

fn decode_array(r: &mut Reader<'_>, depth: usize) -> Result<Vec<FieldValue>, FieldError> {
    if depth > MAX_TABLE_DEPTH {
        return Err(FieldError::TooDeep);
    }
    let body = r.long_bytes()?;
    let mut inner = Reader::new(&body);
    let mut items = Vec::new();
    while inner.remaining() > 0 {
        items.push(FieldValue::decode(&mut inner, depth)?);
    }
    Ok(items)
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::LongStr(s.into())
    }
}

impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}

impl From<i32> for FieldValue {
    fn from(v: i32) -> Self {
        FieldValue::I32(v)
    }
}

impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::I64(v)
    }
}

impl From<FieldTable> for FieldValue {
    fn from(t: FieldTable) -> Self {
        FieldValue::Table(t)
    }
}

/// An AMQP field table: named values, in the order they arrived.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTable {
    entries: Vec<(ShortStr, FieldValue)>,
}

impl FieldTable {
    /// An empty table.
    pub const fn new() -> Self {
        FieldTable {
            entries: Vec::new(),
        }
    }

    /// The value under `key`; with duplicate keys, the first one.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// True when the table has an entry under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, replacing an existing entry in place or appending a new one.
    pub fn insert(&mut self, key: impl Into<ShortStr>, value: impl Into<FieldValue>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes every entry under `key`, returning the first removed value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let mut removed = None;
        self.entries.retain_mut(|(k, v)| {
            if k.as_bytes() == key.as_bytes() {
                if removed.is_none() {
                    removed = Some(std::mem::replace(v, FieldValue::Void));
                }
                false
            } else {
                true
            }
        });
        removed
    }

    /// The entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&ShortStr, &FieldValue)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads a table (32-bit length, then entries) at the reader's position.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, FieldError> {
        Self::decode_nested(r, 0)
    }

    fn decode_nested(r: &mut Reader<'_>, depth: usize) -> Result<Self, FieldError> {
        if depth > MAX_TABLE_DEPTH {
            return Err(FieldError::TooDeep);
        }
        let body = r.long_bytes()?;
        let mut inner = Reader::new(&body);
        let mut entries = Vec::new();
        while inner.remaining() > 0 {
            let key = inner.short_str()?;
            let value = FieldValue::decode(&mut inner, depth)?;
            entries.push((key, value));
        }
        Ok(FieldTable { entries })
    }

    /// Checks that a table decodes at the reader's position, without building it.
    pub fn skip(r: &mut Reader<'_>) -> Result<(), FieldError> {
        Self::skip_nested(r, 0)
    }

    fn skip_nested(r: &mut Reader<'_>, depth: usize) -> Result<(), FieldError> {
        if depth > MAX_TABLE_DEPTH {
            return Err(FieldError::TooDeep);
        }
        let body = r.long_bytes()?;
        let mut inner = Reader::new(&body);
        while inner.remaining() > 0 {
            inner.short_str()?;
            FieldValue::skip(&mut inner, depth)?;
        }
        Ok(())
    }

    /// Writes the table (32-bit length, then entries).
    pub fn encode(&self, buf: &mut BytesMut) {
        let at = wire::begin_long_len(buf);
        for (k, v) in &self.entries {
            wire::put_short_str(buf, k);
            v.encode(buf);
        }
        wire::patch_long_len(buf, at);
    }
}

impl<K: Into<ShortStr>, V: Into<FieldValue>> FromIterator<(K, V)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        FieldTable {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(t: &FieldTable) -> FieldTable {
        let mut buf = BytesMut::new();
        t.encode(&mut buf);
        let bytes = buf.freeze();
        let mut r = Reader::new(&bytes);
        let out = FieldTable::decode(&mut r);
        assert_eq!(r.remaining(), 0);
        out.unwrap()
    }

    #[test]
    fn every_tag_round_trips() {
        let nested: FieldTable = [("inner", FieldValue::I32(-7))].into_iter().collect();
        let t: FieldTable = [
            ("t", FieldValue::Bool(true)),
            ("b", FieldValue::I8(-1)),
            ("B", FieldValue::U8(255)),
            ("s", FieldValue::I16(-300)),
            ("u", FieldValue::U16(65000)),
            ("I", FieldValue::I32(-70000)),
            ("i", FieldValue::U32(4_000_000_000)),
            ("l", FieldValue::I64(-1 << 40)),
            ("f", FieldValue::F32(1.5)),
            ("d", FieldValue::F64(-2.25)),
            (
                "D",
                FieldValue::Decimal(Decimal {
                    scale: 2,
                    value: 12345,
                }),
            ),
            ("S", FieldValue::LongStr("héllo".into())),
            (
                "A",
                FieldValue::Array(vec![FieldValue::Void, FieldValue::U8(1)]),
            ),
            ("T", FieldValue::Timestamp(1_700_000_000)),
            ("F", FieldValue::Table(nested)),
            ("V", FieldValue::Void),
            ("x", FieldValue::Bytes(Bytes::from_static(b"\x00\xff"))),
        ]
        .into_iter()
        .collect();
        assert_eq!(roundtrip(&t), t);
    }

    #[test]
    fn signed_short_tag_follows_rabbitmq() {
        // RabbitMQ writes 's' as a signed 16-bit integer (the spec errata say otherwise).
        let bytes = Bytes::from_static(&[0, 0, 0, 6, 1, b'k', b's', 0xff, 0xfe]);
        let mut wrong_len = Reader::new(&bytes);
        assert_eq!(
            FieldTable::decode(&mut wrong_len),
            Err(FieldError::Truncated)
        );
        let good = Bytes::from_static(&[0, 0, 0, 5, 1, b'k', b's', 0xff, 0xfe]);
        let t = FieldTable::decode(&mut Reader::new(&good));
        assert_eq!(
            t.ok().and_then(|t| t.get("k").cloned()),
            Some(FieldValue::I16(-2))
        );
    }

    #[test]
    fn capital_l_is_a_signed_64_bit_integer_as_in_rabbitmq() {
        let bytes = Bytes::from_static(&[
            0, 0, 0, 11, 1, b'k', b'L', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
        ]);
        let t = FieldTable::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(t.get("k"), Some(&FieldValue::I64(-2)));
        assert_eq!(FieldTable::skip(&mut Reader::new(&bytes)), Ok(()));
    }

    #[test]
    fn unknown_tag_is_an_error() {
        let bytes = Bytes::from_static(&[0, 0, 0, 3, 1, b'k', b'Z']);
        assert_eq!(
            FieldTable::decode(&mut Reader::new(&bytes)),
            Err(FieldError::UnknownFieldType(b'Z'))
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // Each level: key "k" (2 bytes), tag 'F' (1), length (4).
        let mut v = FieldValue::Void;
        for _ in 0..(MAX_TABLE_DEPTH + 5) {
            v = FieldValue::Table([("k", v)].into_iter().collect());
        }
        let t: FieldTable = [("k", v)].into_iter().collect();
        let mut buf = BytesMut::new();
        t.encode(&mut buf);
        let bytes = buf.freeze();
        assert_eq!(
            FieldTable::decode(&mut Reader::new(&bytes)),
            Err(FieldError::TooDeep)
        );
    }

    #[test]
    fn insert_replaces_in_place_and_remove_drops_all() {
        let mut t = FieldTable::new();
        t.insert("a", 1);
        t.insert("b", 2);
        t.insert("a", 3);
        assert_eq!(
            t.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(t.get("a"), Some(&FieldValue::I32(3)));
        assert_eq!(t.remove("a"), Some(FieldValue::I32(3)));
        assert!(!t.contains_key("a"));
        assert_eq!(t.len(), 1);
    }
}
