//! Fan-out of persistent messages to several durable queues (issue 11): every queue a message
//! is routed to keeps it until its own consumer settles it, whatever the other queues' consumers
//! do, and the store agrees, also after a restart.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use warren_codec::{BasicProperties, FieldTable, ShortStr};
use warren_store::{MemoryStore, MessageStore};

use crate::queue::{ChannelLimit, Consumer, Delivery, DeliverySink, Settle};
use crate::{Broker, Message, QueueDeclare, VHost};

#[derive(Default)]
struct Recorder(Mutex<Vec<Delivery>>);

impl DeliverySink for Recorder {
    fn deliver(&self, d: Delivery) {
        self.0.lock().push(d);
    }
    fn cancelled(&self, _channel: u16, _tag: ShortStr) {}
}

/// Who consumes a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nobody,
    NoAck,
    Manual,
}

const KINDS: [Kind; 3] = [Kind::Nobody, Kind::NoAck, Kind::Manual];

fn persistent(body: &str, exchange: &str, key: &str) -> Message {
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    Message::new(
        exchange.into(),
        key.into(),
        props.to_raw(),
        Bytes::copy_from_slice(body.as_bytes()),
        crate::now_ms(),
    )
    .unwrap()
}

fn declare(vhost: &VHost, name: &str, arguments: FieldTable) {
    vhost
        .declare_queue(QueueDeclare {
            name: name.into(),
            durable: true,
            arguments,
            ..Default::default()
        })
        .unwrap();
}

/// A recovered broker over `store`, and its vhost `/`.
fn open(store: Arc<dyn crate::Store>) -> (Broker, Arc<VHost>) {
    let broker = Broker::with_store(store);
    broker.recover().unwrap();
    let vhost = broker.vhost("/").unwrap();
    (broker, vhost)
}

/// Binds queue `name` to `exchange` with `key`.
fn bind(vhost: &VHost, name: &str, exchange: &str, key: &str) {
    vhost
        .bind_queue(
            &name.into(),
            &exchange.into(),
            &key.into(),
            &FieldTable::new(),
            1,
        )
        .unwrap();
}

fn consume(vhost: &VHost, queue: &str, kind: Kind, id: u64) -> Arc<Recorder> {
    let sink = Arc::new(Recorder::default());
    if kind != Kind::Nobody {
        let q = vhost.queue(&queue.into(), 1).unwrap();
        q.consume(Consumer::new(
            id,
            format!("c{id}").as_str().into(),
            1,
            1,
            sink.clone(),
            kind == Kind::NoAck,
            false,
            0,
            Arc::new(ChannelLimit::default()),
        ))
        .unwrap();
    }
    sink
}

fn publish(vhost: &VHost, message: Message) -> crate::Published {
    let mut queues = Vec::new();
    let exchange = message.exchange.clone();
    let key = message.routing_key.clone();
    vhost
        .topology()
        .route(exchange.as_bytes(), &[key.as_bytes()], None, &mut queues)
        .unwrap();
    vhost.publish(message, &mut queues)
}

/// Messages each queue holds after a restart over the same store.
fn after_restart(store: &MemoryStore, queues: &[&str]) -> Vec<u32> {
    let (_broker, vhost) = open(Arc::new(store.fork().unwrap()));
    queues
        .iter()
        .map(|q| vhost.queue(&(*q).into(), 1).unwrap().message_count())
        .collect()
}

