//! The key layout shared by every backend: one ordered key space, partitioned by a one-byte
//! tag. Integers are big-endian so byte order is numeric order; names carry a one-byte length
//! so a (vhost, queue) prefix never matches a longer vhost or queue name.
//!
//! | tag | key | value |
//! |---|---|---|
//! | `0x00` meta | `tag, name` | per key (`format_version`: u32 BE; `max_message_id`: u64 BE; `clean_extents`: see `engine::scan`) |
//! | `0x01` vhost | `tag, vhost` | empty |
//! | `0x02` user | `tag, name` | encoded [`UserRecord`](crate::UserRecord) |
//! | `0x03` exchange | `tag, len, vhost, name` | encoded [`ExchangeRecord`](crate::ExchangeRecord) |
//! | `0x04` queue | `tag, len, vhost, name` | encoded [`QueueRecord`](crate::QueueRecord) |
//! | `0x05` binding | `tag, len, vhost, len, source, kind, len, destination, len, routing key, arguments` | encoded [`BindingRecord`](crate::BindingRecord) |
//! | `0x06` message | `tag, id u64 BE` | the message bytes |
//! | `0x07` queue index | `tag, len, vhost, len, queue, seq u64 BE` | `id u64 BE, flags u8` |
//! | `0x08` parameter | `tag, len, vhost, len, component, name` | encoded [`ParameterRecord`](crate::ParameterRecord) |
//! | `0x09` global parameter | `tag, name` | encoded name and value |
//! | `0x0c` vhost limits | `tag, vhost` | the limits, encoded by the broker |
//! | `0x0d` dropping | `tag`, then an index prefix (a queue's or a vhost's) | empty: its entries are being removed (see `engine::drop_entries`) |
//! | `0x0e` extent | `tag`, then a queue's index prefix | `count u64 BE, end_seq u64 BE`: the queue's extent, kept by the log (see `engine::extents`) |
//! | `0x16` message block | `tag, id >> 2 u64 BE` (layout 3), `tag, id >> 4 u64 BE` (layout 4) | up to four messages (key layout 3), or sixteen twelve-byte locations into the message log (key layout 4, see `msglog`); written by `packed`, which shows them to the engine as `0x06` keys |
//! | `0x17` index block | `tag, len, vhost, len, queue, seq >> 4 u64 BE` | up to sixteen index entries of one queue (key layouts 3 and 4, as `0x07` keys above `packed`) |

use crate::{BindingRecord, MessageId, StoreError};

pub(crate) const VHOST: u8 = 0x01;
pub(crate) const USER: u8 = 0x02;
pub(crate) const EXCHANGE: u8 = 0x03;
pub(crate) const QUEUE: u8 = 0x04;
pub(crate) const BINDING: u8 = 0x05;
pub(crate) const MESSAGE: u8 = 0x06;
pub(crate) const INDEX: u8 = 0x07;
pub(crate) const PARAMETER: u8 = 0x08;
pub(crate) const GLOBAL_PARAMETER: u8 = 0x09;
/// Far from the next free tags, which other record kinds may take first.
pub(crate) const VHOST_LIMITS: u8 = 0x0c;
/// A deleted queue's or vhost's index prefix whose entries are still being removed.
pub(crate) const DROPPING: u8 = 0x0d;

/// A queue's extent, kept with its index entries (format 3, see `engine::extents`).
pub(crate) const EXTENT: u8 = 0x0e;

/// The `EXTENT` key of an index prefix (a queue's; a vhost's is the prefix of its queues').
pub(crate) fn extent(index_prefix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(index_prefix.len() + 1);
    key.push(EXTENT);
    key.extend_from_slice(index_prefix);
    key
}

/// The `DROPPING` key of an index prefix.
pub(crate) fn dropping(index_prefix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(index_prefix.len() + 1);
    key.push(DROPPING);
    key.extend_from_slice(index_prefix);
    key
}

// Meta keys: tag 0x00, then the name.

