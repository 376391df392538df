//! Primitive wire types: octets, big-endian integers, strings, and the cursor that reads them.
//!
//! Reading is done with nom's `complete` parsers over a payload that is already whole (the frame
//! layer guarantees that), so running out of bytes is a [`FieldError::Truncated`], never a
//! request for more input. Strings are returned as slices of the payload's `Bytes`.

use bytes::{BufMut, Bytes, BytesMut};
use nom::IResult;
use nom::Parser as _;
use nom::error::Error as NomError;
use nom::multi::length_data;
use nom::number::complete::{be_u8, be_u16, be_u32, be_u64};

use crate::error::FieldError;
use crate::strings::{LongStr, SHORT_STR_MAX, ShortStr};

/// A cursor over one decoded payload.
pub struct Reader<'a> {
    src: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `src`.
    pub fn new(src: &'a Bytes) -> Self {
        Reader { src, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.src.len() - self.pos
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self) -> Result<(), FieldError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(FieldError::TrailingBytes(n)),
        }
    }

    fn run<O>(
        &mut self,
        parse: impl FnOnce(&'a [u8]) -> IResult<&'a [u8], O>,
    ) -> Result<O, FieldError> {
        let src: &'a Bytes = self.src;
        let rest: &'a [u8] = &src[self.pos..];
        let (left, out) = parse(rest).map_err(|_| FieldError::Truncated)?;
        self.pos = self.src.len() - left.len();
        Ok(out)
    }

    /// One octet.
    pub fn octet(&mut self) -> Result<u8, FieldError> {
        self.run(be_u8::<&[u8], NomError<&[u8]>>)
    }

    /// A 16-bit unsigned integer.
    pub fn short(&mut self) -> Result<u16, FieldError> {
        self.run(be_u16::<&[u8], NomError<&[u8]>>)
    }

    /// A 32-bit unsigned integer.
    pub fn long(&mut self) -> Result<u32, FieldError> {
        self.run(be_u32::<&[u8], NomError<&[u8]>>)
    }

    /// A 64-bit unsigned integer.
    pub fn longlong(&mut self) -> Result<u64, FieldError> {
        self.run(be_u64::<&[u8], NomError<&[u8]>>)
    }

    /// A `shortstr`, sliced from the payload.
    pub fn short_str(&mut self) -> Result<ShortStr, FieldError> {
        let s = self.run(|i| length_data(be_u8).parse_complete(i))?;
        Ok(ShortStr::from_bytes(self.src.slice_ref(s)))
    }

    /// A `longstr`, sliced from the payload.
    pub fn long_str(&mut self) -> Result<LongStr, FieldError> {
        Ok(LongStr::from_bytes(self.long_bytes()?))
    }

    /// A 32-bit length followed by that many bytes, sliced from the payload.
    pub fn long_bytes(&mut self) -> Result<Bytes, FieldError> {
        let s = self.run(|i| length_data(be_u32).parse_complete(i))?;
        Ok(self.src.slice_ref(s))
    }

    /// Skips a `shortstr` without slicing it out.
    pub fn skip_short_str(&mut self) -> Result<(), FieldError> {
        let n = usize::from(self.octet()?);
        if self.remaining() < n {
            return Err(FieldError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// Exactly `n` bytes, sliced from the payload.
    pub fn take(&mut self, n: usize) -> Result<Bytes, FieldError> {
        if self.remaining() < n {
            return Err(FieldError::Truncated);
        }
        let out = self.src.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }
}

/// Writes one octet.
pub fn put_octet(buf: &mut BytesMut, v: u8) {
    buf.put_u8(v);
}

/// Writes a 16-bit unsigned integer.
pub fn put_short(buf: &mut BytesMut, v: u16) {
    buf.put_u16(v);
}

/// Writes a 32-bit unsigned integer.
pub fn put_long(buf: &mut BytesMut, v: u32) {
    buf.put_u32(v);
}

/// Writes a 64-bit unsigned integer.
pub fn put_longlong(buf: &mut BytesMut, v: u64) {
    buf.put_u64(v);
}

/// Writes a `shortstr`. Values longer than 255 bytes are cut at 255: only server-made text (a
/// reply text, say) can be that long, since everything a peer sent arrived as a `shortstr`.
pub fn put_short_str(buf: &mut BytesMut, s: &ShortStr) {
    put_short_bytes(buf, s.as_bytes());
}

/// Writes raw bytes as a `shortstr`, cut at 255 bytes.
pub fn put_short_bytes(buf: &mut BytesMut, s: &[u8]) {
    let s = &s[..s.len().min(SHORT_STR_MAX)];
    buf.put_u8(s.len() as u8);
    buf.put_slice(s);
}

/// Writes a `longstr`.
pub fn put_long_str(buf: &mut BytesMut, s: &LongStr) {
    put_long_bytes(buf, s.as_bytes());
}

/// Writes raw bytes as a `longstr`.
pub fn put_long_bytes(buf: &mut BytesMut, s: &[u8]) {
    buf.put_u32(s.len() as u32);
    buf.put_slice(s);
}

/// Reserves a 32-bit length word and returns its position, for [`patch_long_len`].
pub fn begin_long_len(buf: &mut BytesMut) -> usize {
    let at = buf.len();
    buf.put_u32(0);
    at
}

/// Fills in the length word reserved at `at` with the number of bytes written since.
pub fn patch_long_len(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
