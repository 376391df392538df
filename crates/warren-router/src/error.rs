//! The router's one error type. Each variant knows the AMQP reply code the broker should close
//! the channel (or, for 503, the connection) with, and its `Display` is RabbitMQ 3.10's reply text
//! word for word, so the broker maps it once without building its own messages.

use warren_codec::ShortStr;

/// AMQP 0-9-1 `access-refused`.
pub const ACCESS_REFUSED: u16 = 403;
/// AMQP 0-9-1 `not-found`.
pub const NOT_FOUND: u16 = 404;
/// AMQP 0-9-1 `precondition-failed`.
pub const PRECONDITION_FAILED: u16 = 406;
/// AMQP 0-9-1 `command-invalid` (a connection error).
pub const COMMAND_INVALID: u16 = 503;

/// Why a topology change or a route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// 404 NOT_FOUND: the named exchange does not exist.
    #[error("no exchange '{name}' in vhost '{vhost}'")]
    ExchangeNotFound {
        /// The exchange asked for.
        name: ShortStr,
        /// The router's virtual host.
        vhost: ShortStr,
    },
    /// 404 NOT_FOUND: the named queue does not exist.
    #[error("no queue '{name}' in vhost '{vhost}'")]
    QueueNotFound {
        /// The queue asked for.
        name: ShortStr,
        /// The router's virtual host.
        vhost: ShortStr,
    },
    /// 403 ACCESS_REFUSED: declare, delete, bind or unbind naming the default exchange.
    #[error("operation not permitted on the default exchange")]
    DefaultExchange,
    /// 403 ACCESS_REFUSED: deleting one of the predeclared `amq.*` exchanges.
    #[error("deletion of system exchange '{name}' in vhost '{vhost}' not allowed")]
    SystemExchange {
        /// The exchange asked for.
        name: ShortStr,
        /// The router's virtual host.
        vhost: ShortStr,
    },
    /// 403 ACCESS_REFUSED: declaring a new exchange whose name starts with `amq.`.
    #[error("exchange name '{name}' contains reserved prefix 'amq.*'")]
    ReservedName {
        /// The name asked for.
        name: ShortStr,
    },
    /// 403 ACCESS_REFUSED: a client publishing straight to an internal exchange.
    #[error("cannot publish to internal exchange '{name}' in vhost '{vhost}'")]
    InternalExchange {
        /// The exchange published to.
        name: ShortStr,
        /// The router's virtual host.
        vhost: ShortStr,
    },
    /// 406 PRECONDITION_FAILED: a redeclaration differs from the existing exchange.
    #[error(
        "inequivalent arg '{arg}' for exchange '{name}' in vhost '{vhost}': \
         received {received} but current is {current}"
    )]
    Inequivalent {
        /// The property or argument that differs (`type`, `durable`, `alternate-exchange`, ...).
        arg: &'static str,
        /// The exchange redeclared.
        name: ShortStr,
        /// The router's virtual host.
        vhost: ShortStr,
        /// The requested value, already quoted as RabbitMQ quotes it.
        received: Box<str>,
        /// The existing value, already quoted as RabbitMQ quotes it.
        current: Box<str>,
    },
    /// 406 PRECONDITION_FAILED: `exchange.delete` with `if-unused` on an exchange with bindings.
    #[error("exchange '{name}' in vhost '{vhost}' in use")]
    InUse {
        /// The exchange asked for.
        name: ShortStr,
        /// The router's virtual host.
        vhost: ShortStr,
    },
    /// 406 PRECONDITION_FAILED: a binding the exchange type refuses (a bad `x-match`).
    #[error("{text}")]
    InvalidBinding {
        /// RabbitMQ's text for the refusal.
        text: String,
    },
    /// 406 PRECONDITION_FAILED: an exchange argument of the wrong field type.
    #[error("invalid type '{type_name}' for arg '{arg}' in exchange '{name}' in vhost '{vhost}'")]
    InvalidArgumentType {
        /// RabbitMQ's name for the type received (`signedint`, `bool`, ...).
        type_name: &'static str,
        /// The argument.
        arg: &'static str,
        /// The exchange declared.
        name: ShortStr,
        /// The router's virtual host.
        vhost: ShortStr,
    },
    /// 503 COMMAND_INVALID (a connection error): an exchange type this broker does not have.
    #[error("unknown exchange type '{kind}'")]
    UnknownExchangeType {
        /// The type asked for.
        kind: ShortStr,
    },
}

impl RouterError {
    /// The AMQP reply code to close with (403, 404, 406 or 503).
    pub fn reply_code(&self) -> u16 {
        match self {
            RouterError::ExchangeNotFound { .. } | RouterError::QueueNotFound { .. } => NOT_FOUND,
            RouterError::DefaultExchange
            | RouterError::SystemExchange { .. }
            | RouterError::ReservedName { .. }
            | RouterError::InternalExchange { .. } => ACCESS_REFUSED,
            RouterError::Inequivalent { .. }
            | RouterError::InUse { .. }
            | RouterError::InvalidBinding { .. }
            | RouterError::InvalidArgumentType { .. } => PRECONDITION_FAILED,
            RouterError::UnknownExchangeType { .. } => COMMAND_INVALID,
        }
    }

    /// RabbitMQ's reply text for this error, exactly.
    pub fn reply_text(&self) -> String {
        self.to_string()
    }

    /// True when the error closes the connection rather than the channel.
    pub fn is_connection_error(&self) -> bool {
        self.reply_code() == COMMAND_INVALID
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_texts_match_rabbitmq() {
        let e = RouterError::ExchangeNotFound {
            name: "x".into(),
            vhost: "/".into(),
        };
        assert_eq!(e.reply_text(), "no exchange 'x' in vhost '/'");
        assert_eq!(e.reply_code(), 404);
        let q = RouterError::QueueNotFound {
            name: "q".into(),
            vhost: "/".into(),
        };
        assert_eq!(q.reply_text(), "no queue 'q' in vhost '/'");
    }

    #[test]
    fn unknown_type_is_a_connection_error() {
        let e = RouterError::UnknownExchangeType { kind: "foo".into() };
        assert_eq!(e.reply_text(), "unknown exchange type 'foo'");
        assert!(e.is_connection_error());
        assert!(!RouterError::DefaultExchange.is_connection_error());
    }
}
