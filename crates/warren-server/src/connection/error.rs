//! The error a frame handler returns: what to tell the client and whether the channel or the whole
//! connection closes.

use warren_broker::BrokerError;
use warren_codec::{CodecError, ReplyCode};

/// A refusal with the reply code, text and the method that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    /// The reply code; hard codes close the connection.
    pub code: ReplyCode,
    /// The reply text, `CODE_NAME - explanation`.
    pub text: String,
    /// The offending method's class id (0 when no method is to blame).
    pub class_id: u16,
    /// The offending method's method id.
    pub method_id: u16,
}

impl AmqpError {
    /// An error with the code-name prefix RabbitMQ puts on reply texts.
    pub fn new(code: ReplyCode, explanation: impl std::fmt::Display) -> Self {
        AmqpError {
            code,
            text: format!("{} - {explanation}", code.name()),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Attributes the error to a method, unless it already names one.
    pub fn at(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// True when the connection, not just the channel, must close.
    pub fn is_hard(&self) -> bool {
        self.code.is_hard_error()
    }
}

impl From<BrokerError> for AmqpError {
    fn from(e: BrokerError) -> Self {
        AmqpError::new(e.code, e.text)
    }
}

impl From<CodecError> for AmqpError {
    fn from(e: CodecError) -> Self {
        let (class_id, method_id) = e.method_ids();
        AmqpError::new(e.reply_code(), &e).at(class_id, method_id)
    }
}

/// Shorthand for handler results.
pub type AmqpResult<T = ()> = Result<T, AmqpError>;
