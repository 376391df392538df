//! `/api/policies[/{vhost}[/{name}]]` and `/api/operator-policies[/{vhost}[/{name}]]`: the
//! broker's policies as RabbitMQ's management plugin serves them (`rabbit_mgmt_wm_policy`,
//! `rabbit_mgmt_wm_operator_policy` and their list modules).
//!
//! Access: lists need a management user (a vhost in the path needs a permission on it);
//! reading or changing one policy needs `policymaker` with a permission on the vhost, or
//! `administrator`; operator policies need `administrator`. Validation errors are RabbitMQ's
//! texts, HTML-escaped for policies and not for operator policies, as RabbitMQ answers them.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Map, Value};
use warren_broker::ParameterError;
use warren_broker::policy::{Policy, PolicyKind};

use super::{State, created, no_content, ok};
use crate::auth::Authed;
use crate::json::body_object;
use crate::listing::{Params, reply_list};
use crate::{ApiError, Management};

/// RabbitMQ's `escape_html_tags`: `<`, `>` and `&` as entities.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `is_authorized_policies`: an administrator, or a policymaker with a permission on `vhost`
/// (a vhost that does not exist passes, as in RabbitMQ's `user_matches_vhost`: the handler
/// answers 404 then).
pub fn require_policymaker(
    m: &Management,
    user: &Authed,
    vhost: Option<&str>,
) -> Result<(), ApiError> {
    let tags = &user.0.tags;
    let policymaker = tags.iter().any(|t| t == "policymaker");
    let matches = |v: &str| user.0.vhosts.contains(v) || m.broker.vhost(v).is_none();
    if user.is_admin() || (policymaker && vhost.is_none_or(matches)) {
        Ok(())
    } else {
        Err(ApiError::NotAuthorised(
            "User not authorised to access object".into(),
        ))
    }
}

fn authorise_one(
    m: &Management,
    user: &Authed,
    kind: PolicyKind,
    vhost: &str,
) -> Result<(), ApiError> {
    match kind {
        PolicyKind::User => require_policymaker(m, user, Some(vhost)),
        PolicyKind::Operator => user.require_admin(),
    }
}

/// Policies as a list, sorted by priority (RabbitMQ's default sort for these lists; equal
/// priorities stay in vhost and name order).
fn list_json(m: &Management, user: &Authed, kind: PolicyKind, vhost: Option<&str>) -> Value {
    let mut items: Vec<_> = m
        .broker
        .policies(kind, vhost)
        .into_iter()
        .filter(|p| user.lists(&p.vhost))
        .collect();
    items.sort_by(|a, b| a.priority_value().total_cmp(&b.priority_value()));
    Value::Array(items.iter().map(|p| p.to_json()).collect())
}

async fn list_any(
    state: State,
    user: Authed,
    kind: PolicyKind,
    vhost: Option<String>,
    params: Params,
) -> Result<Response, ApiError> {
    if let Some(v) = &vhost {
        // A missing vhost is 404 before any permission check, as RabbitMQ answers it.
        super::vhost(&state.0, v)?;
        user.require_vhost(v)?;
    }
    let list = list_json(&state.0, &user, kind, vhost.as_deref());
    Ok(ok(reply_list(list, &params)?))
}

/// `GET /api/policies`.
pub async fn list(
    state: State,
    user: Authed,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    list_any(state, user, PolicyKind::User, None, p).await
}

/// `GET /api/policies/{vhost}`.
pub async fn list_vhost(
    state: State,
    user: Authed,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    list_any(state, user, PolicyKind::User, Some(vhost), p).await
}

/// `GET /api/operator-policies`.
pub async fn list_op(
    state: State,
    user: Authed,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    list_any(state, user, PolicyKind::Operator, None, p).await
}

/// `GET /api/operator-policies/{vhost}`.
pub async fn list_op_vhost(
    state: State,
    user: Authed,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    list_any(state, user, PolicyKind::Operator, Some(vhost), p).await
}

fn find(m: &Management, kind: PolicyKind, vhost: &str, name: &str) -> Option<Value> {
    let vh = m.broker.vhost(vhost)?;
    let set = vh.policies();
    set.get(kind, name).map(|p| p.to_json())
}

