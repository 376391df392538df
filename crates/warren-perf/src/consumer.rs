//! The consuming loop of one consumer connection.
//!
//! One task owns both halves: it reads big buffers, walks every frame in them, counts whole
//! messages (deliver, header, all body bytes), and in manual-ack mode queues one
//! `basic.ack(multiple)` every `multi_ack` messages, written once per read. It also samples the
//! end-to-end latency of the last message of each read from the timestamp the producer wrote.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::watch;
use warren_codec::{BasicAck, Frame, Method, encode_method};

use crate::client::{Connection, close_handshake};
use crate::throughput::Shared;

/// How a consumer acknowledges.
#[derive(Debug, Clone, Copy)]
pub struct AckPolicy {
    /// Ack explicitly (the consumer was started with `no_ack = false`).
    pub manual: bool,
    /// Ack with `multiple = true` after this many messages.
    pub every: u64,
}

/// What a consumer hands back at the end.
#[derive(Debug, Default)]
pub struct ConsumerOutcome {
    /// Messages received in all (including outside the measured window).
    pub received: u64,
    /// Latency samples in nanoseconds, one per read that completed a timestamped message.
    pub latencies_ns: Vec<u64>,
}

/// Where the consumer is inside the current message.
#[derive(Default)]
struct InMessage {
    tag: u64,
    remaining: u64,
    first_body: bool,
}

/// Consumes until `stop` flips (with `every_latency`, recording the latency of every message
/// rather than of the last one of each read), then acks what is pending and closes the connection.
pub async fn run(
    conn: Connection,
    ack: AckPolicy,
    every_latency: bool,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<ConsumerOutcome> {
    let Connection {
        mut reader,
        mut writer,
    } = conn;
    let mut out = ConsumerOutcome::default();
    let mut frames = Vec::with_capacity(1024);
    let mut msg = InMessage::default();
    let mut unacked: u64 = 0;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = reader.read_batch(&mut frames) => { r?; }
        }
        let mut done: u64 = 0;
        let mut stamp = None;
        for frame in frames.drain(..) {
            let complete = match frame {
                Frame::Method {
                    method: Method::BasicDeliver(d),
                    ..
                } => {
                    msg.tag = d.delivery_tag;
                    false
                }
                Frame::Header { header, .. } => {
                    msg.remaining = header.body_size;
                    msg.first_body = true;
                    header.body_size == 0
                }
                Frame::Body { payload, .. } => {
                    if msg.first_body {
                        if let Some(head) = payload.get(..8).and_then(|h| h.try_into().ok()) {
                            stamp = Some(u64::from_be_bytes(head));
                            if every_latency {
                                let now = shared.t0.elapsed().as_nanos() as u64;
                                out.latencies_ns
                                    .push(now.saturating_sub(u64::from_be_bytes(head)));
                            }
                        }
                        msg.first_body = false;
                    }
                    msg.remaining = msg.remaining.saturating_sub(payload.len() as u64);
                    msg.remaining == 0
                }
                Frame::Method { method, .. } => {
                    refuse(&method)?;
                    false
                }
                Frame::Heartbeat => false,
            };
            if complete {
                done += 1;
                if ack.manual {
                    unacked += 1;
                    if unacked >= ack.every {
                        queue_ack(&mut writer.buf, msg.tag);
                        unacked = 0;
                    }
                }
            }
        }
        if done > 0 {
            out.received += done;
            shared.counters.consumed.fetch_add(done, Ordering::Relaxed);
            if let Some(sent) = stamp.filter(|_| !every_latency) {
                let now = shared.t0.elapsed().as_nanos() as u64;
                out.latencies_ns.push(now.saturating_sub(sent));
            }
        }
        writer.flush().await?;
    }
    if unacked > 0 {
        queue_ack(&mut writer.buf, msg.tag);
    }
    writer.flush().await?;
    writer.send_close().await?;
    close_handshake(&mut reader, Duration::from_secs(5)).await?;
    Ok(out)
}

fn queue_ack(buf: &mut bytes::BytesMut, tag: u64) {
    let ack = BasicAck {
        delivery_tag: tag,
        multiple: true,
    };
    encode_method(buf, 1, &Method::BasicAck(ack));
}

/// Methods a consumer cannot carry on after.
fn refuse(method: &Method) -> anyhow::Result<()> {
    match method {
        Method::ConnectionClose(c) => bail!(
            "consumer: broker closed the connection: {} {}",
            c.reply_code,
            String::from_utf8_lossy(c.reply_text.as_bytes())
        ),
        Method::ChannelClose(c) => bail!(
            "consumer: broker closed the channel: {} {}",
            c.reply_code,
            String::from_utf8_lossy(c.reply_text.as_bytes())
        ),
        Method::BasicCancel(_) => bail!("consumer: the broker cancelled the consumer"),
        _ => Ok(()),
    }
}
