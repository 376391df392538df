//! The attacks: each episode is one connection doing one hostile thing, its bytes and timings all
//! drawn from an RNG seeded by (run seed, attacker, episode), so an episode that finds something is
//! replayed alone with `--replay SEED:ATTACKER:EPISODE`.
//!
//! An episode never fails: whatever the broker does (answers, closes, ignores) is acceptable here.
//! What is judged (the broker lives, answers probes, stays small, keeps serving the good client)
//! is judged outside, in `main.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::io::AsyncWriteExt;
use warren_codec::{
    BasicAck, BasicConsume, BasicPublish, BasicQos, BasicReject, ChannelClose, ChannelOpen,
    ConfirmSelect, ContentHeader, ExchangeDeclare, FieldTable, FieldValue, Method, PROTOCOL_HEADER,
    QueueBind, QueueDeclare, QueuePurge, RawProperties, ShortStr, TxSelect, encode_body,
    encode_header, encode_method,
};

use crate::amqp::{Conn, FRAME_MAX};

/// What one episode does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Valid handshake, then valid frames with bytes flipped, inserted and deleted.
    Mutated,
    /// Valid frames cut short, then silence or a close.
    Truncated,
    /// Frame sizes, body sizes and table lengths far beyond the limits.
    HugeSizes,
    /// Content of several channels interleaved, in and out of order.
    Interleaved,
    /// Random bytes, with or without a protocol header or a handshake first.
    RandomBytes,
    /// A valid session written a byte at a time, slowly (slowloris).
    SlowWriter,
    /// A consumer that is sent many messages and never reads its socket.
    SlowReader,
    /// A connection that stops in the middle of the handshake and waits.
    HalfOpen,
}

/// Every kind, in the order the RNG picks from.
pub const KINDS: [Kind; 8] = [
    Kind::Mutated,
    Kind::Truncated,
    Kind::HugeSizes,
    Kind::Interleaved,
    Kind::RandomBytes,
    Kind::SlowWriter,
    Kind::SlowReader,
    Kind::HalfOpen,
];

/// The RNG of one episode.
pub fn episode_rng(seed: u64, attacker: u64, episode: u64) -> StdRng {
    // SplitMix-style mixing so neighbouring triples give unrelated streams.
    let mut z = seed ^ attacker.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ episode.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Runs one episode against `addr`; returns its kind. Errors (refused, reset) are the broker's
/// right and are not reported.
pub async fn run_episode(addr: SocketAddr, rng: &mut StdRng, attacker: u64) -> Kind {
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    // Nothing an attacker does may take longer than this, whatever the broker does.
    let bound = Duration::from_secs(15);
    let _ = tokio::time::timeout(bound, episode(addr, rng, kind, attacker)).await;
    kind
}

async fn episode(
    addr: SocketAddr,
    rng: &mut StdRng,
    kind: Kind,
    attacker: u64,
) -> anyhow::Result<()> {
    match kind {
        Kind::Mutated => {
            let mut c = Conn::open(addr).await?;
            let n = 1 + rng.random_range(0..40);
            let mut bytes = valid_frames(rng, n);
            mutate(rng, &mut bytes);
            write_chunked(&mut c, rng, &bytes).await?;
            c.drain_for(Duration::from_millis(rng.random_range(0..1500)))
                .await;
        }
        Kind::Truncated => {
            let mut c = Conn::connect(addr).await?;
            let mut bytes = BytesMut::new();
            if rng.random_bool(0.7) {
                c.handshake().await?;
            } else {
                bytes.put_slice(&PROTOCOL_HEADER);
            }
            let n = 1 + rng.random_range(0..10);
            bytes.extend_from_slice(&valid_frames(rng, n));
            let cut = rng.random_range(0..bytes.len());
            c.stream.write_all(&bytes[..cut]).await?;
            if rng.random_bool(0.5) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..3000))).await;
            }
        }
        Kind::HugeSizes => {
            let mut c = Conn::open(addr).await?;
            let bytes = huge(rng);
            c.stream.write_all(&bytes).await?;
            c.drain_for(Duration::from_millis(rng.random_range(0..1500)))
                .await;
        }
        Kind::Interleaved => {
            let mut c = Conn::open(addr).await?;
            let bytes = interleaved(rng);
            write_chunked(&mut c, rng, &bytes).await?;
            c.drain_for(Duration::from_millis(rng.random_range(0..1500)))
                .await;
        }
        Kind::RandomBytes => {
            let mut c = Conn::connect(addr).await?;
            match rng.random_range(0..3) {
                0 => {}
                1 => c.stream.write_all(&PROTOCOL_HEADER).await?,
                _ => c.handshake().await?,
            }
            let mut junk = vec![0u8; rng.random_range(1..20_000)];
            rng.fill_bytes(&mut junk);
            c.stream.write_all(&junk).await?;
            c.drain_for(Duration::from_millis(rng.random_range(0..1000)))
                .await;
        }
        Kind::SlowWriter => {
            let mut c = Conn::connect(addr).await?;
            let mut bytes = BytesMut::new();
            if rng.random_bool(0.5) {
                // Slow through the handshake itself: the handshake timeout must end it.
                bytes.put_slice(&PROTOCOL_HEADER);
            } else {
                c.handshake().await?;
            }
            bytes.extend_from_slice(&valid_frames(rng, 3));
            let gap = Duration::from_millis(rng.random_range(50..400));
            for b in bytes.iter() {
                c.stream.write_all(&[*b]).await?;
                tokio::time::sleep(gap).await;
            }
        }
        Kind::SlowReader => slow_reader(addr, rng, attacker).await?,
        Kind::HalfOpen => {
            let mut c = Conn::connect(addr).await?;
            let sent = rng.random_range(0..=PROTOCOL_HEADER.len());
            c.stream.write_all(&PROTOCOL_HEADER[..sent]).await?;
            // Held until the broker's handshake timeout (10 s by default) closes it, or less.
            c.drain_for(Duration::from_millis(rng.random_range(100..12_000)))
                .await;
        }
    }
    Ok(())
}

