//! Vhost and user limits against a model, without sockets: random sequences of connection opens
//! and closes (two users, two vhosts), channel opens and closes, queue declares and deletes,
//! and limits set, cleared and changed while things are open. After every step, whether the
//! broker refused (and with which reply code and text) must equal what the model predicts from
//! RabbitMQ's rules: a negative limit is none, 0 allows nothing, N allows N; a limit applies to
//! the next connection, channel or queue and never closes what is open.
//!
//! `WARREN_MODEL_CASES=5000 cargo test -p warren-broker --test limits_model` searches longer;
//! a failure prints its shrunk operation sequence, to be kept below as a named test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use warren_broker::{Broker, ConnectionTicket, Permission, QueueDeclare, User};
use warren_codec::{ReplyCode, ShortStr};

const USERS: [&str; 2] = ["alice", "bob"];
const VHOSTS: [&str; 2] = ["/", "v2"];
const QUEUE_NAMES: [&str; 4] = ["q0", "q1", "q2", "q3"];

#[derive(Debug, Clone)]
enum Op {
    Connect {
        user: usize,
        vhost: usize,
    },
    Disconnect {
        pick: usize,
    },
    OpenChannel {
        pick: usize,
    },
    CloseChannel {
        pick: usize,
    },
    Declare {
        vhost: usize,
        queue: usize,
    },
    Delete {
        vhost: usize,
        queue: usize,
    },
    VhostLimit {
        vhost: usize,
        queues: bool,
        value: Option<i64>,
    },
    UserLimit {
        user: usize,
        channels: bool,
        value: Option<i64>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop_oneof![Just(None), (-1i64..4).prop_map(Some)];
    prop_oneof![
        3 => (0..2usize, 0..2usize).prop_map(|(user, vhost)| Op::Connect { user, vhost }),
        1 => any::<usize>().prop_map(|pick| Op::Disconnect { pick }),
        3 => any::<usize>().prop_map(|pick| Op::OpenChannel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::CloseChannel { pick }),
        2 => (0..2usize, 0..4usize).prop_map(|(vhost, queue)| Op::Declare { vhost, queue }),
        1 => (0..2usize, 0..4usize).prop_map(|(vhost, queue)| Op::Delete { vhost, queue }),
        1 => (0..2usize, any::<bool>(), value.clone())
            .prop_map(|(vhost, queues, value)| Op::VhostLimit { vhost, queues, value }),
        1 => (0..2usize, any::<bool>(), value)
            .prop_map(|(user, channels, value)| Op::UserLimit { user, channels, value }),
    ]
}

/// What a limit allows: `None` (absent) or negative is unlimited.
fn allows(limit: Option<i64>, count: usize) -> bool {
    match limit {
        Some(l) if l >= 0 => (count as i64) < l,
        _ => true,
    }
}

#[derive(Default)]
struct Model {
    /// Open connections: (user, vhost, channels).
    conns: Vec<(usize, usize, usize)>,
    queues: [BTreeSet<usize>; 2],
    /// [vhost] = (max-connections, max-queues).
    vhost_limits: [(Option<i64>, Option<i64>); 2],
    /// [user] = (max-connections, max-channels).
    user_limits: [(Option<i64>, Option<i64>); 2],
}

impl Model {
    fn vhost_conns(&self, v: usize) -> usize {
        self.conns.iter().filter(|c| c.1 == v).count()
    }
    fn user_conns(&self, u: usize) -> usize {
        self.conns.iter().filter(|c| c.0 == u).count()
    }
    fn user_channels(&self, u: usize) -> usize {
        self.conns.iter().filter(|c| c.0 == u).map(|c| c.2).sum()
    }
}

struct Real {
    broker: Broker,
    /// Parallel to the model's `conns`: each connection's ticket and open channel count.
    conns: Vec<(ConnectionTicket, usize)>,
}

fn setup() -> Real {
    let broker = Broker::new();
    broker.add_vhost("v2");
    for u in USERS {
        let mut user = User::new(u, "pw", vec![]);
        for v in VHOSTS {
            user.vhosts.set(v, Permission::full());
        }
        broker.add_user(user);
    }
    Real {
        broker,
        conns: Vec::new(),
    }
}

fn run(ops: &[Op]) {
    let mut real = setup();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let at = || format!("step {step}: {op:?}");
        match *op {
            Op::Connect { user, vhost } => {
                let vh = real.broker.vhost(VHOSTS[vhost]).unwrap();
                let got = real.broker.open_connection(USERS[user], &vh);
                let vhost_ok = allows(model.vhost_limits[vhost].0, model.vhost_conns(vhost));
                let user_ok = allows(model.user_limits[user].0, model.user_conns(user));
                match got {
                    Ok(t) => {
                        assert!(vhost_ok && user_ok, "{}: opened over a limit", at());
                        real.conns.push((t, 0));
                        model.conns.push((user, vhost, 0));
                    }
                    Err(e) => {
                        assert_eq!(e.code, ReplyCode::NotAllowed, "{}", at());
                        // The vhost's limit is checked first, with its own text.
                        let want = if !vhost_ok {
                            format!(
                                "access to vhost '{}' refused for user '{}': connection limit ({}) is reached",
                                VHOSTS[vhost],
                                USERS[user],
                                model.vhost_limits[vhost].0.unwrap()
                            )
                        } else {
                            assert!(!user_ok, "{}: refused within limits: {}", at(), e.text);
                            format!(
                                "connection refused for user '{}': user connection limit ({}) is reached",
                                USERS[user],
                                model.user_limits[user].0.unwrap()
                            )
                        };
                        assert_eq!(e.text, want, "{}", at());
                    }
                }
            }
            Op::Disconnect { pick } => {
                if !model.conns.is_empty() {
                    let i = pick % model.conns.len();
                    model.conns.remove(i);
                    real.conns.remove(i);
                }
            }
            Op::OpenChannel { pick } => {
                if model.conns.is_empty() {
                    continue;
                }
                let i = pick % model.conns.len();
                let user = model.conns[i].0;
                let ok = allows(model.user_limits[user].1, model.user_channels(user));
                let (ticket, open) = &mut real.conns[i];
                match real.broker.open_channel(ticket) {
                    Ok(()) => {
                        assert!(ok, "{}: channel opened over the limit", at());
                        *open += 1;
                        model.conns[i].2 += 1;
                    }
                    Err(e) => {
                        assert!(!ok, "{}: refused within the limit: {}", at(), e.text);
                        assert_eq!(e.code, ReplyCode::NotAllowed);
                        assert_eq!(
                            e.text,
                            format!(
                                "number of channels opened for user '{}' has reached the maximum allowed user limit of ({})",
                                USERS[user],
                                model.user_limits[user].1.unwrap()
                            ),
                            "{}",
                            at()
                        );
                    }
                }
            }
            Op::CloseChannel { pick } => {
                if model.conns.is_empty() {
                    continue;
                }
                let i = pick % model.conns.len();
                if model.conns[i].2 > 0 {
                    model.conns[i].2 -= 1;
                    let (ticket, open) = &mut real.conns[i];
                    *open -= 1;
                    ticket.channels_closed(*open);
                }
            }
            Op::Declare { vhost, queue } => {
                let vh = real.broker.vhost(VHOSTS[vhost]).unwrap();
                let got = vh.declare_queue(QueueDeclare {
                    name: ShortStr::from(QUEUE_NAMES[queue]),
                    ..QueueDeclare::default()
                });
                let exists = model.queues[vhost].contains(&queue);
                let ok = exists || allows(model.vhost_limits[vhost].1, model.queues[vhost].len());
                match got {
                    Ok(d) => {
                        assert!(ok, "{}: declared over the limit", at());
                        assert_eq!(d.created, !exists, "{}", at());
                        model.queues[vhost].insert(queue);
                    }
                    Err(e) => {
                        assert!(!ok, "{}: refused within the limit: {}", at(), e.text);
                        assert_eq!(e.code, ReplyCode::PreconditionFailed);
                        assert_eq!(
                            e.text,
                            format!(
                                "cannot declare queue '{}': queue limit in vhost '{}' ({}) is reached",
                                QUEUE_NAMES[queue],
                                VHOSTS[vhost],
                                model.vhost_limits[vhost].1.unwrap()
                            ),
                            "{}",
                            at()
                        );
                    }
                }
            }
            Op::Delete { vhost, queue } => {
                let vh = real.broker.vhost(VHOSTS[vhost]).unwrap();
                vh.delete_queue(&ShortStr::from(QUEUE_NAMES[queue]), false, false, 0)
                    .unwrap();
                model.queues[vhost].remove(&queue);
            }
            Op::VhostLimit {
                vhost,
                queues,
                value,
            } => {
                let name = if queues {
                    "max-queues"
                } else {
                    "max-connections"
                };
                match value {
                    Some(v) => real.broker.set_vhost_limit_live(VHOSTS[vhost], name, v),
                    None => real.broker.clear_vhost_limit_live(VHOSTS[vhost], name),
                }
                .unwrap();
                let slot = &mut model.vhost_limits[vhost];
                *(if queues { &mut slot.1 } else { &mut slot.0 }) = value;
            }
            Op::UserLimit {
                user,
                channels,
                value,
            } => {
                let name = if channels {
                    "max-channels"
                } else {
                    "max-connections"
                };
                match value {
                    Some(v) => real.broker.set_user_limit_live(USERS[user], name, v),
                    None => real.broker.clear_user_limit_live(USERS[user], name),
                }
                .unwrap();
                let slot = &mut model.user_limits[user];
                *(if channels { &mut slot.1 } else { &mut slot.0 }) = value;
            }
        }
        // The broker's own counts agree with the model after every step.
        for (u, name) in USERS.iter().enumerate() {
            assert_eq!(
                real.broker.user_connection_counts(name),
                (model.user_conns(u) as u64, model.user_channels(u) as u64),
                "{}: counts of {name}",
                at()
            );
        }
        for (v, name) in VHOSTS.iter().enumerate() {
            assert_eq!(
                real.broker.vhost_connection_count(name),
                model.vhost_conns(v) as u64,
                "{}",
                at()
            );
        }
    }
    // Everything closed: nothing stays counted.
    real.conns.clear();
    for name in USERS {
        assert_eq!(real.broker.user_connection_counts(name), (0, 0));
    }
}

