//! Frames: the check-then-parse decoder and the encoders.
//!
//! The decoder first peeks at the 7-byte frame header to learn the frame's length and enforces
//! `frame_max` there, before any payload is buffered; only a whole frame is then cut off the buffer
//! (`split_to(..).freeze()`, no copy) and parsed. "Not enough bytes yet" is `Ok(None)`, and all
//! partial state stays in the caller's buffer, so any chunking of the input decodes the same.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::CodecError;
use crate::generated::{FRAME_END, Method, frame_type};
use crate::properties::{ContentHeader, RawProperties};

/// Bytes before a frame's payload: type (1), channel (2), size (4).
pub const FRAME_HEADER_SIZE: usize = 7;
/// Bytes a frame adds around its payload: the header and the frame-end octet.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_SIZE + 1;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A method frame.
    Method {
        /// The channel the method is for; 0 for the connection.
        channel: u16,
        /// The decoded method.
        method: Method,
    },
    /// A content header frame.
    Header {
        /// The channel of the content.
        channel: u16,
        /// Class, body size and the raw properties.
        header: ContentHeader,
    },
    /// A content body frame.
    Body {
        /// The channel of the content.
        channel: u16,
        /// The payload, a slice of the receive buffer.
        payload: Bytes,
    },
    /// A heartbeat frame (always on channel 0).
    Heartbeat,
}

impl Frame {
    /// The channel the frame belongs to.
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. } => *channel,
            Frame::Heartbeat => 0,
        }
    }
}

/// What the 7-byte frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// The frame type octet.
    pub kind: u8,
    /// The channel number.
    pub channel: u16,
    /// The payload size.
    pub size: u32,
}

impl FrameHead {
    /// Reads a frame header from the front of `buf`, if seven bytes are there.
    pub fn peek(buf: &[u8]) -> Option<FrameHead> {
        let head: &[u8; FRAME_HEADER_SIZE] = buf.get(..FRAME_HEADER_SIZE)?.try_into().ok()?;
        Some(FrameHead {
            kind: head[0],
            channel: u16::from_be_bytes([head[1], head[2]]),
            size: u32::from_be_bytes([head[3], head[4], head[5], head[6]]),
        })
    }

    /// The whole frame's length on the wire.
    pub fn frame_len(&self) -> u64 {
        u64::from(self.size) + FRAME_OVERHEAD as u64
    }
}

/// Decodes frames from a receive buffer, enforcing the negotiated `frame_max`.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    frame_max: u32,
}

impl FrameDecoder {
    /// A decoder that accepts frames of at most `frame_max` bytes (0 means no limit).
    pub fn new(frame_max: u32) -> Self {
        FrameDecoder { frame_max }
    }

    /// Changes the limit, e.g. after `connection.tune-ok`.
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// The limit in force.
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// Takes the next whole frame off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a frame; call again with more bytes. On
    /// `Err` the connection must be closed: the stream cannot be resynchronised.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(head) = FrameHead::peek(buf) else {
            return Ok(None);
        };
        if !matches!(
            head.kind,
            frame_type::METHOD | frame_type::HEADER | frame_type::BODY | frame_type::HEARTBEAT
        ) {
            return Err(CodecError::UnknownFrameType(head.kind));
        }
        // The spec counts frame_max over the whole frame, but RabbitMQ refuses only a payload
        // larger than frame_max; clients are tested against RabbitMQ, so we accept what it does.
        if self.frame_max != 0 && head.size > self.frame_max {
            return Err(CodecError::FrameTooLarge {
                size: u64::from(head.size),
                frame_max: self.frame_max,
            });
        }
        let len = head.frame_len();
        let Ok(len) = usize::try_from(len) else {
            return Err(CodecError::FrameTooLarge {
                size: u64::from(head.size),
                frame_max: self.frame_max,
            });
        };
        if buf.len() < len {
            buf.reserve(len - buf.len());
            return Ok(None);
        }
        let end = buf[len - 1];
        if end != FRAME_END {
            return Err(CodecError::BadFrameEnd(end));
        }
        let mut frame = buf.split_to(len).freeze();
        frame.advance(FRAME_HEADER_SIZE);
        frame.truncate(frame.len() - 1);
        parse_payload(head, frame).map(Some)
    }
}

fn parse_payload(head: FrameHead, payload: Bytes) -> Result<Frame, CodecError> {
    let channel = head.channel;
    match head.kind {
        frame_type::METHOD => {
            if payload.len() < 4 {
                return Err(CodecError::ShortMethodFrame(payload.len()));
            }
            let class_id = u16::from_be_bytes([payload[0], payload[1]]);
            let method_id = u16::from_be_bytes([payload[2], payload[3]]);
            let method = Method::decode(class_id, method_id, &payload.slice(4..))?;
            Ok(Frame::Method { channel, method })
        }
        frame_type::HEADER => {
            let header = ContentHeader::decode(&payload).map_err(CodecError::MalformedHeader)?;
            if header.class_id != crate::class::BASIC {
                return Err(CodecError::NoContentClass(header.class_id));
            }
            Ok(Frame::Header { channel, header })
        }
        frame_type::BODY => Ok(Frame::Body { channel, payload }),
        _ => {
            if channel != 0 {
                return Err(CodecError::HeartbeatOnChannel(channel));
            }
            Ok(Frame::Heartbeat)
        }
    }
}

/// Starts a frame: writes the header with a zero size, returning where the payload starts.
fn begin(buf: &mut BytesMut, kind: u8, channel: u16) -> usize {
    buf.put_u8(kind);
    buf.put_u16(channel);
    buf.put_u32(0);
    buf.len()
}

