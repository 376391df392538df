//! AMQP string types: `shortstr` (at most 255 bytes) and `longstr` (at most 2^32-1 bytes).
//!
//! Both hold `Bytes`, so a decoded name or routing key is a slice of the frame it arrived in, not a
//! copy. AMQP strings are byte strings: nothing here insists on UTF-8; callers that need text ask
//! for it with [`ShortStr::as_str`] and decide what a non-UTF-8 value means.

use std::fmt;

use bytes::Bytes;

/// An AMQP `shortstr`: up to 255 bytes, length-prefixed by one octet on the wire.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShortStr(Bytes);

/// An AMQP `longstr`: up to 2^32-1 bytes, length-prefixed by a 32-bit word on the wire.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LongStr(Bytes);

/// The largest number of bytes a `shortstr` can carry.
pub const SHORT_STR_MAX: usize = 255;

macro_rules! string_type {
    ($name:ident) => {
        impl $name {
            /// Wraps bytes without copying them.
            pub const fn from_bytes(bytes: Bytes) -> Self {
                Self(bytes)
            }

            /// A string from a `'static` literal, without allocating.
            pub const fn from_static(s: &'static str) -> Self {
                Self(Bytes::from_static(s.as_bytes()))
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The shared buffer behind the string.
            pub fn bytes(&self) -> &Bytes {
                &self.0
            }

            /// Consumes the string, returning the shared buffer.
            pub fn into_bytes(self) -> Bytes {
                self.0
            }

            /// The value as text, or `None` when it is not valid UTF-8.
            pub fn as_str(&self) -> Option<&str> {
                std::str::from_utf8(&self.0).ok()
            }

            /// Length in bytes.
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// True when the string has no bytes.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Bytes::copy_from_slice(s.as_bytes()))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Bytes::from(s))
            }
        }

        impl From<Bytes> for $name {
            fn from(b: Bytes) -> Self {
                Self(b)
            }
        }

        impl From<&[u8]> for $name {
            fn from(b: &[u8]) -> Self {
                Self(Bytes::copy_from_slice(b))
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other.as_bytes()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == other.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&String::from_utf8_lossy(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.as_str() {
                    Some(s) => fmt::Debug::fmt(s, f),
                    None => write!(f, "{:?}", self.0),
                }
            }
        }
    };
}

string_type!(ShortStr);
string_type!(LongStr);
