//! The on-disk format version, checked twice: a `FORMAT` file beside the sled directory is read
//! before sled opens anything (opening sled writes to the directory, so an unknown directory
//! must be refused before that), and the meta key `format_version` inside sled is checked after.
//!
//! ```text
//! <dir>/FORMAT     "warren-store format 4\n"; also the directory's lock (see `DirLock`)
//! <dir>/sled/      the sled database; meta key format_version = 4, 3 or 2 (u32 BE: the key layout)
//! <dir>/wal/       the write-ahead log of message writes, while it holds any (`engine::wal`)
//! <dir>/messages/  message bodies, with key layout 4 only (`msglog`)
//! ```
//!
//! Format 2 is format 1 plus the write-ahead log: a build of format 1 would open a directory
//! whose log holds confirmed messages and silently lose them, so the marker changed. The keys
//! inside sled did not, so their meta key stays 1. A format-1 directory (it has no log) is
//! upgraded in place when opened: its marker is rewritten before anything can be logged.
//!
//! Format 3 is format 2 plus each queue's extent kept in sled beside its index entries (the
//! `EXTENT` keys, key layout 2; see `engine::extents`): a build of format 2 would change the
//! entries without them, and a later open would trust extents that no longer match. A format-1
//! or format-2 directory is upgraded when opened: the marker first, then the first open counts
//! the index (layout 1) and writes the extents and layout 2 in one batch; until that batch
//! the layout stays 1 and every open counts.
//!
//! Format 4 adds key layout 3: several messages, and several index entries of one queue, per
//! sled record (see `packed`), for a store created with `SledOptions::pack_new_store` (off by
//! default). A build of format 3 would find no message in such a directory. The layout is
//! chosen when a store is created and kept; a directory of an older format keeps its layout 2
//! (or is upgraded from 1 to 2 as above), with its marker rewritten to 4. An offline
//! compaction with the option set repacks an unpacked store (its copy gets layout 3).
//!
//! Key layout 4 (still format 4) keeps message bodies in the message log, `<dir>/messages/`
//! (see `msglog`), and only their locations in sled, sixteen per record, for a store created
//! with `SledOptions::log_messages`. The marker did not change: a format-4 build without the
//! log reads the meta key, finds layout 4 and refuses the directory before serving anything.
//!
//! Compaction adds transient siblings of `sled/` (`sled.building`, `sled.compact`,
//! `sled.old`); the `compact` module owns them and every open resolves them.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::StoreError;

/// The version this build writes (it also opens, and upgrades, [`FORMAT_UPGRADED`]).
pub const FORMAT_VERSION: u32 = 4;
/// The previous versions: messages one per sled record (3), no extent keys either (2), and
/// no write-ahead log either (1).
pub const FORMAT_UPGRADED: [u32; 3] = [1, 2, 3];
/// The packed key layout inside sled (its `format_version` meta key): messages and index
/// entries in blocks (see `packed`), for a store created with `SledOptions::pack_new_store`.
pub(crate) const SLED_LAYOUT_VERSION: u32 = 3;
/// The key layout with message bodies in the message log (`msglog`) and sixteen locations
/// per sled record, for a store created with `SledOptions::log_messages`.
pub(crate) const SLED_LAYOUT_LOGGED: u32 = 4;
/// The key layout of a new store by default, of format 3 and of formats 1 and 2 once upgraded:
/// the extents kept, one record per message and per index entry. A store keeps its layout.
pub(crate) const SLED_LAYOUT_UNPACKED: u32 = 2;
/// The key layout of formats 1 and 2, upgraded by the first open to [`SLED_LAYOUT_UNPACKED`].
pub(crate) const SLED_LAYOUT_UPGRADED: u32 = 1;

pub(crate) const FORMAT_FILE: &str = "FORMAT";
const FORMAT_TMP: &str = "FORMAT.tmp";
const MARKER_PREFIX: &str = "warren-store format ";

fn unsupported(found: Option<u32>) -> StoreError {
    StoreError::UnsupportedFormat {
        found,
        supported: FORMAT_VERSION,
    }
}

/// Makes `dir` a store directory of this version, or refuses it without writing anything.
pub(crate) fn prepare(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir)?;
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    // A crash while creating the marker leaves only the temporary file: still a fresh directory.
    if names.iter().all(|n| n == FORMAT_TMP) {
        return write_marker(dir);
    }
    let text = match fs::read_to_string(dir.join(FORMAT_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(unsupported(None)),
        Err(e) if e.kind() == ErrorKind::InvalidData => return Err(unsupported(None)),
        Err(e) => return Err(e.into()),
    };
    let version = text
        .strip_prefix(MARKER_PREFIX)
        .and_then(|v| v.trim_end().parse::<u32>().ok())
        .ok_or_else(|| unsupported(None))?;
    match version {
        FORMAT_VERSION => Ok(()),
        // The marker first: the sled layout says whether the extents are kept yet.
        v if FORMAT_UPGRADED.contains(&v) => write_marker(dir),
        _ => Err(unsupported(Some(version))),
    }
}

