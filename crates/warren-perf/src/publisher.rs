//! The publishing loop of one producer connection.
//!
//! Each queue gets a pre-encoded publish (method, header and body frames) once; a batch is those
//! templates copied back to back into one buffer with the send time patched into the body, written
//! with one `write_all`. With a confirm window, a second task reads the broker's acks and wakes the
//! writer as room frees up. What to publish and when to stop comes from `throughput`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use warren_codec::{
    BasicProperties, BasicPublish, ContentHeader, FRAME_HEADER_SIZE, Frame, Method, encode_body,
    encode_header, encode_method,
};

use crate::client::{Connection, FrameReader};
use crate::confirms::ConfirmTracker;
use crate::throughput::Shared;

/// Stop filling a batch once the buffer holds this much.
const BATCH_BYTES: usize = 64 * 1024;
/// And never put more messages than this in one batch.
const BATCH_MESSAGES: u64 = 1024;

/// What every producer publishes.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// Exchange to publish to (`""`: the default exchange).
    pub exchange: String,
    /// Routing keys (queue names for the default exchange), used round-robin.
    pub queues: Vec<String>,
    /// Body size in bytes.
    pub size: usize,
    /// Delivery mode 2.
    pub persistent: bool,
    /// At most this many unconfirmed publishes (confirm mode); `None` publishes without confirms.
    pub confirm_window: Option<u64>,
    /// Publish at this many messages per second (paced by a 1 ms timer), else as fast as possible.
    pub rate: Option<u64>,
    /// Stop after this many messages (and, with confirms, wait until all are settled).
    pub limit: Option<u64>,
}

/// One queue's publish, encoded once.
struct Template {
    bytes: Bytes,
    /// Where the body's first byte is, when the body is large enough to hold a timestamp.
    timestamp_at: Option<usize>,
}

fn templates(plan: &PublishPlan, frame_max: u32) -> Vec<Template> {
    let props = if plan.persistent {
        BasicProperties {
            delivery_mode: Some(2),
            ..BasicProperties::default()
        }
        .to_raw()
    } else {
        BasicProperties::default().to_raw()
    };
    let body = vec![0u8; plan.size];
    let chunk = (frame_max as usize)
        .saturating_sub(warren_codec::FRAME_OVERHEAD)
        .max(1);
    plan.queues
        .iter()
        .map(|q| {
            let mut buf = BytesMut::new();
            let publish = BasicPublish {
                exchange: plan.exchange.as_str().into(),
                routing_key: q.as_str().into(),
                mandatory: false,
                immediate: false,
            };
            encode_method(&mut buf, 1, &Method::BasicPublish(publish));
            encode_header(
                &mut buf,
                1,
                &ContentHeader::basic(body.len() as u64, props.clone()),
            );
            let body_at = buf.len() + FRAME_HEADER_SIZE;
            for piece in body.chunks(chunk) {
                encode_body(&mut buf, 1, piece);
            }
            Template {
                bytes: buf.freeze(),
                timestamp_at: (plan.size >= 8).then_some(body_at),
            }
        })
        .collect()
}

/// What the confirm reader tells the writer.
#[derive(Default)]
struct Link {
    settled: AtomicU64,
    room: Notify,
    reader_done: AtomicBool,
}

