//! The 8-byte protocol header a client sends before its first frame.

/// The header for AMQP 0-9-1: `AMQP` 0 0 9 1.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// What the first bytes from a client say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHeaderCheck {
    /// Fewer than 8 bytes so far, and they agree with [`PROTOCOL_HEADER`].
    Incomplete,
    /// The client speaks AMQP 0-9-1.
    Accepted,
    /// Anything else: the spec says to answer with [`PROTOCOL_HEADER`] and close.
    Refused,
}

/// Checks the first bytes received on a connection.
pub fn check_protocol_header(received: &[u8]) -> ProtocolHeaderCheck {
    let n = received.len().min(PROTOCOL_HEADER.len());
    if received[..n] != PROTOCOL_HEADER[..n] {
        ProtocolHeaderCheck::Refused
    } else if n < PROTOCOL_HEADER.len() {
        ProtocolHeaderCheck::Incomplete
    } else {
        ProtocolHeaderCheck::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        assert_eq!(
            check_protocol_header(b"AMQ"),
            ProtocolHeaderCheck::Incomplete
        );
        assert_eq!(
            check_protocol_header(&PROTOCOL_HEADER),
            ProtocolHeaderCheck::Accepted
        );
        assert_eq!(
            check_protocol_header(b"AMQP\x00\x00\x09\x02"),
            ProtocolHeaderCheck::Refused
        );
        assert_eq!(
            check_protocol_header(b"GET / HTTP/1.1"),
            ProtocolHeaderCheck::Refused
        );
    }
}
