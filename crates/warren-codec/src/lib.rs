//! The AMQP 0-9-1 wire format: frames, every method of the spec and RabbitMQ's extensions, field
//! tables, basic properties and reply codes.
//!
//! Pure: no tokio, no sockets, no broker state. The decoder decodes and does not judge; whether a
//! well-formed method is allowed where it arrived is the server's business. Method structs are
//! generated from `spec/` by `cargo xtask codegen`; framing, primitives, field tables and
//! properties are written by hand.

mod error;
mod field_table;
mod frame;
mod generated;
mod properties;
mod protocol_header;
mod strings;
pub mod wire;

pub use error::{CodecError, FieldError};
pub use field_table::{Decimal, FieldTable, FieldValue, MAX_TABLE_DEPTH};
pub use frame::{
    FRAME_HEADER_SIZE, FRAME_OVERHEAD, Frame, FrameDecoder, FrameHead, encode_body, encode_content,
    encode_header, encode_heartbeat, encode_method,
};
pub use generated::*;
pub use properties::{BasicProperties, BrokerFields, ContentHeader, RawProperties};
pub use protocol_header::{PROTOCOL_HEADER, ProtocolHeaderCheck, check_protocol_header};
pub use strings::{LongStr, SHORT_STR_MAX, ShortStr};
