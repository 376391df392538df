//! Value encoding of definition records: each byte field as a u32 BE length and the bytes,
//! booleans packed into one flags byte. The on-disk format version covers this layout.

use bytes::Bytes;

use crate::{BindingRecord, ExchangeRecord, ParameterRecord, QueueRecord, StoreError, UserRecord};

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Writer(Vec::with_capacity(64))
    }

    fn bytes(mut self, b: &[u8]) -> Result<Self, StoreError> {
        let len = u32::try_from(b.len()).map_err(|_| StoreError::NameTooLong {
            what: "record field",
            len: b.len(),
        })?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
        Ok(self)
    }

    fn flags(mut self, bits: &[bool]) -> Self {
        let byte = bits
            .iter()
            .enumerate()
            .fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << i));
        self.0.push(byte);
        self
    }

    fn finish(self) -> Bytes {
        Bytes::from(self.0)
    }
}

struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8], what: &'static str) -> Self {
        Reader { rest, what }
    }

    fn truncated(&self) -> StoreError {
        StoreError::corrupt(format!("truncated {} record", self.what))
    }

    fn bytes(&mut self) -> Result<Bytes, StoreError> {
        let (len, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or_else(|| self.truncated())?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| self.truncated())?;
        if rest.len() < len {
            return Err(self.truncated());
        }
        let (field, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(Bytes::copy_from_slice(field))
    }

    fn flag_byte(&mut self) -> Result<u8, StoreError> {
        let (&b, rest) = self.rest.split_first().ok_or_else(|| self.truncated())?;
        self.rest = rest;
        Ok(b)
    }

    fn end(self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(StoreError::corrupt(format!(
                "trailing bytes after {} record",
                self.what
            )))
        }
    }
}

pub(crate) fn encode_exchange(x: &ExchangeRecord) -> Result<Bytes, StoreError> {
    Ok(Writer::new()
        .bytes(&x.name)?
        .bytes(&x.kind)?
        .flags(&[x.auto_delete, x.internal])
        .bytes(&x.arguments)?
        .finish())
}

pub(crate) fn decode_exchange(v: &[u8]) -> Result<ExchangeRecord, StoreError> {
    let mut r = Reader::new(v, "exchange");
    let name = r.bytes()?;
    let kind = r.bytes()?;
    let flags = r.flag_byte()?;
    let arguments = r.bytes()?;
    r.end()?;
    Ok(ExchangeRecord {
        name,
        kind,
        auto_delete: flags & 1 != 0,
        internal: flags & 2 != 0,
        arguments,
    })
}

pub(crate) fn encode_queue(q: &QueueRecord) -> Result<Bytes, StoreError> {
    Ok(Writer::new()
        .bytes(&q.name)?
        .flags(&[q.auto_delete])
        .bytes(&q.arguments)?
        .finish())
}

pub(crate) fn decode_queue(v: &[u8]) -> Result<QueueRecord, StoreError> {
    let mut r = Reader::new(v, "queue");
    let name = r.bytes()?;
    let flags = r.flag_byte()?;
    let arguments = r.bytes()?;
    r.end()?;
    Ok(QueueRecord {
        name,
        auto_delete: flags & 1 != 0,
        arguments,
    })
}

pub(crate) fn encode_binding(b: &BindingRecord) -> Result<Bytes, StoreError> {
    Ok(Writer::new()
        .bytes(&b.source)?
        .bytes(&b.destination)?
        .flags(&[b.destination_is_exchange])
        .bytes(&b.routing_key)?
        .bytes(&b.arguments)?
        .finish())
}

pub(crate) fn decode_binding(v: &[u8]) -> Result<BindingRecord, StoreError> {
    let mut r = Reader::new(v, "binding");
    let source = r.bytes()?;
    let destination = r.bytes()?;
    let flags = r.flag_byte()?;
    let routing_key = r.bytes()?;
    let arguments = r.bytes()?;
    r.end()?;
    Ok(BindingRecord {
        source,
        destination,
        destination_is_exchange: flags & 1 != 0,
        routing_key,
        arguments,
    })
}

