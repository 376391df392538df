//! The connection handshake: protocol header, start/start-ok (authentication), tune/tune-ok,
//! open/open-ok. Runs under the handshake timeout; nothing here touches queues.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warren_broker::Broker;
use warren_codec::{
    ConnectionOpenOk, ConnectionStart, ConnectionTune, FieldTable, FieldValue, Frame, FrameDecoder,
    LongStr, Method, PROTOCOL_HEADER, ProtocolHeaderCheck, ReplyCode, check_protocol_header,
    encode_method,
};

use super::error::{AmqpError, AmqpResult};
use crate::config::Config;
use crate::tls::Transport;

/// A socket a connection can run on: plain TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// Writes `bytes` and flushes: TLS may keep records buffered after `write_all` returns (a flush
/// of a TCP socket returns at once, without a system call).
pub async fn send<S: Stream>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Largest frame payload accepted before `connection.tune-ok` (RabbitMQ's pre-tune limit).
pub(crate) const PRE_TUNE_PAYLOAD_MAX: u32 = warren_codec::FRAME_MIN_SIZE - 8;

/// What the client asked for and was granted.
#[derive(Debug)]
pub struct Negotiated {
    /// The authenticated user.
    pub user: String,
    /// The user has the `impersonator` tag: its publishes may claim another `user_id`.
    pub impersonator: bool,
    /// The vhost opened.
    pub vhost: String,
    /// Highest channel number.
    pub channel_max: u16,
    /// Largest frame.
    pub frame_max: u32,
    /// Heartbeat interval in seconds, 0 for none.
    pub heartbeat: u16,
    /// The client understands `basic.cancel` from the server.
    pub consumer_cancel_notify: bool,
    /// The client understands `connection.blocked` and `connection.unblocked`.
    pub connection_blocked: bool,
    /// The connection counted against the vhost's and the user's limits.
    pub ticket: warren_broker::ConnectionTicket,
}

/// Why the handshake ended without a connection.
#[derive(Debug)]
pub enum HandshakeEnd {
    /// The peer went away or sent something that is answered by closing the socket.
    Dropped(String),
    /// An AMQP error to report with `connection.close` before closing.
    Refused(AmqpError),
}

impl From<std::io::Error> for HandshakeEnd {
    fn from(e: std::io::Error) -> Self {
        HandshakeEnd::Dropped(e.to_string())
    }
}

impl From<AmqpError> for HandshakeEnd {
    fn from(e: AmqpError) -> Self {
        HandshakeEnd::Refused(e)
    }
}

/// Reads the next frame, buffering as needed.
pub async fn read_frame<S: Stream>(
    stream: &mut S,
    inbuf: &mut BytesMut,
    decoder: &FrameDecoder,
) -> Result<Frame, HandshakeEnd> {
    loop {
        if let Some(frame) = decoder.decode(inbuf).map_err(AmqpError::from)? {
            return Ok(frame);
        }
        if stream.read_buf(inbuf).await? == 0 {
            return Err(HandshakeEnd::Dropped("peer closed during handshake".into()));
        }
    }
}

async fn expect_method<S: Stream>(
    stream: &mut S,
    inbuf: &mut BytesMut,
    decoder: &FrameDecoder,
    expected: &str,
) -> Result<Method, HandshakeEnd> {
    loop {
        match read_frame(stream, inbuf, decoder).await? {
            Frame::Heartbeat => continue,
            Frame::Method { channel: 0, method } if method.name() == expected => return Ok(method),
            Frame::Method {
                method: Method::ConnectionClose(_),
                ..
            } => {
                return Err(HandshakeEnd::Dropped(
                    "client closed during handshake".into(),
                ));
            }
            Frame::Method { method, .. } => {
                return Err(AmqpError::new(
                    ReplyCode::CommandInvalid,
                    format!("expected '{expected}', got '{}'", method.name()),
                )
                .at(method.class_id(), method.method_id())
                .into());
            }
            _ => {
                return Err(AmqpError::new(
                    ReplyCode::UnexpectedFrame,
                    "expected method frame, got non method frame instead",
                )
                .into());
            }
        }
    }
}

fn server_properties() -> FieldTable {
    let caps: FieldTable = [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ]
    .into_iter()
    .map(|c| (c, FieldValue::Bool(true)))
    .collect();
    let mut props = FieldTable::new();
    props.insert("capabilities", caps);
    props.insert("cluster_name", "warren");
    props.insert("copyright", "Copyright (c) Warren developers");
    props.insert("information", "Licensed under the MPL 2.0");
    props.insert("platform", "Rust");
    props.insert("product", "Warren");
    props.insert("version", env!("CARGO_PKG_VERSION"));
    props
}

fn negotiate(field: &str, client: u32, server: u32, min: u32) -> AmqpResult<u32> {
    let fail = |detail: &str, bound: u32| {
        AmqpError::new(
            ReplyCode::NotAllowed,
            format!("negotiated {field} = {client} is {detail} allowed value ({bound})"),
        )
        .at(10, 31)
    };
    if client != 0 && client < min {
        return Err(fail("lower than the minimum", min));
    }
    if server != 0 && (client == 0 || client > server) {
        return Err(fail("higher than the maximum", server));
    }
    Ok(if client == 0 { server } else { client })
}

/// Runs the handshake on a fresh socket.
pub async fn perform<S: Stream>(
    stream: &mut S,
    peer: SocketAddr,
    transport: &Transport,
    inbuf: &mut BytesMut,
    broker: &Broker,
    config: &Config,
) -> Result<Negotiated, HandshakeEnd> {
    // Protocol header.
    loop {
        match check_protocol_header(inbuf) {
            ProtocolHeaderCheck::Accepted => break,
            ProtocolHeaderCheck::Refused => {
                send(stream, &PROTOCOL_HEADER).await?;
                return Err(HandshakeEnd::Dropped("bad protocol header".into()));
            }
            ProtocolHeaderCheck::Incomplete => {
                if stream.read_buf(inbuf).await? == 0 {
                    return Err(HandshakeEnd::Dropped(
                        "peer closed before the protocol header".into(),
                    ));
                }
            }
        }
    }
    let _ = inbuf.split_to(PROTOCOL_HEADER.len());

    // Until tune-ok, frames are limited to the AMQP minimum frame size, as in RabbitMQ 3.10:
    // 4096 bytes including the 7-byte header and the end octet, i.e. a payload of at most
    // 4088 bytes (RabbitMQ: `frame_too_large,5329,4088` for a bigger start-ok).
    let decoder = FrameDecoder::new(PRE_TUNE_PAYLOAD_MAX);
    let mut out = BytesMut::new();
    let start = ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: server_properties(),
        mechanisms: LongStr::from(super::sasl::offered(config, transport).as_str()),
        locales: LongStr::from_static("en_US"),
    };
    encode_method(&mut out, 0, &start.into());
    send(stream, &out).await?;
    out.clear();

    let Method::ConnectionStartOk(start_ok) =
        expect_method(stream, inbuf, &decoder, "connection.start-ok").await?
    else {
        return Err(HandshakeEnd::Dropped("unreachable".into()));
    };
    let caps = match start_ok.client_properties.get("capabilities") {
        Some(FieldValue::Table(t)) => t.clone(),
        _ => FieldTable::new(),
    };
    let cap = |name: &str| matches!(caps.get(name), Some(FieldValue::Bool(true)));
    let authentication_failure_close = cap("authentication_failure_close");
    let mechanism = start_ok.mechanism.to_string();
    let login = super::sasl::login(
        &mechanism,
        start_ok.response.as_bytes(),
        config,
        transport,
        broker,
        peer.ip().is_loopback(),
    )
    // RabbitMQ's reader closes the socket without a word on these.
    .map_err(HandshakeEnd::Dropped)?;
    let user = match login {
        Ok(user) => user,
        Err(why) => {
            tracing::warn!(mechanism, "{mechanism} login refused: {why}");
            if authentication_failure_close {
                return Err(AmqpError::new(
                    ReplyCode::AccessRefused,
                    format!("Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
                )
                .into());
            }
            return Err(HandshakeEnd::Dropped("login refused".into()));
        }
    };

    let tune = ConnectionTune {
        channel_max: config.channel_max,
        frame_max: config.frame_max,
        heartbeat: config.heartbeat,
    };
    encode_method(&mut out, 0, &tune.into());
    send(stream, &out).await?;
    out.clear();

    let Method::ConnectionTuneOk(tune_ok) =
        expect_method(stream, inbuf, &decoder, "connection.tune-ok").await?
    else {
        return Err(HandshakeEnd::Dropped("unreachable".into()));
    };
    let channel_max = negotiate(
        "channel_max",
        tune_ok.channel_max.into(),
        config.channel_max.into(),
        0,
    )? as u16;
    let frame_max = negotiate(
        "frame_max",
        tune_ok.frame_max,
        config.frame_max,
        warren_codec::FRAME_MIN_SIZE,
    )?;
    let heartbeat = tune_ok.heartbeat;

    let decoder = FrameDecoder::new(frame_max);
    let Method::ConnectionOpen(open) =
        expect_method(stream, inbuf, &decoder, "connection.open").await?
    else {
        return Err(HandshakeEnd::Dropped("unreachable".into()));
    };
    let vhost = open.virtual_host.to_string();
    let Some(vh) = broker.vhost(&vhost) else {
        return Err(
            AmqpError::new(ReplyCode::NotAllowed, format!("vhost {vhost} not found"))
                .at(10, 40)
                .into(),
        );
    };
    // The vhost's and the user's `max-connections` come before the access check, as in
    // RabbitMQ's `rabbit_reader`; the ticket uncounts the connection when dropped.
    let ticket = broker
        .open_connection(&user.name, &vh)
        .map_err(|e| AmqpError::from(e).at(10, 40))?;
    if !user.vhosts.contains(&vhost) {
        tracing::warn!(user = %user.name, vhost, "vhost access refused");
        return Err(AmqpError::new(
            ReplyCode::NotAllowed,
            format!("access to vhost '{vhost}' refused for user '{}'", user.name),
        )
        .at(10, 40)
        .into());
    }
    encode_method(&mut out, 0, &ConnectionOpenOk.into());
    send(stream, &out).await?;

    Ok(Negotiated {
        impersonator: user.tags.iter().any(|t| t == "impersonator"),
        user: user.name,
        vhost,
        channel_max,
        frame_max,
        heartbeat,
        consumer_cancel_notify: cap("consumer_cancel_notify"),
        connection_blocked: cap("connection.blocked"),
        ticket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tune_values_follow_rabbitmq_negotiation() {
        assert_eq!(negotiate("frame_max", 4096, 131_072, 4096), Ok(4096));
        assert_eq!(
            negotiate("frame_max", 0, 131_072, 4096).map_err(|e| e.code),
            Err(ReplyCode::NotAllowed)
        );
        assert_eq!(
            negotiate("frame_max", 200_000, 131_072, 4096).map_err(|e| e.code),
            Err(ReplyCode::NotAllowed)
        );
        assert_eq!(
            negotiate("frame_max", 100, 131_072, 4096).map_err(|e| e.code),
            Err(ReplyCode::NotAllowed)
        );
        assert_eq!(negotiate("channel_max", 0, 0, 0), Ok(0));
    }
}