/// Writes `bytes` in random pieces with short random pauses.
async fn write_chunked(c: &mut Conn, rng: &mut StdRng, bytes: &[u8]) -> anyhow::Result<()> {
    let mut at = 0;
    while at < bytes.len() {
        let n = rng.random_range(1..=bytes.len() - at);
        c.stream.write_all(&bytes[at..at + n]).await?;
        at += n;
        if rng.random_bool(0.2) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..50))).await;
        }
    }
    Ok(())
}

fn short(rng: &mut StdRng, names: &[&'static str]) -> ShortStr {
    ShortStr::from(names[rng.random_range(0..names.len())])
}

fn table(rng: &mut StdRng) -> FieldTable {
    let mut t = FieldTable::new();
    for _ in 0..rng.random_range(0..3) {
        match rng.random_range(0..5) {
            0 => t.insert("x-max-length", FieldValue::I32(rng.random_range(-5..100))),
            1 => t.insert("x-message-ttl", FieldValue::I64(rng.random_range(-5..100))),
            2 => t.insert("x-queue-type", FieldValue::from("quorum")),
            3 => t.insert("x-dead-letter-exchange", FieldValue::from("amq.fanout")),
            _ => t.insert("x-max-priority", FieldValue::I32(rng.random_range(-1..300))),
        }
    }
    t
}

/// A plausible session: channel opens, declarations, publishes with content, acks, closes.
fn valid_frames(rng: &mut StdRng, n: usize) -> BytesMut {
    let mut b = BytesMut::new();
    let queues = ["nf-a", "nf-b", "amq.gen-x", ""];
    for _ in 0..n {
        let ch = rng.random_range(1..4u16);
        let m: Method = match rng.random_range(0..12) {
            0 | 1 => ChannelOpen.into(),
            2 => QueueDeclare {
                queue: short(rng, &queues),
                auto_delete: true,
                exclusive: rng.random_bool(0.5),
                arguments: table(rng),
                ..Default::default()
            }
            .into(),
            3 => ExchangeDeclare {
                exchange: short(rng, &["nf-x", "amq.direct", "nf-y"]),
                kind: short(rng, &["direct", "topic", "fanout", "headers", "x-bogus"]),
                auto_delete: true,
                ..Default::default()
            }
            .into(),
            4 => QueueBind {
                queue: short(rng, &queues),
                exchange: short(rng, &["nf-x", "amq.topic", "missing"]),
                routing_key: short(rng, &["#", "a.*", ""]),
                ..Default::default()
            }
            .into(),
            5 | 6 => {
                encode_method(
                    &mut b,
                    ch,
                    &BasicPublish {
                        routing_key: short(rng, &queues),
                        mandatory: rng.random_bool(0.3),
                        ..Default::default()
                    }
                    .into(),
                );
                let len = rng.random_range(0..3000usize);
                encode_header(
                    &mut b,
                    ch,
                    &ContentHeader::basic(len as u64, RawProperties::EMPTY),
                );
                let body = vec![b'x'; len];
                for piece in body.chunks(FRAME_MAX as usize - 8) {
                    encode_body(&mut b, ch, piece);
                }
                continue;
            }
            7 => BasicConsume {
                queue: short(rng, &queues),
                no_ack: rng.random_bool(0.5),
                ..Default::default()
            }
            .into(),
            8 => BasicAck {
                delivery_tag: rng.random_range(0..5),
                multiple: rng.random_bool(0.5),
            }
            .into(),
            9 => BasicReject {
                delivery_tag: rng.random_range(0..5),
                requeue: rng.random_bool(0.5),
            }
            .into(),
            10 => match rng.random_range(0..4) {
                0 => ConfirmSelect { nowait: false }.into(),
                1 => TxSelect.into(),
                2 => BasicQos {
                    prefetch_count: rng.random_range(0..10),
                    ..Default::default()
                }
                .into(),
                _ => QueuePurge {
                    queue: short(rng, &queues),
                    ..Default::default()
                }
                .into(),
            },
            _ => ChannelClose {
                reply_code: 200,
                reply_text: ShortStr::from("bye"),
                class_id: 0,
                method_id: 0,
            }
            .into(),
        };
        encode_method(&mut b, ch, &m);
    }
    b
}

/// Flips, overwrites, inserts and deletes a few bytes.
fn mutate(rng: &mut StdRng, bytes: &mut BytesMut) {
    for _ in 0..rng.random_range(1..6) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..5) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = [0x00, 0xFF, 0x7F, 0x80, 0xCE][rng.random_range(0..5)],
            2 => {
                let tail = bytes.split_off(at);
                let mut junk = vec![0u8; rng.random_range(1..16)];
                rng.fill_bytes(&mut junk);
                bytes.extend_from_slice(&junk);
                bytes.extend_from_slice(&tail);
            }
            3 => {
                let end = (at + rng.random_range(1..16)).min(bytes.len());
                let tail = bytes.split_off(end);
                bytes.truncate(at);
                bytes.extend_from_slice(&tail);
            }
            _ => {
                // A length field's worth of 0xFF somewhere: sizes and string lengths.
                for b in bytes.iter_mut().skip(at).take(4) {
                    *b = 0xFF;
                }
            }
        }
    }
}

