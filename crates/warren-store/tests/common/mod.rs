//! Shared test support: unique temporary directories, the [`Harness`] that lets one suite run
//! on every store, and the behavioural suite itself (in `suite.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod suite;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use warren_store::{DefinitionStore, MemoryStore, MessageOp, MessageStore, SledStore};

/// A directory under the system temp dir, unique to this process and call, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "warren-store-test-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store the suite can restart.
pub trait Harness {
    type Store: MessageStore + DefinitionStore;
    fn store(&self) -> &Self::Store;
    /// Closes the store and opens it again over the same data (its open scan finished).
    fn reopen(&mut self);
    /// Closes the store cleanly and opens it again, its open scan left to `scan_step` (and,
    /// for sled, to the store's own background thread).
    fn reopen_scanning(&mut self);
    /// Closes the store as a crash after its last write reached the data would, and opens
    /// it again (the index counted before the open returns, the messages swept by
    /// `scan_step` and, for sled, the store's own background thread).
    fn reopen_after_crash(&mut self);
    /// One step of the open scan of at most `keys` keys; whether the scan is over.
    fn scan_step(&self, keys: usize) -> bool;
    /// Whether the open scan is over.
    fn scan_done(&self) -> bool;
    /// A crash in the middle of `count` puts (their bytes stored, no entry), then an open;
    /// the orphans' ids.
    fn crash_leaving_orphans(&mut self, count: usize) -> Vec<u64>;
    /// The number of messages stored, pending writes handed over first.
    fn stored_messages(&self) -> usize;
    /// A checkpoint of the write-ahead log (sled only: the memory store keeps none).
    fn checkpoint(&self) {}
    /// An aged checkpoint of the write-ahead log: only the writes logged before the previous
    /// one reach the data (sled only).
    fn checkpoint_aged(&self) {}
    /// A crash in the middle of a checkpoint, after `applied` of its changes reached the
    /// data, then an open. Every write was logged, so nothing may be lost. Without a log: a
    /// `sync`, then a crash.
    fn crash_in_checkpoint(&mut self, _applied: usize) {
        self.store().sync().unwrap();
        self.reopen_after_crash();
    }
    /// A crash in the middle of an aged checkpoint, after `applied` of the changes it took
    /// reached the data, then an open. Without a log: a `sync`, then a crash.
    fn crash_in_aged_checkpoint(&mut self, _applied: usize) {
        self.store().sync().unwrap();
        self.reopen_after_crash();
    }
    /// A deletion of `queue` in vhost `/` that crashes after `chunks` chunks of `chunk` of
    /// its entries, then an open (which removes the rest).
    fn crash_in_queue_delete(&mut self, queue: &str, chunk: usize, chunks: usize);
    /// A `sync`, a crash that left a torn record (`garbage` bytes of one) after the log's
    /// last, then an open. Without a log: a `sync`, then a crash.
    fn crash_with_torn_log(&mut self, _garbage: &[u8]) {
        self.store().sync().unwrap();
        self.reopen_after_crash();
    }
}

pub struct MemoryHarness(pub MemoryStore);

impl MemoryHarness {
    pub fn new() -> Self {
        MemoryHarness(MemoryStore::new())
    }
}

impl Harness for MemoryHarness {
    type Store = MemoryStore;
    fn store(&self) -> &MemoryStore {
        &self.0
    }
    fn reopen(&mut self) {
        self.0 = self.0.reopen().unwrap();
    }
    fn reopen_scanning(&mut self) {
        self.0 = self.0.reopen_scanning().unwrap();
    }
    fn reopen_after_crash(&mut self) {
        self.0 = self.0.reopen_after_crash().unwrap();
    }
    fn scan_step(&self, keys: usize) -> bool {
        self.0.scan_step(keys).unwrap()
    }
    fn scan_done(&self) -> bool {
        self.0.open_scan_done()
    }
    fn crash_leaving_orphans(&mut self, count: usize) -> Vec<u64> {
        let (store, ids) = self.0.crash_leaving_orphans(count).unwrap();
        self.0 = store;
        ids
    }
    fn stored_messages(&self) -> usize {
        self.0.stored_messages().unwrap()
    }
    fn crash_in_queue_delete(&mut self, queue: &str, chunk: usize, chunks: usize) {
        self.0 = self
            .0
            .crash_in_queue_delete(b"/", queue.as_bytes(), chunk, chunks)
            .unwrap();
    }
}

