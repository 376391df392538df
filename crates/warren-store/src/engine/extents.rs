//! Every queue's extent (its index entries and where they end), kept in the store beside the
//! entries themselves, so that an open after a crash knows each queue's extent without
//! counting its index (format 3).
//!
//! Until format 3 only a clean close recorded the extents (the `clean_extents` meta key); an
//! open after a crash counted every index entry before the store could serve, about 6 s for
//! 10 M entries, while the port stayed closed. Now a store with a write-ahead log keeps one
//! `EXTENT` key per queue (see `keys`), and the open reads those keys instead, whatever the
//! shutdown was, and leaves the reference counts to the background scan, as after a clean
//! close (see `scan`).
//!
//! **Why the keys are right after a crash.** A queue whose extent changes is marked
//! *unstaged*; whenever the pending list is logged (every `sync`, every hand-over, a
//! checkpoint, a resume, a close), the unstaged extents are first set in the list, after the
//! changes they reflect, as changes of their own, so each log record ends with the extents
//! of the state it leaves. Replay (see `wal`) ends at the last complete record: every key at
//! its last logged value, the `EXTENT` keys included, so they agree with the index entries
//! replayed with them. Sled alone holds the whole truth only after a full checkpoint
//! (everything pending handed over, the log deleted), and a full checkpoint hands over every
//! extent staged with it. An aged checkpoint hands over a prefix of the list, whose extent
//! keys may be ahead of or behind its entries, but the log files it keeps hold what follows,
//! and a crash replays them.
//!
//! **Cheap on the hot path.** An extent change is staged once per queue per log record, not
//! per message: a queue's staged value sits in the list as a tracked key (see
//! `Pending::set_kept`), and a newer value overwrites it in place while the backend has not
//! taken it (the log still gets each value, in order). Without a log (the memory store) nothing
//! is staged: a crash there cannot be replayed, and the open counts the index as before.
//!
//! **Deletion.** A queue's or vhost's deletion removes the `EXTENT` keys under its index prefix
//! in the batch that is its commit point (`Plan::start_dropping`); the last of the chunks that
//! then remove its entries removes any again (a write racing the deletion may have kept one).
//!
//! **Upgrade.** A store of format 2 holds no `EXTENT` keys and its key layout (the
//! `format_version` meta key) is 1. Its first open counts the index (or reads its
//! `clean_extents`), then writes every extent and layout 2 in one atomic batch: a crash before
//! that batch leaves layout 1, counted again by the next open.

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};

use crate::QueueExtent;
use crate::StoreError;
use crate::backend::{Atomicity, Backend, Changes};
use crate::engine::wal::{self, Wal};
use crate::engine::{Engine, Shared};
use crate::keys;

/// A queue's extent, and whether it changed since it was last staged for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tracked {
    /// The extent.
    pub(crate) extent: QueueExtent,
    /// Changed since it was last staged (the queue's prefix is in `Shared::unstaged`).
    pub(crate) unstaged: bool,
}

/// Each queue's extent, by index prefix.
pub(crate) type Extents = ahash::AHashMap<Vec<u8>, Tracked>;

/// The sled key layout that keeps `EXTENT` keys (the `format_version` meta key).
pub(crate) const LAYOUT_KEEPING_EXTENTS: u32 = 2;

/// An `EXTENT` value: count, then end_seq, u64 BE each.
pub(crate) fn encode_extent(e: QueueExtent) -> Bytes {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u64(e.count);
    buf.put_u64(e.end_seq);
    buf.freeze()
}

/// Reads back [`encode_extent`]'s output.
pub(crate) fn decode_extent(v: &[u8]) -> Result<QueueExtent, StoreError> {
    let bad = || StoreError::corrupt("an extent key's value is not 16 bytes");
    let u64_at = |at: usize| -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(
            v.get(at..at + 8)
                .and_then(|r| r.try_into().ok())
                .ok_or_else(bad)?,
        ))
    };
    if v.len() != 16 {
        return Err(bad());
    }
    Ok(QueueExtent {
        count: u64_at(0)?,
        end_seq: u64_at(8)?,
    })
}

/// Every `EXTENT` key of the backend, and the bytes (keys and values) and number of those
/// keys, which count as live data as the messages and index entries do.
pub(crate) fn read_kept<B: Backend>(backend: &B) -> Result<(Extents, (u64, u64)), StoreError> {
    let mut extents = Extents::default();
    let mut live = (0u64, 0u64);
    backend.scan_prefix(&[keys::EXTENT], &mut |k, v| {
        live.0 += (k.len() + v.len()) as u64;
        live.1 += 1;
        let prefix = k.get(1..).unwrap_or_default().to_vec();
        let extent = decode_extent(v)?;
        extents.insert(
            prefix,
            Tracked {
                extent,
                unstaged: false,
            },
        );
        Ok(())
    })?;
    Ok((extents, live))
}