async fn show_any(
    state: State,
    user: Authed,
    kind: PolicyKind,
    vhost: String,
    name: String,
) -> Result<Response, ApiError> {
    authorise_one(&state.0, &user, kind, &vhost)?;
    find(&state.0, kind, &vhost, &name)
        .map(ok)
        .ok_or(ApiError::NotFound)
}

/// `GET /api/policies/{vhost}/{name}`.
pub async fn show(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    show_any(state, user, PolicyKind::User, vhost, name).await
}

/// `GET /api/operator-policies/{vhost}/{name}`.
pub async fn show_op(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    show_any(state, user, PolicyKind::Operator, vhost, name).await
}

/// Validates and sets a policy from a request or definitions body (`pattern` and
/// `definition` required, `priority` and `apply-to` optional), answering as RabbitMQ does.
pub fn set_policy(
    m: &Management,
    kind: PolicyKind,
    vhost: &str,
    name: &str,
    body: &Map<String, Value>,
) -> Result<bool, ApiError> {
    if m.broker.vhost(vhost).is_none() {
        return Err(ApiError::NotFoundReason {
            error: "not_found",
            reason: "vhost_not_found",
        });
    }
    let missing: Vec<String> = ["pattern", "definition"]
        .iter()
        .filter(|k| !body.contains_key(**k))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::BadRequest(format!("[{}]", missing.join(","))));
    }
    let definition = &body["definition"];
    let apply_to = body.get("apply-to");
    // RabbitMQ's handler crashes on these before validating (`maps:to_list/1` of a
    // non-map, `~s` of a number).
    if !definition.is_object() || apply_to.is_some_and(|a| !a.is_string() && !a.is_null()) {
        return Err(ApiError::Crash);
    }
    let policy = Policy::parse(
        kind,
        vhost,
        name,
        &body["pattern"],
        definition,
        body.get("priority"),
        apply_to,
    )
    .map_err(|e| {
        let text = e.to_string();
        ApiError::BadRequest(match kind {
            PolicyKind::User => escape_html(&text),
            PolicyKind::Operator => text,
        })
    })?;
    m.broker
        .set_policy_live(kind, policy)
        .map_err(parameter_error)
}

/// A runtime parameter refusal as the API reports it.
pub fn parameter_error(e: ParameterError) -> ApiError {
    match e {
        ParameterError::NoSuchVhost => ApiError::NotFoundReason {
            error: "not_found",
            reason: "vhost_not_found",
        },
        ParameterError::Invalid(e) => ApiError::BadRequest(escape_html(&e.to_string())),
        ParameterError::Refused(text) => ApiError::BadRequest(escape_html(&text)),
        ParameterError::Store(e) => ApiError::Internal(e.to_string()),
    }
}

async fn put_any(
    state: State,
    user: Authed,
    kind: PolicyKind,
    vhost: String,
    name: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorise_one(&state.0, &user, kind, &vhost)?;
    let b = body_object(&body)?;
    Ok(created(set_policy(&state.0, kind, &vhost, &name, &b)?))
}

/// `PUT /api/policies/{vhost}/{name}`.
pub async fn put(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    put_any(state, user, PolicyKind::User, vhost, name, body).await
}

/// `PUT /api/operator-policies/{vhost}/{name}`.
pub async fn put_op(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    put_any(state, user, PolicyKind::Operator, vhost, name, body).await
}

async fn remove_any(
    state: State,
    user: Authed,
    kind: PolicyKind,
    vhost: String,
    name: String,
) -> Result<Response, ApiError> {
    authorise_one(&state.0, &user, kind, &vhost)?;
    match state.0.broker.clear_policy_live(kind, &vhost, &name) {
        Ok(true) => Ok(no_content()),
        Ok(false) | Err(ParameterError::NoSuchVhost) => Err(ApiError::NotFound),
        Err(e) => Err(parameter_error(e)),
    }
}

/// `DELETE /api/policies/{vhost}/{name}`.
pub async fn remove(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    remove_any(state, user, PolicyKind::User, vhost, name).await
}

/// `DELETE /api/operator-policies/{vhost}/{name}`.
pub async fn remove_op(
    state: State,
    user: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    remove_any(state, user, PolicyKind::Operator, vhost, name).await
}
