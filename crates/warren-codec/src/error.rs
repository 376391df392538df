//! Decoding errors, and the reply code each one earns.
//!
//! The codec reports what is wrong with the bytes; the server decides what to send. The mapping to a
//! [`ReplyCode`] lives here because it follows from the kind of fault alone (a bad frame is always a
//! `FRAME_ERROR`), and RabbitMQ makes the same choice regardless of context.

use thiserror::Error;

use crate::ReplyCode;

/// What went wrong inside a method's argument list, a field table or a property list.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldError {
    /// The payload ended before the field did.
    #[error("payload ends inside a field")]
    Truncated,
    /// A field table or array used a type tag RabbitMQ does not define.
    #[error("unknown field value type tag {0:#04x}")]
    UnknownFieldType(u8),
    /// Tables or arrays nested deeper than [`crate::MAX_TABLE_DEPTH`].
    #[error("field tables nested deeper than {}", crate::MAX_TABLE_DEPTH)]
    TooDeep,
    /// Bytes were left over after the last field.
    #[error("{0} unexpected bytes after the last field")]
    TrailingBytes(usize),
}

/// Everything that can be wrong with bytes received from a peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The frame type octet is not method (1), header (2), body (3) or heartbeat (8).
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// The octet after the payload is not the frame-end marker 0xCE.
    #[error("frame end byte is {0:#04x}, expected 0xce")]
    BadFrameEnd(u8),
    /// A frame's payload exceeds the negotiated `frame_max`.
    #[error("frame payload of {size} bytes exceeds frame_max {frame_max}")]
    FrameTooLarge {
        /// The payload size announced in the frame header.
        size: u64,
        /// The limit in force.
        frame_max: u32,
    },
    /// A method frame whose payload is shorter than a class and method id.
    #[error("method frame of {0} bytes is too short")]
    ShortMethodFrame(usize),
    /// A class/method id pair not in AMQP 0-9-1 or RabbitMQ's extensions.
    #[error("unknown method {class_id}/{method_id}")]
    UnknownMethod {
        /// The class id received.
        class_id: u16,
        /// The method id received.
        method_id: u16,
    },
    /// A known method whose arguments do not decode.
    #[error("cannot decode {name} arguments: {reason}")]
    MalformedMethod {
        /// The method's AMQP name, e.g. `queue.declare`.
        name: &'static str,
        /// The class id of the method.
        class_id: u16,
        /// The method id of the method.
        method_id: u16,
        /// What is wrong.
        reason: FieldError,
    },
    /// A content header frame that does not decode.
    #[error("malformed content header: {0}")]
    MalformedHeader(FieldError),
    /// A content header for a class other than `basic`, the only one that carries content.
    #[error("content header for class {0}, which has no content")]
    NoContentClass(u16),
    /// A heartbeat frame on a channel other than 0.
    #[error("heartbeat frame on channel {0}")]
    HeartbeatOnChannel(u16),
}

impl CodecError {
    /// The reply code the server closes the connection with for this fault.
    ///
    /// Every codec fault is a connection error: after a framing or syntax fault the byte stream can
    /// no longer be trusted.
    pub fn reply_code(&self) -> ReplyCode {
        // RabbitMQ 3.10's choices, probed in tests/golden/rabbitmq-behaviour.md. For an unknown
        // method RabbitMQ drops the socket without a word; we say NOT_IMPLEMENTED instead.
        match self {
            CodecError::UnknownMethod { .. } => ReplyCode::NotImplemented,
            CodecError::NoContentClass(_) | CodecError::HeartbeatOnChannel(_) => {
                ReplyCode::UnexpectedFrame
            }
            _ => ReplyCode::FrameError,
        }
    }

    /// The class and method ids to report in `connection.close`, when the fault concerns a method.
    pub fn method_ids(&self) -> (u16, u16) {
        match self {
            CodecError::UnknownMethod {
                class_id,
                method_id,
            }
            | CodecError::MalformedMethod {
                class_id,
                method_id,
                ..
            } => (*class_id, *method_id),
            _ => (0, 0),
        }
    }
}