/// One of the oversized inputs.
fn huge(rng: &mut StdRng) -> BytesMut {
    let mut b = BytesMut::new();
    encode_method(&mut b, 1, &ChannelOpen.into());
    match rng.random_range(0..5) {
        0 => {
            // A frame header announcing more than frame_max, or 4 GiB, and a little payload.
            let size = [FRAME_MAX + 1, 0x7FFF_FFFF, 0xFFFF_FFFF][rng.random_range(0..3)];
            b.put_u8(rng.random_range(1..4));
            b.put_u16(1);
            b.put_u32(size);
            b.put_slice(&[0u8; 1024]);
        }
        1 => {
            // A content header announcing 2^64-1 or 600 MB, then bodies.
            encode_method(&mut b, 1, &BasicPublish::default().into());
            let size = [u64::MAX, 600 << 20, 129 << 20][rng.random_range(0..3)];
            encode_header(&mut b, 1, &ContentHeader::basic(size, RawProperties::EMPTY));
            for _ in 0..rng.random_range(0..20) {
                encode_body(&mut b, 1, &[0u8; 8000]);
            }
        }
        2 => {
            // queue.declare whose arguments table claims 4 GiB.
            let mut payload = BytesMut::new();
            payload.put_u16(50);
            payload.put_u16(10);
            payload.put_u16(0);
            payload.put_u8(2);
            payload.put_slice(b"nf");
            payload.put_u8(0);
            payload.put_u32(0xFFFF_FFF0);
            payload.put_slice(b"\x01x");
            frame(&mut b, 1, 1, &payload);
        }
        3 => {
            // A body longer than its header announced.
            encode_method(&mut b, 1, &BasicPublish::default().into());
            encode_header(&mut b, 1, &ContentHeader::basic(10, RawProperties::EMPTY));
            encode_body(&mut b, 1, &[0u8; 5000]);
        }
        _ => {
            // Deeply nested field tables in client-chosen arguments.
            let mut payload = BytesMut::new();
            payload.put_u16(50);
            payload.put_u16(10);
            payload.put_u16(0);
            payload.put_u8(2);
            payload.put_slice(b"nf");
            payload.put_u8(0);
            let depth = 1000;
            let mut table = Vec::new();
            for _ in 0..depth {
                table.extend_from_slice(b"\x01kF");
            }
            // Each level's length would need the inner one's; claim "rest of frame" instead.
            payload.put_u32(table.len() as u32);
            payload.put_slice(&table);
            frame(&mut b, 1, 1, &payload);
        }
    }
    b
}