#[test]
fn a_persistent_message_reaches_every_durable_queue_whatever_consumes_them() {
    let names = ["q0", "q1", "q2"];
    for exchange in ["amq.fanout", "amq.direct"] {
        for kinds in KINDS.iter().flat_map(|a| {
            KINDS
                .iter()
                .flat_map(move |b| KINDS.iter().map(move |c| [*a, *b, *c]))
        }) {
            let store = Arc::new(MemoryStore::new());
            let (_broker, vhost) = open(store.clone());
            let mut sinks = Vec::new();
            for (i, name) in names.iter().enumerate() {
                declare(&vhost, name, FieldTable::new());
                bind(&vhost, name, exchange, "k");
                sinks.push(consume(&vhost, name, kinds[i], i as u64 + 1));
            }
            let case = format!("{exchange} {kinds:?}");
            let published = publish(&vhost, persistent("m", exchange, "k"));
            assert!(!published.store_failed && !published.rejected, "{case}");
            assert!(published.stored, "{case}");
            let mut kept = 0;
            for (i, name) in names.iter().enumerate() {
                let q = vhost.queue(&(*name).into(), 1).unwrap();
                let delivered = sinks[i].0.lock().len();
                match kinds[i] {
                    Kind::Nobody => {
                        assert_eq!((q.message_count(), delivered), (1, 0), "{case} {name}")
                    }
                    _ => assert_eq!((q.message_count(), delivered), (0, 1), "{case} {name}"),
                }
                if kinds[i] != Kind::NoAck {
                    kept += 1;
                }
            }
            let stats = store.stats();
            assert_eq!(stats.held, 0, "{case}");
            assert_eq!(stats.queue_entries, kept, "{case}");
            assert_eq!(stats.messages, u64::from(kept > 0), "{case}");
            // Unacked and ready messages come back after a restart; no-ack ones do not.
            let expect: Vec<u32> = kinds.iter().map(|k| u32::from(*k != Kind::NoAck)).collect();
            assert_eq!(after_restart(&store, &names), expect, "{case}");
            // Manual consumers settle: the last ack deletes the message.
            for (i, sink) in sinks.iter().enumerate() {
                if kinds[i] == Kind::Manual {
                    let d = sink.0.lock().remove(0);
                    d.queue.settle(&[d.seq], Settle::Ack);
                }
            }
            let remaining = kinds.iter().filter(|k| **k == Kind::Nobody).count() as u64;
            assert_eq!(store.stats().queue_entries, remaining, "{case}");
            assert_eq!(store.stats().messages, u64::from(remaining > 0), "{case}");
        }
    }
}

#[test]
fn a_dead_letter_reaches_every_durable_target_whatever_consumes_them() {
    for kind in KINDS {
        let store = Arc::new(MemoryStore::new());
        let (_broker, vhost) = open(store.clone());
        let mut args = FieldTable::new();
        args.insert(
            "x-dead-letter-exchange",
            warren_codec::FieldValue::LongStr("amq.fanout".into()),
        );
        declare(&vhost, "source", args);
        for name in ["dl0", "dl1"] {
            declare(&vhost, name, FieldTable::new());
            bind(&vhost, name, "amq.fanout", "");
        }
        let first = consume(&vhost, "dl0", kind, 1);
        publish(&vhost, persistent("dies", "", "source"));
        let source = vhost.queue(&"source".into(), 1).unwrap();
        let got = source.get(false).unwrap();
        source.settle(&[got.seq], Settle::Discard);
        let dl1 = vhost.queue(&"dl1".into(), 1).unwrap();
        assert_eq!(dl1.message_count(), 1, "{kind:?}");
        let delivered = first.0.lock().len();
        assert_eq!(delivered, usize::from(kind != Kind::Nobody), "{kind:?}");
        assert_eq!(source.message_count(), 0, "{kind:?}");
        assert_eq!(store.stats().held, 0, "{kind:?}");
        let expect = vec![0, u32::from(kind != Kind::NoAck), 1];
        assert_eq!(
            after_restart(&store, &["source", "dl0", "dl1"]),
            expect,
            "{kind:?}"
        );
    }
}

#[test]
fn a_message_every_queue_drops_at_once_leaves_nothing_stored() {
    let store = Arc::new(MemoryStore::new());
    let (_broker, vhost) = open(store.clone());
    for (i, name) in ["a", "b"].iter().enumerate() {
        declare(&vhost, name, FieldTable::new());
        bind(&vhost, name, "amq.fanout", "");
        consume(&vhost, name, Kind::NoAck, i as u64 + 1);
    }
    for n in 0..10 {
        let published = publish(&vhost, persistent(&format!("m{n}"), "amq.fanout", ""));
        assert!(published.stored && !published.store_failed);
    }
    let stats = store.stats();
    assert_eq!((stats.messages, stats.queue_entries, stats.held), (0, 0, 0));
}

