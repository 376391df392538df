//! One task per connection: it owns the socket, every channel's state, and the write buffer.
//!
//! The loop reads whatever the socket has, decodes and handles every whole frame before the next
//! `await`, takes queued deliveries from its mailbox in batches, and writes everything it produced
//! with one `write_all` per turn.

pub(crate) mod admission;
mod ctx;
mod error;
mod handshake;
#[cfg(test)]
mod read_room_tests;
mod sasl;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use warren_broker::{Broker, Delivery, Settle};
use warren_codec::{
    ChannelOpenOk, ConnectionBlocked, ConnectionClose, ConnectionCloseOk, ConnectionUnblocked,
    ConnectionUpdateSecretOk, Frame, FrameDecoder, Method, QueuePurgeOk, ReplyCode, ShortStr,
    encode_heartbeat, encode_method,
};

pub use ctx::{ConnEvent, ConnSink, Ctx, ParkedGet, Signals, SyncPurpose};
pub use error::{AmqpError, AmqpResult};
pub use handshake::Stream;

use crate::channel::{Channel, ReplyRegistry};
use crate::config::Config;
use crate::registry::Registration;

enum State {
    Open,
    /// We sent `connection.close` and wait for close-ok (until the deadline).
    Closing(Instant),
    Done,
    /// Input RabbitMQ's reader dies on (an unknown method): drop the socket without a word.
    Aborted,
}

/// Generic over the socket so that plain TCP pays nothing for TLS: each kind gets its own
/// compiled copy of the loop.
struct Connection<S> {
    stream: S,
    inbuf: BytesMut,
    /// Bytes the last socket read returned, to size the next one.
    last_read: usize,
    /// `inbuf` was moved to a [`READ_LARGE`] buffer (see [`make_read_room`]).
    large_inbuf: bool,
    decoder: FrameDecoder,
    ctx: Ctx,
    // ahash, not SipHash: three lookups per published message (method, header, body frames).
    channels: HashMap<u16, Channel, ahash::RandomState>,
    channel_max: u16,
    heartbeat: Duration,
    events: mpsc::UnboundedReceiver<ConnEvent>,
    state: State,
    last_recv: Instant,
    last_send: Instant,
    /// The client handles `connection.blocked`.
    blocked_notify: bool,
    /// The resource alarms in effect.
    alarm: crate::alarm::Alarms,
    /// The socket is not read: a publisher blocked by the alarm.
    blocked: bool,
    /// The socket is not read: `max_unconfirmed_publishes` publishes wait for their confirms
    /// (no `connection.blocked`: RabbitMQ's credit flow does not send one either).
    confirm_paused: bool,
    /// The socket is not read: a message this connection published went to a queue whose spill
    /// writer is behind (no `connection.blocked` either; see [`Connection::pause_for_spill`]).
    spill_paused: bool,
    /// The queues whose spill writes the paused connection waits for.
    spill_waiting: Vec<Arc<warren_broker::Queue>>,
    /// This connection's entry in the management API's list (unlisted when dropped).
    listed: Registration,
    /// Counts this connection and its channels against the vhost's and user's limits.
    ticket: warren_broker::ConnectionTicket,
    /// Socket counters for the statistics: one add per read and per write, not per frame.
    stats: Arc<warren_mgmt::ConnectionStats>,
}

