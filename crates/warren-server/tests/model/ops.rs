//! The operations a generated sequence is made of, the fixed universe they act on (queue,
//! exchange and channel names, routing keys, header sets) and the proptest strategy.
//!
//! Operations name resources by small indices so that any sequence is well-formed; an operation
//! whose precondition does not hold in the model (a queue that does not exist, an ack with nothing
//! unacked) is skipped, which keeps shrinking simple: removing an operation never makes a
//! sequence invalid.

use proptest::prelude::*;

/// Queues `0..MAIN_QUEUES` may dead-letter (to `m.dlx`); the others are dead-letter targets and
/// never dead-letter themselves, so no cycle can arise.
pub const MAIN_QUEUES: u8 = 4;
/// All queue slots: `q0..q3` then `d0, d1`.
pub const QUEUES: u8 = 6;
/// Channel slots for consumers and `basic.get`: slots `2c` and `2c + 1` share connection `c`.
pub const CHANNELS: u8 = 4;

/// The name of queue slot `q`.
pub fn queue_name(q: u8) -> String {
    if q < MAIN_QUEUES {
        format!("q{q}")
    } else {
        format!("d{}", q - MAIN_QUEUES)
    }
}

/// Routing keys of publishes to the named exchanges (the default exchange uses queue names).
pub const ROUTING_KEYS: [&str; 4] = ["a", "b", "a.b", "b.b"];
/// Binding keys of the direct exchange.
pub const DIRECT_KEYS: [&str; 3] = ["a", "b", "a.b"];
/// Binding patterns of the topic exchange.
pub const TOPIC_KEYS: [&str; 5] = ["a", "a.*", "#", "*.b", "b.#"];
/// Header bindings: (x-match all?, requires h1, requires h2).
pub const HEADER_BINDINGS: [(bool, bool, bool); 3] =
    [(true, true, false), (false, true, true), (true, true, true)];

/// The exchanges of the universe; all are declared durable at the start of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum X {
    /// The default exchange: routes to the queue named by the routing key.
    Default,
    /// `m.fanout`.
    Fanout,
    /// `m.direct`.
    Direct,
    /// `m.topic`.
    Topic,
    /// `m.headers`.
    Headers,
    /// `m.dlx`, a fanout exchange: every main queue's dead-letter exchange.
    Dlx,
}

impl X {
    /// The exchange's name.
    pub fn name(self) -> &'static str {
        match self {
            X::Default => "",
            X::Fanout => "m.fanout",
            X::Direct => "m.direct",
            X::Topic => "m.topic",
            X::Headers => "m.headers",
            X::Dlx => "m.dlx",
        }
    }
}

/// A queue's overflow behaviour when `x-max-length` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest ready message.
    DropHead,
    /// Refuse the publish (nack in confirm mode).
    RejectPublish,
}

/// The arguments of a queue declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Durable queue (survives a restart).
    pub durable: bool,
    /// `x-max-length` and `x-overflow`.
    pub max_len: Option<(u8, Overflow)>,
    /// `x-dead-letter-exchange = m.dlx` (ignored for dead-letter target queues).
    pub dlx: bool,
    /// `x-max-priority = 2` (never together with `max_len`).
    pub priority: bool,
}

/// One step of a generated sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `queue.declare` of a queue that does not exist yet.
    Declare { q: u8, spec: Spec },
    /// `queue.bind`; `key` indexes the exchange's binding keys.
    Bind { q: u8, x: X, key: u8 },
    /// `basic.publish`: `key` indexes `ROUTING_KEYS` (queue slots for the default exchange);
    /// `headers` is a bit set of h1, h2; `confirm` picks the confirm channel over the plain one;
    /// `mandatory` is used on the confirm channel only.
    Publish {
        x: X,
        key: u8,
        persistent: bool,
        confirm: bool,
        mandatory: bool,
        priority: u8,
        headers: u8,
    },
    /// `basic.get` on channel `ch`.
    Get { q: u8, ch: u8, no_ack: bool },
    /// `basic.qos(prefetch)` then `basic.consume` on channel `ch` (one consumer per queue).
    Consume {
        q: u8,
        ch: u8,
        no_ack: bool,
        prefetch: u8,
    },
    /// `basic.ack` of the `pick`-th unacked delivery (by tag) of channel `ch`.
    Ack { ch: u8, pick: u8, multiple: bool },
    /// `basic.nack`.
    Nack {
        ch: u8,
        pick: u8,
        multiple: bool,
        requeue: bool,
    },
    /// `basic.reject`.
    Reject { ch: u8, pick: u8, requeue: bool },
    /// `basic.cancel` of the consumer of queue `q`.
    Cancel { q: u8 },
    /// `channel.close` of channel slot `ch` (its unacked deliveries are requeued).
    CloseChannel { ch: u8 },
    /// `connection.close` of consumer connection `conn` (both its channels).
    CloseConnection { conn: u8 },
    /// `queue.purge`.
    Purge { q: u8 },
    /// `queue.delete`.
    Delete { q: u8 },
    /// Stop the server and start it again on the same data directory.
    Restart,
}