pub(crate) fn encode_user(u: &UserRecord) -> Result<Bytes, StoreError> {
    Ok(Writer::new()
        .bytes(&u.name)?
        .bytes(&u.password_hash)?
        .bytes(&u.tags)?
        .bytes(&u.permissions)?
        .finish())
}

pub(crate) fn decode_user(v: &[u8]) -> Result<UserRecord, StoreError> {
    let mut r = Reader::new(v, "user");
    let name = r.bytes()?;
    let password_hash = r.bytes()?;
    let tags = r.bytes()?;
    let permissions = r.bytes()?;
    r.end()?;
    Ok(UserRecord {
        name,
        password_hash,
        tags,
        permissions,
    })
}

pub(crate) fn encode_parameter(p: &ParameterRecord) -> Result<Bytes, StoreError> {
    Ok(Writer::new()
        .bytes(&p.component)?
        .bytes(&p.name)?
        .bytes(&p.value)?
        .finish())
}

pub(crate) fn decode_parameter(v: &[u8]) -> Result<ParameterRecord, StoreError> {
    let mut r = Reader::new(v, "parameter");
    let component = r.bytes()?;
    let name = r.bytes()?;
    let value = r.bytes()?;
    r.end()?;
    Ok(ParameterRecord {
        component,
        name,
        value,
    })
}

pub(crate) fn encode_global_parameter(name: &[u8], value: &[u8]) -> Result<Bytes, StoreError> {
    Ok(Writer::new().bytes(name)?.bytes(value)?.finish())
}

pub(crate) fn decode_global_parameter(v: &[u8]) -> Result<(Bytes, Bytes), StoreError> {
    let mut r = Reader::new(v, "global parameter");
    let name = r.bytes()?;
    let value = r.bytes()?;
    r.end()?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn every_record_round_trips() {
        let x = ExchangeRecord {
            name: b("x"),
            kind: b("topic"),
            auto_delete: false,
            internal: true,
            arguments: b("\x00\x01"),
        };
        assert_eq!(decode_exchange(&encode_exchange(&x).unwrap()).unwrap(), x);
        let q = QueueRecord {
            name: b("q"),
            auto_delete: true,
            arguments: Bytes::new(),
        };
        assert_eq!(decode_queue(&encode_queue(&q).unwrap()).unwrap(), q);
        let bd = BindingRecord {
            source: b("x"),
            destination: b("y"),
            destination_is_exchange: true,
            routing_key: b("a.#"),
            arguments: b("args"),
        };
        assert_eq!(decode_binding(&encode_binding(&bd).unwrap()).unwrap(), bd);
        let u = UserRecord {
            name: b("guest"),
            password_hash: b("hash"),
            tags: b("administrator"),
            permissions: b("/"),
        };
        assert_eq!(decode_user(&encode_user(&u).unwrap()).unwrap(), u);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let x = ExchangeRecord {
            name: b("x"),
            kind: b("direct"),
            auto_delete: true,
            internal: false,
            arguments: b("a"),
        };
        let full = encode_exchange(&x).unwrap();
        for cut in 0..full.len() {
            assert!(
                matches!(decode_exchange(&full[..cut]), Err(StoreError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        let mut long = full.to_vec();
        long.push(0);
        assert!(decode_exchange(&long).is_err());
    }

    #[test]
    fn parameters_round_trip_and_truncations_are_errors() {
        let p = ParameterRecord {
            component: b("policy"),
            name: b("ttl"),
            value: b("{\"pattern\":\".*\"}"),
        };
        let full = encode_parameter(&p).unwrap();
        assert_eq!(decode_parameter(&full).unwrap(), p);
        let global = encode_global_parameter(b"cluster_name", b"\"c\"").unwrap();
        assert_eq!(
            decode_global_parameter(&global).unwrap(),
            (b("cluster_name"), b("\"c\""))
        );
        for cut in 0..full.len() {
            assert!(decode_parameter(&full[..cut]).is_err(), "cut at {cut}");
        }
        for cut in 0..global.len() {
            assert!(
                decode_global_parameter(&global[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
