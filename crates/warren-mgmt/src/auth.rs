//! HTTP Basic authentication against the broker's users, and RabbitMQ's tag rules.
//!
//! Tags: `administrator` may do everything; `monitoring` sees every vhost's objects and the
//! node; `policymaker` and `management` see the vhosts they have permissions on. A user with
//! none of these tags may not use the API. Users in `loopback_users` (`guest`) log in only from
//! a loopback address, over HTTP as over AMQP.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use warren_broker::User;

use crate::{ApiError, Management, base64};

/// An authenticated user allowed to use the API.
#[derive(Debug, Clone)]
pub struct Authed(pub User);

const MANAGEMENT_TAGS: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];

impl Authed {
    fn has(&self, tag: &str) -> bool {
        self.0.tags.iter().any(|t| t == tag)
    }

    /// Whether the user is an administrator.
    pub fn is_admin(&self) -> bool {
        self.has("administrator")
    }

    /// Requires the `administrator` tag.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::NotAuthorised("Not administrator user".into()))
        }
    }

    /// Requires `monitoring` (or `administrator`).
    pub fn require_monitor(&self) -> Result<(), ApiError> {
        if self.is_admin() || self.has("monitoring") {
            Ok(())
        } else {
            Err(ApiError::NotAuthorised("Not monitor user".into()))
        }
    }

    /// Whether the user is a monitor (`monitoring` or `administrator`): sees every vhost and
    /// every user's connections.
    pub fn is_monitor(&self) -> bool {
        self.is_admin() || self.has("monitoring")
    }

    /// Whether `/api/vhosts` shows this vhost to the user.
    pub fn sees_vhost(&self, vhost: &str) -> bool {
        self.is_monitor() || self.0.vhosts.contains(vhost)
    }

    /// Whether listings across vhosts (`/api/queues`, `/api/exchanges`, ...) show this vhost's
    /// objects: administrators see all, everyone else only vhosts they have permissions on
    /// (RabbitMQ's `filter_vhost`; monitors included).
    pub fn lists(&self, vhost: &str) -> bool {
        self.is_admin() || self.0.vhosts.contains(vhost)
    }

    /// Requires permission on `vhost`: every per-vhost endpoint, administrators included, as
    /// RabbitMQ's `is_authorized_vhost`.
    pub fn require_vhost(&self, vhost: &str) -> Result<(), ApiError> {
        if self.0.vhosts.contains(vhost) {
            Ok(())
        } else {
            Err(ApiError::NotAuthorised(
                "User not authorised to access virtual host".into(),
            ))
        }
    }
}

/// `user:password` from an `Authorization: Basic ...` header.
fn credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64::decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl FromRequestParts<Arc<Management>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Management>,
    ) -> Result<Self, Self::Rejection> {
        let given = parts.headers.contains_key(header::AUTHORIZATION);
        let failed = ApiError::LoginFailed {
            credentials_given: given,
        };
        let Some((name, password)) = credentials(parts) else {
            return Err(failed);
        };
        // No peer address (a router used without connect info, in tests) counts as remote.
        let loopback = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|c| c.0.ip().is_loopback());
        let Some(user) = state.broker.authenticate(&name, &password, loopback) else {
            return Err(failed);
        };
        let authed = Authed(user);
        if !MANAGEMENT_TAGS.iter().any(|t| authed.has(t)) {
            return Err(ApiError::NotAuthorised("Not management user".into()));
        }
        Ok(authed)
    }
}