/// Serves one accepted socket (TCP, or TLS after its handshake) to the end; `admitted` is held
/// until then.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: Stream>(
    mut admitted: admission::Admitted,
    mut stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    transport: crate::tls::Transport,
    id: u64,
    broker: Arc<Broker>,
    config: Arc<Config>,
    replies: Arc<ReplyRegistry>,
    signals: Signals,
) {
    let mut inbuf = BytesMut::with_capacity(READ_SMALL);
    let timeout = Duration::from_secs(config.handshake_timeout);
    let negotiated = match tokio::time::timeout(
        timeout,
        handshake::perform(&mut stream, peer, &transport, &mut inbuf, &broker, &config),
    )
    .await
    {
        Ok(Ok(n)) => {
            admitted.handshake.release();
            n
        }
        Ok(Err(handshake::HandshakeEnd::Refused(e))) => {
            tracing::info!(code = e.code.code(), text = %e.text, "handshake refused");
            let mut out = BytesMut::new();
            encode_method(&mut out, 0, &close_method(&e));
            let _ = handshake::send(&mut stream, &out).await;
            // Give the client a moment to read the close and answer; then drop the socket.
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_buf(&mut inbuf)).await;
            return;
        }
        Ok(Err(handshake::HandshakeEnd::Dropped(why))) => {
            tracing::debug!(why, "handshake abandoned");
            return;
        }
        Err(_) => {
            tracing::info!("handshake timed out");
            return;
        }
    };
    let Some(vhost) = broker.vhost(&negotiated.vhost) else {
        return;
    };
    tracing::Span::current()
        .record("user", negotiated.user.as_str())
        .record("vhost", negotiated.vhost.as_str());
    tracing::info!("connection open");
    // Listed for the management API until this task ends (the guard unlists it).
    let stats = Arc::new(warren_mgmt::ConnectionStats::default());
    let (listed, close_requests) = signals.registry.register(warren_mgmt::ConnectionInfo {
        id,
        name: format!("{peer} -> {local}"),
        user: negotiated.user.clone(),
        vhost: negotiated.vhost.clone(),
        peer,
        local,
        connected_at_ms: warren_broker::now_ms(),
        channels: Vec::new(),
        channel_stats: Vec::new(),
        stats: stats.clone(),
    });
    let (tx, events) = mpsc::unbounded_channel();
    let now = Instant::now();
    let topic_generation = broker.topic_generation();
    let topic_access = broker.topic_access(&negotiated.user, &negotiated.vhost);
    let mut conn = Connection {
        stream,
        inbuf,
        last_read: 0,
        large_inbuf: false,
        decoder: FrameDecoder::new(negotiated.frame_max),
        ctx: Ctx {
            id,
            broker: broker.clone(),
            vhost,
            user: negotiated.user.clone(),
            impersonator: negotiated.impersonator,
            config,
            // Grows as deliveries need; an idle connection keeps little.
            out: BytesMut::with_capacity(READ_SMALL),
            frame_max: negotiated.frame_max,
            sink: Arc::new(ConnSink {
                tx,
                pending: AtomicU32::new(0),
            }),
            exclusive_queues: Vec::new(),
            consumer_cancel_notify: negotiated.consumer_cancel_notify,
            confirms_due: Vec::new(),
            route_scratch: Vec::new(),
            batch_time_ms: 0,
            published: false,
            replies,
            now,
            topic_access,
            topic_generation,
            spill_pressing: Vec::new(),
            get_parked: None,
            purge_parked: false,
        },
        channels: HashMap::default(),
        channel_max: if negotiated.channel_max == 0 {
            u16::MAX
        } else {
            negotiated.channel_max
        },
        heartbeat: Duration::from_secs(negotiated.heartbeat.into()),
        events,
        state: State::Open,
        last_recv: now,
        last_send: now,
        blocked_notify: negotiated.connection_blocked,
        alarm: crate::alarm::Alarms::default(),
        blocked: false,
        confirm_paused: false,
        spill_paused: false,
        spill_waiting: Vec::new(),
        listed,
        ticket: negotiated.ticket,
        stats,
    };
    conn.serve(signals, close_requests).await;
    conn.cleanup();
    tracing::info!("connection closed");
}

/// How often a connection ticks: often enough to send heartbeats (half their interval) and to
/// notice an overdue acknowledgement within half of `consumer_timeout`, but never less often than
/// RabbitMQ's channel tick (a minute).
fn tick_period(heartbeat: Duration, consumer_timeout: Duration) -> Duration {
    let acks = (consumer_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(60));
    if heartbeat.is_zero() {
        acks
    } else {
        acks.min(heartbeat / 2)
    }
}

/// Socket read size of a quiet connection.
const READ_SMALL: usize = 4 * 1024;
/// Socket read size of a busy connection.
const READ_LARGE: usize = 64 * 1024;