impl Shared {
    /// Installs the plan's extent changes (counts and end_seq floors, then deleted queues),
    /// marking the queues whose extent the store keeps as unstaged.
    pub(super) fn commit_extents(&mut self, dropped: &[Vec<u8>]) {
        for (prefix, delta, end) in self.extent_deltas.iter() {
            // A queue already known (every publish and ack after its first) allocates nothing.
            let t = match self.extents.get_mut(prefix) {
                Some(t) => t,
                None => self.extents.entry(prefix.to_vec()).or_default(),
            };
            t.extent.count = t.extent.count.saturating_add_signed(delta);
            t.extent.end_seq = t.extent.end_seq.max(end);
            if self.keep_extents && !t.unstaged {
                t.unstaged = true;
                self.unstaged.push(prefix.to_vec());
            }
        }
        for prefix in dropped {
            // Their keys go in the deletion's own batch (see the module doc).
            self.extents.retain(|k, _| !k.starts_with(prefix));
        }
    }

    /// Sets every unstaged extent in the pending list, after the changes it reflects: called
    /// before the list is logged (see the module doc). Nothing when the extents are not kept
    /// (no queue is marked unstaged then).
    pub(super) fn stage_extents(&mut self) {
        if self.unstaged.is_empty() {
            return;
        }
        let mut unstaged = std::mem::take(&mut self.unstaged);
        for prefix in unstaged.drain(..) {
            // A queue deleted since has no extent (and no key) any more.
            let Some(t) = self.extents.get_mut(&prefix) else {
                continue;
            };
            if !t.unstaged {
                continue; // listed twice: deleted and declared again
            }
            t.unstaged = false;
            let value = encode_extent(t.extent);
            self.pending.set_kept(keys::extent(&prefix), value);
        }
        self.unstaged = unstaged;
    }
}

