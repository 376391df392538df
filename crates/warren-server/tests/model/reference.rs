//! The reference model: what RabbitMQ 3.10 promises a client will observe.
//!
//! Deliberately naive (vectors and ordered maps, no cleverness) so that it can be checked by
//! reading. Delivery tags are not predicted: the runner reports the tag each delivery arrived
//! with (`set_tag`), because the interleaving of deliveries to two consumers of one channel is
//! not specified; everything else (which messages, in which order, with which flags) is.

use std::collections::{BTreeMap, BTreeSet};

use super::ops::{
    DIRECT_KEYS, HEADER_BINDINGS, MAIN_QUEUES, Op, Overflow, QUEUES, ROUTING_KEYS, Spec,
    TOPIC_KEYS, X, queue_name,
};

/// What a client should see of one message copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The body (unique per publish: `m<n>`).
    pub body: String,
    /// The exchange it was (last) published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// `redelivered` flag.
    pub redelivered: bool,
    /// delivery_mode 2.
    pub persistent: bool,
    /// The priority property (0 = unset).
    pub priority: u8,
    /// Bit set of the user headers h1 (1) and h2 (2).
    pub headers: u8,
}

/// A message copy held by one queue.
#[derive(Debug, Clone)]
struct Copy {
    seq: u64,
    seen: Seen,
}

#[derive(Debug)]
struct Queue {
    incarnation: u64,
    spec: Spec,
    /// Ready messages ordered by (priority rank, arrival): requeued copies keep their `seq`, so
    /// they go back to their original position, ahead of newer messages.
    ready: BTreeMap<(u8, u64), Copy>,
    next_seq: u64,
    consumer: Option<u64>,
}

impl Queue {
    fn key(&self, c: &Copy) -> (u8, u64) {
        let rank = if self.spec.priority {
            2 - c.seen.priority.min(2)
        } else {
            0
        };
        (rank, c.seq)
    }

    fn push(&mut self, c: Copy) {
        let k = self.key(&c);
        self.ready.insert(k, c);
    }

    fn pop(&mut self) -> Option<Copy> {
        self.ready.pop_first().map(|(_, c)| c)
    }

    fn dead_letters(&self, slot: u8) -> bool {
        self.spec.dlx && slot < MAIN_QUEUES
    }
}

#[derive(Debug)]
struct Consumer {
    q: u8,
    ch: u8,
    no_ack: bool,
    prefetch: u8,
    unacked: usize,
}

/// A delivery not yet settled by its channel.
#[derive(Debug, Clone)]
pub struct Unacked {
    /// Model-wide identity, to attach the observed tag.
    pub id: u64,
    /// The tag the client saw, once seen.
    pub tag: Option<u64>,
    q: u8,
    incarnation: u64,
    consumer: Option<u64>,
    copy: Copy,
}

/// A delivery the model expects consumer `consumer` to receive next.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The message as the client should see it.
    pub seen: Seen,
    /// The unacked entry to attach the observed tag to (manual-ack consumers).
    pub unacked: Option<u64>,
}

/// What the broker should answer to one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The operation was skipped (its precondition does not hold).
    Skip,
    /// Nothing to check beyond deliveries and counts.
    Done,
    /// Declare a new queue.
    Declare,
    /// A publish: confirm ack (true) or nack, and whether a basic.return is due.
    Publish {
        ack: bool,
        returned: bool,
        body: String,
    },
    /// basic.get: the message and the message_count, or empty.
    Get(Option<(Seen, u32, Option<u64>)>),
    /// basic.consume: the new consumer's id.
    Consume(u64),
    /// basic.cancel of consumer id.
    Cancel(u64),
    /// ack/nack/reject: the tag to send and `multiple`.
    Settle { tag: u64, multiple: bool },
    /// purge-ok / delete-ok message count.
    Count(u32),
}

