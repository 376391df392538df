//! Warren's persistence: durable definitions (vhosts, users, exchanges, queues, bindings) and
//! persistent messages with their queue indexes, behind two traits, [`DefinitionStore`] and
//! [`MessageStore`], implemented by [`SledStore`] (sled 0.34 on disk), [`MemoryStore`] (the
//! same rules in memory) and wrapped by [`FaultyStore`] (injected I/O errors for tests).
//!
//! The crate knows no AMQP frames and no tokio: records carry the broker's own encodings as
//! opaque [`bytes::Bytes`] (field-table arguments, the encoded message), and every call is
//! synchronous and blocking. An async caller runs `sync` on a blocking thread.
//!
//! ```
//! use bytes::Bytes;
//! use warren_store::{MemoryStore, MessageOp, MessageStore};
//!
//! let store = MemoryStore::new(); // or SledStore::open(dir)?
//! let id = store.next_message_id()?;
//! let (vhost, message) = (Bytes::from_static(b"/"), Bytes::from_static(b"encoded message"));
//! store.write(&[
//!     MessageOp::Put { id, message },
//!     MessageOp::Enqueue { vhost: vhost.clone(), queue: Bytes::from_static(b"a"), seq: 0, id },
//!     MessageOp::Enqueue { vhost, queue: Bytes::from_static(b"b"), seq: 0, id },
//! ])?;
//! store.sync()?; // now durable: confirm the publish
//! assert_eq!(store.load_queue(b"/", b"b")?[0].id, id);
//! assert_eq!(store.stats().messages, 1); // stored once, enqueued twice
//! # Ok::<(), warren_store::StoreError>(())
//! ```
//!
//! # Durability contract
//!
//! *Durable* means: present after the process is killed or the machine loses power, provided
//! the disk honours fsync.
//!
//! - **Definition calls** (`put_*`, `delete_*` of [`DefinitionStore`]) are durable when they
//!   return `Ok`, and atomic across a crash. Each is one sled batch followed by a flush, and
//!   that flush also makes every message write that returned before it durable. Cascades are
//!   part of the same batch: `delete_exchange` removes bindings to and from the exchange,
//!   `delete_queue` its bindings, index entries and the messages no other queue holds,
//!   `delete_vhost` everything in the vhost.
//! - **[`MessageStore::write`]** is all-or-nothing against refusal: it is checked whole before
//!   anything is applied, so an `Err` for a bad op (unknown id, a `seq` enqueued twice, ...)
//!   changed nothing (what is checked: "Blind message ops" below). On `Ok` all its ops are applied and visible to `load_queue`. It is **not durable**
//!   on return, and until a `sync` covers it a crash may keep any prefix of it (sled recovers a
//!   prefix of its log): ops are written so that every prefix is consistent (message bytes
//!   before the entries that reference them, deleted after them), so recovery never finds an
//!   entry without its message; bytes left without entries are deleted at open. For the broker
//!   this means an unconfirmed publish routed to two queues may survive a crash in one of them,
//!   and some acks of an unsynced batch may be lost (redelivery), as with RabbitMQ's per-queue
//!   indexes.
//!   Writes are ordered: a write never survives a crash that loses an earlier one.
//! - **Writes are deferred, and an ack can cancel them.** A `write` returns once its ops are
//!   checked and recorded in memory; its key changes reach sled at the next definition change
//!   or queue read, when more than 64 Ki changes or 32 MiB wait, one to two periods of sled's
//!   flush cadence later (a background thread, every 500 ms by default), or when the store
//!   closes. A `sync` makes them durable in the write-ahead log, not in sled. A `Remove` that
//!   arrives while the `Put` and `Enqueue` it undoes are still waiting cancels all of them: a
//!   message acknowledged before it was written is never written, as in RabbitMQ's message
//!   store (issue 7: under a steady consumer this is most of a persistent message's disk work).
//!   An error applying them (a full disk) *suspends* the store: writes still join the list,
//!   while syncs, reads and definition changes are refused with [`StoreError::Suspended`]
//!   until the store's drain thread has reopened sled and replayed the log into it, which it
//!   retries by itself (every 1 to 16 s). The writes the failure covered are not confirmed.
//! - A failure that leaves memory and the disk disagreeing (a log append that cannot be taken
//!   back) makes the store refuse every call with
//!   [`StoreError::Failed`] until reopened, and reopening recovers the consistent state from
//!   disk.
//! - **[`MessageStore::sync`]** returns `Ok` once every write (and definition change) that
//!   returned before `sync` was called is durable. Concurrent callers share flushes (group
//!   commit): one flush runs, callers arriving meanwhile wait for the next one and return
//!   together, so a broker can confirm a whole batch of publishes with one fsync. If `sync`
//!   fails, the writes stay applied in memory but their durability is unknown: the broker must
//!   not confirm them (treat it as a disk alarm).
//! - Without `sync`, sled's background flush (every 500 ms by default, see [`SledOptions`])
//!   usually writes data out anyway; that is a bound on loss in practice, not a promise.
//! - [`MemoryStore`] follows the same rules with nothing on disk: `sync` is a counted no-op.
//!
//! On Linux sled's own flush writes its log with `sync_file_range`, which persists neither file
//! metadata nor the drive's cache, and it never fsyncs the blob files it uses for page images
//! over `segment_size / 4` (128 KiB: reached by leaves of ~8 KiB messages). `SledStore::sync`
//! therefore follows sled's flush with an fsync of new blob files, the blob directory and the
//! log file.
//!
//! # Design
//!
//! - **One sled tree, tagged keys.** Every record lives in sled's default tree under a one-byte
//!   tag, so a definition change, including its cascade, is one `apply_batch`: atomic without
//!   sled's multi-tree transactions. Message writes are ordered plain inserts instead: in sled
//!   0.34.7 each `apply_batch` forces a log-buffer write through sled's thread pool, which cost
//!   8x the throughput of one-message writes and reliably hit sled's thread-pool deadlock
//!   (fixed upstream only after 0.34.7) within 100,000 writes; see `sled_backend`.
//! - **Key layout.** Keys use big-endian integers and length-prefixed names so byte order is
//!   the order we need: a queue's index entries are contiguous and in `seq`
//!   order (`0x07, len, vhost, len, queue, seq u64 BE`). The full table is in the `keys` module.
//!   Names the key layout length-prefixes (vhost, exchange, queue, routing key) are at most
//!   255 bytes, as AMQP's short strings are.
//! - **Message bodies in a log of our own, by default.** A new store keeps persistent message
//!   bodies in append-only segment files (`<dir>/messages/`, 64 MiB each) and, in sled, only
//!   each message's twelve-byte location, sixteen per record (`msglog`, key layout 4;
//!   [`SledOptions::log_messages`]). sled's memory and work follow its record count (a leaf
//!   splits above 16 records, whatever their size) and, written at a deep backlog's rates,
//!   sled 0.34.7's thread-pool deadlock hung it; the log takes a body with one `pwrite` per
//!   hand-over, fsyncs before sled's flush, and gives space back by unlinking segments that
//!   hold nothing live (after the flush that made that so) and relocating sparse ones. The
//!   engine still sees one key per message. A store keeps the layout it was created with:
//!   one record per message (2), or four messages and sixteen index entries of one queue per
//!   sled record ([`SledOptions::pack_new_store`], `packed`, layout 3).
//! - **Messages stored once.** `Put` stores the bytes under `0x06, id`; each queue holding the
//!   message has a 9-byte index entry `id, flags`. Reference counts live in memory, rebuilt at
//!   open by one scan of the index entries, so a write is blind puts and deletes, never a
//!   read-modify-write of counter keys. The last `Remove` of an id deletes its bytes in the same
//!   write. A `Put` must be referenced by the same write, by an `Enqueue` or a `Hold`
//!   ([`StoreError::UnreferencedMessage`] otherwise), so only a crash can leave bytes without a
//!   reference; open scans the message keys once and deletes those.
//! - **Holds.** A publish that fans a message out to several durable queues enqueues it one
//!   queue at a time, each under that queue's lock, and a queue may remove its entry at once (a
//!   no-ack consumer, `drop-head`). `Hold` is a reference of the publish itself, counted in
//!   memory only, that keeps the message stored until its `Release`, so the first queue's
//!   removal cannot delete what the later queues still have to enqueue (issue 11). A restart
//!   drops every hold; a message that no entry references by then is deleted at open.
//! - **Blind message ops.** A message write never reads the disk: `Remove` and
//!   `MarkRedelivered` carry the message id the entry holds, and `Enqueue` trusts the caller
//!   never to reuse a `seq` (issue 7: the reads were three of a persistent message's nine sled
//!   operations). What memory can answer is still refused, failure-atomically: enqueueing or
//!   removing an id that is not stored, putting a stored id, and, within one write, enqueueing
//!   a `seq` twice or touching an entry the write removed. The rest is the caller's promise: a
//!   `Remove` of an absent entry would drop a reference another queue holds, so the broker
//!   never issues message ops for a queue once it deleted the queue's records. Definition puts
//!   overwrite and definition deletes of absent records succeed (declare and delete are
//!   idempotent in AMQP).
//! - **Ids survive restart.** A write that puts an id above the meta key `max_message_id`
//!   rewrites it to that id plus 4096 (a reservation, so the key costs one sled insert per 4096
//!   messages rather than one each), so [`MessageStore::next_message_id`] never reuses an id
//!   once stored; a restart skips the rest of the reservation.
//! - **Versioned format.** A `FORMAT` file (checked before sled touches the directory; version
//!   4 since the packed layout, older versions upgraded in place) and the meta key
//!   `format_version` (the key layout: 4 message log, 3 packed, 2 one record per message, 1
//!   upgraded to 2);
//!   anything else is refused with [`StoreError::UnsupportedFormat`]. See [`FORMAT_VERSION`].
//! - **Compaction.** sled 0.34 keeps its files at their peak size. [`compact`] (and
//!   [`SledStore::compact_if`] at startup) copies the live records into a fresh database and
//!   swaps the directories with a crash-safe protocol: a crash at any point leaves the old or
//!   the new database complete, and the next open uses it. See the `compact` module. A running
//!   [`SledStore`] does the same by itself when its files outgrow the live data
//!   ([`SledOptions::online_compaction`]): the copy mirrors every change while it is built, then
//!   is swapped in; see the `compact::online` module.
//! - **One engine.** [`SledStore`] and [`MemoryStore`] are the same engine over two ordered key
//!   spaces, so the behavioural test suite checks one set of rules twice, not two
//!   implementations that could drift.

mod backend;
mod compact;
mod definition;
mod engine;
mod error;
mod faulty;
mod format;
mod group_commit;
mod keys;
mod memory;
mod message;
mod msglog;
mod packed;
mod plan;
mod record_codec;
mod refs;
mod sled_backend;
mod sled_db;
mod sled_store;

pub use compact::{CompactPolicy, CompactReport, RECORD_OVERHEAD, compact, disk_usage};
pub use definition::{
    BindingRecord, DefinitionStore, Definitions, ExchangeRecord, ParameterRecord, QueueRecord,
    UserRecord,
};
pub use error::StoreError;
pub use faulty::FaultyStore;
pub use format::{FORMAT_UPGRADED, FORMAT_VERSION};
pub use memory::MemoryStore;
pub use message::{MessageId, MessageOp, MessageStore, QueueExtent, StoreStats, StoredEntry};
pub use sled_store::{SledOptions, SledStore};