pub struct SledHarness {
    // Field order matters: the store closes before the directory is removed.
    store: Option<SledStore>,
    dir: TempDir,
}

impl SledHarness {
    /// A new store with the default options: message bodies in the message log.
    pub fn new() -> Self {
        let dir = TempDir::new("suite");
        let store = SledStore::open(dir.path()).unwrap();
        assert!(store.logs_messages());
        SledHarness {
            store: Some(store),
            dir,
        }
    }

    /// A store created with the packed key layout (`SledOptions::pack_new_store`), which it
    /// keeps across reopens with default options.
    pub fn packed() -> Self {
        let dir = TempDir::new("suite-packed");
        let options = warren_store::SledOptions {
            pack_new_store: true,
            log_messages: false,
            ..warren_store::SledOptions::default()
        };
        let store = SledStore::open_with(dir.path(), &options).unwrap();
        assert!(store.is_packed() && !store.logs_messages());
        SledHarness {
            store: Some(store),
            dir,
        }
    }

    /// A store in a directory an older build (format 3) made: one sled record per message
    /// and per index entry, a layout the store keeps.
    pub fn unpacked() -> Self {
        let dir = TempDir::new("suite-unpacked");
        make_format_3_dir(dir.path());
        let store = SledStore::open(dir.path()).unwrap();
        assert!(!store.is_packed());
        SledHarness {
            store: Some(store),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Makes `dir` an empty store as a format-3 build left it: its marker, and key layout 2 in
/// sled's meta key.
pub fn make_format_3_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("FORMAT"), "warren-store format 3\n").unwrap();
    let db = sled::open(dir.join("sled")).unwrap();
    db.insert(b"\x00format_version", &2u32.to_be_bytes()[..])
        .unwrap();
    db.flush().unwrap();
}

impl Harness for SledHarness {
    type Store = SledStore;
    fn store(&self) -> &SledStore {
        self.store.as_ref().unwrap()
    }
    fn reopen(&mut self) {
        self.reopen_scanning();
        self.store().finish_open_scan().unwrap();
    }
    fn reopen_scanning(&mut self) {
        drop(self.store.take());
        self.store = Some(SledStore::open(self.dir.path()).unwrap());
    }
    fn reopen_after_crash(&mut self) {
        if let Some(store) = self.store.take() {
            store.close_as_crash();
        }
        self.store = Some(SledStore::open(self.dir.path()).unwrap());
    }
    fn scan_step(&self, keys: usize) -> bool {
        self.store().open_scan_step(keys).unwrap()
    }
    fn scan_done(&self) -> bool {
        self.store().open_scan_done()
    }
    fn crash_leaving_orphans(&mut self, count: usize) -> Vec<u64> {
        let ids = match self.store.take() {
            Some(store) => store.crash_leaving_orphans(count).unwrap(),
            None => Vec::new(),
        };
        self.store = Some(SledStore::open(self.dir.path()).unwrap());
        ids
    }
    fn stored_messages(&self) -> usize {
        self.store().stored_messages().unwrap()
    }
    fn checkpoint(&self) {
        self.store().checkpoint().unwrap();
    }
    fn checkpoint_aged(&self) {
        self.store().checkpoint_aged().unwrap();
    }
    fn crash_in_aged_checkpoint(&mut self, applied: usize) {
        if let Some(store) = self.store.take() {
            store.crash_in_aged_checkpoint(applied).unwrap();
        }
        self.store = Some(SledStore::open(self.dir.path()).unwrap());
    }
    fn crash_in_queue_delete(&mut self, queue: &str, chunk: usize, chunks: usize) {
        if let Some(store) = self.store.take() {
            store
                .crash_in_queue_delete(b"/", queue.as_bytes(), chunk, chunks)
                .unwrap();
        }
        self.store = Some(SledStore::open(self.dir.path()).unwrap());
    }
    fn crash_in_checkpoint(&mut self, applied: usize) {
        if let Some(store) = self.store.take() {
            store.crash_in_checkpoint(applied).unwrap();
        }
        self.store = Some(SledStore::open(self.dir.path()).unwrap());
    }
    fn crash_with_torn_log(&mut self, garbage: &[u8]) {
        self.store().sync().unwrap();
        if let Some(store) = self.store.take() {
            store.close_as_crash();
        }
        // The newest log file, as a crash during an append leaves it.
        let wal = self.dir.path().join("wal");
        let newest = std::fs::read_dir(&wal)
            .ok()
            .and_then(|files| files.filter_map(Result::ok).map(|f| f.path()).max());
        if let Some(path) = newest {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            std::io::Write::write_all(&mut f, garbage).unwrap();
        }
        self.store = Some(SledStore::open(self.dir.path()).unwrap());
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put(id: u64, message: &str) -> MessageOp {
    MessageOp::Put {
        id,
        message: b(message),
    }
}

pub fn enqueue(vhost: &str, queue: &str, seq: u64, id: u64) -> MessageOp {
    MessageOp::Enqueue {
        vhost: b(vhost),
        queue: b(queue),
        seq,
        id,
    }
}

pub fn remove(vhost: &str, queue: &str, seq: u64, id: u64) -> MessageOp {
    MessageOp::Remove {
        vhost: b(vhost),
        queue: b(queue),
        seq,
        id,
    }
}

pub fn redeliver(vhost: &str, queue: &str, seq: u64, id: u64) -> MessageOp {
    MessageOp::MarkRedelivered {
        vhost: b(vhost),
        queue: b(queue),
        seq,
        id,
    }
}

/// `(seq, id, redelivered, message)` of every entry of a queue.
pub fn entries(s: &impl MessageStore, vhost: &str, queue: &str) -> Vec<(u64, u64, bool, String)> {
    s.load_queue(vhost.as_bytes(), queue.as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.seq,
                e.id,
                e.redelivered,
                String::from_utf8(e.message.to_vec()).unwrap(),
            )
        })
        .collect()
}

/// Declares one test per suite case, each on a fresh harness built by `$make`.
#[macro_export]
macro_rules! behaviour_suite {
    ($make:expr) => {
        $crate::behaviour_suite!($make;
            every_definition_round_trips_through_reopen,
            puts_overwrite_and_deletes_of_absent_records_succeed,
            deletes_round_trip_through_reopen,
            delete_exchange_removes_bindings_to_and_from_it,
            delete_queue_removes_its_bindings_entries_and_unshared_messages,
            delete_vhost_removes_everything_in_it_and_nothing_else,
            vhost_limits_round_trip_and_go_with_their_vhost,
            parameters_survive_reopen_and_go_with_their_vhost,
            messages_round_trip_through_reopen,
            a_message_in_two_queues_is_stored_once_and_deleted_after_both_removes,
            load_queue_returns_entries_in_seq_order,
            queues_and_vhosts_whose_names_are_prefixes_do_not_mix,
            redelivered_flag_survives_reopen,
            ops_in_one_write_see_the_ops_before_them,
            a_refused_write_changes_nothing,
            next_message_id_exceeds_every_id_ever_stored_across_reopen,
            definition_changes_and_syncs_are_counted_as_flushes,
            overlong_names_are_refused_everywhere,
            concurrent_writers_each_followed_by_sync_all_succeed,
            a_held_message_outlives_the_removal_of_its_first_entry,
            releasing_the_last_reference_deletes_the_message,
            a_release_without_a_hold_is_refused_and_changes_nothing,
            a_restart_drops_holds_and_keeps_entries,
            deleting_a_queue_keeps_a_held_message,
        );
    };
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let _ = common::suite::$case($make);
            }
        )*
    };
}

/// Waits until nothing holds sled's lock on the database in `dir`: sled's threads may hold it
/// a little after a test's own `sled::Db` is dropped, and a store opened meanwhile is refused.
pub fn wait_sled_unlocked(dir: &Path) {
    use fs2::FileExt;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("sled").join("db"))
            .unwrap();
        if file.try_lock_exclusive().is_ok() {
            let _ = FileExt::unlock(&file);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sled's lock was never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