fn cases() -> u32 {
    std::env::var("WARREN_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..ProptestConfig::default()
    })]

    #[test]
    fn limits_refuse_exactly_what_the_model_refuses(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops);
    }
}

#[test]
fn zero_allows_nothing_and_lowering_a_limit_closes_nothing() {
    run(&[
        Op::Connect { user: 0, vhost: 0 },
        Op::Connect { user: 1, vhost: 0 },
        Op::VhostLimit {
            vhost: 0,
            queues: false,
            value: Some(0),
        },
        Op::Connect { user: 0, vhost: 0 },
        Op::Connect { user: 0, vhost: 1 },
        Op::Disconnect { pick: 0 },
        Op::VhostLimit {
            vhost: 0,
            queues: false,
            value: Some(-1),
        },
        Op::Connect { user: 0, vhost: 0 },
    ]);
}

#[test]
fn channels_of_a_closed_connection_stop_counting() {
    run(&[
        Op::UserLimit {
            user: 0,
            channels: true,
            value: Some(2),
        },
        Op::Connect { user: 0, vhost: 0 },
        Op::Connect { user: 0, vhost: 1 },
        Op::OpenChannel { pick: 0 },
        Op::OpenChannel { pick: 1 },
        Op::OpenChannel { pick: 1 },
        Op::Disconnect { pick: 1 },
        Op::OpenChannel { pick: 0 },
        Op::CloseChannel { pick: 0 },
        Op::OpenChannel { pick: 0 },
    ]);
}

#[test]
fn an_existing_queue_redeclares_at_the_queue_limit() {
    run(&[
        Op::Declare { vhost: 1, queue: 0 },
        Op::VhostLimit {
            vhost: 1,
            queues: true,
            value: Some(1),
        },
        Op::Declare { vhost: 1, queue: 0 },
        Op::Declare { vhost: 1, queue: 1 },
        Op::Delete { vhost: 1, queue: 0 },
        Op::Declare { vhost: 1, queue: 1 },
    ]);
}
