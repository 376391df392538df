//! A minimal AMQP 0-9-1 client built for load: batched writes, big reads, no per-message tasks.
//!
//! A [`Connection`] is a [`FrameReader`] and a [`FrameWriter`] over one TCP socket, or over one
//! TLS session for `amqps://` (the halves are boxed streams: one virtual call per read or write
//! batch, never per message). The setup
//! methods (`channel_open`, `queue_declare`, ...) are synchronous RPCs; afterwards the hot loops take
//! the two halves apart and drive them directly: encode many frames into [`FrameWriter::buf`] and
//! [`FrameWriter::flush`] once, and [`FrameReader::read_batch`] decodes every frame of one read.
//! It does not own publishing or consuming policy (that is `throughput`), and has no heartbeats:
//! it asks for none in `connection.tune-ok`.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_codec::{
    BasicConsume, BasicQos, ChannelOpen, ConfirmSelect, ConnectionClose, ConnectionCloseOk,
    ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, ExchangeDeclare, FieldTable, Frame,
    FrameDecoder, LongStr, Method, PROTOCOL_HEADER, QueueBind, QueueDeclare, QueueDelete,
    QueuePurge, encode_method,
};

/// How much a reader asks the socket for at once.
const READ_CHUNK: usize = 256 * 1024;
/// The frame_max we ask for when the server proposes none.
const DEFAULT_FRAME_MAX: u32 = 128 * 1024;