/// The meta key holding the format version.
pub(crate) const FORMAT_VERSION_KEY: &[u8] = b"\x00format_version";
/// The meta key holding the highest message id ever put.
pub(crate) const MAX_ID_KEY: &[u8] = b"\x00max_message_id";
/// The meta key a clean close leaves: every queue's extent (see `engine::scan`).
pub(crate) const CLEAN_EXTENTS_KEY: &[u8] = b"\x00clean_extents";

const FLAG_REDELIVERED: u8 = 0b1;

fn push_short(key: &mut Vec<u8>, what: &'static str, name: &[u8]) -> Result<(), StoreError> {
    let len = u8::try_from(name.len()).map_err(|_| StoreError::NameTooLong {
        what,
        len: name.len(),
    })?;
    key.push(len);
    key.extend_from_slice(name);
    Ok(())
}

/// `tag` alone or `tag, name`: vhosts and users.
pub(crate) fn simple(tag: u8, name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(tag);
    key.extend_from_slice(name);
    key
}

/// `tag, len, vhost`: the prefix of everything of one kind in a vhost.
pub(crate) fn vhost_prefix(tag: u8, vhost: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut key = Vec::with_capacity(2 + vhost.len());
    key.push(tag);
    push_short(&mut key, "vhost", vhost)?;
    Ok(key)
}

/// An exchange or queue record key.
pub(crate) fn named(
    tag: u8,
    vhost: &[u8],
    what: &'static str,
    name: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut key = vhost_prefix(tag, vhost)?;
    if name.len() > 255 {
        return Err(StoreError::NameTooLong {
            what,
            len: name.len(),
        });
    }
    key.extend_from_slice(name);
    Ok(key)
}

/// A runtime parameter's key: vhost, component and name.
pub(crate) fn parameter(
    vhost: &[u8],
    component: &[u8],
    name: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut key = vhost_prefix(PARAMETER, vhost)?;
    push_short(&mut key, "component", component)?;
    if name.len() > 255 {
        return Err(StoreError::NameTooLong {
            what: "parameter",
            len: name.len(),
        });
    }
    key.extend_from_slice(name);
    Ok(key)
}

/// A binding key: every field of the binding, so equal bindings have equal keys.
pub(crate) fn binding(vhost: &[u8], b: &BindingRecord) -> Result<Vec<u8>, StoreError> {
    let mut key = vhost_prefix(BINDING, vhost)?;
    push_short(&mut key, "exchange", &b.source)?;
    key.push(u8::from(b.destination_is_exchange));
    push_short(
        &mut key,
        if b.destination_is_exchange {
            "exchange"
        } else {
            "queue"
        },
        &b.destination,
    )?;
    push_short(&mut key, "routing key", &b.routing_key)?;
    key.extend_from_slice(&b.arguments);
    Ok(key)
}

/// A message key.
pub(crate) fn message(id: MessageId) -> [u8; 9] {
    let mut key = [MESSAGE; 9];
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

/// Decodes a message key's id.
pub(crate) fn message_id(key: &[u8]) -> Result<MessageId, StoreError> {
    let raw: [u8; 8] = key
        .get(1..)
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| StoreError::corrupt("message key is not 9 bytes"))?;
    Ok(u64::from_be_bytes(raw))
}

/// `INDEX, len, vhost, len, queue`: the prefix of one queue's index entries.
pub(crate) fn queue_index_prefix(vhost: &[u8], queue: &[u8]) -> Result<Vec<u8>, StoreError> {
    index_prefix_with_room(vhost, queue, 0)
}

/// [`queue_index_prefix`] in a vector with `room` more bytes reserved: an index key is built
/// per persistent publish and ack, and growing the vector afterwards cost a reallocation.
fn index_prefix_with_room(vhost: &[u8], queue: &[u8], room: usize) -> Result<Vec<u8>, StoreError> {
    let mut key = Vec::with_capacity(3 + vhost.len() + queue.len() + room);
    key.push(INDEX);
    push_short(&mut key, "vhost", vhost)?;
    push_short(&mut key, "queue", queue)?;
    Ok(key)
}

