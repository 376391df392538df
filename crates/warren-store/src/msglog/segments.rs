//! The message log's files: append-only segments of message records in
//! `<data_dir>/messages/`, named by an increasing number (`0000002a.seg`).
//!
//! ```text
//! record   = len u32 BE | crc32(id, body) u32 BE | id u64 BE | body (len bytes)
//! location = segment u32 BE | offset u32 BE | len u32 BE   (what the key space below holds)
//! ```
//!
//! A record carries its id so a read can check that the location it followed is the one of
//! the message asked for, and the CRC so a torn or overwritten record is an error, never a
//! wrong message.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{MessageId, StoreError};

/// Bytes before a record's body.
pub(crate) const HEADER: usize = 16;
/// Bytes of an encoded [`Location`].
pub(crate) const LOCATION_LEN: usize = 12;
/// The subdirectory of the data directory that holds the segments.
pub(crate) const MESSAGES_DIR: &str = "messages";

/// Where a message's record is: its segment, the record's offset in it, the body's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: u32,
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

impl Location {
    /// The value the key space below keeps for the message.
    pub(crate) fn encode(self) -> [u8; LOCATION_LEN] {
        let mut out = [0; LOCATION_LEN];
        out[..4].copy_from_slice(&self.segment.to_be_bytes());
        out[4..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    /// Reads a location back; anything but twelve bytes is corrupt.
    pub(crate) fn decode(raw: &[u8]) -> Result<Self, StoreError> {
        let raw: &[u8; LOCATION_LEN] = raw
            .try_into()
            .map_err(|_| StoreError::corrupt("a message location is not 12 bytes"))?;
        let word = |at: usize| u32::from_be_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        Ok(Location {
            segment: word(0),
            offset: word(4),
            len: word(8),
        })
    }
}

/// Appends the record of message `id` to `out`.
pub(crate) fn encode_record(out: &mut Vec<u8>, id: MessageId, body: &[u8]) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&id.to_be_bytes());
    hasher.update(body);
    // Bodies are far below 4 GiB (frame and message size limits); the caller checks.
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&hasher.finalize().to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
}

/// Reads the body of message `id` at `at` in `file`, checking the record.
pub(crate) fn read_record(file: &File, at: Location, id: MessageId) -> Result<Bytes, StoreError> {
    let len = at.len as usize;
    let mut raw = vec![0u8; HEADER + len];
    file.read_exact_at(&mut raw, u64::from(at.offset))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => StoreError::corrupt(format!(
                "message {id}'s record in segment {} is cut short",
                at.segment
            )),
            _ => StoreError::from(e),
        })?;
    let word = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    let mut stored_id = [0u8; 8];
    stored_id.copy_from_slice(&raw[8..HEADER]);
    if word(0) as usize != len || u64::from_be_bytes(stored_id) != id {
        return Err(StoreError::corrupt(format!(
            "segment {} at {} does not hold message {id}",
            at.segment, at.offset
        )));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&raw[8..]);
    if hasher.finalize() != word(4) {
        return Err(StoreError::corrupt(format!(
            "message {id}'s record in segment {} fails its checksum",
            at.segment
        )));
    }
    let mut body = Bytes::from(raw);
    Ok(body.split_off(HEADER))
}

/// The path of segment `n`.
pub(crate) fn path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:08x}.seg"))
}

/// The numbers of the segments in `dir`, in order; other files are left alone.
pub(crate) fn list(dir: &Path) -> Result<Vec<u32>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_suffix(".seg")
            && hex.len() == 8
            && let Ok(n) = u32::from_str_radix(hex, 16)
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Opens segment `n` for reading.
pub(crate) fn open_for_reading(dir: &Path, n: u32) -> Result<File, StoreError> {
    Ok(File::open(path(dir, n))?)
}

/// Creates segment `n`, which must not exist yet, for appending.
pub(crate) fn create(dir: &Path, n: u32) -> Result<File, StoreError> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path(dir, n))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_a_wrong_location_is_corrupt() {
        let dir = std::env::temp_dir().join(format!("warren-seg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = create(&dir, 3).unwrap();
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, b"first");
        let second = buf.len() as u32;
        encode_record(&mut buf, 8, b"second body");
        file.write_all_at(&buf, 0).unwrap();
        let at = |offset, len| Location {
            segment: 3,
            offset,
            len,
        };
        assert_eq!(&read_record(&file, at(0, 5), 7).unwrap()[..], b"first");
        assert_eq!(
            &read_record(&file, at(second, 11), 8).unwrap()[..],
            b"second body"
        );
        // The wrong id, a wrong length, an offset inside a record, past the end.
        for (loc, id) in [
            (at(0, 5), 8),
            (at(0, 4), 7),
            (at(4, 5), 7),
            (at(second + 40, 11), 8),
        ] {
            let err = read_record(&file, loc, id).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{loc:?}: {err}");
        }
        // A flipped body byte fails the checksum.
        file.write_all_at(b"X", u64::from(second) + HEADER as u64)
            .unwrap();
        assert!(matches!(
            read_record(&file, at(second, 11), 8),
            Err(StoreError::Corrupt(_))
        ));
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        create(&dir, 0x2a).unwrap();
        assert_eq!(list(&dir).unwrap(), vec![3, 0x2a]);
        assert!(
            create(&dir, 3).is_err(),
            "an existing segment is never reused"
        );
        let loc = Location {
            segment: u32::MAX,
            offset: 9,
            len: 1 << 20,
        };
        assert_eq!(Location::decode(&loc.encode()).unwrap(), loc);
        assert!(Location::decode(&[0; 11]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
