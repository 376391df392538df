//! Queues: the shared handle ([`Queue`]) around the lock-free-of-I/O state ([`state::QueueState`]).

mod args;
mod consumer;
mod dispatch;
mod limits;
mod loading;
mod packed;
mod ready;
pub(crate) mod segments;
mod state;
mod utilisation;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard, RwLock};
use warren_codec::{FieldTable, ShortStr};
use warren_store::{MessageId, MessageOp, StoreError};

pub use args::type_name;
pub use args::{ConsumeArgs, Overflow, QueueArgs};
pub use consumer::{ChannelLimit, Consumer, ConsumerId, Delivery, DeliverySink};
pub use loading::{LOAD_BATCH, LoadRequests, LoadStep, Window};
pub use state::{Effects, Got, HeadPending, Pushed, QueueState};

use crate::dead_letter::{DeadLetter, DeadLetterTarget};
use crate::persist::SharedStore;
use crate::timers::now_ms;
use crate::{BrokerError, Message, VHost};

/// How a delivered message is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Acknowledged: gone.
    Ack,
    /// Rejected or nacked with requeue: ready again, flagged redelivered.
    Requeue,
    /// Rejected or nacked without requeue: gone (dead-lettered when the queue has a DLX).
    Discard,
}

/// The declared properties of a queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueOptions {
    /// Survives a broker restart.
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<u64>,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// The arguments as declared.
    pub arguments: FieldTable,
}

/// A queue, shared by the vhost's router, the channels that consume from it, and its deliveries.
#[derive(Debug)]
pub struct Queue {
    /// The queue's name.
    pub name: ShortStr,
    /// The vhost's name, for error texts.
    pub vhost: String,
    /// Declared properties.
    pub options: QueueOptions,
    /// Parsed arguments, as declared (policies change the limits in force, not these).
    pub args: QueueArgs,
    state: Mutex<QueueState>,
    /// Where loading the stored messages after a restart has got to; `None` once done. Held
    /// while a batch is read from the store (lock order: `loader`, then `state`).
    loader: Mutex<Option<loading::Cursor>>,
    deleted: AtomicBool,
    /// Set once the queue had a consumer, so auto-delete fires only after one leaves.
    had_consumer: AtomicBool,
    /// Where a durable queue keeps its persistent messages; `None` for transient queues.
    store: Option<SharedStore>,
    /// The vhost name as the store's keys take it, made once rather than per message.
    vhost_key: Bytes,
    /// The vhost, for dead-lettering, timers and deleting the queue when it expires.
    host: Weak<VHost>,
    /// Where dead letters go: `x-dead-letter-exchange` and `x-dead-letter-routing-key`, or a
    /// policy's. Written under the state lock when a policy changes (lock order: state, then
    /// this); read alone when messages die.
    dead_letter: RwLock<Option<DeadLetterTarget>>,
    /// The broker's flag: false once it stops delivering for a shutdown (none outside a vhost).
    delivering: Option<Arc<AtomicBool>>,
    /// The spill area this queue's backlog may go to (counted there while the queue lives).
    spill: Option<Arc<crate::spill::SpillArea>>,
    /// The area the backlog spills to (set once, when it may), and the queue's unwritten
    /// bytes there: what [`Queue::spill_pressure`] reads, without the queue's lock.
    spill_writes: std::sync::OnceLock<(Arc<crate::spill::SpillArea>, Arc<crate::spill::Writes>)>,
    /// `basic.get`s that found the head in a spilled segment not back yet: run (once) when a
    /// segment arrives. Pushed and taken under the state lock (lock order: `state`, then
    /// this), run after it is released.
    get_waiters: Mutex<GetWaiters>,
}

/// The wakers of `basic.get`s waiting for a spilled head.
#[derive(Default)]
struct GetWaiters(Vec<crate::spill::Waker>);

impl std::fmt::Debug for GetWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} waiting", self.0.len())
    }
}

