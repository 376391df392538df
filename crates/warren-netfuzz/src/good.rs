//! The well-behaved side: a client that publishes with confirms and consumes its own messages
//! (its throughput and latency are the figures compared with and without attackers), and the
//! probe that must always complete a handshake and a round trip.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;
use warren_codec::{
    BasicConsume, BasicPublish, ChannelOpen, ConfirmSelect, ConnectionClose, ContentHeader, Frame,
    Method, QueueDeclare, RawProperties, ShortStr, encode_body, encode_header, encode_method,
};

use crate::amqp::Conn;

/// What the good client measured over one phase.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Messages published, confirmed and delivered back.
    pub delivered: u64,
    /// Seconds the phase lasted.
    pub seconds: f64,
    /// Publish-to-delivery latencies, microseconds, sorted.
    pub latencies_us: Vec<u64>,
}

impl Figures {
    /// Delivered messages per second.
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.seconds.max(1e-9)
    }

    /// The `p`-th percentile latency in milliseconds (0 when nothing was measured).
    pub fn latency_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p / 100.0).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Messages in flight: the client keeps this many published and not yet delivered back.
const WINDOW: u64 = 200;
const BODY: usize = 256;

/// Publishes to its own queue with confirms, consumes it (no-ack), for `length`.
pub async fn client(addr: SocketAddr, length: Duration, tag: &str) -> anyhow::Result<Figures> {
    let mut c = Conn::open(addr).await?;
    c.send(1, ChannelOpen).await?;
    c.expect("channel.open-ok").await?;
    let queue = format!("nf-good-{tag}");
    c.send(
        1,
        QueueDeclare {
            queue: ShortStr::from(queue.as_str()),
            exclusive: true,
            ..Default::default()
        },
    )
    .await?;
    c.expect("queue.declare-ok").await?;
    c.send(1, ConfirmSelect { nowait: false }).await?;
    c.expect("confirm.select-ok").await?;
    c.send(
        1,
        BasicConsume {
            queue: ShortStr::from(queue.as_str()),
            no_ack: true,
            ..Default::default()
        },
    )
    .await?;
    c.expect("basic.consume-ok").await?;

    let start = Instant::now();
    let mut figures = Figures::default();
    let (mut published, mut delivered) = (0u64, 0u64);
    let mut out = BytesMut::new();
    while start.elapsed() < length {
        while published - delivered < WINDOW {
            publish(&mut out, &queue, start.elapsed().as_micros() as u64);
            published += 1;
        }
        if !out.is_empty() {
            c.stream.write_all(&out).await?;
            out.clear();
        }
        // Confirms are read and counted by the server's sequence; the client needs only the
        // deliveries to measure, but a confirm that never comes would stall the window below.
        match tokio::time::timeout(Duration::from_secs(10), c.frame()).await {
            Err(_) => anyhow::bail!("the good client waited 10 s for a frame"),
            Ok(frame) => {
                if let Frame::Body { payload, .. } = frame? {
                    if payload.len() >= 8 {
                        let mut sent = [0u8; 8];
                        sent.copy_from_slice(&payload[..8]);
                        let now = start.elapsed().as_micros() as u64;
                        figures
                            .latencies_us
                            .push(now.saturating_sub(u64::from_be_bytes(sent)));
                    }
                    delivered += 1;
                }
            }
        }
    }
    figures.delivered = delivered;
    figures.seconds = start.elapsed().as_secs_f64();
    figures.latencies_us.sort_unstable();
    let _ = c
        .send(
            0,
            ConnectionClose {
                reply_code: 200,
                reply_text: ShortStr::from("done"),
                class_id: 0,
                method_id: 0,
            },
        )
        .await;
    Ok(figures)
}

fn publish(out: &mut BytesMut, queue: &str, stamp_us: u64) {
    encode_method(
        out,
        1,
        &BasicPublish {
            routing_key: ShortStr::from(queue),
            ..Default::default()
        }
        .into(),
    );
    encode_header(
        out,
        1,
        &ContentHeader::basic(BODY as u64, RawProperties::EMPTY),
    );
    let mut body = [0u8; BODY];
    (&mut body[..8]).put_u64(stamp_us);
    encode_body(out, 1, &body);
}

/// One probe: connect, handshake, open a channel, declare a server-named queue, close; the
/// time it took. An error or more than `bound` means the broker hangs.
pub async fn probe(addr: SocketAddr, bound: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let round = async {
        let mut c = Conn::open(addr).await?;
        c.send(1, ChannelOpen).await?;
        c.expect("channel.open-ok").await?;
        c.send(
            1,
            QueueDeclare {
                exclusive: true,
                ..Default::default()
            },
        )
        .await?;
        c.expect("queue.declare-ok").await?;
        c.send(
            0,
            ConnectionClose {
                reply_code: 200,
                reply_text: ShortStr::from("probe"),
                class_id: 0,
                method_id: 0,
            },
        )
        .await?;
        match c.frame().await? {
            Frame::Method {
                method: Method::ConnectionCloseOk(_),
                ..
            } => Ok(()),
            other => anyhow::bail!("expected connection.close-ok, got {other:?}"),
        }
    };
    match tokio::time::timeout(bound, round).await {
        Ok(r) => r.map(|()| start.elapsed()),
        Err(_) => anyhow::bail!("no round trip within {bound:?}"),
    }
}
