//! Just enough of an AMQP 0-9-1 client, on `warren-codec`, for the attackers' valid handshakes and
//! for the well-behaved client: connect, handshake as guest, send frames, read frames.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_codec::{
    ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable, Frame, FrameDecoder, LongStr,
    Method, PROTOCOL_HEADER, ShortStr, encode_method,
};

/// One client connection: the socket and what has been read but not decoded.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    inbuf: BytesMut,
    decoder: FrameDecoder,
}

/// frame_max the clients negotiate: small, so that attacks on frame sizes are cheap to make.
pub const FRAME_MAX: u32 = 8192;

impl Conn {
    /// Connects without sending anything.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            inbuf: BytesMut::with_capacity(16 * 1024),
            decoder: FrameDecoder::new(0),
        })
    }

    /// Connects and completes the handshake as guest on vhost `/` (no heartbeats).
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let mut c = Conn::connect(addr).await?;
        c.handshake().await?;
        Ok(c)
    }

    /// Protocol header, start-ok (PLAIN guest/guest), tune-ok, open; waits for open-ok.
    pub async fn handshake(&mut self) -> anyhow::Result<()> {
        self.stream.write_all(&PROTOCOL_HEADER).await?;
        self.expect("connection.start").await?;
        self.send(
            0,
            ConnectionStartOk {
                client_properties: FieldTable::new(),
                mechanism: ShortStr::from("PLAIN"),
                response: LongStr::from(&b"\0guest\0guest"[..]),
                locale: ShortStr::from("en_US"),
            },
        )
        .await?;
        self.expect("connection.tune").await?;
        self.send(
            0,
            ConnectionTuneOk {
                channel_max: 64,
                frame_max: FRAME_MAX,
                heartbeat: 0,
            },
        )
        .await?;
        self.send(
            0,
            ConnectionOpen {
                virtual_host: ShortStr::from("/"),
            },
        )
        .await?;
        self.expect("connection.open-ok").await?;
        Ok(())
    }

    /// Sends one method frame.
    pub async fn send(&mut self, channel: u16, method: impl Into<Method>) -> anyhow::Result<()> {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, channel, &method.into());
        self.stream.write_all(&buf).await?;
        Ok(())
    }

    /// The next frame; an error when the server closed the socket.
    pub async fn frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.inbuf)? {
                return Ok(f);
            }
            if self.stream.read_buf(&mut self.inbuf).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }

    /// The next method, which must be `name` (heartbeats skipped).
    pub async fn expect(&mut self, name: &str) -> anyhow::Result<Method> {
        loop {
            match self.frame().await? {
                Frame::Heartbeat => continue,
                Frame::Method { method, .. } if method.name() == name => return Ok(method),
                other => bail!("expected {name}, got {other:?}"),
            }
        }
    }

    /// Reads and drops whatever the server sends for `wait` (or until it closes).
    pub async fn drain_for(&mut self, wait: Duration) {
        let mut scratch = vec![0u8; 16 * 1024];
        let drain = async {
            while let Ok(n) = self.stream.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(wait, drain).await;
    }
}