fn frame(b: &mut BytesMut, kind: u8, channel: u16, payload: &[u8]) {
    b.put_u8(kind);
    b.put_u16(channel);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.put_u8(0xCE);
}

/// Publishes and content for several channels, shuffled.
fn interleaved(rng: &mut StdRng) -> BytesMut {
    let channels = rng.random_range(2..6u16);
    let mut pieces: Vec<(u16, BytesMut)> = Vec::new();
    let mut b = BytesMut::new();
    for ch in 1..=channels {
        encode_method(&mut b, ch, &ChannelOpen.into());
    }
    for _ in 0..rng.random_range(1..30) {
        let ch = rng.random_range(1..=channels);
        let mut p = BytesMut::new();
        match rng.random_range(0..3) {
            0 => encode_method(
                &mut p,
                ch,
                &BasicPublish {
                    routing_key: ShortStr::from("nf-a"),
                    ..Default::default()
                }
                .into(),
            ),
            1 => encode_header(
                &mut p,
                ch,
                &ContentHeader::basic(rng.random_range(0..100), RawProperties::EMPTY),
            ),
            _ => encode_body(&mut p, ch, &vec![b'y'; rng.random_range(0..100)]),
        }
        pieces.push((ch, p));
    }
    // Mostly in order per channel, sometimes not at all.
    if rng.random_bool(0.5) {
        pieces.sort_by_key(|(ch, _)| *ch);
    }
    for (_, p) in pieces {
        b.extend_from_slice(&p);
    }
    b
}

/// A consumer that never reads: a queue bounded by `x-max-length` is filled with 4 KiB
/// messages; the broker must keep them in the queue, not in memory bound for the socket.
async fn slow_reader(addr: SocketAddr, rng: &mut StdRng, attacker: u64) -> anyhow::Result<()> {
    let mut c = Conn::open(addr).await?;
    c.send(1, ChannelOpen).await?;
    c.expect("channel.open-ok").await?;
    let queue = format!("nf-slow-{attacker}");
    let mut args = FieldTable::new();
    args.insert("x-max-length", FieldValue::I32(2000));
    c.send(
        1,
        QueueDeclare {
            queue: ShortStr::from(queue.as_str()),
            exclusive: true,
            arguments: args,
            ..Default::default()
        },
    )
    .await?;
    c.expect("queue.declare-ok").await?;
    c.send(
        1,
        BasicConsume {
            queue: ShortStr::from(queue.as_str()),
            no_ack: rng.random_bool(0.5),
            ..Default::default()
        },
    )
    .await?;
    let mut b = BytesMut::new();
    for _ in 0..rng.random_range(500..3000) {
        encode_method(
            &mut b,
            1,
            &BasicPublish {
                routing_key: ShortStr::from(queue.as_str()),
                ..Default::default()
            }
            .into(),
        );
        encode_header(&mut b, 1, &ContentHeader::basic(4096, RawProperties::EMPTY));
        encode_body(&mut b, 1, &[b'z'; 4096]);
    }
    c.stream.write_all(&b).await?;
    // Never read; hold the connection a while.
    tokio::time::sleep(Duration::from_millis(rng.random_range(1000..8000))).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_is_the_same_bytes_for_the_same_seed() {
        let a = valid_frames(&mut episode_rng(7, 3, 11), 20);
        let b = valid_frames(&mut episode_rng(7, 3, 11), 20);
        let c = valid_frames(&mut episode_rng(7, 3, 12), 20);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
