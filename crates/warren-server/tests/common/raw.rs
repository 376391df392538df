//! A raw AMQP client for protocol-level tests: the handshake by hand, one frame at a time, and
//! the few exchanges (declare, publish, blocked publisher) several suites make byte by byte.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_codec::{
    BasicPublish, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, ContentHeader, FieldTable,
    FieldValue, Frame, FrameDecoder, LongStr, Method, PROTOCOL_HEADER, QueueDeclare, RawProperties,
    ShortStr, encode_body, encode_header, encode_method,
};
use warren_server::ServerHandle;

/// A raw AMQP client for protocol-level tests: does the handshake by hand.
pub struct Raw {
    pub stream: TcpStream,
    pub inbuf: BytesMut,
    pub decoder: FrameDecoder,
}

impl Raw {
    /// Connects without sending anything.
    pub async fn connect(server: &ServerHandle) -> Raw {
        let stream = TcpStream::connect(server.addr())
            .await
            .expect("tcp connect");
        Raw {
            stream,
            inbuf: BytesMut::new(),
            decoder: FrameDecoder::new(0),
        }
    }

    /// Connects and completes the handshake (PLAIN guest/guest, frame_max 4096, no heartbeat).
    pub async fn open(server: &ServerHandle) -> Raw {
        Raw::open_with_heartbeat(server, 0).await
    }

    /// Connects and completes the handshake with the given heartbeat (seconds).
    pub async fn open_with_heartbeat(server: &ServerHandle, heartbeat: u16) -> Raw {
        let mut raw = Raw::connect(server).await;
        raw.start(FieldTable::new(), b"\0guest\0guest").await;
        assert!(matches!(raw.method().await, Method::ConnectionTune(_)));
        raw.tune_and_open("/", heartbeat).await;
        assert!(matches!(raw.method().await, Method::ConnectionOpenOk(_)));
        raw
    }

    /// Sends the protocol header, reads `connection.start` and answers `start-ok` (PLAIN) with
    /// the given client capabilities and SASL response.
    pub async fn start(&mut self, capabilities: FieldTable, response: &[u8]) {
        self.write(&PROTOCOL_HEADER).await;
        assert!(matches!(self.method().await, Method::ConnectionStart(_)));
        let mut props = FieldTable::new();
        props.insert("capabilities", capabilities);
        self.send(
            0,
            ConnectionStartOk {
                client_properties: props,
                mechanism: ShortStr::from("PLAIN"),
                response: LongStr::from(response),
                locale: ShortStr::from("en_US"),
            },
        )
        .await;
    }

    /// Answers `connection.tune` (frame_max 4096) and opens `vhost`.
    pub async fn tune_and_open(&mut self, vhost: &str, heartbeat: u16) {
        let tune_ok = ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 4096,
            heartbeat,
        };
        self.send(0, tune_ok).await;
        self.send(
            0,
            ConnectionOpen {
                virtual_host: vhost.into(),
            },
        )
        .await;
    }

    /// Opens a channel and waits for `channel.open-ok`.
    pub async fn open_channel(&mut self, channel: u16) {
        self.send(channel, warren_codec::ChannelOpen).await;
        assert!(matches!(self.method().await, Method::ChannelOpenOk(_)));
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends one method frame.
    pub async fn send(&mut self, channel: u16, method: impl Into<Method>) {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, channel, &method.into());
        self.write(&buf).await;
    }

    /// The next frame, or `None` when the server closed the socket (5 s limit).
    pub async fn frame(&mut self) -> Option<Frame> {
        let read = async {
            loop {
                if let Some(f) = self
                    .decoder
                    .decode(&mut self.inbuf)
                    .expect("server sent a valid frame")
                {
                    return Some(f);
                }
                match self.stream.read_buf(&mut self.inbuf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("server answered in time")
    }

    /// The next method frame, skipping heartbeats.
    pub async fn method(&mut self) -> Method {
        loop {
            match self.frame().await {
                Some(Frame::Method { method, .. }) => return method,
                Some(Frame::Heartbeat) => continue,
                other => panic!("expected a method, got {other:?}"),
            }
        }
    }

    /// True when the server closes the socket within 5 s.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Connects and opens `/` as guest announcing the `connection.blocked` capability, with
    /// channel 1 open.
    pub async fn open_blockable(server: &ServerHandle) -> Raw {
        let mut raw = Raw::connect(server).await;
        let caps = [("connection.blocked", FieldValue::Bool(true))]
            .into_iter()
            .collect();
        raw.start(caps, b"\0guest\0guest").await;
        assert!(matches!(raw.method().await, Method::ConnectionTune(_)));
        raw.tune_and_open("/", 0).await;
        assert!(matches!(raw.method().await, Method::ConnectionOpenOk(_)));
        raw.open_channel(1).await;
        raw
    }

    /// Sends `queue.declare` (transient; `passive` as given) on `channel` without waiting.
    pub async fn send_declare(&mut self, channel: u16, queue: &str, passive: bool) {
        let declare = QueueDeclare {
            queue: queue.into(),
            passive,
            ..Default::default()
        };
        self.send(channel, declare).await;
    }

    /// Declares `queue` on `channel` and returns its message count from `declare-ok`.
    pub async fn declare(&mut self, channel: u16, queue: &str, passive: bool) -> u32 {
        self.send_declare(channel, queue, passive).await;
        match self.method().await {
            Method::QueueDeclareOk(ok) => ok.message_count,
            other => panic!("expected queue.declare-ok for {queue}, got {other:?}"),
        }
    }

    /// Publishes `body` to the default exchange with `routing_key` on `channel` (no answer).
    pub async fn publish(&mut self, channel: u16, routing_key: &str, body: &[u8]) {
        let publish = BasicPublish {
            routing_key: routing_key.into(),
            ..Default::default()
        };
        self.send(channel, publish).await;
        let mut buf = BytesMut::new();
        encode_header(
            &mut buf,
            channel,
            &ContentHeader::basic(body.len() as u64, RawProperties::EMPTY),
        );
        encode_body(&mut buf, channel, body);
        self.write(&buf).await;
    }

    /// The reason of the `connection.blocked` that must come next.
    pub async fn blocked(&mut self) -> String {
        match self.method().await {
            Method::ConnectionBlocked(b) => b.reason.to_string(),
            other => panic!("expected connection.blocked, got {other:?}"),
        }
    }

    /// Waits for the `connection.unblocked` that must come next.
    pub async fn unblocked(&mut self) {
        match self.method().await {
            Method::ConnectionUnblocked(_) => {}
            other => panic!("expected connection.unblocked, got {other:?}"),
        }
    }

    /// The `connection.close` that must come next: checks its code, returns its class, method
    /// and text.
    pub async fn connection_close(&mut self, code: u16) -> (u16, u16, String) {
        match self.method().await {
            Method::ConnectionClose(c) => {
                assert_eq!(c.reply_code, code, "reply text: {}", c.reply_text);
                (c.class_id, c.method_id, c.reply_text.to_string())
            }
            other => panic!("expected connection.close {code}, got {other:?}"),
        }
    }
}