/// What [`Queue::try_get`] found.
#[derive(Debug)]
pub enum GetResult {
    /// The next message.
    Got(Got),
    /// No message is ready (`basic.get-empty`).
    Empty,
    /// The head is in a spilled segment that is being read: the waker given runs when it is
    /// back (or another segment is), and the get is to be tried again then.
    Wait,
    /// The head is a stored entry of a queue still loading: the caller runs
    /// [`Queue::load_head`] on a thread that may block (it reads the store), then tries again.
    Load,
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(area) = &self.spill {
            area.unregister();
        }
    }
}

/// What became of a message published to a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// It was written to the store (the publish needs a sync before it may be confirmed).
    pub stored: bool,
    /// The queue's overflow policy refused it (the publisher gets a nack).
    pub rejected: bool,
}

/// The message's stored form when a publish must also store the message itself (the only
/// durable queue it reaches); otherwise queues only add an index entry for its
/// [`Message::store_id`] (see `VHost::fan_out`).
pub type StoreWrite = Option<Bytes>;

impl std::fmt::Debug for dyn crate::persist::Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Queue {
    /// A new, empty, transient queue outside any vhost (no dead-lettering, no timers).
    pub fn new(name: ShortStr, vhost: &str, options: QueueOptions, args: QueueArgs) -> Arc<Queue> {
        Self::with_store(name, vhost, options, args, None, Weak::new())
    }

    /// A new, empty queue of vhost `host`; a durable one keeps persistent messages in `store`.
    pub fn with_store(
        name: ShortStr,
        vhost: &str,
        options: QueueOptions,
        args: QueueArgs,
        store: Option<SharedStore>,
        host: Weak<VHost>,
    ) -> Arc<Queue> {
        let store = if options.durable { store } else { None };
        let dead_letter = RwLock::new(limits::dead_letter_target(&args));
        let state = QueueState::with_args(store.is_some(), args.clone(), now_ms());
        let delivering = host.upgrade().map(|h| h.delivering.clone());
        let spill = host.upgrade().and_then(|h| h.spill().cloned());
        let mut state = state;
        if store.is_some() {
            state.store_backlog = host.upgrade().and_then(|h| h.store_backlog().cloned());
        }
        let queue = Arc::new(Queue {
            name,
            vhost: vhost.to_string(),
            options,
            args,
            state: Mutex::new(state),
            loader: Mutex::new(None),
            deleted: AtomicBool::new(false),
            had_consumer: AtomicBool::new(false),
            store,
            vhost_key: Bytes::copy_from_slice(vhost.as_bytes()),
            host,
            dead_letter,
            delivering,
            spill,
            spill_writes: std::sync::OnceLock::new(),
            get_waiters: Mutex::default(),
        });
        if let Some(area) = &queue.spill {
            area.register();
            queue.spill_to(area.clone());
        }
        // An x-expires queue may never be used at all: its timer starts now.
        queue.finish(queue.state.lock(), Effects::default());
        queue
    }

    /// Lets the backlog spill to `area`, waking this queue's dispatch when a segment it waits
    /// for is back.
    fn spill_to(self: &Arc<Self>, area: Arc<crate::spill::SpillArea>) {
        let me = Arc::downgrade(self);
        // Runs on the spill area's I/O thread.
        let wake: crate::spill::Waker = Arc::new(move || {
            if let Some(q) = me.upgrade() {
                q.segment_arrived();
            }
        });
        let writes = Arc::new(crate::spill::Writes::default());
        let _ = self.spill_writes.set((area.clone(), writes.clone()));
        self.state.lock().ready.set_spill(Some(segments::SpillTo {
            area,
            wake: Some(wake),
            writes,
        }));
    }

    /// True while this queue's publishers are to pause: more of its spilled segments wait to
    /// be written than its share of what the disk should have to catch up with (see
    /// `SpillArea::pressing`). A connection that published here stops reading its socket until
    /// [`Queue::wait_spill_written`] wakes it (RabbitMQ's credit flow slows such publishers
    /// too, and sends no `connection.blocked` either). Costs a load or two, no lock. Other
    /// queues' publishers are not paused by this queue's writes.
    pub fn spill_pressure(&self) -> bool {
        self.spill_writes
            .get()
            .is_some_and(|(area, w)| area.pressing(w))
    }