/// The reading half of a TCP socket or TLS session.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a TCP socket or TLS session.
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// The receiving half: a socket, a buffer and the frame decoder.
pub struct FrameReader {
    half: ReadHalf,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl FrameReader {
    /// Reads once (waiting for at least one byte) and appends every whole frame now buffered to
    /// `out`. Returns how many frames were appended, possibly 0 when only part of a frame came.
    pub async fn read_batch(&mut self, out: &mut Vec<Frame>) -> anyhow::Result<usize> {
        let before = out.len();
        // Frames already buffered (left by `next_frame`) are returned without touching the socket.
        self.drain(out)?;
        if out.len() > before {
            return Ok(out.len() - before);
        }
        self.buf.reserve(READ_CHUNK);
        let n = self.half.read_buf(&mut self.buf).await?;
        if n == 0 {
            bail!("the broker closed the connection");
        }
        self.drain(out)?;
        Ok(out.len() - before)
    }

    fn drain(&mut self, out: &mut Vec<Frame>) -> anyhow::Result<()> {
        while let Some(frame) = self.decoder.decode(&mut self.buf)? {
            out.push(frame);
        }
        Ok(())
    }

    /// The next frame, reading as needed.
    pub async fn next_frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(frame);
            }
            self.buf.reserve(READ_CHUNK);
            if self.half.read_buf(&mut self.buf).await? == 0 {
                bail!("the broker closed the connection");
            }
        }
    }

    /// Waits for a method on `channel` that `pick` accepts, skipping heartbeats. A
    /// `channel.close` or `connection.close` from the broker is an error carrying its reply.
    pub async fn expect<T>(
        &mut self,
        channel: u16,
        what: &str,
        mut pick: impl FnMut(Method) -> Option<T>,
    ) -> anyhow::Result<T> {
        loop {
            match self.next_frame().await? {
                Frame::Method {
                    method: Method::ConnectionClose(c),
                    ..
                } => bail!(
                    "broker closed the connection waiting for {what}: {} {}",
                    c.reply_code,
                    String::from_utf8_lossy(c.reply_text.as_bytes())
                ),
                Frame::Method {
                    channel: ch,
                    method: Method::ChannelClose(c),
                } if ch == channel => bail!(
                    "broker closed channel {ch} waiting for {what}: {} {}",
                    c.reply_code,
                    String::from_utf8_lossy(c.reply_text.as_bytes())
                ),
                Frame::Method {
                    channel: ch,
                    method,
                } if ch == channel => {
                    if let Some(t) = pick(method) {
                        return Ok(t);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The sending half: a socket and the buffer frames are encoded into.
pub struct FrameWriter {
    half: WriteHalf,
    /// Frames waiting for [`FrameWriter::flush`]; encode into it with the codec's `encode_*`.
    pub buf: BytesMut,
    /// The negotiated frame_max, for cutting bodies.
    pub frame_max: u32,
}

impl FrameWriter {
    /// Writes everything buffered with one `write_all`, then empties the buffer. (A TLS
    /// session also needs its `flush` to send the records it encrypted.)
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.buf.is_empty() {
            self.half.write_all(&self.buf).await?;
            self.half.flush().await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Encodes one method and flushes.
    pub async fn send(&mut self, channel: u16, method: Method) -> anyhow::Result<()> {
        encode_method(&mut self.buf, channel, &method);
        self.flush().await
    }

    /// Sends `connection.close` (200, normal shutdown).
    pub async fn send_close(&mut self) -> anyhow::Result<()> {
        let close = ConnectionClose {
            reply_code: 200,
            reply_text: "warren-perf done".into(),
            class_id: 0,
            method_id: 0,
        };
        self.send(0, close.into()).await
    }
}

/// An open AMQP connection, both halves together.
pub struct Connection {
    /// Receiving half.
    pub reader: FrameReader,
    /// Sending half.
    pub writer: FrameWriter,
}

impl Connection {
    /// Connects (with TLS for `amqps://`), authenticates with PLAIN and opens the vhost.
    pub async fn open(uri: &crate::uri::AmqpUri, name: &str) -> anyhow::Result<Connection> {
        let addr = uri.address();
        let stream = TcpStream::connect(&addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (rh, wh): (ReadHalf, WriteHalf) = match &uri.tls {
            None => {
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
            Some(tls) => {
                let session =
                    tokio::time::timeout(Duration::from_secs(10), tls.connect(&uri.host, stream))
                        .await
                        .with_context(|| format!("TLS handshake with {addr} timed out"))??;
                let (r, w) = tokio::io::split(session);
                (Box::new(r), Box::new(w))
            }
        };
        let mut conn = Connection {
            reader: FrameReader {
                half: rh,
                buf: BytesMut::with_capacity(READ_CHUNK),
                decoder: FrameDecoder::new(DEFAULT_FRAME_MAX),
            },
            writer: FrameWriter {
                half: wh,
                buf: BytesMut::with_capacity(64 * 1024),
                frame_max: DEFAULT_FRAME_MAX,
            },
        };
        tokio::time::timeout(Duration::from_secs(10), conn.handshake(uri, name))
            .await
            .with_context(|| format!("handshake with {addr} timed out"))??;
        Ok(conn)
    }

    async fn handshake(&mut self, uri: &crate::uri::AmqpUri, name: &str) -> anyhow::Result<()> {
        self.writer.buf.extend_from_slice(&PROTOCOL_HEADER);
        self.writer.flush().await?;
        // A broker that refuses the protocol answers with its own header, which is no frame.
        self.reader.decoder.set_frame_max(0);
        let start = self
            .reader
            .expect(0, "connection.start", |m| match m {
                Method::ConnectionStart(s) => Some(s),
                _ => None,
            })
            .await
            .context("no connection.start")?;
        if !String::from_utf8_lossy(start.mechanisms.as_bytes())
            .split(' ')
            .any(|m| m == "PLAIN")
        {
            bail!("the broker does not offer PLAIN");
        }
        let capabilities: FieldTable = [
            ("publisher_confirms", true),
            ("basic.nack", true),
            ("consumer_cancel_notify", true),
            ("connection.blocked", true),
        ]
        .into_iter()
        .collect();
        let mut props = FieldTable::new();
        props.insert("product", "warren-perf");
        props.insert("version", env!("CARGO_PKG_VERSION"));
        props.insert("connection_name", name);
        props.insert("capabilities", capabilities);
        let response = format!("\0{}\0{}", uri.user, uri.password);
        let start_ok = ConnectionStartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: LongStr::from(response.as_bytes()),
            locale: "en_US".into(),
        };
        self.writer.send(0, start_ok.into()).await?;
        let tune = self
            .reader
            .expect(0, "connection.tune", |m| match m {
                Method::ConnectionTune(t) => Some(t),
                _ => None,
            })
            .await
            .context("authentication failed or no connection.tune")?;
        let frame_max = match tune.frame_max {
            0 => DEFAULT_FRAME_MAX,
            n => n,
        };
        let channel_max = match tune.channel_max {
            0 => 2047,
            n => n,
        };
        self.reader.decoder.set_frame_max(frame_max);
        self.writer.frame_max = frame_max;
        let tune_ok = ConnectionTuneOk {
            channel_max,
            frame_max,
            heartbeat: 0,
        };
        encode_method(&mut self.writer.buf, 0, &tune_ok.into());
        let open = ConnectionOpen {
            virtual_host: uri.vhost.as_str().into(),
        };
        self.writer.send(0, open.into()).await?;
        self.reader
            .expect(0, "connection.open-ok", |m| {
                matches!(m, Method::ConnectionOpenOk(_)).then_some(())
            })
            .await
    }

    /// Opens `channel`.
    pub async fn channel_open(&mut self, channel: u16) -> anyhow::Result<()> {
        self.writer.send(channel, ChannelOpen.into()).await?;
        self.reader
            .expect(channel, "channel.open-ok", |m| {
                matches!(m, Method::ChannelOpenOk(_)).then_some(())
            })
            .await
    }

    /// Declares a classic queue (durable or not), returning its message count.
    pub async fn queue_declare(
        &mut self,
        channel: u16,
        queue: &str,
        durable: bool,
    ) -> anyhow::Result<u32> {
        let declare = QueueDeclare {
            queue: queue.into(),
            durable,
            ..QueueDeclare::default()
        };
        self.writer.send(channel, declare.into()).await?;
        self.reader
            .expect(channel, "queue.declare-ok", |m| match m {
                Method::QueueDeclareOk(ok) => Some(ok.message_count),
                _ => None,
            })
            .await
    }

    /// Declares a server-named, exclusive, non-durable queue, returning its name.
    pub async fn queue_declare_exclusive(&mut self, channel: u16) -> anyhow::Result<String> {
        let declare = QueueDeclare {
            exclusive: true,
            ..QueueDeclare::default()
        };
        self.writer.send(channel, declare.into()).await?;
        self.reader
            .expect(channel, "queue.declare-ok", |m| match m {
                Method::QueueDeclareOk(ok) => {
                    Some(String::from_utf8_lossy(ok.queue.as_bytes()).into_owned())
                }
                _ => None,
            })
            .await
    }

    /// Declares a non-durable exchange of `kind` (`fanout`, `direct`, ...).
    pub async fn exchange_declare(
        &mut self,
        channel: u16,
        exchange: &str,
        kind: &str,
    ) -> anyhow::Result<()> {
        let declare = ExchangeDeclare {
            exchange: exchange.into(),
            kind: kind.into(),
            ..ExchangeDeclare::default()
        };
        self.writer.send(channel, declare.into()).await?;
        self.reader
            .expect(channel, "exchange.declare-ok", |m| {
                matches!(m, Method::ExchangeDeclareOk(_)).then_some(())
            })
            .await
    }

    /// Binds `queue` to `exchange` with an empty routing key.
    pub async fn queue_bind(
        &mut self,
        channel: u16,
        queue: &str,
        exchange: &str,
    ) -> anyhow::Result<()> {
        let bind = QueueBind {
            queue: queue.into(),
            exchange: exchange.into(),
            ..QueueBind::default()
        };
        self.writer.send(channel, bind.into()).await?;
        self.reader
            .expect(channel, "queue.bind-ok", |m| {
                matches!(m, Method::QueueBindOk(_)).then_some(())
            })
            .await
    }

    /// Purges a queue, returning how many messages it dropped.
    pub async fn queue_purge(&mut self, channel: u16, queue: &str) -> anyhow::Result<u32> {
        let purge = QueuePurge {
            queue: queue.into(),
            no_wait: false,
        };
        self.writer.send(channel, purge.into()).await?;
        self.reader
            .expect(channel, "queue.purge-ok", |m| match m {
                Method::QueuePurgeOk(ok) => Some(ok.message_count),
                _ => None,
            })
            .await
    }

    /// Deletes a queue, returning how many messages it held.
    pub async fn queue_delete(&mut self, channel: u16, queue: &str) -> anyhow::Result<u32> {
        let delete = QueueDelete {
            queue: queue.into(),
            ..QueueDelete::default()
        };
        self.writer.send(channel, delete.into()).await?;
        self.reader
            .expect(channel, "queue.delete-ok", |m| match m {
                Method::QueueDeleteOk(ok) => Some(ok.message_count),
                _ => None,
            })
            .await
    }

    /// Sets the channel's prefetch count.
    pub async fn basic_qos(&mut self, channel: u16, prefetch: u16) -> anyhow::Result<()> {
        let qos = BasicQos {
            prefetch_size: 0,
            prefetch_count: prefetch,
            global: false,
        };
        self.writer.send(channel, qos.into()).await?;
        self.reader
            .expect(channel, "basic.qos-ok", |m| {
                matches!(m, Method::BasicQosOk(_)).then_some(())
            })
            .await
    }

    /// Puts the channel in confirm mode.
    pub async fn confirm_select(&mut self, channel: u16) -> anyhow::Result<()> {
        self.writer
            .send(channel, ConfirmSelect { nowait: false }.into())
            .await?;
        self.reader
            .expect(channel, "confirm.select-ok", |m| {
                matches!(m, Method::ConfirmSelectOk(_)).then_some(())
            })
            .await
    }

    /// Starts a consumer, returning its tag.
    pub async fn basic_consume(
        &mut self,
        channel: u16,
        queue: &str,
        no_ack: bool,
    ) -> anyhow::Result<String> {
        let consume = BasicConsume {
            queue: queue.into(),
            no_ack,
            ..BasicConsume::default()
        };
        self.writer.send(channel, consume.into()).await?;
        self.reader
            .expect(channel, "basic.consume-ok", |m| match m {
                Method::BasicConsumeOk(ok) => {
                    Some(String::from_utf8_lossy(ok.consumer_tag.as_bytes()).into_owned())
                }
                _ => None,
            })
            .await
    }

    /// Closes the connection politely, waiting up to `wait` for `close-ok`.
    pub async fn close(mut self, wait: Duration) -> anyhow::Result<()> {
        self.writer.send_close().await?;
        close_handshake(&mut self.reader, wait).await
    }
}

/// Reads (and drops) frames until `connection.close-ok`, for at most `wait`.
pub async fn close_handshake(reader: &mut FrameReader, wait: Duration) -> anyhow::Result<()> {
    let waiting = reader.expect(0, "connection.close-ok", |m| {
        matches!(m, Method::ConnectionCloseOk(ConnectionCloseOk)).then_some(())
    });
    match tokio::time::timeout(wait, waiting).await {
        Ok(r) => r,
        Err(_) => bail!("no connection.close-ok within {wait:?}"),
    }
}