/// Mailbox events handled per wake-up. As large as the deliveries a connection may hold, so that
/// a consumer's connection drains in one turn what a publisher's connection produced in one turn
/// of its own (which decodes a whole read buffer: thousands of small messages); with a smaller
/// batch the scheduler gave publishers several times the CPU of consumers.
const MAILBOX_BATCH: usize = ctx::MAX_PENDING_DELIVERIES as usize;

/// Makes room in `inbuf` for the next socket read, after a read of `last_read` bytes: a
/// connection that reads a lot gets 64 KiB reads (fewer system calls and loop turns per message,
/// so confirms go out in larger batches), a quiet one keeps a 4 KiB buffer (memory per
/// connection: with 64 KiB in and out from the start, 1 000 idle connections held ~130 MiB).
/// `large` says the buffer was moved to the large size already.
fn make_read_room(inbuf: &mut BytesMut, last_read: usize, large: &mut bool) {
    let want = if last_read >= READ_SMALL / 2 {
        READ_LARGE
    } else {
        READ_SMALL
    };
    if want == READ_LARGE && !*large {
        // A busy connection still on a small buffer moves to a large one. `reserve` is not
        // enough: the buffer is shared with the frames split off it, and when the decoder
        // reserves for a partial frame at its end, `BytesMut` allocates the new buffer at the
        // size the first one had (4 KiB), so a 1 KiB publisher was read 3 messages per system
        // call, each read answered by its own confirm write. A fresh buffer of 64 KiB makes
        // that size the one its successors inherit.
        let mut fresh = BytesMut::with_capacity(READ_LARGE.max(inbuf.len() + READ_SMALL));
        fresh.extend_from_slice(inbuf);
        *inbuf = fresh;
        *large = true;
    } else if inbuf.capacity() - inbuf.len() < 1024 {
        // Only when nearly full: queued messages are slices of this buffer, so a buffer
        // replaced early would keep its unused tail allocated as long as they are queued.
        inbuf.reserve(want);
    }
}

fn close_method(e: &AmqpError) -> Method {
    ConnectionClose {
        reply_code: e.code.code(),
        reply_text: ShortStr::from(e.text.as_str()),
        class_id: e.class_id,
        method_id: e.method_id,
    }
    .into()
}

