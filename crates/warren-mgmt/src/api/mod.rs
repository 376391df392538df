//! The routes: one module per endpoint family, named by its path under `/api`.

mod bindings;
mod connections;
pub(crate) mod definitions;
mod definitions_access;
mod exchanges;
mod health;
pub(crate) mod overview;
mod parameters;
mod parameters_limits;
mod permissions;
pub(crate) mod policies;
mod policy_definitions;
mod queues;
mod topic_permissions;
mod user_limits;
mod users;
mod vhost_limits;
mod vhosts;
mod warren;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::Value;
use warren_broker::VHost;

use crate::auth::Authed;
use crate::{ApiError, Management};

/// Shared state as handlers take it.
pub type State = axum::extract::State<Arc<Management>>;

/// Every route of the API. Unknown paths answer RabbitMQ's 404 body; a known path with another
/// method gets 405 with `allow` (axum's method router).
pub fn routes() -> Router<Arc<Management>> {
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/whoami", get(overview::whoami))
        .route("/api/cluster-name", get(overview::cluster_name))
        .route("/api/nodes", get(overview::nodes))
        .route("/api/nodes/{node}", get(overview::node))
        .route("/api/vhosts", get(vhosts::list))
        .route(
            "/api/vhosts/{vhost}",
            get(vhosts::show).put(vhosts::put).delete(vhosts::remove),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(permissions::of_vhost),
        )
        .route("/api/users", get(users::list))
        .route(
            "/api/users/without-permissions",
            get(users::without_permissions),
        )
        .route("/api/users/bulk-delete", post(users::bulk_delete))
        .route(
            "/api/users/{user}",
            get(users::show).put(users::put).delete(users::remove),
        )
        .route("/api/users/{user}/permissions", get(permissions::of_user))
        .route("/api/permissions", get(permissions::list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permissions::show)
                .put(permissions::put)
                .delete(permissions::remove),
        )
        .route("/api/queues", get(queues::list))
        .route("/api/queues/{vhost}", get(queues::list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::show).put(queues::put).delete(queues::remove),
        )
        .route("/api/queues/{vhost}/{name}/contents", delete(queues::purge))
        .route("/api/queues/{vhost}/{name}/get", post(queues::get_messages))
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(bindings::of_queue),
        )
        .route("/api/exchanges", get(exchanges::list))
        .route("/api/exchanges/{vhost}", get(exchanges::list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(exchanges::show)
                .put(exchanges::put)
                .delete(exchanges::remove),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(exchanges::publish),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(bindings::of_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(bindings::of_destination),
        )
        .route("/api/bindings", get(bindings::list))
        .route("/api/bindings/{vhost}", get(bindings::list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}",
            get(bindings::between).post(bindings::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}/{props}",
            get(bindings::show).delete(bindings::remove),
        )
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{name}",
            get(connections::show).delete(connections::close),
        )
        .route(
            "/api/connections/{name}/channels",
            get(connections::channels_of),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::of_vhost),
        )
        .route("/api/channels", get(connections::channels))
        .route("/api/channels/{name}", get(connections::channel))
        .route(
            "/api/vhosts/{vhost}/channels",
            get(connections::channels_of_vhost),
        )
        .route("/api/consumers", get(connections::consumers))
        .route("/api/consumers/{vhost}", get(connections::consumers_vhost))
        .route("/api/aliveness-test/{vhost}", get(health::aliveness))
        .route("/api/health/checks/alarms", get(health::alarms))
        .route("/api/health/checks/local-alarms", get(health::local_alarms))
        .route(
            "/api/health/checks/virtual-hosts",
            get(health::virtual_hosts),
        )
        .route(
            "/api/health/checks/port-listener/{port}",
            get(health::port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(health::protocol_listener),
        )
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(health::ok_check),
        )
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(health::ok_check),
        )
        .route(
            "/api/health/checks/certificate-expiration/{n}/{unit}",
            get(health::ok_check),
        )
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .merge(limit_routes())
        .route("/api/policies", get(policies::list))
        .route("/api/policies/{vhost}", get(policies::list_vhost))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::show)
                .put(policies::put)
                .delete(policies::remove),
        )
        .route("/api/operator-policies", get(policies::list_op))
        .route(
            "/api/operator-policies/{vhost}",
            get(policies::list_op_vhost),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(policies::show_op)
                .put(policies::put_op)
                .delete(policies::remove_op),
        )
        .route("/api/parameters", get(parameters::list))
        .route(
            "/api/parameters/{component}",
            get(parameters::list_component),
        )
        .route(
            "/api/parameters/{component}/{vhost}",
            get(parameters::list_vhost),
        )
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(parameters::show)
                .put(parameters::put)
                .delete(parameters::remove),
        )
        .route("/api/global-parameters", get(parameters::list_global))
        .route(
            "/api/global-parameters/{name}",
            get(parameters::show_global)
                .put(parameters::put_global)
                .delete(parameters::remove_global),
        )
        // Warren's extensions (docs/management-api.md, "Warren extensions").
        .route(
            "/api/warren/vm-memory-high-watermark",
            get(warren::get_watermark).put(warren::put_watermark),
        )
        .route(
            "/api/warren/disk-free-limit",
            get(warren::get_disk_free_limit).put(warren::put_disk_free_limit),
        )
        .route(
            "/api/warren/tls/reload",
            axum::routing::post(warren::reload_tls),
        )
        .fallback(not_found)
}

/// Vhost limits, user limits and topic permissions (kept apart to keep merges small).
fn limit_routes() -> Router<Arc<Management>> {
    Router::new()
        .route("/api/vhost-limits", get(vhost_limits::list))
        .route("/api/vhost-limits/{vhost}", get(vhost_limits::of_vhost))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(vhost_limits::put).delete(vhost_limits::remove),
        )
        .route("/api/user-limits", get(user_limits::list))
        .route("/api/user-limits/{user}", get(user_limits::of_user))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(user_limits::put).delete(user_limits::remove),
        )
        .route("/api/topic-permissions", get(topic_permissions::list))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(topic_permissions::show)
                .put(topic_permissions::put)
                .delete(topic_permissions::remove),
        )
        .route(
            "/api/users/{user}/topic-permissions",
            get(topic_permissions::of_user),
        )
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(topic_permissions::of_vhost),
        )
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The vhost of that name, or 404.
pub fn vhost(m: &Management, name: &str) -> Result<Arc<VHost>, ApiError> {
    m.broker.vhost(name).ok_or(ApiError::NotFound)
}

/// The prologue of every per-vhost endpoint: the vhost (404 when unknown), if `user` may use
/// it (401 "User not authorised to access virtual host" otherwise), in RabbitMQ's order.
pub fn readable_vhost(m: &Management, user: &Authed, name: &str) -> Result<Arc<VHost>, ApiError> {
    let vh = vhost(m, name)?;
    user.require_vhost(name)?;
    Ok(vh)
}

/// A JSON body with status 200.
pub fn ok(v: Value) -> Response {
    Json(v).into_response()
}

/// 201 for a new object, 204 for an existing one, as RabbitMQ answers PUT.
pub fn created(new: bool) -> Response {
    if new {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// 204.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `amq.default` is how the API names the default exchange (`""` in AMQP).
pub fn exchange_name(path_name: &str) -> &str {
    if path_name == "amq.default" {
        ""
    } else {
        path_name
    }
}