/// The whole broker as the model sees it.
#[derive(Debug, Default)]
pub struct Model {
    queues: BTreeMap<u8, Queue>,
    bindings: BTreeSet<(X, u8, u8)>,
    channels: BTreeMap<u8, Vec<Unacked>>,
    consumers: BTreeMap<u64, Consumer>,
    next_id: u64,
    next_msg: u64,
    copies: usize,
    dead: Vec<Copy>,
    pending: BTreeMap<u64, Vec<Expected>>,
}

impl Model {
    fn fresh(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Message copies enqueued so far (a measure of how much a sequence exercised).
    pub fn copies(&self) -> usize {
        self.copies
    }

    /// Queue slots that exist, with (ready count, consumer count).
    pub fn counts(&self) -> Vec<(u8, u32, u32)> {
        self.queues
            .iter()
            .map(|(q, s)| (*q, s.ready.len() as u32, u32::from(s.consumer.is_some())))
            .collect()
    }

    /// Queue slots that do not exist.
    pub fn absent(&self) -> Vec<u8> {
        (0..QUEUES)
            .filter(|q| !self.queues.contains_key(q))
            .collect()
    }

    /// Consumers that exist: id, channel slot.
    pub fn consumers(&self) -> Vec<(u64, u8)> {
        self.consumers.iter().map(|(id, c)| (*id, c.ch)).collect()
    }

    /// The deliveries owed to each consumer since the last call.
    pub fn take_pending(&mut self) -> BTreeMap<u64, Vec<Expected>> {
        std::mem::take(&mut self.pending)
    }

    /// Records the tag a delivery arrived with.
    pub fn set_tag(&mut self, id: u64, tag: u64) {
        for list in self.channels.values_mut() {
            for u in list.iter_mut().filter(|u| u.id == id) {
                u.tag = Some(tag);
            }
        }
    }

    /// Turns a generated operation into one whose precondition holds, by redirecting it to a
    /// resource that exists (a queue, a channel with unacked deliveries, a queue with a
    /// consumer), or `None` when there is none. Without this most random operations would name
    /// queues that do not exist and be skipped. A resolved operation resolves to itself, so the
    /// executed sequence can be replayed as is.
    pub fn resolve(&self, op: &Op) -> Option<Op> {
        let existing: Vec<u8> = self.queues.keys().copied().collect();
        let pick = |q: u8| -> Option<u8> {
            if self.queues.contains_key(&q) {
                Some(q)
            } else if existing.is_empty() {
                None
            } else {
                Some(existing[q as usize % existing.len()])
            }
        };
        let mut op = op.clone();
        match &mut op {
            Op::Declare { q, .. } => {
                *q = (0..QUEUES)
                    .map(|i| (*q + i) % QUEUES)
                    .find(|s| !self.queues.contains_key(s))?;
            }
            Op::Bind { q, x, .. } => {
                *q = pick(*q)?;
                if *x == X::Default || (*x == X::Dlx && *q < MAIN_QUEUES) {
                    *x = X::Fanout;
                }
            }
            Op::Publish {
                x,
                key,
                persistent,
                headers,
                ..
            } => {
                if *x == X::Default {
                    *key = pick(*key % QUEUES).unwrap_or(*key % QUEUES);
                }
                // Most random (exchange, key) pairs route nowhere; redirect two publishes in
                // three to a fanout-like route that reaches queues, keeping unroutable ones too.
                if *key % 3 != 2 && self.route(*x, &routing_key(*x, *key), *headers).is_empty() {
                    let bound: Vec<X> = [X::Fanout, X::Dlx]
                        .into_iter()
                        .filter(|bx| self.bindings.iter().any(|b| b.0 == *bx))
                        .collect();
                    if let Some(bx) = bound.get(*key as usize % bound.len().max(1)) {
                        *x = *bx;
                    } else if !existing.is_empty() {
                        *x = X::Default;
                        *key = existing[*key as usize % existing.len()];
                    }
                }
                if avoid_fanout_loss() && *persistent {
                    // Known bug (issue 11): a persistent message routed to several queues, one
                    // with a no-ack consumer, is lost. Publish it transient instead.
                    let targets = self.route(*x, &routing_key(*x, *key), *headers);
                    let no_ack = targets.iter().any(|q| {
                        self.queues[q]
                            .consumer
                            .is_some_and(|id| self.consumers[&id].no_ack)
                    });
                    if targets.len() > 1 && no_ack {
                        *persistent = false;
                    }
                }
            }
            Op::Get { q, .. } | Op::Purge { q } | Op::Delete { q } => *q = pick(*q)?,
            Op::Consume { q, .. } => {
                let free: Vec<u8> = self
                    .queues
                    .iter()
                    .filter(|(_, s)| s.consumer.is_none())
                    .map(|(q, _)| *q)
                    .collect();
                if !free.contains(q) {
                    *q = *free.get(*q as usize % free.len().max(1))?;
                }
            }
            Op::Cancel { q } => {
                let busy: Vec<u8> = self.consumers.values().map(|c| c.q).collect();
                if !busy.contains(q) {
                    *q = *busy.get(*q as usize % busy.len().max(1))?;
                }
            }
            Op::Ack { ch, .. } | Op::Nack { ch, .. } | Op::Reject { ch, .. } => {
                let held: Vec<u8> = self
                    .channels
                    .iter()
                    .filter(|(_, l)| !l.is_empty())
                    .map(|(c, _)| *c)
                    .collect();
                if !held.contains(ch) {
                    *ch = *held.get(*ch as usize % held.len().max(1))?;
                }
            }
            Op::CloseChannel { .. } | Op::CloseConnection { .. } | Op::Restart => {}
        }
        Some(op)
    }

    /// Applies `op`, returning what the broker should answer.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        let out = match *op {
            Op::Declare { q, spec } => self.declare(q, spec),
            Op::Bind { q, x, key } => self.bind(q, x, key),
            Op::Publish { .. } => self.publish(op),
            Op::Get { q, ch, no_ack } => self.get(q, ch, no_ack),
            Op::Consume {
                q,
                ch,
                no_ack,
                prefetch,
            } => self.consume(q, ch, no_ack, prefetch),
            Op::Ack { ch, pick, multiple } => self.settle(ch, pick, multiple, Settle::Ack),
            Op::Nack {
                ch,
                pick,
                multiple,
                requeue,
            } => self.settle(ch, pick, multiple, Settle::reject(requeue)),
            Op::Reject { ch, pick, requeue } => {
                self.settle(ch, pick, false, Settle::reject(requeue))
            }
            Op::Cancel { q } => match self.queues.get_mut(&q).and_then(|s| s.consumer.take()) {
                Some(id) => {
                    self.consumers.remove(&id);
                    Outcome::Cancel(id)
                }
                None => Outcome::Skip,
            },
            Op::CloseChannel { ch } => {
                self.close_channel(ch);
                Outcome::Done
            }
            Op::CloseConnection { conn } => {
                self.close_channel(2 * conn);
                self.close_channel(2 * conn + 1);
                Outcome::Done
            }
            Op::Purge { q } => match self.queues.get_mut(&q) {
                Some(s) => {
                    let n = s.ready.len() as u32;
                    s.ready.clear();
                    Outcome::Count(n)
                }
                None => Outcome::Skip,
            },
            Op::Delete { q } => match self.queues.remove(&q) {
                Some(s) => {
                    self.bindings.retain(|b| b.1 != q);
                    if let Some(id) = s.consumer {
                        self.consumers.remove(&id);
                    }
                    Outcome::Count(s.ready.len() as u32)
                }
                None => Outcome::Skip,
            },
            Op::Restart => {
                self.restart();
                Outcome::Done
            }
        };
        self.flush_dead_letters();
        self.dispatch();
        out
    }

    fn declare(&mut self, q: u8, mut spec: Spec) -> Outcome {
        if self.queues.contains_key(&q) {
            return Outcome::Skip;
        }
        if q >= MAIN_QUEUES {
            spec.dlx = false;
        }
        let incarnation = self.fresh();
        self.queues.insert(
            q,
            Queue {
                incarnation,
                spec,
                ready: BTreeMap::new(),
                next_seq: 0,
                consumer: None,
            },
        );
        Outcome::Declare
    }

    fn bind(&mut self, q: u8, x: X, key: u8) -> Outcome {
        // Only dead-letter targets bind to m.dlx (no cycles); the default exchange refuses binds.
        let allowed = match x {
            X::Default => false,
            X::Dlx => q >= MAIN_QUEUES,
            _ => true,
        };
        if !allowed || !self.queues.contains_key(&q) {
            return Outcome::Skip;
        }
        self.bindings.insert((x, q, binding_key(x, key)));
        Outcome::Done
    }

    /// The queues a message with these attributes is routed to.
    fn route(&self, x: X, rk: &str, headers: u8) -> BTreeSet<u8> {
        if x == X::Default {
            return (0..QUEUES)
                .filter(|q| queue_name(*q) == rk && self.queues.contains_key(q))
                .collect();
        }
        self.bindings
            .iter()
            .filter(|(bx, _, k)| {
                *bx == x
                    && match x {
                        X::Fanout | X::Dlx | X::Default => true,
                        X::Direct => DIRECT_KEYS[*k as usize] == rk,
                        X::Topic => topic_match(TOPIC_KEYS[*k as usize], rk),
                        X::Headers => {
                            let (all, h1, h2) = HEADER_BINDINGS[*k as usize];
                            let want = [(h1, headers & 1 != 0), (h2, headers & 2 != 0)];
                            let mut asked = want.iter().filter(|(w, _)| *w);
                            if all {
                                asked.all(|(_, has)| *has)
                            } else {
                                asked.any(|(_, has)| *has)
                            }
                        }
                    }
            })
            .map(|b| b.1)
            .collect()
    }

    fn publish(&mut self, op: &Op) -> Outcome {
        let Op::Publish {
            x,
            key,
            persistent,
            confirm,
            mandatory,
            priority,
            headers,
        } = *op
        else {
            unreachable!()
        };
        self.next_msg += 1;
        let body = format!("m{}", self.next_msg);
        let rk = routing_key(x, key);
        let seen = Seen {
            body: body.clone(),
            exchange: x.name().to_string(),
            routing_key: rk.clone(),
            redelivered: false,
            persistent,
            priority,
            headers,
        };
        let targets = self.route(x, &rk, headers);
        let mut rejected = false;
        for q in &targets {
            rejected |= !self.enqueue(*q, seen.clone());
        }
        Outcome::Publish {
            ack: !rejected,
            returned: confirm && mandatory && targets.is_empty(),
            body,
        }
    }

    /// Puts a copy in queue `q`; false when the queue refuses it (reject-publish).
    fn enqueue(&mut self, q: u8, seen: Seen) -> bool {
        let Some(s) = self.queues.get_mut(&q) else {
            return true;
        };
        if let Some((max, Overflow::RejectPublish)) = s.spec.max_len {
            if s.ready.len() >= max as usize {
                return false;
            }
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        self.copies += 1;
        s.push(Copy { seq, seen });
        self.drop_head(q);
        // A consumer with room takes it at once, before anything enqueued later (a dead letter
        // of higher priority, say) can overtake it.
        self.dispatch();
        true
    }

    /// Enforces drop-head after an enqueue or requeue, dead-lettering what it drops.
    fn drop_head(&mut self, q: u8) {
        let Some(s) = self.queues.get_mut(&q) else {
            return;
        };
        let Some((max, Overflow::DropHead)) = s.spec.max_len else {
            return;
        };
        let mut dropped = Vec::new();
        while s.ready.len() > max as usize {
            dropped.extend(s.pop());
        }
        if s.dead_letters(q) {
            for c in dropped {
                self.dead_letter(c);
            }
        }
    }

    /// Queues a dead copy for republishing to m.dlx once the operation is done: a publish
    /// reaches all its queues before what it pushed out of one of them arrives elsewhere
    /// (RabbitMQ's dead letters are a later publish by the queue; Warren routes them after it).
    fn dead_letter(&mut self, c: Copy) {
        self.dead.push(c);
    }

    /// Republishes the dead copies, in the order they died, keeping routing key and properties.
    fn flush_dead_letters(&mut self) {
        // Dead-letter targets never dead-letter, so this does not grow while it runs.
        for c in std::mem::take(&mut self.dead) {
            let seen = Seen {
                exchange: X::Dlx.name().to_string(),
                redelivered: false,
                ..c.seen
            };
            for q in self.route(X::Dlx, &seen.routing_key.clone(), seen.headers) {
                self.enqueue(q, seen.clone());
            }
        }
    }

    fn get(&mut self, q: u8, ch: u8, no_ack: bool) -> Outcome {
        let Some(s) = self.queues.get_mut(&q) else {
            return Outcome::Skip;
        };
        let Some(copy) = s.pop() else {
            return Outcome::Get(None);
        };
        let count = s.ready.len() as u32;
        let incarnation = s.incarnation;
        let seen = copy.seen.clone();
        let mut unacked = None;
        if !no_ack {
            let id = self.fresh();
            unacked = Some(id);
            self.channels.entry(ch).or_default().push(Unacked {
                id,
                tag: None,
                q,
                incarnation,
                consumer: None,
                copy,
            });
        }
        Outcome::Get(Some((seen, count, unacked)))
    }

    fn consume(&mut self, q: u8, ch: u8, no_ack: bool, prefetch: u8) -> Outcome {
        let id = self.fresh();
        match self.queues.get_mut(&q) {
            Some(s) if s.consumer.is_none() => s.consumer = Some(id),
            _ => return Outcome::Skip,
        }
        self.consumers.insert(
            id,
            Consumer {
                q,
                ch,
                no_ack,
                prefetch,
                unacked: 0,
            },
        );
        Outcome::Consume(id)
    }

    fn settle(&mut self, ch: u8, pick: u8, multiple: bool, how: Settle) -> Outcome {
        let list = self.channels.entry(ch).or_default();
        list.sort_by_key(|u| u.tag);
        if list.is_empty() {
            return Outcome::Skip;
        }
        let chosen = list[pick as usize % list.len()]
            .tag
            .expect("tags are known");
        let (settled, kept): (Vec<_>, Vec<_>) = std::mem::take(list)
            .into_iter()
            .partition(|u| u.tag == Some(chosen) || (multiple && u.tag < Some(chosen)));
        *list = kept;
        self.release(settled, how);
        Outcome::Settle {
            tag: chosen,
            multiple,
        }
    }

    /// Settles deliveries (in tag order): frees their consumers' prefetch, then acks, requeues or
    /// dead-letters each in its queue, if that queue (the same incarnation) still exists.
    fn release(&mut self, settled: Vec<Unacked>, how: Settle) {
        let mut requeued = BTreeSet::new();
        for u in settled {
            if let Some(c) = u.consumer.and_then(|id| self.consumers.get_mut(&id)) {
                c.unacked -= 1;
            }
            let Some(s) = self.queues.get_mut(&u.q) else {
                continue;
            };
            if s.incarnation != u.incarnation {
                continue;
            }
            match how {
                Settle::Ack => {}
                Settle::Requeue => {
                    let mut copy = u.copy;
                    copy.seen.redelivered = true;
                    s.push(copy);
                    requeued.insert(u.q);
                }
                Settle::Discard => {
                    if s.dead_letters(u.q) {
                        self.dead_letter(u.copy);
                    }
                }
            }
        }
        // RabbitMQ trims a drop-head queue after a requeue (requeue_and_run).
        if how == Settle::Requeue {
            for q in requeued {
                self.drop_head(q);
            }
        }
    }

    fn close_channel(&mut self, ch: u8) {
        let mut list = self.channels.remove(&ch).unwrap_or_default();
        list.sort_by_key(|u| u.tag);
        let gone: Vec<u64> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.ch == ch)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            let q = self.consumers.remove(&id).map(|c| c.q);
            if let Some(s) = q.and_then(|q| self.queues.get_mut(&q)) {
                s.consumer = None;
            }
        }
        self.release(list, Settle::Requeue);
    }

    fn restart(&mut self) {
        // A clean shutdown closes the connections first: their channels requeue (and a
        // drop-head queue trims) as at any channel close, before the queues stop.
        for ch in 0..super::ops::CHANNELS {
            self.close_channel(ch);
        }
        let transient: Vec<u8> = self
            .queues
            .iter()
            .filter(|(_, s)| !s.spec.durable)
            .map(|(q, _)| *q)
            .collect();
        for q in transient {
            self.queues.remove(&q);
            self.bindings.retain(|b| b.1 != q);
        }
        for s in self.queues.values_mut() {
            s.ready.retain(|_, c| c.seen.persistent);
        }
    }

    /// A no-ack consumer of `q` received `body` while its channel closed or the server shut
    /// down (see the runner's `drain_closed`): that copy is consumed and must not come back.
    pub fn consumed_while_closing(&mut self, q: u8, body: &str) {
        if let Some(s) = self.queues.get_mut(&q) {
            s.ready.retain(|_, c| c.seen.body != body);
        }
    }

    /// Hands ready messages to consumers with room, in queue order.
    fn dispatch(&mut self) {
        let ids: Vec<u64> = self.consumers.keys().copied().collect();
        for id in ids {
            loop {
                let c = &self.consumers[&id];
                if !c.no_ack && c.prefetch > 0 && c.unacked >= c.prefetch as usize {
                    break;
                }
                let (q, ch, no_ack) = (c.q, c.ch, c.no_ack);
                let s = self.queues.get_mut(&q).expect("a consumer's queue exists");
                let Some(copy) = s.pop() else { break };
                let incarnation = s.incarnation;
                let seen = copy.seen.clone();
                let mut unacked = None;
                if !no_ack {
                    let uid = self.fresh();
                    unacked = Some(uid);
                    self.channels.entry(ch).or_default().push(Unacked {
                        id: uid,
                        tag: None,
                        q,
                        incarnation,
                        consumer: Some(id),
                        copy,
                    });
                    if let Some(c) = self.consumers.get_mut(&id) {
                        c.unacked += 1;
                    }
                }
                self.pending
                    .entry(id)
                    .or_default()
                    .push(Expected { seen, unacked });
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
    Discard,
}

impl Settle {
    fn reject(requeue: bool) -> Settle {
        if requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        }
    }
}

/// `WARREN_MODEL_AVOID=fanout-loss` steers publishes away from the known fan-out loss of issue 11
/// so that a search on a branch without the fix can look further. Off by default: the generator
/// is complete, and the search must pass without it once the fix is in.
fn avoid_fanout_loss() -> bool {
    avoid("fanout-loss")
}

/// Whether `WARREN_MODEL_AVOID` (a comma-separated list) names `what`.
pub fn avoid(what: &str) -> bool {
    std::env::var("WARREN_MODEL_AVOID").is_ok_and(|v| v.split(',').any(|s| s == what))
}

/// The binding key index stored for a binding (fanout keys are all alike).
fn binding_key(x: X, key: u8) -> u8 {
    match x {
        X::Direct => key % DIRECT_KEYS.len() as u8,
        X::Topic => key % TOPIC_KEYS.len() as u8,
        X::Headers => key % HEADER_BINDINGS.len() as u8,
        _ => 0,
    }
}

/// The binding key string (or header binding arguments' index) sent for a `Bind`.
pub fn binding_key_str(x: X, key: u8) -> &'static str {
    match x {
        X::Direct => DIRECT_KEYS[binding_key(x, key) as usize],
        X::Topic => TOPIC_KEYS[binding_key(x, key) as usize],
        _ => "",
    }
}

/// The header binding of a `Bind` to the headers exchange: (all?, h1, h2).
pub fn header_binding(key: u8) -> (bool, bool, bool) {
    HEADER_BINDINGS[binding_key(X::Headers, key) as usize]
}

/// The routing key of a publish.
pub fn routing_key(x: X, key: u8) -> String {
    if x == X::Default {
        queue_name(key % QUEUES)
    } else {
        ROUTING_KEYS[key as usize % ROUTING_KEYS.len()].to_string()
    }
}

/// AMQP topic matching: `*` is one word, `#` zero or more.
fn topic_match(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}