/// The sled database's directory inside a store directory.
pub(crate) const SLED_DIR: &str = "sled";

/// An exclusive advisory lock on a store directory, held by an open store and through a whole
/// compaction, so that no other process opens, or finishes the compaction of, a directory
/// while its databases are being swapped. It locks the `FORMAT` file: every store directory
/// has one, and the layout gains no file that older builds would not know.
pub(crate) struct DirLock {
    _file: File,
}

impl std::fmt::Debug for DirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirLock")
    }
}

/// Locks a directory that [`prepare`] accepted; an I/O error when another store holds it.
pub(crate) fn lock(dir: &Path) -> Result<DirLock, StoreError> {
    use fs2::FileExt;
    let file = File::open(dir.join(FORMAT_FILE))?;
    // A store closing in this process (a restart after shutdown) may still be held for a few
    // milliseconds by a sync finishing on a blocking thread: wait a little before refusing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(DirLock { _file: file }),
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{} is in use by another store: {e}", dir.display()),
                )
                .into());
            }
        }
    }
}

/// Writes the marker atomically: temporary file, fsync, rename, fsync the directory.
fn write_marker(dir: &Path) -> Result<(), StoreError> {
    let tmp = dir.join(FORMAT_TMP);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(format!("{MARKER_PREFIX}{FORMAT_VERSION}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(FORMAT_FILE))?;
    sync_dir(dir)
}

/// Makes a directory's entries (created or renamed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Checks the `format_version` meta value read from sled, `None` when absent.
pub(crate) fn check_meta(
    found: Option<&[u8]>,
    store_is_empty: bool,
) -> Result<MetaState, StoreError> {
    match found {
        None if store_is_empty => Ok(MetaState::Fresh),
        None => Err(unsupported(None)),
        Some(raw) => {
            let raw: [u8; 4] = raw.try_into().map_err(|_| unsupported(None))?;
            match u32::from_be_bytes(raw) {
                SLED_LAYOUT_LOGGED => Ok(MetaState::Current {
                    packed: true,
                    logged: true,
                }),
                SLED_LAYOUT_VERSION => Ok(MetaState::Current {
                    packed: true,
                    logged: false,
                }),
                SLED_LAYOUT_UNPACKED | SLED_LAYOUT_UPGRADED => Ok(MetaState::Current {
                    packed: false,
                    logged: false,
                }),
                other => Err(unsupported(Some(other))),
            }
        }
    }
}

/// What the meta key says about an opened database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaState {
    /// An empty database: write the meta key.
    Fresh,
    /// A layout this build opens: the current one (`packed`), an older one it keeps, or the
    /// one the first open upgrades.
    Current {
        /// Whether messages and index entries are packed into blocks (layouts 3 and 4).
        packed: bool,
        /// Whether message bodies live in the message log, sled holding their locations
        /// (layout 4, see `msglog`).
        logged: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_check_accepts_current_and_fresh_and_refuses_the_rest() {
        for (layout, packed, logged) in [
            (1u32, false, false),
            (2, false, false),
            (3, true, false),
            (4, true, true),
        ] {
            assert_eq!(
                check_meta(Some(&layout.to_be_bytes()), false).unwrap(),
                MetaState::Current { packed, logged },
                "layout {layout}"
            );
        }
        assert_eq!(check_meta(None, true).unwrap(), MetaState::Fresh);
        assert!(matches!(
            check_meta(Some(&5u32.to_be_bytes()), false),
            Err(StoreError::UnsupportedFormat {
                found: Some(5),
                supported: 4
            })
        ));
        assert!(matches!(
            check_meta(None, false),
            Err(StoreError::UnsupportedFormat { found: None, .. })
        ));
        assert!(matches!(
            check_meta(Some(b"x"), false),
            Err(StoreError::UnsupportedFormat { found: None, .. })
        ));
    }

    #[test]
    fn format_1_2_and_3_directories_are_upgraded_and_an_unknown_one_refused() {
        let dir = std::env::temp_dir().join(format!("warren-format-up-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for old in [1, 2, 3] {
            fs::write(
                dir.join(FORMAT_FILE),
                format!("warren-store format {old}\n"),
            )
            .unwrap();
            prepare(&dir).unwrap();
            assert_eq!(
                fs::read_to_string(dir.join(FORMAT_FILE)).unwrap(),
                "warren-store format 4\n"
            );
        }
        fs::write(dir.join(FORMAT_FILE), "warren-store format 5\n").unwrap();
        assert!(matches!(
            prepare(&dir),
            Err(StoreError::UnsupportedFormat {
                found: Some(5),
                supported: 4
            })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