    /// Runs `wake` once [`Queue::spill_pressure`] is over (the writer wrote enough of this
    /// queue's segments); false, and `wake` dropped, when it is over already.
    pub fn wait_spill_written(&self, wake: crate::spill::Waker) -> bool {
        self.spill_writes
            .get()
            .is_some_and(|(area, w)| area.wait_written(w, wake))
    }

    /// False once the broker stopped delivering for a shutdown: dispatch keeps messages ready.
    pub(crate) fn delivering(&self) -> bool {
        self.delivering
            .as_ref()
            .is_none_or(|d| d.load(Ordering::Acquire))
    }

    /// True when persistent messages published here are written to the store.
    pub fn stores_persistent(&self) -> bool {
        self.store.is_some()
    }

    /// Where this queue's dead letters go, if anywhere.
    pub fn dead_letter_target(&self) -> Option<DeadLetterTarget> {
        self.dead_letter.read().clone()
    }

    /// Records that stored messages were delivered (`first`) or left for good (`gone`). Called
    /// with the state locked, so the store sees a queue's changes in the order they happened.
    /// Nothing is written once the queue is deleted: its store records are gone, and the store
    /// does not check that a `Remove` finds its entry (a late one would drop a reference that
    /// another queue still holds).
    fn record(&self, first: &[(u64, MessageId)], gone: &[(u64, MessageId)]) {
        let Some(store) = &self.store else { return };
        if (first.is_empty() && gone.is_empty()) || self.is_deleted() {
            return;
        }
        let vhost = self.vhost_key.clone();
        let queue = self.name.bytes().clone();
        let ops: Vec<MessageOp> = first
            .iter()
            .map(|&(seq, id)| MessageOp::MarkRedelivered {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq,
                id,
            })
            .chain(gone.iter().map(|&(seq, id)| MessageOp::Remove {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq,
                id,
            }))
            .collect();
        if let Err(e) = store.write(&ops) {
            // Not fatal: the worst outcome is a redelivery after a restart.
            tracing::error!(queue = %self.name, error = %e, "cannot record deliveries in the store");
        }
    }

    /// Ends an operation: writes its store changes while still locked, arms the timer for the
    /// queue's next deadline, unlocks, and returns the dead letters to bury.
    fn finish(self: &Arc<Self>, mut s: MutexGuard<'_, QueueState>, fx: Effects) -> Vec<DeadLetter> {
        self.record(&fx.first, &fx.gone);
        // A parked loading queue whose window ran low asks the loader to read on.
        if let Some(requests) = s.wants_loading() {
            requests.ask(Arc::downgrade(self));
        }
        let at = s.next_wakeup();
        if at < s.timer_at
            && let Some(host) = self.host.upgrade()
        {
            s.timer_at = at;
            host.timers().schedule(at, Arc::downgrade(self));
        }
        drop(s);
        fx.dead
    }

    /// Ends an operation and buries its dead letters.
    fn conclude(self: &Arc<Self>, s: MutexGuard<'_, QueueState>, fx: Effects) {
        let dead = self.finish(s, fx);
        if !dead.is_empty() {
            self.bury(dead);
        }
    }

    /// Dead-letters messages that died here (or just drops them without a dead-letter
    /// exchange), then removes the stored ones from this queue's store.
    pub(crate) fn bury(self: &Arc<Self>, dead: Vec<DeadLetter>) {
        match self.host.upgrade() {
            Some(host) if self.dead_letter.read().is_some() => host.dead_letter(self, dead),
            _ => self.forget(&dead),
        }
    }

    /// Removes dead letters from this queue's store once they are safe elsewhere. Runs after
    /// the operation that killed them released the lock, so it takes it again: `record` must
    /// see the deleted flag and write under the same lock as [`Queue::mark_deleted`].
    pub(crate) fn forget(&self, dead: &[DeadLetter]) {
        let gone: Vec<(u64, MessageId)> = dead
            .iter()
            .filter_map(|d| Some((d.stored_seq?, d.message.store_id()?)))
            .collect();
        if gone.is_empty() {
            return;
        }
        let _locked = self.state.lock();
        self.record(&[], &gone);
    }

