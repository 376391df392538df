//! The packed form of a priority level's backlog: messages copied, as compact records, into a
//! FIFO of large byte segments, and unpacked in the same order into fresh [`Message`]s.
//!
//! A queued `Arc<Message>` costs its 192-byte allocation plus the connection read buffer its
//! fields are slices of; a record costs its body plus 6 to 30 bytes, and a segment holds a few
//! hundred of them. Records leave only from the front, which is what lets them sit back to back.
//! Which messages get packed, and when, is decided by the ready list (`super::ready`).
//!
//! A record also carries what the ready list needs to know of a queued message (its position,
//! deadline and redelivered flag: [`Meta`]), so that a run of packed messages costs the list one
//! entry rather than one per message. The position is kept as a jump from the previous record's,
//! written only when it is not the next one; the deadline only when there is one.
//!
//! A record omits its timestamp, its exchange and routing key, and its properties when they
//! repeat the previous record's in the same segment (the first record of a segment has them
//! all, so a segment reads on its own: it may be spilled, `super::segments`, and one that is
//! lost does not garble the next) (a backlog is usually one publisher's stream): the writer
//! remembers what it last wrote and the reader what it last read, and since records are read in
//! the order they were written, the two agree at every record. Unpacked messages share the
//! reader's copies of these fields, so most cost one allocation for the body and one for the
//! `Arc`.

use std::num::NonZeroU64;
use std::sync::Arc;

use bytes::Bytes;
use warren_codec::{RawProperties, ShortStr};

use super::segments::{Front, Segments, SpillTo};
use crate::Message;
/// Larger records stay unpacked: a big body already dwarfs the per-message overhead that packing
/// saves, and copying it would cost more than it saves. Also bounds a segment's unused tail.
const MAX_RECORD: usize = 4 * 1024;
/// Flags, priority and body length (u32).
const FIXED: usize = 6;
/// The most a record adds to its properties and body.
const MAX_OVERHEAD: usize = FIXED + 5 * 8 + 2 * (1 + 255) + 2;

const PERSISTENT: u8 = 1;
const EXPIRATION: u8 = 1 << 1;
const STORE_ID: u8 = 1 << 2;
const NEW_TIME: u8 = 1 << 3;
const NEW_ADDRESS: u8 = 1 << 4;
const NEW_PROPERTIES: u8 = 1 << 5;
/// The position is not the previous record's plus one: the difference follows (u64).
const SEQ_JUMP: u8 = 1 << 6;
/// The message has a deadline: it follows (u64).
const DEADLINE: u8 = 1 << 7;
/// In the body length: the message was delivered before. Bodies are far below 2^31 bytes
/// ([`MAX_RECORD`]), and the flags byte has no bit left.
const REDELIVERED: u32 = 1 << 31;

/// What the ready list keeps of a packed message besides the message itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Its position in the queue.
    pub seq: u64,
    /// When it expires (epoch milliseconds), or `ready::NEVER`.
    pub deadline: u64,
    /// It was delivered before.
    pub redelivered: bool,
}

/// The fields that records omit when they repeat them.
#[derive(Debug, Default)]
struct Context {
    seq: u64,
    timestamp_ms: u64,
    exchange: ShortStr,
    routing_key: ShortStr,
    properties: RawProperties,
}

/// Packed messages in the order they were pushed.
#[derive(Debug, Default)]
pub struct PackedFifo {
    segments: Segments,
    /// Where the next record starts in the front segment.
    head: usize,
    /// What the last record written repeats from.
    written: Context,
    /// What the last record read repeats from: equal to `written` as it was at that record.
    read: Context,
}

/// A record's fields other than the body, read without copying the body.
struct Header {
    meta: Meta,
    flags: u8,
    priority: u8,
    body_len: usize,
    expiration_ms: Option<u64>,
    store_id: Option<NonZeroU64>,
    /// Bytes before the body.
    len: usize,
}