impl<S: Stream> Connection<S> {
    async fn serve(
        &mut self,
        signals: Signals,
        mut close_requests: mpsc::UnboundedReceiver<String>,
    ) {
        let Signals {
            mut stop,
            alarms: mut alarm,
            ..
        } = signals;
        self.alarm = *alarm.borrow_and_update();
        let mut alarm_open = true;
        // Grown by recv_many as traffic needs: an idle connection keeps it small.
        let mut batch = Vec::new();
        let mut taken = 0u32;
        let tick = tick_period(
            self.heartbeat,
            Duration::from_millis(self.ctx.config.consumer_timeout),
        );
        let mut ticker = tokio::time::interval_at(Instant::now() + tick, tick);
        loop {
            self.make_read_room();
            tokio::select! {
                read = self.stream.read_buf(&mut self.inbuf), if !self.blocked && !self.confirm_paused && !self.spill_paused && !self.ctx.parked() => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        self.stats.recv_oct.add(n as u64);
                        self.stats.recv_cnt.add(1);
                        self.last_read = n;
                        self.last_recv = Instant::now();
                        self.ctx.now = self.last_recv;
                        self.handle_input();
                        self.update_blocking();
                    }
                },
                changed = alarm.changed(), if alarm_open => {
                    if changed.is_err() {
                        // No monitor (no /proc) or shutdown: never block again.
                        alarm_open = false;
                        self.alarm = crate::alarm::Alarms::default();
                    } else {
                        self.alarm = *alarm.borrow_and_update();
                    }
                    self.update_blocking();
                    if !self.blocked && !self.confirm_paused && !self.spill_paused && !self.inbuf.is_empty() {
                        // Frames read before blocking wait in the buffer.
                        self.ctx.now = Instant::now();
                        self.handle_input();
                        self.update_blocking();
                    }
                },
                n = self.events.recv_many(&mut batch, MAILBOX_BATCH) => {
                    if n == 0 {
                        return;
                    }
                    // One clock read per batch stamps every delivery in it.
                    self.ctx.now = Instant::now();
                    for ev in batch.drain(..) {
                        if let ConnEvent::Deliver(d) = &ev {
                            taken += ctx::delivery_weight(d.message.body.len());
                        }
                        self.handle_event(ev);
                    }
                },
                _ = ticker.tick() => {
                    if let Some(done) = self.on_tick() {
                        if done { return; }
                    }
                },
                Some(reason) = close_requests.recv() => {
                    // `DELETE /api/connections/{name}`: RabbitMQ closes with 320 and the reason
                    // given in the request's `X-Reason` header.
                    if matches!(self.state, State::Open) {
                        self.close_connection(AmqpError::new(
                            ReplyCode::ConnectionForced,
                            reason,
                        ));
                    }
                },
                _ = stop.changed() => {
                    if matches!(self.state, State::Open) {
                        self.close_connection(AmqpError::new(
                            ReplyCode::ConnectionForced,
                            "broker forced connection closure with reason 'shutdown'",
                        ));
                    }
                },
            }
            self.flush_confirms();
            // The channels' gauges for the statistics: once per turn, whatever the turn did;
            // after the confirms went out, before the write, so that input a resumed reader
            // handles goes out in this turn's write.
            let mut unconfirmed = 0u64;
            for ch in self.channels.values() {
                unconfirmed += ch.refresh_gauges();
            }
            self.pause_for_confirms(unconfirmed);
            self.pause_for_spill();
            if !self.ctx.out.is_empty() {
                if handshake::send(&mut self.stream, &self.ctx.out)
                    .await
                    .is_err()
                {
                    return;
                }
                self.stats.send_oct.add(self.ctx.out.len() as u64);
                self.stats.send_cnt.add(1);
                self.ctx.out.clear();
                self.last_send = Instant::now();
            }
            // The deliveries taken are on the wire now (or were dropped): queues that stopped
            // at the limit may go on.
            if taken > 0 && self.ctx.sink.written(std::mem::take(&mut taken)) {
                for ch in self.channels.values() {
                    ch.redispatch_all();
                }
            }
            if matches!(self.state, State::Done) {
                self.linger().await;
                return;
            }
            if matches!(self.state, State::Aborted) {
                return;
            }
            if let State::Closing(deadline) = self.state
                && Instant::now() >= deadline
            {
                return;
            }
        }
    }

    /// Publishes the open channels (numbers and counters) to the management API's list.
    fn list_channels(&self) {
        self.listed
            .set_channels(self.channels.iter().map(|(n, c)| (*n, c.stats().clone())));
    }

    /// Makes room for the next socket read: see [`make_read_room`].
    fn make_read_room(&mut self) {
        make_read_room(&mut self.inbuf, self.last_read, &mut self.large_inbuf);
    }

    /// After the close handshake, lets the client close first (up to a second): closing while
    /// it may still be reading close-ok makes some clients report an aborted connection.
    async fn linger(&mut self) {
        let mut scratch = [0u8; 512];
        let drain = async {
            while let Ok(n) = self.stream.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }

    /// Blocks a publishing connection while a resource alarm is set (its socket is no longer
    /// read, so TCP pushes back on the client) and unblocks it when every alarm has cleared,
    /// telling clients that understand `connection.blocked`. As RabbitMQ's, one
    /// `connection.blocked` names the alarms in effect when it blocks; an alarm added while
    /// blocked sends nothing more.
    ///
    /// As RabbitMQ's reader, only a publish made while an alarm is set blocks: `published` is
    /// forgotten whenever no alarm is set, so a connection that published before the alarm
    /// stays `blocking` (in `/api/connections`) until it publishes again.
    fn update_blocking(&mut self) {
        if !self.alarm.any() {
            self.ctx.published = false;
        }
        let block = self.alarm.any() && self.ctx.published && matches!(self.state, State::Open);
        if block == self.blocked {
            return;
        }
        self.blocked = block;
        self.stats.blocked.set(u64::from(block));
        if self.blocked_notify {
            if block {
                self.ctx.send(
                    0,
                    ConnectionBlocked {
                        reason: ShortStr::from_static(self.alarm.blocked_reason()),
                    },
                );
            } else {
                self.ctx.send(0, ConnectionUnblocked);
            }
        }
    }

    /// Stops reading the socket while `max_unconfirmed_publishes` publishes wait for their
    /// confirms, and resumes (with what is still buffered) once confirms brought them under:
    /// a fast publisher over a slow disk is held back by TCP instead of growing the queues'
    /// memory without bound. Costs one sum per loop turn, nothing per message.
    fn pause_for_confirms(&mut self, unconfirmed: u64) {
        let cap = self.ctx.config.max_unconfirmed_publishes;
        let pause = cap != 0 && unconfirmed >= cap && matches!(self.state, State::Open);
        if pause == self.confirm_paused {
            return;
        }
        self.confirm_paused = pause;
        tracing::debug!(unconfirmed, paused = pause, "confirm back-pressure");
        if !pause && !self.blocked && !self.spill_paused && !self.inbuf.is_empty() {
            // Frames read before pausing wait in the buffer. What they publish may pause the
            // reader again at the next turn's count.
            self.ctx.now = Instant::now();
            self.handle_input();
            self.update_blocking();
            self.flush_confirms();
        }
    }

    /// Stops reading the socket when this turn published to a queue with more spilled segments
    /// unwritten than its share (`Queue::spill_pressure`): the disk sets the pace of a
    /// backlog's publishers, and the queue's memory stays within its budget. Only those
    /// queues pause the connection; each wakes it (`ConnEvent::SpillWritten`) once written,
    /// without polling. Nothing to do in a turn that met no pressed queue.
    fn pause_for_spill(&mut self) {
        if self.ctx.spill_pressing.is_empty() {
            return;
        }
        let pressing = std::mem::take(&mut self.ctx.spill_pressing);
        if !matches!(self.state, State::Open) {
            return;
        }
        for q in pressing {
            if !self.spill_waiting.iter().any(|w| Arc::ptr_eq(w, &q))
                && q.wait_spill_written(self.ctx.spill_waker())
            {
                self.spill_waiting.push(q);
            }
        }
        if !self.spill_paused && !self.spill_waiting.is_empty() {
            tracing::debug!(queues = self.spill_waiting.len(), "spill back-pressure");
            self.spill_paused = true;
        }
    }

    /// A queue that paused the connection was written: resumes reading, with the frames still
    /// buffered, once no queue it waits for presses any more. A queue still pressing gets the
    /// waker again (one-shot; a duplicate only costs a spare wake-up).
    fn resume_after_spill(&mut self) {
        let waker = self.ctx.spill_waker();
        self.spill_waiting
            .retain(|q| q.wait_spill_written(waker.clone()));
        if !self.spill_paused || !self.spill_waiting.is_empty() {
            return;
        }
        self.spill_paused = false;
        if !self.blocked && !self.confirm_paused && !self.inbuf.is_empty() {
            self.ctx.now = Instant::now();
            self.handle_input();
            self.update_blocking();
        }
    }

    /// Heartbeats and timeouts. Returns `Some(true)` when the connection must end now.
    fn on_tick(&mut self) -> Option<bool> {
        let now = Instant::now();
        if let State::Closing(deadline) = self.state {
            return Some(now >= deadline);
        }
        for ch in self.channels.values_mut() {
            if !ch.is_closing() {
                ch.check_ack_timeout(&mut self.ctx, now);
            }
        }
        if self.heartbeat.is_zero() {
            return None;
        }
        // A blocked connection's socket is not read, so its heartbeats cannot be seen.
        if !self.blocked
            && !self.confirm_paused
            && !self.spill_paused
            && !self.ctx.parked()
            && now.duration_since(self.last_recv) >= self.heartbeat * 2
        {
            tracing::warn!(timeout = ?self.heartbeat, "missed heartbeats from client");
            return Some(true);
        }
        if now.duration_since(self.last_send) >= self.heartbeat / 2 {
            encode_heartbeat(&mut self.ctx.out);
        }
        None
    }

    fn handle_input(&mut self) {
        self.ctx.batch_time_ms = warren_broker::now_ms();
        self.ctx.refresh_topic_access();
        loop {
            // A parked `basic.get` or `queue.purge` holds back what follows it (see
            // `Ctx::get_parked`).
            if matches!(self.state, State::Done | State::Aborted) || self.ctx.parked() {
                return;
            }
            match self.decoder.decode(&mut self.inbuf) {
                Ok(Some(frame)) => self.handle_frame(frame),
                Ok(None) => return,
                Err(e) => {
                    tracing::info!(error = %e, "malformed input");
                    self.inbuf.clear();
                    if matches!(e, warren_codec::CodecError::UnknownMethod { .. }) {
                        // RabbitMQ's reader exits on a class or method id it does not know:
                        // the socket closes without a connection.close. So does Warren's.
                        self.state = State::Aborted;
                        return;
                    }
                    if matches!(self.state, State::Open) {
                        self.close_connection(e.into());
                    }
                    return;
                }
            }
        }
    }

    fn handle_frame(&mut self, frame: Frame) {
        if let State::Closing(_) = self.state {
            // After our connection.close only close and close-ok matter.
            match frame {
                Frame::Method {
                    method: Method::ConnectionCloseOk(_),
                    ..
                } => self.state = State::Done,
                Frame::Method {
                    method: Method::ConnectionClose(_),
                    ..
                } => self.close_ok(),
                _ => {}
            }
            return;
        }
        let result = match frame {
            Frame::Heartbeat => Ok(()),
            Frame::Method { channel: 0, method } => self.handle_connection_method(method),
            Frame::Method { channel, method } => self.handle_channel_method(channel, method),
            Frame::Header { channel, header } => {
                self.with_channel(channel, |ch, ctx| ch.on_header(ctx, header))
            }
            Frame::Body { channel, payload } => {
                self.with_channel(channel, |ch, ctx| ch.on_body(ctx, payload))
            }
        };
        if let Err(e) = result {
            self.close_connection(e);
        }
    }

    /// Runs a content-frame handler on an open channel; a content frame for a missing channel is a
    /// connection error.
    fn with_channel(
        &mut self,
        channel: u16,
        f: impl FnOnce(&mut Channel, &mut Ctx) -> AmqpResult,
    ) -> AmqpResult {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return Err(AmqpError::new(
                ReplyCode::ChannelError,
                "expected 'channel.open'",
            ));
        };
        if ch.is_closing() {
            return Ok(());
        }
        match f(ch, &mut self.ctx) {
            Ok(()) => Ok(()),
            Err(e) if e.is_hard() => Err(e),
            Err(e) => {
                ch.close_with(&mut self.ctx, e);
                Ok(())
            }
        }
    }

    fn handle_connection_method(&mut self, method: Method) -> AmqpResult {
        match method {
            Method::ConnectionClose(_) => {
                self.close_ok();
                Ok(())
            }
            Method::ConnectionCloseOk(_) => Ok(()),
            // RabbitMQ 3.10 asks its auth backends to update their state; the internal
            // database (the only backend Warren has) keeps the user as it is and accepts any
            // new secret, so the session simply carries on.
            Method::ConnectionUpdateSecret(m) => {
                tracing::info!(reason = %m.reason, "connection.update-secret accepted");
                self.ctx.send(0, ConnectionUpdateSecretOk);
                Ok(())
            }
            m if m.class_id() == 10 => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!("unexpected method {} in connection state running", m.name()),
            )
            .at(m.class_id(), m.method_id())),
            m => Err(AmqpError::new(
                ReplyCode::ChannelError,
                "unexpected method in connection state running",
            )
            .at(m.class_id(), m.method_id())),
        }
    }

    fn handle_channel_method(&mut self, channel: u16, method: Method) -> AmqpResult {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        if class_id == 10 {
            return Err(
                AmqpError::new(ReplyCode::CommandInvalid, "unimplemented method")
                    .at(class_id, method_id),
            );
        }
        if let Method::ChannelOpen(_) = method {
            if self.channels.contains_key(&channel) {
                return Err(
                    AmqpError::new(ReplyCode::ChannelError, "second 'channel.open' seen")
                        .at(20, 10),
                );
            }
            // As in RabbitMQ 3.10, channel_max limits how many channels are open, not their
            // numbers: any number 1..=65535 opens while fewer than channel_max are open. The
            // refusal names no method (class 0, method 0), like RabbitMQ's.
            let open = self.channels.len();
            if open >= usize::from(self.channel_max) {
                return Err(AmqpError::new(
                    ReplyCode::NotAllowed,
                    format!(
                        "number of channels opened ({open}) has reached the negotiated \
                         channel_max ({})",
                        self.channel_max
                    ),
                ));
            }
            // The user's `max-channels` counts channels on all its connections; the refusal
            // closes the connection (530 names no method), as RabbitMQ's reader does.
            self.ctx.broker.open_channel(&mut self.ticket)?;
            self.channels.insert(channel, Channel::new(channel));
            self.list_channels();
            self.ctx.send(channel, ChannelOpenOk);
            return Ok(());
        }
        let Some(ch) = self.channels.get_mut(&channel) else {
            return Err(
                AmqpError::new(ReplyCode::ChannelError, "expected 'channel.open'")
                    .at(class_id, method_id),
            );
        };
        if ch.is_closing() {
            // Between our channel.close and the client's close-ok everything else is dropped.
            match method {
                Method::ChannelCloseOk(_) => {
                    self.channels.remove(&channel);
                    self.list_channels();
                    self.ticket.channels_closed(self.channels.len());
                }
                Method::ChannelClose(_) => {
                    // The client's close crossed ours: answer it, and keep waiting for the
                    // close-ok of ours, as RabbitMQ's closing channel does; removing the channel
                    // now would make that close-ok a frame on an unopened channel (504).
                    self.ctx.send(channel, warren_codec::ChannelCloseOk);
                }
                _ => {}
            }
            return Ok(());
        }
        if let Some(e) = ch.content_expected() {
            // Content is due: RabbitMQ's frame assembler refuses any method, close included.
            return Err(e);
        }
        if let Method::ChannelClose(_) = method {
            if let Some(mut ch) = self.channels.remove(&channel) {
                ch.release(&mut self.ctx);
            }
            self.list_channels();
            self.ticket.channels_closed(self.channels.len());
            self.ctx.send(channel, warren_codec::ChannelCloseOk);
            return Ok(());
        }
        match ch.handle(&mut self.ctx, method) {
            Ok(()) => Ok(()),
            Err(e) if e.is_hard() => Err(e.at(class_id, method_id)),
            Err(e) => {
                ch.close_with(&mut self.ctx, e.at(class_id, method_id));
                Ok(())
            }
        }
    }

    fn handle_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Deliver(d) => match self.channels.get_mut(&d.channel) {
                Some(ch) if !ch.is_closing() => ch.deliver(&mut self.ctx, d),
                _ => requeue_stray(d),
            },
            ConnEvent::Reply {
                channel,
                key,
                message,
            } => {
                if let Some(ch) = self.channels.get_mut(&channel)
                    && !ch.is_closing()
                {
                    ch.deliver_reply(&mut self.ctx, key, message);
                }
            }
            ConnEvent::Cancelled { channel, tag } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.consumer_cancelled(&mut self.ctx, tag);
                }
            }
            ConnEvent::GetReady => self.retry_parked_get(),
            ConnEvent::Purged {
                channel,
                message_count,
                no_wait,
            } => {
                self.ctx.purge_parked = false;
                if !no_wait
                    && self
                        .channels
                        .get(&channel)
                        .is_some_and(|ch| !ch.is_closing())
                {
                    self.ctx.send(channel, QueuePurgeOk { message_count });
                }
                self.resume_after_park();
            }
            ConnEvent::SpillWritten => self.resume_after_spill(),
            ConnEvent::Synced {
                channel,
                purpose,
                ok,
            } => {
                let Some(ch) = self.channels.get_mut(&channel) else {
                    return;
                };
                if ch.is_closing() {
                    return;
                }
                match purpose {
                    SyncPurpose::Confirms { upto } => ch.confirms_synced(&mut self.ctx, upto, ok),
                    SyncPurpose::Commit => {
                        if let Err(e) = ch.commit_synced(&mut self.ctx, ok) {
                            self.close_connection(e);
                        }
                    }
                }
            }
        }
    }

    /// Tries the parked `basic.get` again; once answered, handles the input it held back.
    fn retry_parked_get(&mut self) {
        let Some(p) = self.ctx.get_parked.take() else {
            return;
        };
        match self.channels.get_mut(&p.channel) {
            Some(ch) if !ch.is_closing() => {
                let failed = p.load_failed.load(std::sync::atomic::Ordering::Acquire);
                ch.answer_get(&mut self.ctx, p.queue, p.no_ack, failed);
            }
            // Cannot happen while input is held back; nothing to answer.
            _ => {}
        }
        self.resume_after_park();
    }

    /// Once nothing is parked: handles the input a parked method held back.
    fn resume_after_park(&mut self) {
        if !self.ctx.parked()
            && !self.blocked
            && !self.confirm_paused
            && !self.spill_paused
            && !self.inbuf.is_empty()
        {
            self.handle_input();
            self.update_blocking();
        }
    }

    fn flush_confirms(&mut self) {
        let mut due = std::mem::take(&mut self.ctx.confirms_due);
        for id in due.drain(..) {
            if let Some(ch) = self.channels.get_mut(&id) {
                ch.flush_confirms(&mut self.ctx);
            }
        }
        self.ctx.confirms_due = due;
    }

    fn close_connection(&mut self, e: AmqpError) {
        tracing::info!(code = e.code.code(), text = %e.text, "closing connection");
        let method = close_method(&e);
        self.ctx.send(0, method);
        // A parked `basic.get` or `queue.purge` is never answered now: input is read again for
        // close-ok.
        self.ctx.get_parked = None;
        self.ctx.purge_parked = false;
        self.state = State::Closing(Instant::now() + Duration::from_secs(3));
    }

    /// Answers the client's `connection.close` once its channels are released, as RabbitMQ's
    /// reader answers once every channel has terminated (each after its queues requeued what
    /// it held): a client that sees close-ok and then counts a queue from another connection
    /// finds the requeued messages there.
    fn close_ok(&mut self) {
        self.cleanup();
        self.ctx.send(0, ConnectionCloseOk);
        self.state = State::Done;
    }

    /// Detaches consumers, requeues unacked messages and deletes exclusive queues. Runs again,
    /// finding nothing left, when the connection ends.
    fn cleanup(&mut self) {
        let mut channels: Vec<Channel> = self.channels.drain().map(|(_, ch)| ch).collect();
        // Every consumer goes first: a message one channel requeues must not be handed to a
        // no-ack consumer of another channel of this very connection, which would lose it.
        for ch in &mut channels {
            ch.detach_consumers(&mut self.ctx);
        }
        for ch in &mut channels {
            ch.release(&mut self.ctx);
        }
        // Deliveries already in the mailbox go back to their queues.
        self.events.close();
        while let Ok(ev) = self.events.try_recv() {
            if let ConnEvent::Deliver(d) = ev {
                requeue_stray(d);
            }
        }
        for q in std::mem::take(&mut self.ctx.exclusive_queues) {
            self.ctx.vhost.remove_queue(&q);
        }
    }
}

/// A delivery whose consumer is gone: back to its queue, unless it needed no ack.
fn requeue_stray(d: Delivery) {
    if !d.no_ack {
        d.queue.settle(&[d.seq], Settle::Requeue);
    }
}
