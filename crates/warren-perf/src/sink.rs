//! `warren-perf sink`: a fake broker that accepts everything and keeps nothing.
//!
//! It does the server side of the handshake, answers the synchronous methods a load generator sends
//! (`channel.open`, `queue.declare`/`purge`/`delete`, `basic.qos`, `confirm.select`,
//! `basic.consume`, ...) with their `-ok`, counts and discards publishes, and in confirm mode acks
//! them with one `basic.ack(multiple)` per channel per read. It never delivers. Running
//! `throughput` against it measures the load generator alone.

use std::time::Instant;

use anyhow::bail;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_codec::{
    BasicAck, BasicConsumeOk, ChannelCloseOk, ChannelOpenOk, ConfirmSelectOk, ConnectionCloseOk,
    ConnectionOpenOk, ConnectionStart, ConnectionTune, FieldTable, Frame, FrameDecoder, Method,
    PROTOCOL_HEADER, ProtocolHeaderCheck, QueueDeclareOk, QueueDeleteOk, QueuePurgeOk,
    check_protocol_header, encode_method,
};

/// Options of `warren-perf sink`.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Port to listen on (loopback only).
    #[arg(long, default_value_t = 5690)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
}

const FRAME_MAX: u32 = 128 * 1024;

/// Accepts connections until killed; each is served by its own task.
pub async fn run(args: &SinkArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind((args.bind.as_str(), args.port)).await?;
    eprintln!("warren-perf sink listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let started = Instant::now();
            match serve(stream).await {
                Ok(n) => eprintln!(
                    "sink: {peer}: {n} messages in {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => eprintln!("sink: {peer}: {e:#}"),
            }
        });
    }
}

/// Per-channel state: confirm mode and where the current content is.
#[derive(Default, Clone)]
struct ChannelState {
    confirm: bool,
    next_tag: u64,
    ack_pending: bool,
    body_remaining: u64,
}

/// Serves one connection; returns how many messages it swallowed.
async fn serve(mut stream: TcpStream) -> anyhow::Result<u64> {
    stream.set_nodelay(true)?;
    let mut rbuf = BytesMut::with_capacity(256 * 1024);
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    while rbuf.len() < PROTOCOL_HEADER.len() {
        if stream.read_buf(&mut rbuf).await? == 0 {
            bail!("closed before the protocol header");
        }
        if check_protocol_header(&rbuf) == ProtocolHeaderCheck::Refused {
            stream.write_all(&PROTOCOL_HEADER).await?;
            bail!("not AMQP 0-9-1");
        }
    }
    let _ = rbuf.split_to(PROTOCOL_HEADER.len());
    let mut props = FieldTable::new();
    props.insert("product", "warren-perf sink");
    let capabilities: FieldTable = [("publisher_confirms", true), ("basic.nack", true)]
        .into_iter()
        .collect();
    props.insert("capabilities", capabilities);
    let start = ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: "PLAIN AMQPLAIN".into(),
        locales: "en_US".into(),
    };
    encode_method(&mut wbuf, 0, &start.into());
    stream.write_all(&wbuf).await?;
    wbuf.clear();

    let decoder = FrameDecoder::new(FRAME_MAX);
    let mut channels = vec![ChannelState::default(); 16];
    let mut messages = 0u64;
    let mut consumers = 0u64;
    loop {
        rbuf.reserve(256 * 1024);
        if stream.read_buf(&mut rbuf).await? == 0 {
            return Ok(messages);
        }
        let mut closing = false;
        while let Some(frame) = decoder.decode(&mut rbuf)? {
            let ch = frame.channel();
            if usize::from(ch) >= channels.len() {
                channels.resize(usize::from(ch) + 1, ChannelState::default());
            }
            let state = &mut channels[usize::from(ch)];
            let complete = match frame {
                Frame::Header { header, .. } => {
                    state.body_remaining = header.body_size;
                    header.body_size == 0
                }
                Frame::Body { payload, .. } => {
                    state.body_remaining =
                        state.body_remaining.saturating_sub(payload.len() as u64);
                    state.body_remaining == 0
                }
                Frame::Heartbeat => false,
                Frame::Method { method, .. } => {
                    let reply: Option<Method> = match method {
                        Method::ConnectionStartOk(_) => Some(
                            ConnectionTune {
                                channel_max: 2047,
                                frame_max: FRAME_MAX,
                                heartbeat: 0,
                            }
                            .into(),
                        ),
                        Method::ConnectionOpen(_) => Some(ConnectionOpenOk.into()),
                        Method::ConnectionClose(_) => {
                            closing = true;
                            Some(ConnectionCloseOk.into())
                        }
                        Method::ChannelOpen(_) => {
                            *state = ChannelState::default();
                            Some(ChannelOpenOk.into())
                        }
                        Method::ChannelClose(_) => Some(ChannelCloseOk.into()),
                        Method::QueueDeclare(d) if !d.no_wait => Some(
                            QueueDeclareOk {
                                queue: d.queue,
                                message_count: 0,
                                consumer_count: 0,
                            }
                            .into(),
                        ),
                        Method::QueuePurge(p) if !p.no_wait => {
                            Some(QueuePurgeOk { message_count: 0 }.into())
                        }
                        Method::QueueDelete(d) if !d.no_wait => {
                            Some(QueueDeleteOk { message_count: 0 }.into())
                        }
                        Method::BasicQos(_) => Some(warren_codec::BasicQosOk.into()),
                        Method::ConfirmSelect(c) => {
                            state.confirm = true;
                            (!c.nowait).then(|| ConfirmSelectOk.into())
                        }
                        Method::BasicConsume(c) if !c.no_wait => {
                            consumers += 1;
                            let tag = if c.consumer_tag.is_empty() {
                                format!("sink-ctag-{consumers}").into()
                            } else {
                                c.consumer_tag
                            };
                            Some(BasicConsumeOk { consumer_tag: tag }.into())
                        }
                        _ => None,
                    };
                    if let Some(reply) = reply {
                        encode_method(&mut wbuf, ch, &reply);
                    }
                    false
                }
            };
            if complete {
                messages += 1;
                if state.confirm {
                    state.next_tag += 1;
                    state.ack_pending = true;
                }
            }
        }
        for (ch, state) in channels.iter_mut().enumerate() {
            if state.ack_pending {
                state.ack_pending = false;
                let ack = BasicAck {
                    delivery_tag: state.next_tag,
                    multiple: true,
                };
                // Channels were grown from a u16 index, so this always fits.
                encode_method(&mut wbuf, u16::try_from(ch).unwrap_or(0), &ack.into());
            }
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if closing {
            return Ok(messages);
        }
    }
}
