//! Fixtures shared by the tests of a durable queue loading its stored messages after a
//! restart (`loading.rs`, `loading_window.rs`): a store holding `m1..=mN` in queue `q`, a
//! restart over it with loading left to the test, and small readers of what comes out.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use warren_broker::{
    Broker, ChannelLimit, Consumer, Delivery, DeliverySink, FirstBoot, Loader, Message, Queue,
    QueueDeclare, VHost,
};
use warren_codec::{BasicProperties, FieldTable, FieldValue, ShortStr};
use warren_store::{MemoryStore, MessageStore};

/// A delivery sink that keeps every delivery.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Delivery>>);

impl DeliverySink for Recorder {
    fn deliver(&self, d: Delivery) {
        self.0.lock().push(d);
    }
    fn cancelled(&self, _channel: u16, _tag: ShortStr) {}
}

impl Recorder {
    /// The bodies delivered so far, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.0.lock().iter().map(|d| body(&d.message)).collect()
    }
}

/// An auto-ack consumer (tag `c`, channel 1) delivering to `sink`.
pub fn consumer(sink: Arc<Recorder>) -> Consumer {
    Consumer::new(
        1,
        "c".into(),
        1,
        1,
        sink,
        true,
        false,
        0,
        Arc::new(ChannelLimit::default()),
    )
}

/// A message for queue `q` through the default exchange.
pub fn message(body: &str, persistent: bool, priority: Option<u8>) -> Message {
    let props = BasicProperties {
        delivery_mode: Some(if persistent { 2 } else { 1 }),
        priority,
        ..Default::default()
    };
    Message::new(
        "".into(),
        "q".into(),
        props.to_raw(),
        Bytes::copy_from_slice(body.as_bytes()),
        warren_broker::now_ms(),
    )
    .unwrap()
}

/// Declares durable queue `name`; answers its message count.
pub fn declare(vhost: &VHost, name: &str, arguments: FieldTable) -> u32 {
    vhost
        .declare_queue(QueueDeclare {
            name: name.into(),
            durable: true,
            arguments,
            ..Default::default()
        })
        .unwrap()
        .message_count
}

/// Publishes `m` to queue `queue`; it must not be rejected. Answers whether it was stored.
pub fn publish_to(vhost: &VHost, queue: &str, m: Message) -> bool {
    let mut queues = vec![vhost.queue(&queue.into(), 1).unwrap()];
    let published = vhost.publish(m, &mut queues);
    assert!(!published.rejected);
    published.stored
}

/// Dead-lettering to `amq.direct` with routing key `dlq`, plus `extra`.
pub fn dlx_args(extra: &[(&str, FieldValue)]) -> FieldTable {
    let mut args = FieldTable::new();
    args.insert(
        "x-dead-letter-exchange",
        FieldValue::LongStr("amq.direct".into()),
    );
    args.insert(
        "x-dead-letter-routing-key",
        FieldValue::LongStr("dlq".into()),
    );
    for (k, v) in extra {
        args.insert(*k, v.clone());
    }
    args
}

/// A store whose queue `q` (declared with `arguments`) holds persistent `m1..=mN`, message
/// `i` at `priority(i)`, and `dlq`, empty, bound to `amq.direct`.
pub fn stored_with(
    n: usize,
    arguments: FieldTable,
    priority: impl Fn(usize) -> Option<u8>,
) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let broker = Broker::with_store(store.clone());
    broker.recover().unwrap();
    let vhost = broker.vhost("/").unwrap();
    declare(&vhost, "q", arguments);
    declare(&vhost, "dlq", FieldTable::new());
    vhost
        .bind_queue(
            &"dlq".into(),
            &"amq.direct".into(),
            &"dlq".into(),
            &FieldTable::new(),
            1,
        )
        .unwrap();
    for i in 1..=n {
        assert!(publish_to(
            &vhost,
            "q",
            message(&format!("m{i}"), true, priority(i))
        ));
    }
    store.sync().unwrap();
    store
}

/// Restarts over `store`: definitions back (the two queues of [`stored_with`]), nothing
/// loaded; the loader reads two messages per step.
pub fn restart(store: &MemoryStore) -> (Arc<MemoryStore>, Broker, Arc<VHost>, Loader) {
    let store = Arc::new(store.reopen().unwrap());
    let broker = Broker::with_store(store.clone());
    let (found, loader) = broker.recover_definitions(&FirstBoot::default()).unwrap();
    assert_eq!(found.queues, 2);
    let vhost = broker.vhost("/").unwrap();
    (store, broker, vhost, loader.with_batch(2))
}

/// Queue `name` of `vhost`.
pub fn queue(vhost: &VHost, name: &str) -> Arc<Queue> {
    vhost.queue(&name.into(), 1).unwrap()
}

/// `m`'s body as text.
pub fn body(m: &Message) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

/// Takes every message `basic.get` gives (auto-ack), in order.
pub fn drain(q: &Arc<Queue>) -> Vec<String> {
    std::iter::from_fn(|| q.get(true).map(|g| body(&g.message))).collect()
}

/// `m<first>..=m<last>`.
pub fn names(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}