    fn now_if(&self, s: &QueueState, m: Option<&Message>) -> u64 {
        if s.needs_clock(m) { now_ms() } else { 0 }
    }

    /// `queue 'name' in vhost 'v'`, as RabbitMQ words it.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.name, self.vhost)
    }

    /// True once the queue was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// True when `connection` may use the queue (it is not another connection's exclusive queue).
    pub fn accessible_by(&self, connection: u64) -> bool {
        self.options.exclusive_owner.is_none_or(|o| o == connection)
    }

    /// Enqueues a message that is not to be stored, and buries what its arrival pushed out.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> Enqueued {
        match self.publish_inner(message, None) {
            Ok((enqueued, dead)) => {
                if !dead.is_empty() {
                    self.bury(dead);
                }
                enqueued
            }
            Err(_) => Enqueued::default(),
        }
    }

    /// Enqueues a message and hands out what consumers can take, returning the dead letters
    /// for the caller to bury ([`VHost::fan_out`], the only publisher of stored messages:
    /// it decides what is stored). A message with a store id in a durable queue gets an index
    /// entry first; `put` carries the message's stored form when this write must also store the
    /// message itself (the only durable queue it reaches). On a store error nothing was
    /// enqueued.
    pub(crate) fn publish_inner(
        self: &Arc<Self>,
        message: Arc<Message>,
        put: StoreWrite,
    ) -> Result<(Enqueued, Vec<DeadLetter>), StoreError> {
        let mut s = self.state.lock();
        if s.limit_needs_loading() {
            // Rare (a length-limited queue still loading): see `limit_needs_loading`.
            drop(s);
            self.load_rest();
            s = self.state.lock();
        }
        // Routed just before the queue was deleted: nobody can ever consume it.
        if self.is_deleted() {
            return Ok((Enqueued::default(), Vec::new()));
        }
        let now = self.now_if(&s, Some(&message));
        let mut fx = Effects::default();
        let mut written = false;
        // Every message with a store id that a durable queue takes is stored there: the
        // queue's state relies on it to name the entry in later Removes.
        if !s.refuses(&message)
            && let (Some(st), Some(id)) = (&self.store, message.store_id())
        {
            let mut ops = Vec::with_capacity(2);
            if let Some(stored_form) = put {
                ops.push(MessageOp::Put {
                    id,
                    message: stored_form,
                });
            }
            ops.push(MessageOp::Enqueue {
                vhost: self.vhost_key.clone(),
                queue: self.name.bytes().clone(),
                seq: s.next_seq(),
                id,
            });
            st.write(&ops)?;
            written = true;
        }
        let pushed = s.publish(message, now, self, &mut fx);
        let enqueued = Enqueued {
            stored: written,
            rejected: pushed == Pushed::Rejected,
        };
        Ok((enqueued, self.finish(s, fx)))
    }

    /// Adds a message read back from the store at startup (its store id set).
    pub fn recover(&self, seq: u64, message: Arc<Message>, redelivered: bool) {
        self.state.lock().push_recovered(seq, message, redelivered);
    }

    /// After recovery: drops what expired while the broker was down and arms the timers.
    pub fn recovered(self: &Arc<Self>) {
        self.on_timer();
    }

    /// The timer fired: expire messages that are due; delete the queue if `x-expires` says so.
    pub(crate) fn on_timer(self: &Arc<Self>) {
        let mut s = self.state.lock();
        s.timer_at = ready::NEVER;
        let now = now_ms();
        let mut fx = Effects::default();
        s.expire(now, &mut fx);
        let expired = s.is_expired(now) && !self.is_deleted();
        self.conclude(s, fx);
        if expired && let Some(host) = self.host.upgrade() {
            tracing::debug!(queue = %self.name, "queue expired (x-expires)");
            host.remove_queue(self);
        }
    }

    /// Notes a redeclaration, which counts as use for `x-expires`.
    pub fn touch(self: &Arc<Self>) {
        let mut s = self.state.lock();
        // The limit in force, which a policy may have set.
        if s.args.expires.is_some() {
            s.touch(now_ms());
        }
    }

    /// Attaches a consumer and starts delivering to it.
    pub fn consume(self: &Arc<Self>, consumer: Consumer) -> Result<(), BrokerError> {
        let mut s = self.state.lock();
        s.add_consumer(consumer, &self.describe())?;
        self.had_consumer.store(true, Ordering::Release);
        let now = self.now_if(&s, None);
        let mut fx = Effects::default();
        s.dispatch(self, now, &mut fx);
        self.conclude(s, fx);
        Ok(())
    }

    /// Detaches a consumer. Returns true when the queue is auto-delete and now has no consumers,
    /// i.e. the caller should delete it.
    pub fn cancel(self: &Arc<Self>, id: ConsumerId) -> bool {
        let mut s = self.state.lock();
        if s.remove_consumer(id, now_ms()).is_none() {
            return false;
        }
        // Others may now get what the cancelled consumer's credit held back.
        let now = self.now_if(&s, None);
        let mut fx = Effects::default();
        s.dispatch(self, now, &mut fx);
        let delete = self.options.auto_delete && s.consumer_count() == 0;
        self.conclude(s, fx);
        delete
    }

    /// Settles delivered messages and hands out what freed credit allows.
    pub fn settle(self: &Arc<Self>, seqs: &[u64], how: Settle) {
        let mut s = self.state.lock();
        // A deleted queue takes nothing back and dead-letters nothing.
        let how = if self.is_deleted() { Settle::Ack } else { how };
        let now = if how == Settle::Ack {
            self.now_if(&s, None)
        } else {
            now_ms()
        };
        let mut fx = Effects::default();
        s.settle(seqs, how, now, &mut fx);
        s.dispatch(self, now, &mut fx);
        self.conclude(s, fx);
    }

    /// Re-runs delivery after a consumer's or channel's credit grew.
    pub fn redispatch(self: &Arc<Self>) {
        let mut s = self.state.lock();
        let now = self.now_if(&s, None);
        let mut fx = Effects::default();
        s.dispatch(self, now, &mut fx);
        self.conclude(s, fx);
    }

    /// A spilled segment this queue asked for is back (runs on the spill area's I/O thread):
    /// does what waited for it — expiry and drop-head of the head, delivery — and wakes the
    /// `basic.get`s that wait.
    fn segment_arrived(self: &Arc<Self>) {
        let mut s = self.state.lock();
        let now = now_ms();
        let mut fx = Effects::default();
        s.expire(now, &mut fx);
        s.drop_over_limit(&mut fx);
        s.dispatch(self, now, &mut fx);
        let waiters = std::mem::take(&mut self.get_waiters.lock().0);
        self.conclude(s, fx);
        for w in waiters {
            w();
        }
    }

    /// `basic.get` without waiting: the next ready message, none, [`GetResult::Wait`] when
    /// the head is in a spilled segment being read (the waker `wake` makes then runs once it
    /// may be back; made only then: a get that answers at once allocates nothing), or
    /// [`GetResult::Load`] when it is in the store, not loaded yet. Neither the spill area
    /// nor the store is read here, so a connection task calling it never blocks.
    pub fn try_get(
        self: &Arc<Self>,
        no_ack: bool,
        wake: impl FnOnce() -> crate::spill::Waker,
    ) -> GetResult {
        let mut s = self.state.lock();
        if s.head_not_loaded() {
            return GetResult::Load;
        }
        let mut fx = Effects::default();
        let got = s.try_get(no_ack, now_ms(), &mut fx);
        if got.is_err() {
            // Under the state lock, which the arrival takes before it runs the waiters.
            self.get_waiters.lock().0.push(wake());
        }
        self.conclude(s, fx);
        match got {
            Ok(Some(g)) => GetResult::Got(g),
            Ok(None) => GetResult::Empty,
            Err(_) => GetResult::Wait,
        }
    }

    /// `basic.get`, blocking this thread while the head is read back from the spill area or
    /// the store (up to 10 s for a store suspended by a full disk): for the management API,
    /// tests and the aliveness check's small queue. Connections use [`Queue::try_get`].
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<Got> {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let wake: crate::spill::Waker = Arc::new(move || {
            let _ = tx.lock().send(());
        });
        // How long a get waits for a store that cannot read now but resumes by itself.
        const SUSPENDED_FOR: std::time::Duration = std::time::Duration::from_secs(10);
        let mut suspended_since = None;
        loop {
            match self.try_get(no_ack, || wake.clone()) {
                GetResult::Got(g) => return Some(g),
                GetResult::Empty => return None,
                GetResult::Load => match self.load_head() {
                    Ok(()) => {}
                    // A store that met a full disk resumes by itself: read again a second
                    // later, as `basic.get` does, for a while; then answer with nothing, as
                    // for a store that failed (what is loaded is nothing to hand out).
                    Err(StoreError::Suspended)
                        if suspended_since
                            .get_or_insert_with(std::time::Instant::now)
                            .elapsed()
                            < SUSPENDED_FOR =>
                    {
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                    Err(_) => return None,
                },
                GetResult::Wait => {
                    // A spill area that stopped wakes nobody: give up after a while.
                    if rx.recv_timeout(std::time::Duration::from_secs(10)).is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Drops all ready messages; returns how many. May block reading the disk (see
    /// [`Queue::purge_may_block`]), but never reads it under the state lock, so publishers and
    /// consumers of the queue go on meanwhile.
    pub fn purge(self: &Arc<Self>) -> u32 {
        let mut s = self.state.lock();
        let mut fx = Effects::default();
        let (n, taken) = s.purge_taking(&mut fx);
        self.conclude(s, fx);
        if let Some(mut taken) = taken {
            // The stored messages of the spilled segments: read here, removed from the store
            // under the lock again (as `forget` does, so a deletion meanwhile is seen).
            let mut gone = Vec::new();
            taken.clear(Some(&mut gone));
            if !gone.is_empty() {
                let _locked = self.state.lock();
                self.record(&[], &gone);
            }
        }
        // Stored messages not loaded yet are removed from the store now, batch by batch, so
        // that a restart cannot bring them back.
        self.sweep_purged();
        n as u32
    }

    /// True when [`Queue::purge`] may read the disk (spilled segments of a durable queue, or
    /// stored entries not loaded yet): callers on the async runtime run it on a blocking
    /// thread then.
    pub fn purge_may_block(&self) -> bool {
        self.state.lock().purge_may_block()
    }

    /// Ready messages.
    pub fn message_count(&self) -> u32 {
        self.state.lock().ready_count() as u32
    }

    /// Attached consumers.
    pub fn consumer_count(&self) -> u32 {
        self.state.lock().consumer_count() as u32
    }

    /// Ready messages and consumers, under one lock.
    pub fn counts(&self) -> (u32, u32) {
        let s = self.state.lock();
        (s.ready_count() as u32, s.consumer_count() as u32)
    }

    /// Marks the queue deleted, under its state lock: every store op of the queue is written
    /// under that lock and checks the flag, so once this returns none can follow. Call it
    /// before deleting the queue's store records.
    pub fn mark_deleted(&self) {
        let _locked = self.state.lock();
        self.deleted.store(true, Ordering::Release);
    }

    /// Marks the queue deleted and detaches its consumers, telling each it was cancelled.
    /// Returns the number of ready messages it held.
    pub fn delete(&self) -> u32 {
        let (consumers, count) = {
            let mut s = self.state.lock();
            self.deleted.store(true, Ordering::Release);
            // The store drops a deleted queue's messages with its record, in one go: nothing
            // to list, so no spilled segment is read.
            let count = s.purge_all() as u32;
            (s.take_consumers(), count)
        };
        for c in consumers {
            c.sink.cancelled(c.channel, c.tag.clone());
        }
        count
    }
}

#[cfg(test)]
mod backlog_tests;
#[cfg(test)]
mod counters_tests;
#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod pressure_tests;
#[cfg(test)]
mod slow_read_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod utilisation_tests;
