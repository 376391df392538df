//! Fills a (stopped) Warren data directory with a backlog of persistent messages in one
//! durable queue, writing straight through the store in large batches: issue 16's restart
//! scenario at 10 M messages takes minutes this way instead of the better part of an hour
//! over AMQP on a loaded machine.
//!
//! ```sh
//! cargo run --release -p warren-broker --example fill_backlog -- DATA_DIR MESSAGES [SIZE] [QUEUE]
//! ```
//!
//! Start Warren on `DATA_DIR` once first (it seeds the default vhost and user), stop it, then
//! fill. The queue (default `perf-backlog`, in vhost `/`) is declared durable if absent and
//! the messages go after any it holds; `SIZE` is the body size (default 100 bytes).

use std::error::Error;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use warren_broker::Message;
use warren_codec::{BasicProperties, FieldTable, ShortStr};
use warren_store::{DefinitionStore, MessageOp, MessageStore, QueueRecord, SledStore};

/// Messages per store write (and per sync).
const BATCH: u64 = 20_000;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fill_backlog DATA_DIR MESSAGES [SIZE] [QUEUE]";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let total: u64 = args.next().ok_or(usage)?.parse()?;
    let size: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let queue = args.next().unwrap_or_else(|| "perf-backlog".to_owned());
    let store = SledStore::open(&dir)?;
    let (vhost, qname) = (Bytes::from_static(b"/"), Bytes::from(queue.clone()));
    let mut arguments = bytes::BytesMut::new();
    FieldTable::new().encode(&mut arguments);
    let record = QueueRecord {
        name: qname.clone(),
        auto_delete: false,
        arguments: arguments.freeze(),
    };
    store.put_queue(&vhost, &record)?;
    let mut seq = store.queue_extent(&vhost, &qname)?.end_seq;
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..BasicProperties::default()
    }
    .to_raw();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let message = Message::new(
        ShortStr::from_static(""),
        ShortStr::from(queue.as_str()),
        props,
        Bytes::from(vec![b'x'; size]),
        now,
    )?;
    let encoded = message.encode();
    let started = Instant::now();
    let mut written = 0;
    while written < total {
        let n = BATCH.min(total - written);
        let mut ops = Vec::with_capacity(2 * n as usize);
        for _ in 0..n {
            let id = store.next_message_id()?;
            ops.push(MessageOp::Put {
                id,
                message: encoded.clone(),
            });
            ops.push(MessageOp::Enqueue {
                vhost: vhost.clone(),
                queue: qname.clone(),
                seq,
                id,
            });
            seq += 1;
        }
        store.write(&ops)?;
        store.sync()?;
        written += n;
        if written % 1_000_000 < BATCH {
            eprintln!(
                "{written} messages in {:.1?} ({:.0} msg/s)",
                started.elapsed(),
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "{written} messages of {size} B in {:.1?}",
        started.elapsed()
    );
    Ok(())
}