/// Publishes until `shared.stop`, then closes the connection. Returns how many it published.
pub async fn run(
    conn: Connection,
    plan: Arc<PublishPlan>,
    shared: Arc<Shared>,
) -> anyhow::Result<u64> {
    let Connection { reader, mut writer } = conn;
    let templates = templates(&plan, writer.frame_max);
    let link = Arc::new(Link::default());
    let reader_task = tokio::spawn(read_confirms(reader, link.clone(), shared.clone()));
    let mut next = 0usize;
    let mut sent: u64 = 0;
    let started = tokio::time::Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(1));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !shared.stop.load(Ordering::Relaxed) {
        if link.reader_done.load(Ordering::Acquire) {
            break;
        }
        let mut budget = BATCH_MESSAGES;
        if let Some(limit) = plan.limit {
            if sent >= limit {
                break;
            }
            budget = budget.min(limit - sent);
        }
        if let Some(rate) = plan.rate {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            if due <= sent {
                pace.tick().await;
                continue;
            }
            budget = budget.min(due - sent);
        }
        if let Some(window) = plan.confirm_window {
            let in_flight = sent - link.settled.load(Ordering::Acquire);
            if in_flight >= window {
                // The timeout is a safety net for stop and reader death; acks notify promptly.
                let _ = tokio::time::timeout(Duration::from_millis(50), link.room.notified()).await;
                continue;
            }
            budget = budget.min(window - in_flight);
        }
        let stamp = shared.t0.elapsed().as_nanos() as u64;
        let mut n = 0;
        while n < budget && writer.buf.len() < BATCH_BYTES {
            let t = &templates[next];
            let start = writer.buf.len();
            writer.buf.extend_from_slice(&t.bytes);
            if let Some(at) = t.timestamp_at {
                writer.buf[start + at..start + at + 8].copy_from_slice(&stamp.to_be_bytes());
            }
            next = (next + 1) % templates.len();
            n += 1;
        }
        writer.flush().await?;
        sent += n;
        shared.counters.published.fetch_add(n, Ordering::Relaxed);
    }
    if plan.confirm_window.is_some() && plan.limit.is_some() {
        // Everything is written: wait for the last confirms before closing.
        while link.settled.load(Ordering::Acquire) < sent
            && !link.reader_done.load(Ordering::Acquire)
            && !shared.stop.load(Ordering::Relaxed)
        {
            let _ = tokio::time::timeout(Duration::from_millis(50), link.room.notified()).await;
        }
    }
    if !link.reader_done.load(Ordering::Acquire) {
        writer.send_close().await?;
    }
    // A broker throttling this connection (credit flow) reads the close only after the publishes
    // queued before it, which can take seconds.
    match tokio::time::timeout(Duration::from_secs(20), reader_task).await {
        Ok(joined) => joined??,
        Err(_) => anyhow::bail!("producer: no connection.close-ok within 20 s"),
    }
    Ok(sent)
}

/// Reads confirms (and anything else the broker says) until `connection.close-ok`.
async fn read_confirms(
    mut reader: FrameReader,
    link: Arc<Link>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let result = confirm_loop(&mut reader, &link, &shared).await;
    link.reader_done.store(true, Ordering::Release);
    link.room.notify_one();
    result
}

async fn confirm_loop(
    reader: &mut FrameReader,
    link: &Link,
    shared: &Shared,
) -> anyhow::Result<()> {
    let mut tracker = ConfirmTracker::default();
    let mut frames = Vec::with_capacity(256);
    // When the last confirm batch arrived: one clock read per batch, not per message.
    let mut last_batch: Option<std::time::Instant> = None;
    loop {
        reader.read_batch(&mut frames).await?;
        let (mut acked, mut nacked) = (0, 0);
        for frame in frames.drain(..) {
            let Frame::Method { method, .. } = frame else {
                continue;
            };
            match method {
                Method::BasicAck(a) => acked += tracker.settle(a.delivery_tag, a.multiple),
                Method::BasicNack(n) => nacked += tracker.settle(n.delivery_tag, n.multiple),
                Method::ConnectionCloseOk(_) => {
                    // Tail of a polite close: count what was settled before it.
                    shared
                        .counters
                        .confirmed
                        .fetch_add(acked, Ordering::Relaxed);
                    shared.counters.nacked.fetch_add(nacked, Ordering::Relaxed);
                    return Ok(());
                }
                Method::ConnectionClose(c) => anyhow::bail!(
                    "producer: broker closed the connection: {} {}",
                    c.reply_code,
                    String::from_utf8_lossy(c.reply_text.as_bytes())
                ),
                Method::ChannelClose(c) => anyhow::bail!(
                    "producer: broker closed the channel: {} {}",
                    c.reply_code,
                    String::from_utf8_lossy(c.reply_text.as_bytes())
                ),
                Method::ConnectionBlocked(b) => {
                    shared.counters.blocked.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "warren-perf: producer blocked by the broker: {}",
                        String::from_utf8_lossy(b.reason.as_bytes())
                    );
                }
                _ => {}
            }
        }
        if acked + nacked > 0 {
            let now = std::time::Instant::now();
            if let Some(last) = last_batch.replace(now) {
                let gap = u64::try_from((now - last).as_micros()).unwrap_or(u64::MAX);
                shared
                    .counters
                    .confirm_gap_max_us
                    .fetch_max(gap, Ordering::Relaxed);
            }
            shared
                .counters
                .confirmed
                .fetch_add(acked, Ordering::Relaxed);
            shared.counters.nacked.fetch_add(nacked, Ordering::Relaxed);
            link.settled.store(tracker.settled(), Ordering::Release);
            link.room.notify_one();
        }
    }
}
