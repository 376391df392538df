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

    /// Requires `access` to a queue or exchange, as the AMQP method the endpoint stands for
    /// checks it (RabbitMQ runs those endpoints through `rabbit_channel` as the user, so the
    /// permission table of docs/security.md applies; administrators included). A refusal is 401
    /// `not_authorised` with `Access refused.` for the endpoints RabbitMQ answers through
    /// `direct_request` (declare, delete, bind, purge), with the channel's 403 text for `get`;
    /// a refused publish is 400 `403 ACCESS_REFUSED - ...` (the channel closes under
    /// `with_channel`'s publish): `refusal_text` says which.
    pub fn require_access(
        &self,
        vhost: &str,
        access: warren_broker::Access,
        kind: Resource,
        name: &str,
        refusal_text: Refusal,
    ) -> Result<(), ApiError> {
        let checked = match kind {
            Resource::Exchange => {
                String::from_utf8_lossy(warren_broker::checked_exchange_name(name.as_bytes()))
                    .into_owned()
            }
            Resource::Queue => name.to_string(),
        };
        let permitted = self
            .0
            .vhosts
            .get(vhost)
            .is_some_and(|p| p.permits(access, checked.as_bytes()));
        if permitted {
            return Ok(());
        }
        let text = format!(
            "ACCESS_REFUSED - access to {} '{checked}' in vhost '{vhost}' refused for user '{}'",
            kind.word(),
            self.0.name
        );
        Err(match refusal_text {
            Refusal::AccessRefused => ApiError::NotAuthorised("Access refused.".into()),
            Refusal::ChannelText => ApiError::NotAuthorised(text),
            Refusal::ChannelClosed => ApiError::BadRequest(format!("403 {text}")),
        })
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

/// What a permission check names, for the refusal's text.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
    /// A queue.
    Queue,
    /// An exchange (the default one is checked as `amq.default`).
    Exchange,
}

impl Resource {
    fn word(self) -> &'static str {
        match self {
            Resource::Queue => "queue",
            Resource::Exchange => "exchange",
        }
    }
}

/// How RabbitMQ words an endpoint's permission refusal.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// `Access refused.` (`rabbit_mgmt_util:direct_request`).
    AccessRefused,
    /// 401 with the channel's `ACCESS_REFUSED - access to ...` (`with_channel`: `get`).
    ChannelText,
    /// 400 `bad_request` with `403 ACCESS_REFUSED - access to ...` (`publish`: the channel is
    /// closed by the refusal, which RabbitMQ reports as a bad request with the code).
    ChannelClosed,
}