/// True when `m` can be packed: small enough, and its lengths fit the record's fields.
pub fn packable(m: &Message) -> bool {
    m.properties.as_bytes().len() <= usize::from(u16::MAX)
        && m.exchange.len() <= usize::from(u8::MAX)
        && m.routing_key.len() <= usize::from(u8::MAX)
        && MAX_OVERHEAD + m.properties.as_bytes().len() + m.body.len() <= MAX_RECORD
}

/// `a == b`, without handing an empty slice to `memcmp`: an empty `Bytes` (the default
/// exchange's name) points at a dangling address, and glibc's AVX-512 `memcmp` makes a masked
/// load from it that costs a microcode assist. It took 7 % of the broker's CPU in a profile.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// A copy that does not keep alive the buffer `b` is a slice of (a connection's read buffer).
/// An empty one is static, so sharing it costs no reference count.
fn own(b: &[u8]) -> Bytes {
    if b.is_empty() {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(b)
    }
}

impl PackedFifo {
    /// True when it holds no record.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Bytes allocated for records in memory.
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.segments.in_memory()
    }

    /// Bytes of records held in memory (including those already read from the front segment).
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.segments.used()
    }

    /// Segments kept in memory because the spill writer was too far behind.
    #[cfg(test)]
    pub fn held_back(&self) -> usize {
        self.segments.held_back()
    }

    /// Segments spilled now.
    pub fn spilled(&self) -> usize {
        self.segments.spilled()
    }

    /// Lets the FIFO spill segments over its budget to `to`.
    pub fn set_spill(&mut self, to: Option<SpillTo>) {
        self.segments.set_spill(to);
    }

    /// Records and body bytes lost (a spilled segment could not be read back) since the last
    /// call.
    pub fn take_lost(&mut self) -> (u64, u64) {
        self.segments.take_lost()
    }

    /// Appends `m`'s record as the next position without a deadline; false (and nothing
    /// appended) when `m` is not [`packable`].
    #[cfg(test)]
    pub fn push(&mut self, m: &Message) -> bool {
        let meta = Meta {
            seq: self.written.seq.wrapping_add(1),
            deadline: super::ready::NEVER,
            redelivered: false,
        };
        self.push_with(m, meta)
    }

    /// The flags of `m`'s record after the last one written, and the record's size.
    fn flags(&self, m: &Message, meta: Meta) -> (u8, usize) {
        let w = &self.written;
        let props = m.properties.as_bytes();
        let new_time = m.timestamp_ms != w.timestamp_ms;
        let new_address = !same(m.exchange.as_bytes(), w.exchange.as_bytes())
            || !same(m.routing_key.as_bytes(), w.routing_key.as_bytes());
        let new_props = !same(props, w.properties.as_bytes());
        let mut flags = 0;
        let mut size = FIXED + m.body.len();
        for (on, flag, bytes) in [
            (meta.seq.wrapping_sub(w.seq) != 1, SEQ_JUMP, 8),
            (meta.deadline != super::ready::NEVER, DEADLINE, 8),
            (m.persistent, PERSISTENT, 0),
            (m.expiration_ms.is_some(), EXPIRATION, 8),
            (m.store_id.is_some(), STORE_ID, 8),
            (new_time, NEW_TIME, 8),
            (
                new_address,
                NEW_ADDRESS,
                2 + m.exchange.len() + m.routing_key.len(),
            ),
            (new_props, NEW_PROPERTIES, 2 + props.len()),
        ] {
            if on {
                flags |= flag;
                size += bytes;
            }
        }
        (flags, size)
    }

    /// Appends `m`'s record with `meta`; false (and nothing appended) when `m` is not
    /// [`packable`].
    pub fn push_with(&mut self, m: &Message, meta: Meta) -> bool {
        if !packable(m) {
            return false;
        }
        let (mut flags, size) = self.flags(m, meta);
        if self.segments.is_empty() || self.segments.back_room() < size {
            // A segment starts from a blank context, so that it reads on its own.
            self.written = Context::default();
            self.segments.start(meta);
            flags = self.flags(m, meta).0;
        }
        let w = &self.written;
        let jump = meta.seq.wrapping_sub(w.seq);
        let has_deadline = flags & DEADLINE != 0;
        let new_time = flags & NEW_TIME != 0;
        let new_address = flags & NEW_ADDRESS != 0;
        let new_props = flags & NEW_PROPERTIES != 0;
        let props = m.properties.as_bytes();
        let Some(seg) = self.segments.back(m.body.len()) else {
            return false;
        };
        seg.push(flags);
        seg.push(m.priority);
        // `packable` checked the lengths that are narrowed here.
        let redelivered = if meta.redelivered { REDELIVERED } else { 0 };
        seg.extend_from_slice(&(m.body.len() as u32 | redelivered).to_be_bytes());
        if jump != 1 {
            seg.extend_from_slice(&jump.to_be_bytes());
        }
        if has_deadline {
            seg.extend_from_slice(&meta.deadline.to_be_bytes());
        }
        self.written.seq = meta.seq;
        if let Some(exp) = m.expiration_ms {
            seg.extend_from_slice(&exp.to_be_bytes());
        }
        if let Some(id) = m.store_id {
            seg.extend_from_slice(&id.get().to_be_bytes());
        }
        if new_time {
            seg.extend_from_slice(&m.timestamp_ms.to_be_bytes());
            self.written.timestamp_ms = m.timestamp_ms;
        }
        if new_address {
            for s in [&m.exchange, &m.routing_key] {
                seg.push(s.len() as u8);
                seg.extend_from_slice(s.as_bytes());
            }
            self.written.exchange = ShortStr::from_bytes(own(m.exchange.as_bytes()));
            self.written.routing_key = ShortStr::from_bytes(own(m.routing_key.as_bytes()));
        }
        if new_props {
            seg.extend_from_slice(&(props.len() as u16).to_be_bytes());
            seg.extend_from_slice(props);
            self.written.properties = RawProperties::from_trusted(own(props));
        }
        seg.extend_from_slice(&m.body);
        true
    }

    /// Takes the first record back as a message equal to the one pushed. `None` when empty.
    #[cfg(test)]
    pub fn pop(&mut self) -> Option<Arc<Message>> {
        self.pop_with(true).ok().flatten().map(|(_, m)| m)
    }

    /// The first record's [`Meta`], without taking it. `None` when empty.
    pub fn peek(&mut self) -> Option<Meta> {
        if !self.segments.front_in_memory() {
            return self.segments.front_first();
        }
        let Front::Ready(seg) = self.segments.front(false) else {
            return None;
        };
        let rec = seg.get(self.head..)?;
        Some(read_meta(rec, self.read.seq)?.0)
    }

    /// Makes the front segment readable: see [`Segments::front`]. False when it is spilled and
    /// not back yet (only when not `wait`).
    pub fn ready(&mut self, wait: bool) -> bool {
        !matches!(self.segments.front(wait), Front::Pending)
    }

    /// Takes the first record back as its [`Meta`] and a message equal to the one pushed.
    /// `Ok(None)` when empty, `Err(())` when its segment is spilled and not back yet (only when
    /// not `wait`; it has been asked for).
    #[allow(clippy::result_unit_err)]
    pub fn pop_with(&mut self, wait: bool) -> Result<Option<(Meta, Arc<Message>)>, ()> {
        let seg = match self.segments.front(wait) {
            Front::Ready(seg) => seg,
            Front::Pending => return Err(()),
            Front::Empty => return Ok(None),
        };
        let Some(rec) = seg.get(self.head..) else {
            return Ok(None);
        };
        let Some(h) = read_header(rec, &mut self.read) else {
            return Ok(None);
        };
        let Some(body) = rec.get(h.len..h.len + h.body_len) else {
            return Ok(None);
        };
        let body = own(body);
        // Made in place rather than moved into an `Arc` later: a `Message` is 168 bytes.
        let message = Arc::new(Message {
            exchange: self.read.exchange.clone(),
            routing_key: self.read.routing_key.clone(),
            properties: self.read.properties.clone(),
            body,
            persistent: h.flags & PERSISTENT != 0,
            priority: h.priority,
            expiration_ms: h.expiration_ms,
            timestamp_ms: self.read.timestamp_ms,
            store_id: h.store_id,
        });
        self.advance(h.len + h.body_len);
        Ok(Some((h.meta, message)))
    }

    /// Drops the first record, returning its store id (`Some(None)` when it has none); `None`
    /// when empty.
    #[cfg(test)]
    pub fn discard(&mut self) -> Option<Option<u64>> {
        self.discard_with().map(|(_, id)| id)
    }

    /// Drops the first record, returning its position and store id (`None` when it has none);
    /// `None` when empty.
    pub fn discard_with(&mut self) -> Option<(u64, Option<u64>)> {
        let Front::Ready(seg) = self.segments.front(true) else {
            return None;
        };
        let h = read_header(seg.get(self.head..)?, &mut self.read)?;
        self.advance(h.len + h.body_len);
        Some((h.meta.seq, h.store_id.map(NonZeroU64::get)))
    }

    fn advance(&mut self, by: usize) {
        self.head += by;
        if let Front::Ready(s) = self.segments.front(false)
            && self.head >= s.len()
        {
            self.segments.pop_front();
            self.head = 0;
            self.read = Context::default();
        }
    }
}