/// Ends a frame begun at `start`: fills in the size and writes the frame-end octet.
fn end(buf: &mut BytesMut, start: usize) {
    let size = (buf.len() - start) as u32;
    buf[start - 4..start].copy_from_slice(&size.to_be_bytes());
    buf.put_u8(FRAME_END);
}

/// Writes a method frame.
pub fn encode_method(buf: &mut BytesMut, channel: u16, method: &Method) {
    let start = begin(buf, frame_type::METHOD, channel);
    method.encode(buf);
    end(buf, start);
}

/// Writes a content header frame.
pub fn encode_header(buf: &mut BytesMut, channel: u16, header: &ContentHeader) {
    let start = begin(buf, frame_type::HEADER, channel);
    header.encode(buf);
    end(buf, start);
}

/// Writes one content body frame holding all of `payload`.
pub fn encode_body(buf: &mut BytesMut, channel: u16, payload: &[u8]) {
    buf.reserve(payload.len() + FRAME_OVERHEAD);
    let start = begin(buf, frame_type::BODY, channel);
    buf.put_slice(payload);
    end(buf, start);
}

/// Writes a heartbeat frame.
pub fn encode_heartbeat(buf: &mut BytesMut) {
    let start = begin(buf, frame_type::HEARTBEAT, 0);
    end(buf, start);
}

/// Writes a content-bearing method with its header and body, the body cut into frames that fit
/// `frame_max` (0 means no limit). An empty body sends no body frame, as the spec says.
pub fn encode_content(
    buf: &mut BytesMut,
    channel: u16,
    method: &Method,
    properties: &RawProperties,
    body: &[u8],
    frame_max: u32,
) {
    encode_method(buf, channel, method);
    let header = ContentHeader::basic(body.len() as u64, properties.clone());
    encode_header(buf, channel, &header);
    let chunk = match frame_max as usize {
        0 => usize::MAX,
        max => max.saturating_sub(FRAME_OVERHEAD).max(1),
    };
    for piece in body.chunks(chunk) {
        encode_body(buf, channel, piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::{BasicPublish, ChannelOpen};

    fn publish_bytes() -> BytesMut {
        let mut buf = BytesMut::new();
        let m = Method::BasicPublish(BasicPublish {
            exchange: "amq.direct".into(),
            routing_key: "key".into(),
            mandatory: true,
            immediate: false,
        });
        encode_content(&mut buf, 1, &m, &RawProperties::EMPTY, b"hello", 4096);
        buf
    }

    #[test]
    fn every_prefix_is_incomplete_and_the_whole_decodes() {
        let whole = publish_bytes();
        let dec = FrameDecoder::new(4096);
        let first_len = FrameHead::peek(&whole).map(|h| h.frame_len()).unwrap() as usize;
        for cut in 0..first_len {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(dec.decode(&mut part), Ok(None), "prefix of {cut} bytes");
            assert_eq!(part.len(), cut, "an incomplete frame consumes nothing");
        }
        let mut all = whole.clone();
        let mut frames = Vec::new();
        while let Some(f) = dec.decode(&mut all).unwrap() {
            frames.push(f);
        }
        assert_eq!(frames.len(), 3);
        assert!(all.is_empty());
        assert!(matches!(&frames[2], Frame::Body { payload, .. } if &payload[..] == b"hello"));
    }

    #[test]
    fn frame_max_is_enforced_from_the_header_alone() {
        let mut buf = BytesMut::new();
        buf.put_u8(frame_type::BODY);
        buf.put_u16(1);
        buf.put_u32(4096);
        let dec = FrameDecoder::new(4096);
        // A payload of exactly frame_max is accepted, as RabbitMQ does: it just needs more bytes.
        assert_eq!(dec.decode(&mut buf.clone()), Ok(None));
        buf[6] = 0x01; // size 4097
        assert_eq!(
            dec.decode(&mut buf),
            Err(CodecError::FrameTooLarge {
                size: 4097,
                frame_max: 4096
            })
        );
    }

    #[test]
    fn bad_frame_end_and_unknown_type_are_errors() {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, 1, &Method::ChannelOpen(ChannelOpen));
        let last = buf.len() - 1;
        buf[last] = 0;
        assert_eq!(
            FrameDecoder::new(0).decode(&mut buf),
            Err(CodecError::BadFrameEnd(0))
        );
        let mut buf = BytesMut::from(&[5u8, 0, 0, 0, 0, 0, 0, 0xce][..]);
        assert_eq!(
            FrameDecoder::new(0).decode(&mut buf),
            Err(CodecError::UnknownFrameType(5))
        );
    }

    #[test]
    fn body_is_split_to_fit_frame_max() {
        let mut buf = BytesMut::new();
        let body = vec![7u8; 10_000];
        let m = Method::BasicPublish(BasicPublish::default());
        encode_content(&mut buf, 1, &m, &RawProperties::EMPTY, &body, 4096);
        let dec = FrameDecoder::new(4096);
        let mut total = 0;
        let mut bodies = 0;
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            if let Frame::Body { payload, .. } = f {
                assert!(payload.len() <= 4096 - FRAME_OVERHEAD);
                total += payload.len();
                bodies += 1;
            }
        }
        assert_eq!((total, bodies), (10_000, 3));
    }

    #[test]
    fn heartbeat_on_a_channel_is_an_error() {
        let mut buf = BytesMut::from(&[8u8, 0, 3, 0, 0, 0, 0, 0xce][..]);
        assert_eq!(
            FrameDecoder::new(0).decode(&mut buf),
            Err(CodecError::HeartbeatOnChannel(3))
        );
    }
}
