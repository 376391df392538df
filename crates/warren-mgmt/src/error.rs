//! The API's errors and the responses RabbitMQ gives for them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warren_broker::{AdminError, BrokerError};
use warren_codec::ReplyCode;

/// Why a request failed, each with RabbitMQ's status code and body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or wrong credentials: 401 with `WWW-Authenticate` (and RabbitMQ's body when
    /// credentials were given).
    #[error("login failed")]
    LoginFailed {
        /// Credentials were sent (RabbitMQ answers an anonymous request with no body).
        credentials_given: bool,
    },
    /// Logged in, but a tag or permission is missing: 401 `not_authorised`.
    #[error("not authorised: {0}")]
    NotAuthorised(String),
    /// 404 `Object Not Found`.
    #[error("not found")]
    NotFound,
    /// 400 `bad_request` with a reason.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 400 `bad_request` whose reason is not a string (RabbitMQ prints some Erlang terms as
    /// JSON lists).
    #[error("bad request: {0}")]
    BadRequestTerm(serde_json::Value),
    /// 400 with another `error` than `bad_request` (pagination errors).
    #[error("{error}: {reason}")]
    Custom {
        /// RabbitMQ's error name.
        error: &'static str,
        /// The reason.
        reason: String,
    },
    /// 503, for failed health checks (the body is the check's own).
    #[error("service unavailable")]
    Unavailable(serde_json::Value),
    /// 404 with another body than `Object Not Found` (`{"error":"not_found","reason":
    /// "vhost_not_found"}` for a policy PUT into a missing vhost).
    #[error("{error}: {reason}")]
    NotFoundReason {
        /// RabbitMQ's error name.
        error: &'static str,
        /// The reason.
        reason: &'static str,
    },
    /// 500 with no body: what RabbitMQ answers where its handler crashes on input it did not
    /// expect (a policy definition that is not an object).
    #[error("internal error")]
    Crash,
    /// 500: the store failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A broker refusal as RabbitMQ's API reports it: 404 for a missing object, 401
    /// `not_authorised` for access refused, 400 with the AMQP text for the rest.
    pub fn from_broker(e: BrokerError) -> Self {
        match e.code {
            ReplyCode::NotFound => ApiError::NotFound,
            ReplyCode::AccessRefused => ApiError::NotAuthorised("Access refused.".into()),
            _ => ApiError::BadRequest(e.text),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NoSuchUser(_) | AdminError::NoSuchVhost(_) => ApiError::NotFound,
            AdminError::Store(e) => ApiError::Internal(e.to_string()),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

fn body(error: &str, reason: &str) -> String {
    json!({ "error": error, "reason": reason }).to_string()
}

fn json_response(status: StatusCode, text: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::LoginFailed { credentials_given } => {
                let mut r = if credentials_given {
                    json_response(
                        StatusCode::UNAUTHORIZED,
                        body("not_authorized", "Login failed"),
                    )
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                };
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
                );
                r
            }
            // RabbitMQ spells this one with an s, the login failure with a z.
            ApiError::NotAuthorised(reason) => {
                json_response(StatusCode::UNAUTHORIZED, body("not_authorised", &reason))
            }
            ApiError::NotFound => {
                json_response(StatusCode::NOT_FOUND, body("Object Not Found", "Not Found"))
            }
            ApiError::BadRequest(reason) => {
                json_response(StatusCode::BAD_REQUEST, body("bad_request", &reason))
            }
            ApiError::BadRequestTerm(reason) => json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "reason": reason}).to_string(),
            ),
            ApiError::Custom { error, reason } => {
                json_response(StatusCode::BAD_REQUEST, body(error, &reason))
            }
            ApiError::Unavailable(v) => {
                json_response(StatusCode::SERVICE_UNAVAILABLE, v.to_string())
            }
            ApiError::NotFoundReason { error, reason } => {
                json_response(StatusCode::NOT_FOUND, body(error, reason))
            }
            ApiError::Crash => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            ApiError::Internal(reason) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                body("internal_server_error", &reason),
            ),
        }
    }
}
