//! The one error type of the store layer, [`StoreError`].
//!
//! The broker maps it once, at its boundary: [`StoreError::Io`] is a disk alarm (fail the
//! publish, stop confirming), the others are programming errors or a damaged directory.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

/// Every way a store call can fail.
///
/// A refused call changed nothing; after an I/O error see the crate's durability contract.
/// The type is `Clone` so one failed group flush can be reported to every caller
/// that shared it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operating system refused a read, write or flush (disk full, I/O error, ...).
    #[error("storage i/o error: {0}")]
    Io(#[source] Arc<io::Error>),
    /// The directory holds data in a format this build does not read; nothing was changed.
    #[error(
        "unsupported on-disk format: found {}, this build reads version {supported}",
        describe_version(.found)
    )]
    UnsupportedFormat {
        /// The version found on disk, or `None` when the directory has no version marker.
        found: Option<u32>,
        /// The only version this build reads and writes.
        supported: u32,
    },
    /// Stored bytes do not decode, or an index entry points at a missing message.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// The storage engine reported a failure that is not plain I/O (a bug report from sled).
    #[error("storage engine error: {0}")]
    Engine(String),
    /// An earlier write failed part-way; the store refuses mutations until it is reopened.
    #[error("the store failed during an earlier write; reopen it to recover")]
    Failed,
    /// The database could not write (a full disk?): the store refuses syncs, reads and
    /// definition changes until it writes again, which it retries by itself.
    #[error("the store cannot write to its database (a full disk?); it retries by itself")]
    Suspended,
    /// A name that the key layout stores with a one-byte length is longer than 255 bytes.
    #[error("{what} is {len} bytes long; at most 255 are supported")]
    NameTooLong {
        /// Which name: "vhost", "queue", "exchange", "routing key", ...
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// `MessageOp::Put` of an id that is already stored.
    #[error("message {id} is already stored")]
    DuplicateMessage {
        /// The message id.
        id: u64,
    },
    /// `MessageOp::Enqueue`, `Remove` or `MarkRedelivered` of an id that is neither stored nor
    /// put earlier in the same write.
    #[error("message {id} is not stored")]
    UnknownMessage {
        /// The message id.
        id: u64,
    },
    /// `MessageOp::Release` of a message that no `MessageOp::Hold` holds.
    #[error("message {id} is released but not held")]
    NotHeld {
        /// The message id.
        id: u64,
    },
    /// `MessageOp::Put` without an `Enqueue` or `Hold` of that id in the same write (it would
    /// leak).
    #[error("message {id} is put but neither enqueued in a queue nor held by the same write")]
    UnreferencedMessage {
        /// The message id.
        id: u64,
    },
    /// `MessageOp::Enqueue` at a sequence number an earlier op of the same write enqueued
    /// (earlier writes are not checked: see `MessageOp::Enqueue`).
    #[error("queue {} in vhost {} already holds entry {seq}", lossy(.queue), lossy(.vhost))]
    DuplicateEntry {
        /// The virtual host.
        vhost: Bytes,
        /// The queue.
        queue: Bytes,
        /// The sequence number.
        seq: u64,
    },
    /// `MessageOp::Remove` or `MarkRedelivered` of an entry that an earlier op of the same write
    /// removed, or enqueued with another message id (earlier writes are not checked).
    #[error("queue {} in vhost {} holds no entry {seq}", lossy(.queue), lossy(.vhost))]
    EntryNotFound {
        /// The virtual host.
        vhost: Bytes,
        /// The queue.
        queue: Bytes,
        /// The sequence number.
        seq: u64,
    },
}

impl StoreError {
    /// Whether this is an I/O failure (the disk), as opposed to a misuse or a damaged store.
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt(what.into())
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(Arc::new(e))
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(e) => StoreError::from(e),
            sled::Error::Corruption { at, .. } => {
                StoreError::Corrupt(format!("sled reports corruption at {at:?}"))
            }
            other => StoreError::Engine(other.to_string()),
        }
    }
}

fn describe_version(found: &Option<u32>) -> String {
    match found {
        Some(v) => format!("version {v}"),
        None => "no version marker (not a warren store, or written by an unknown program)".into(),
    }
}

fn lossy(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_format_message_names_both_versions() {
        let e = StoreError::UnsupportedFormat {
            found: Some(7),
            supported: 1,
        };
        assert_eq!(
            e.to_string(),
            "unsupported on-disk format: found version 7, this build reads version 1"
        );
        let e = StoreError::UnsupportedFormat {
            found: None,
            supported: 1,
        };
        assert!(e.to_string().contains("no version marker"));
    }

    #[test]
    fn io_errors_are_io_and_clone() {
        let e = StoreError::from(io::Error::other("disk on fire"));
        assert!(e.is_io());
        assert!(e.clone().to_string().contains("disk on fire"));
        assert!(!StoreError::corrupt("x").is_io());
    }
}