impl<B: Backend> Engine<B> {
    /// Opens a store with its write-ahead log in `wal_dir`, as the sled store does: the log
    /// replayed first, then the extents read from their keys (layout 2), or counted and then
    /// kept (an older layout, upgraded here); the log attached.
    pub(crate) fn open_logged(backend: B, wal_dir: &Path) -> Result<Self, StoreError> {
        let generation = wal::recover(wal_dir, &backend)?;
        let layout = match backend.get(keys::FORMAT_VERSION_KEY)? {
            Some(v) => u32::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("format_version is not 4 bytes"))?,
            ),
            None => 0,
        };
        let engine = if layout >= LAYOUT_KEEPING_EXTENTS {
            Self::open_kept(backend)?
        } else {
            let engine = Self::open(backend)?;
            engine.keep_extents()?;
            engine
        };
        Ok(engine.with_wal(Wal::new(wal_dir.to_path_buf(), generation)?))
    }

    /// Opens a store whose `EXTENT` keys are kept (layout 2): the extents are read from them
    /// and the reference counts left to the background scan, whatever the last shutdown was.
    /// The log must have been replayed first (`wal::recover`).
    pub(crate) fn open_kept(backend: B) -> Result<Self, StoreError> {
        let persisted_max = super::read_max_id(&backend)?;
        let (extents, live) = read_kept(&backend)?;
        let (boundary, next, last_stored) = super::id_boundary(&backend, persisted_max)?;
        let engine = Self::with_state(backend, persisted_max, next, extents);
        {
            let mut shared = engine.shared.lock();
            shared.keep_extents = true;
            shared.scanned_live = live;
            // No message stored, so no entry either: nothing to count or sweep.
            if last_stored.is_some() {
                shared.scan = Some(super::ScanState::Counting {
                    boundary,
                    pos: vec![keys::INDEX],
                });
                engine
                    .scan_over
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
        engine.finish_dropping()?;
        Ok(engine)
    }

    /// Starts keeping the extents in the store (the upgrade of a layout-1 store, just opened,
    /// nothing pending): every extent and the layout, in one atomic batch, then a flush.
    pub(crate) fn keep_extents(&self) -> Result<(), StoreError> {
        let _order = self.order.lock();
        let mut shared = self.shared.lock();
        self.running()?;
        // Nothing is pending at open; whatever is goes first, in the same batch.
        let mut changes: Changes = shared.pending.take();
        // A layout-1 store holds no `EXTENT` keys, but the batch must leave exactly the
        // extents in memory whatever it holds.
        self.backend.scan_prefix(&[keys::EXTENT], &mut |k, _| {
            changes.push((k.to_vec(), None));
            Ok(())
        })?;
        let mut live = (0u64, 0u64);
        for (prefix, t) in &shared.extents {
            let (key, value) = (keys::extent(prefix), encode_extent(t.extent));
            live.0 += (key.len() + value.len()) as u64;
            live.1 += 1;
            changes.push((key, Some(value)));
        }
        changes.push((
            keys::FORMAT_VERSION_KEY.to_vec(),
            Some(Bytes::copy_from_slice(
                &LAYOUT_KEEPING_EXTENTS.to_be_bytes(),
            )),
        ));
        self.backend.apply(changes, Atomicity::Batch)?;
        self.backend.flush()?;
        shared.keep_extents = true;
        shared.scanned_live.0 += live.0;
        shared.scanned_live.1 += live.1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::format::{FORMAT_FILE, SLED_LAYOUT_UNPACKED};
    use crate::{DefinitionStore, MessageOp, MessageStore, SledOptions, SledStore};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("warren-extents-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn quiet() -> SledOptions {
        SledOptions {
            background_flush: None,
            ..SledOptions::default()
        }
    }

    /// `n` messages enqueued in `queue` from `seq` on, ids from the store.
    fn fill(store: &SledStore, queue: &'static str, seq: u64, n: u64) -> Vec<u64> {
        let mut ids = Vec::new();
        for i in 0..n {
            let id = store.next_message_id().unwrap();
            let ops = [
                MessageOp::Put {
                    id,
                    message: Bytes::from_static(b"m"),
                },
                MessageOp::Enqueue {
                    vhost: Bytes::from_static(b"/"),
                    queue: Bytes::from_static(queue.as_bytes()),
                    seq: seq + i,
                    id,
                },
            ];
            store.write(&ops).unwrap();
            ids.push(id);
        }
        ids
    }

    fn extent(store: &SledStore, queue: &str) -> (u64, u64) {
        let e = store.queue_extent(b"/", queue.as_bytes()).unwrap();
        (e.count, e.end_seq)
    }

    #[test]
    fn an_open_after_a_crash_finds_every_extent_in_its_keys() {
        let dir = scratch("crash");
        let store = SledStore::open_with(&dir, &quiet()).unwrap();
        let a = fill(&store, "a", 0, 5);
        fill(&store, "b", 0, 3);
        fill(&store, "gone", 0, 2);
        store.checkpoint().unwrap(); // some in sled, the rest in the log only
        fill(&store, "b", 3, 4);
        store
            .write(&[MessageOp::Remove {
                vhost: Bytes::from_static(b"/"),
                queue: Bytes::from_static(b"a"),
                seq: 4,
                id: a[4],
            }])
            .unwrap();
        store.delete_queue(b"/", b"gone").unwrap();
        store.sync().unwrap();
        store.close_as_crash();
        let store = SledStore::open_with(&dir, &quiet()).unwrap();
        // `a` lost its last entry, so it ends below its kept end; `gone` has no extent.
        assert_eq!(extent(&store, "a"), (4, 5));
        assert_eq!(extent(&store, "b"), (7, 7));
        assert_eq!(extent(&store, "gone"), (0, 0));
        assert_eq!(store.load_queue(b"/", b"b").unwrap().len(), 7);
        let kept = read_kept(store.engine.backend()).unwrap().0;
        assert_eq!(kept.len(), 2, "the deleted queue's key went with it");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_format_2_store_is_upgraded_by_its_first_open() {
        let dir = scratch("upgrade");
        // Format 2 wrote one record per message (unpacked).
        SledStore::create_unpacked(&dir).unwrap();
        let store = SledStore::open_with(&dir, &quiet()).unwrap();
        fill(&store, "a", 0, 6);
        fill(&store, "b", 10, 2);
        store.checkpoint().unwrap();
        // As a format-2 build leaves it: no extent keys, layout 1.
        let backend = store.engine.backend();
        let mut changes: Changes = Vec::new();
        backend
            .scan_prefix(&[keys::EXTENT], &mut |k, _| {
                changes.push((k.to_vec(), None));
                Ok(())
            })
            .unwrap();
        assert_eq!(changes.len(), 2);
        changes.push((
            keys::FORMAT_VERSION_KEY.to_vec(),
            Some(Bytes::copy_from_slice(&1u32.to_be_bytes())),
        ));
        backend.apply(changes, Atomicity::Batch).unwrap();
        backend.flush().unwrap();
        store.close_as_crash();
        std::fs::write(dir.join(FORMAT_FILE), "warren-store format 2\n").unwrap();

        let store = SledStore::open_with(&dir, &quiet()).unwrap();
        assert_eq!(extent(&store, "a"), (6, 6));
        assert_eq!(extent(&store, "b"), (2, 12));
        assert_eq!(
            std::fs::read_to_string(dir.join(FORMAT_FILE)).unwrap(),
            "warren-store format 4\n"
        );
        let backend = store.engine.backend();
        assert_eq!(
            backend
                .get(keys::FORMAT_VERSION_KEY)
                .unwrap()
                .unwrap()
                .as_ref(),
            SLED_LAYOUT_UNPACKED.to_be_bytes()
        );
        let kept = read_kept(backend).unwrap().0;
        let a = keys::queue_index_prefix(b"/", b"a").unwrap();
        assert_eq!(kept.get(&a).map(|t| t.extent.count), Some(6));
        // From now on a crash open reads them.
        fill(&store, "a", 6, 1);
        store.sync().unwrap();
        store.close_as_crash();
        let store = SledStore::open_with(&dir, &quiet()).unwrap();
        assert_eq!(extent(&store, "a"), (7, 7));
        assert_eq!(extent(&store, "b"), (2, 12));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_extent_value_round_trips_and_a_short_one_is_refused() {
        let e = QueueExtent {
            count: 3,
            end_seq: 1 << 40,
        };
        assert_eq!(decode_extent(&encode_extent(e)).unwrap(), e);
        assert!(decode_extent(&[0; 15]).is_err());
        assert!(decode_extent(&[0; 17]).is_err());
    }
}