fn spec() -> impl Strategy<Value = Spec> {
    let max_len = prop_oneof![
        3 => Just(None),
        1 => (1u8..=3, prop_oneof![Just(Overflow::DropHead), Just(Overflow::RejectPublish)])
            .prop_map(Some),
    ];
    // Mostly durable: the known losses are about what the store keeps.
    (
        prop::bool::weighted(0.7),
        max_len,
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(durable, max_len, dlx, priority)| Spec {
            durable,
            max_len,
            dlx,
            priority: priority && max_len.is_none(),
        })
}

fn exchange() -> impl Strategy<Value = X> {
    prop_oneof![
        4 => Just(X::Fanout),
        2 => Just(X::Direct),
        2 => Just(X::Topic),
        2 => Just(X::Headers),
        1 => Just(X::Dlx),
        1 => Just(X::Default),
    ]
}

/// One operation, weighted towards fan-out publishes, consumers and settlements.
pub fn op() -> impl Strategy<Value = Op> {
    let q = 0..QUEUES;
    let ch = 0..CHANNELS;
    prop_oneof![
        8 => (q.clone(), spec()).prop_map(|(q, spec)| Op::Declare { q, spec }),
        10 => (q.clone(), exchange(), 0u8..5).prop_map(|(q, x, key)| Op::Bind { q, x, key }),
        14 => (exchange(), 0u8..6, prop::bool::weighted(0.7), prop::bool::weighted(0.7),
               prop::bool::weighted(0.2), 0u8..4, 0u8..4)
            .prop_map(|(x, key, persistent, confirm, mandatory, priority, headers)| Op::Publish {
                x, key, persistent, confirm, mandatory, priority, headers,
            }),
        4 => (q.clone(), ch.clone(), any::<bool>()).prop_map(|(q, ch, no_ack)| Op::Get { q, ch, no_ack }),
        7 => (q.clone(), ch.clone(), any::<bool>(), 0u8..4)
            .prop_map(|(q, ch, no_ack, prefetch)| Op::Consume { q, ch, no_ack, prefetch }),
        4 => (ch.clone(), any::<u8>(), any::<bool>())
            .prop_map(|(ch, pick, multiple)| Op::Ack { ch, pick, multiple }),
        3 => (ch.clone(), any::<u8>(), any::<bool>(), any::<bool>())
            .prop_map(|(ch, pick, multiple, requeue)| Op::Nack { ch, pick, multiple, requeue }),
        2 => (ch.clone(), any::<u8>(), any::<bool>())
            .prop_map(|(ch, pick, requeue)| Op::Reject { ch, pick, requeue }),
        2 => q.clone().prop_map(|q| Op::Cancel { q }),
        1 => ch.clone().prop_map(|ch| Op::CloseChannel { ch }),
        1 => (0..CHANNELS / 2).prop_map(|conn| Op::CloseConnection { conn }),
        1 => q.clone().prop_map(|q| Op::Purge { q }),
        1 => q.prop_map(|q| Op::Delete { q }),
        1 => Just(Op::Restart),
    ]
}

/// A sequence of up to `steps` operations (no lower bound above 1: proptest never shrinks a
/// vector below its minimum length).
pub fn ops(steps: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..=steps.max(1))
}
