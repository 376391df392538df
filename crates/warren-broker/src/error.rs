//! The domain's error: an AMQP reply code and RabbitMQ's text for it.

use std::fmt;

use warren_codec::ReplyCode;

/// A refused operation, as the client will be told: the code decides whether the channel or the
/// whole connection closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BrokerError {
    /// The reply code.
    pub code: ReplyCode,
    /// The explanation, without the code-name prefix (e.g. `no queue 'q' in vhost '/'`).
    pub text: String,
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} - {}", self.code.name(), self.text)
    }
}

impl BrokerError {
    /// An error with the given code and text.
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        BrokerError {
            code,
            text: text.into(),
        }
    }

    /// 404 NOT_FOUND.
    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotFound, text)
    }

    /// 406 PRECONDITION_FAILED.
    pub fn precondition(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::PreconditionFailed, text)
    }

    /// 403 ACCESS_REFUSED.
    pub fn access_refused(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::AccessRefused, text)
    }

    /// 405 RESOURCE_LOCKED.
    pub fn locked(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::ResourceLocked, text)
    }

    /// 530 NOT_ALLOWED.
    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotAllowed, text)
    }

    /// 540 NOT_IMPLEMENTED.
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotImplemented, text)
    }

    /// 503 COMMAND_INVALID.
    pub fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::CommandInvalid, text)
    }

    /// The reply text sent on the wire: `CODE_NAME - text`.
    pub fn reply_text(&self) -> String {
        self.to_string()
    }
}