/// One index entry's key.
pub(crate) fn index(vhost: &[u8], queue: &[u8], seq: u64) -> Result<Vec<u8>, StoreError> {
    let mut key = index_prefix_with_room(vhost, queue, 8)?;
    key.extend_from_slice(&seq.to_be_bytes());
    Ok(key)
}

/// The sequence number at the end of an index key.
pub(crate) fn index_seq(key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key.get(at..))
        .and_then(|raw| raw.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::corrupt("index key shorter than a sequence number"))
}

/// The vhost name inside a `tag, len, vhost, ...` key.
pub(crate) fn vhost_of(key: &[u8]) -> Result<&[u8], StoreError> {
    let len = usize::from(
        *key.get(1)
            .ok_or_else(|| StoreError::corrupt("key without vhost"))?,
    );
    key.get(2..2 + len)
        .ok_or_else(|| StoreError::corrupt("key shorter than its vhost"))
}

/// An index entry's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexValue {
    pub(crate) id: MessageId,
    pub(crate) redelivered: bool,
}

impl IndexValue {
    pub(crate) fn encode(self) -> [u8; 9] {
        let mut v = [0; 9];
        v[..8].copy_from_slice(&self.id.to_be_bytes());
        v[8] = if self.redelivered {
            FLAG_REDELIVERED
        } else {
            0
        };
        v
    }

    pub(crate) fn decode(v: &[u8]) -> Result<Self, StoreError> {
        let raw: [u8; 9] = v
            .try_into()
            .map_err(|_| StoreError::corrupt("index value is not 9 bytes"))?;
        let mut id = [0; 8];
        id.copy_from_slice(&raw[..8]);
        Ok(IndexValue {
            id: u64::from_be_bytes(id),
            redelivered: raw[8] & FLAG_REDELIVERED != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_sort_by_seq_numerically() {
        let a = index(b"/", b"q", 2).unwrap();
        let b = index(b"/", b"q", 256).unwrap();
        let c = index(b"/", b"q", u64::MAX).unwrap();
        assert!(a < b && b < c);
        assert_eq!(index_seq(&b).unwrap(), 256);
    }

    #[test]
    fn queue_prefix_does_not_match_a_longer_queue_name() {
        let prefix = queue_index_prefix(b"/", b"q").unwrap();
        assert!(!index(b"/", b"q2", 1).unwrap().starts_with(&prefix));
        assert!(index(b"/", b"q", 1).unwrap().starts_with(&prefix));
        let vh = vhost_prefix(INDEX, b"a").unwrap();
        assert!(!index(b"ab", b"q", 1).unwrap().starts_with(&vh));
    }

    #[test]
    fn names_longer_than_255_bytes_are_refused() {
        let long = vec![b'x'; 256];
        assert!(matches!(
            index(&long, b"q", 0),
            Err(StoreError::NameTooLong {
                what: "vhost",
                len: 256
            })
        ));
        assert!(matches!(
            named(QUEUE, b"/", "queue", &long),
            Err(StoreError::NameTooLong { what: "queue", .. })
        ));
        assert!(index(&long[..255], &long[..255], 0).is_ok());
    }

    #[test]
    fn index_value_round_trips_and_rejects_bad_length() {
        for v in [
            IndexValue {
                id: 7,
                redelivered: true,
            },
            IndexValue {
                id: u64::MAX,
                redelivered: false,
            },
        ] {
            assert_eq!(IndexValue::decode(&v.encode()).unwrap(), v);
        }
        assert!(IndexValue::decode(&[0; 8]).is_err());
    }

    #[test]
    fn message_key_round_trips_and_vhost_is_recovered() {
        assert_eq!(message_id(&message(0x0102)).unwrap(), 0x0102);
        assert!(message_id(&[MESSAGE, 1]).is_err());
        assert_eq!(vhost_of(&index(b"vh", b"q", 1).unwrap()).unwrap(), b"vh");
        assert!(vhost_of(&[INDEX, 5, b'a']).is_err());
    }
}