/// Reads a record's [`Meta`] (the previous record was at `prev_seq`), returning it with the
/// record's body length and where the fields after the meta start.
fn read_meta(rec: &[u8], prev_seq: u64) -> Option<(Meta, usize, usize)> {
    let flags = *rec.first()?;
    let len_word = u32::from_be_bytes(array(rec, 2)?);
    let mut at = FIXED;
    let jump = if flags & SEQ_JUMP != 0 {
        at += 8;
        u64::from_be_bytes(array(rec, FIXED)?)
    } else {
        1
    };
    let deadline = if flags & DEADLINE != 0 {
        let d = u64::from_be_bytes(array(rec, at)?);
        at += 8;
        d
    } else {
        super::ready::NEVER
    };
    let meta = Meta {
        seq: prev_seq.wrapping_add(jump),
        deadline,
        redelivered: len_word & REDELIVERED != 0,
    };
    Some((meta, (len_word & !REDELIVERED) as usize, at))
}

/// Reads a record up to its body, taking what it does not repeat into `ctx`.
fn read_header(rec: &[u8], ctx: &mut Context) -> Option<Header> {
    let flags = *rec.first()?;
    let priority = *rec.get(1)?;
    let (meta, body_len, mut at) = read_meta(rec, ctx.seq)?;
    ctx.seq = meta.seq;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = rec.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let mut u64_if = |flag: u8| -> Option<Option<u64>> {
        if flags & flag == 0 {
            return Some(None);
        }
        Some(Some(u64::from_be_bytes(take(8)?.try_into().ok()?)))
    };
    let expiration_ms = u64_if(EXPIRATION)?;
    let store_id = u64_if(STORE_ID)?.and_then(NonZeroU64::new);
    if let Some(t) = u64_if(NEW_TIME)? {
        ctx.timestamp_ms = t;
    }
    if flags & NEW_ADDRESS != 0 {
        let mut short = || -> Option<ShortStr> {
            let len = usize::from(*take(1)?.first()?);
            Some(ShortStr::from_bytes(own(take(len)?)))
        };
        ctx.exchange = short()?;
        ctx.routing_key = short()?;
    }
    if flags & NEW_PROPERTIES != 0 {
        let len = usize::from(u16::from_be_bytes(take(2)?.try_into().ok()?));
        ctx.properties = RawProperties::from_trusted(own(take(len)?));
    }
    Some(Header {
        meta,
        flags,
        priority,
        body_len,
        expiration_ms,
        store_id,
        len: at,
    })
}

fn array<const N: usize>(rec: &[u8], at: usize) -> Option<[u8; N]> {
    rec.get(at..at + N)?.try_into().ok()
}