/// Issue 11, disk faults: the store refuses a write at every point of a fan-out to three
/// durable queues (no-ack, idle and manual consumers) and a transient one. The publish reports
/// the failure (the publisher gets a nack), and every durable queue agrees with the store: it
/// holds the message in memory exactly when the store has its entry, also after a restart.
#[test]
fn a_store_fault_anywhere_in_a_fan_out_leaves_every_queue_consistent() {
    use warren_store::FaultyStore;
    let names = ["noack", "idle", "manual"];
    let kinds = [Kind::NoAck, Kind::Nobody, Kind::Manual];
    // The fan-out makes at most 7 store calls: put and hold, 3 enqueues, the no-ack removal,
    // the manual delivery's redelivered mark, the release.
    for budget in 0..8 {
        let store = Arc::new(FaultyStore::new(MemoryStore::new()));
        let (_broker, vhost) = open(store.clone());
        let mut sinks = Vec::new();
        for (i, name) in names.iter().enumerate() {
            declare(&vhost, name, FieldTable::new());
            bind(&vhost, name, "amq.fanout", "");
            sinks.push(consume(&vhost, name, kinds[i], i as u64 + 1));
        }
        vhost
            .declare_queue(QueueDeclare {
                name: "transient".into(),
                ..Default::default()
            })
            .unwrap();
        bind(&vhost, "transient", "amq.fanout", "");
        store.fail_after(budget);
        let published = publish(&vhost, persistent("m", "amq.fanout", ""));
        let faults = store.injected_faults();
        store.heal();
        let case = format!("budget {budget}: {published:?}, {faults} faults");
        let inner = store.inner();
        // The transient queue never needs the disk.
        assert_eq!(
            vhost.queue(&"transient".into(), 1).unwrap().message_count(),
            1,
            "{case}"
        );
        let mut entries = 0;
        for (i, name) in names.iter().enumerate() {
            let stored = inner.load_queue(b"/", name.as_bytes()).unwrap().len();
            entries += stored;
            let q = vhost.queue(&(*name).into(), 1).unwrap();
            let held_in_memory = q.message_count() as usize
                + if kinds[i] == Kind::Manual {
                    sinks[i].0.lock().len()
                } else {
                    0
                };
            match kinds[i] {
                // Taken at once: stored only if its removal was refused (a redelivery after a
                // restart, never a loss).
                Kind::NoAck => assert!(stored <= 1, "{case}"),
                _ => assert_eq!(held_in_memory, stored, "{case} {name}"),
            }
            if faults == 0 {
                assert!(!published.store_failed, "{case}");
                if kinds[i] != Kind::NoAck {
                    assert_eq!(stored, 1, "{case} {name}");
                }
            }
        }
        if published.store_failed {
            assert!(faults > 0, "{case}");
        }
        // Stored once while any entry (or an unreleased hold) references it.
        let stats = inner.stats();
        assert_eq!(stats.queue_entries as usize, entries, "{case}");
        assert_eq!(
            stats.messages,
            u64::from(entries > 0 || stats.held > 0),
            "{case}"
        );
        // A restart brings back exactly what the store has.
        let (_reopened, vh) = open(Arc::new(inner.fork().unwrap()));
        for name in names {
            let stored = inner.load_queue(b"/", name.as_bytes()).unwrap().len();
            assert_eq!(
                vh.queue(&name.into(), 1).unwrap().message_count() as usize,
                stored,
                "{case} {name}"
            );
        }
    }
}

/// Issue 11, found by the client-level model test: at a clean shutdown a message requeued by a
/// closing channel went to a no-ack consumer whose connection was closing too, and was gone
/// after the restart. Once the broker stops delivering, a requeued message stays in its queue
/// and in the store.
#[test]
fn after_stop_delivering_a_requeued_message_stays_in_its_queue_and_the_store() {
    let store = Arc::new(MemoryStore::new());
    let (broker, vhost) = open(store.clone());
    declare(&vhost, "q", FieldTable::new());
    publish(&vhost, persistent("held", "", "q"));
    let q = vhost.queue(&"q".into(), 1).unwrap();
    let got = q.get(false).unwrap();
    let sink = consume(&vhost, "q", Kind::NoAck, 1);
    broker.stop_delivering();
    q.settle(&[got.seq], Settle::Requeue);
    assert!(
        sink.0.lock().is_empty(),
        "nothing handed to the no-ack consumer"
    );
    assert_eq!(q.message_count(), 1);
    assert_eq!(store.stats().queue_entries, 1);
    assert_eq!(after_restart(&store, &["q"]), [1]);
}
