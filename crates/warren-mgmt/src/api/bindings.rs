//! `/api/bindings...`, and the binding lists of a queue and of an exchange.
//!
//! Every binding list is RabbitMQ 3.10's `reply_list`: sorted and cut to `columns` as asked,
//! never paged (`page`, `page_size` and `name` are ignored; the reply stays an array).
//!
//! A binding is named in paths by its properties key, RabbitMQ's `routing_key` (URL-quoted),
//! or `~` for an empty key without arguments, or `key~hash` when it has arguments. RabbitMQ's
//! hash is Erlang's `phash2` of the argument term, which Warren cannot reproduce; Warren's is
//! its own stable hash of the arguments, so a key read from Warren's listing works with Warren
//! (docs/management-api.md).

use crate::auth::{Refusal, Resource};
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use warren_broker::Access;
use warren_broker::VHost;
use warren_codec::{FieldTable, ShortStr};
use warren_router::Destination;

use super::{State, exchange_name, no_content, ok, readable_vhost};
use crate::auth::Authed;
use crate::json::{body_object, json_to_table, str_field, table_to_json};
use crate::listing::{Params, reply_list_unpaged};
use crate::{ApiError, base64};

/// One binding as listed.
struct Listed {
    source: String,
    destination: String,
    queue: bool,
    routing_key: String,
    arguments: FieldTable,
}

impl Listed {
    fn props_key(&self) -> String {
        props_key(&self.routing_key, &self.arguments)
    }

    fn to_json(&self, vhost: &str) -> Value {
        json!({
            "source": self.source,
            "vhost": vhost,
            "destination": self.destination,
            "destination_type": if self.queue { "queue" } else { "exchange" },
            "routing_key": self.routing_key,
            "arguments": table_to_json(&self.arguments),
            "properties_key": self.props_key(),
        })
    }
}

/// RabbitMQ's `quote_plus`, then `~` as `%7E`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn args_hash(args: &FieldTable) -> String {
    // FNV-1a over the arguments' JSON: stable across runs and builds.
    let text = table_to_json(args).to_string();
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    base64::encode(&h.to_be_bytes())
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn props_key(routing_key: &str, args: &FieldTable) -> String {
    match (routing_key.is_empty(), args.is_empty()) {
        (true, true) => "~".into(),
        (_, true) => quote(routing_key),
        _ => format!("{}~{}", quote(routing_key), quote(&args_hash(args))),
    }
}

/// The key as it arrives in a path: axum has already percent-decoded it.
fn decoded_props_key(routing_key: &str, args: &FieldTable) -> String {
    match (routing_key.is_empty(), args.is_empty()) {
        (true, true) => "~".into(),
        (_, true) => routing_key.into(),
        _ => format!("{routing_key}~{}", args_hash(args)),
    }
}

/// Every binding of a vhost: the default exchange's implicit ones first, as RabbitMQ lists.
fn all_of(vh: &VHost) -> Vec<Listed> {
    let topology = vh.topology();
    let mut out: Vec<Listed> = Vec::new();
    let mut names: Vec<String> = topology.queues().map(|q| q.name.to_string()).collect();
    names.sort();
    for q in names {
        out.push(Listed {
            source: String::new(),
            destination: q.clone(),
            queue: true,
            routing_key: q,
            arguments: FieldTable::default(),
        });
    }
    let mut explicit: Vec<Listed> = topology
        .bindings()
        .map(|b| {
            let (destination, queue) = match b.destination {
                Destination::Queue(q) => (q.to_string(), true),
                Destination::Exchange(x) => (x.to_string(), false),
            };
            Listed {
                source: b.source.to_string(),
                destination,
                queue,
                routing_key: b.routing_key.to_string(),
                arguments: b.arguments.clone(),
            }
        })
        .collect();
    explicit.sort_by(|a, b| {
        (&a.source, &a.destination, &a.routing_key).cmp(&(
            &b.source,
            &b.destination,
            &b.routing_key,
        ))
    });
    out.extend(explicit);
    out
}

fn render(vh: &VHost, keep: impl Fn(&Listed) -> bool) -> Value {
    Value::Array(
        all_of(vh)
            .iter()
            .filter(|b| keep(b))
            .map(|b| b.to_json(&vh.name))
            .collect(),
    )
}

/// `GET /api/bindings`.
pub async fn list(
    state: State,
    user: Authed,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for vh in state.0.broker.vhosts() {
        if user.lists(&vh.name) {
            out.extend(all_of(&vh).iter().map(|b| b.to_json(&vh.name)));
        }
    }
    Ok(ok(reply_list_unpaged(Value::Array(out), &params)?))
}

/// `GET /api/bindings/{vhost}`.
pub async fn list_vhost(
    state: State,
    user: Authed,
    Path(v): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    Ok(ok(reply_list_unpaged(render(&vh, |_| true), &params)?))
}

/// `GET /api/queues/{vhost}/{name}/bindings`.
pub async fn of_queue(
    state: State,
    user: Authed,
    Path((v, q)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    vh.topology()
        .queue(q.as_bytes())
        .ok_or(ApiError::NotFound)?;
    Ok(ok(reply_list_unpaged(
        render(&vh, |b| b.queue && b.destination == q),
        &params,
    )?))
}

fn check_exchange(vh: &VHost, name: &str) -> Result<(), ApiError> {
    vh.topology()
        .exchange(name.as_bytes())
        .map(|_| ())
        .ok_or(ApiError::NotFound)
}

/// `GET /api/exchanges/{vhost}/{name}/bindings/source`.
pub async fn of_source(
    state: State,
    user: Authed,
    Path((v, x)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    let x = exchange_name(&x);
    check_exchange(&vh, x)?;
    Ok(ok(reply_list_unpaged(
        render(&vh, |b| b.source == x),
        &params,
    )?))
}

/// `GET /api/exchanges/{vhost}/{name}/bindings/destination`.
pub async fn of_destination(
    state: State,
    user: Authed,
    Path((v, x)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    let x = exchange_name(&x);
    check_exchange(&vh, x)?;
    Ok(ok(reply_list_unpaged(
        render(&vh, |b| !b.queue && b.destination == x),
        &params,
    )?))
}

fn kind_is_queue(kind: &str) -> Result<bool, ApiError> {
    match kind {
        "q" => Ok(true),
        "e" => Ok(false),
        _ => Err(ApiError::NotFound),
    }
}

fn check_ends(vh: &VHost, source: &str, queue: bool, dest: &str) -> Result<(), ApiError> {
    check_exchange(vh, source)?;
    let topology = vh.topology();
    let found = if queue {
        topology.queue(dest.as_bytes()).is_some()
    } else {
        topology.exchange(dest.as_bytes()).is_some()
    };
    if found {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `GET /api/bindings/{vhost}/e/{source}/{q|e}/{dest}`.
pub async fn between(
    state: State,
    user: Authed,
    Path((v, source, kind, dest)): Path<(String, String, String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    let queue = kind_is_queue(&kind)?;
    let source = exchange_name(&source);
    check_ends(&vh, source, queue, &dest)?;
    let listed = render(&vh, |b| {
        b.source == source && b.queue == queue && b.destination == dest
    });
    Ok(ok(reply_list_unpaged(listed, &params)?))
}

/// `POST /api/bindings/{vhost}/e/{source}/{q|e}/{dest}`: 201 with `Location` naming the new
/// binding by its properties key.
pub async fn create(
    state: State,
    user: Authed,
    Path((v, source, kind, dest)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    let queue = kind_is_queue(&kind)?;
    let source = exchange_name(&source);
    check_ends(&vh, source, queue, &dest)?;
    require_bind_access(&user, &v, source, queue, &dest)?;
    let b = body_object(&body)?;
    let routing_key = str_field(&b, "routing_key").unwrap_or("");
    if routing_key.len() > 255 {
        // An AMQP short string, as every binding key declared over AMQP.
        return Err(ApiError::BadRequest(
            "routing_key longer than 255 bytes".into(),
        ));
    }
    let arguments = json_to_table(b.get("arguments"))?;
    let (src, dst, key) = (
        ShortStr::from(source),
        ShortStr::from(dest.as_str()),
        ShortStr::from(routing_key),
    );
    if queue {
        vh.bind_queue(
            &dst,
            &src,
            &key,
            &arguments,
            crate::api::queues::API_CONNECTION,
        )
    } else {
        vh.bind_exchange(&dst, &src, &key, &arguments)
    }
    .map_err(ApiError::from_broker)?;
    let location = format!("{}/{}", quote(&dest), props_key(routing_key, &arguments));
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, value);
    }
    Ok(r)
}

/// `queue.bind`/`exchange.bind` (and unbind) permissions: write on the destination, then read
/// on the source, as `rabbit_channel:binding_action`.
fn require_bind_access(
    user: &Authed,
    vhost: &str,
    source: &str,
    queue: bool,
    dest: &str,
) -> Result<(), ApiError> {
    let kind = if queue {
        Resource::Queue
    } else {
        Resource::Exchange
    };
    user.require_access(vhost, Access::Write, kind, dest, Refusal::AccessRefused)?;
    user.require_access(
        vhost,
        Access::Read,
        Resource::Exchange,
        source,
        Refusal::AccessRefused,
    )
}

fn find_by_props(vh: &VHost, source: &str, queue: bool, dest: &str, props: &str) -> Option<Listed> {
    all_of(vh).into_iter().find(|b| {
        b.source == source
            && b.queue == queue
            && b.destination == dest
            && decoded_props_key(&b.routing_key, &b.arguments) == props
    })
}

/// `GET /api/bindings/{vhost}/e/{source}/{q|e}/{dest}/{props}`.
pub async fn show(
    state: State,
    user: Authed,
    Path((v, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    let queue = kind_is_queue(&kind)?;
    let b = find_by_props(&vh, exchange_name(&source), queue, &dest, &props)
        .ok_or(ApiError::NotFound)?;
    Ok(ok(b.to_json(&v)))
}

/// `DELETE /api/bindings/{vhost}/e/{source}/{q|e}/{dest}/{props}`.
pub async fn remove(
    state: State,
    user: Authed,
    Path((v, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> Result<Response, ApiError> {
    let vh = readable_vhost(&state.0, &user, &v)?;
    let queue = kind_is_queue(&kind)?;
    let b = find_by_props(&vh, exchange_name(&source), queue, &dest, &props)
        .ok_or(ApiError::NotFound)?;
    require_bind_access(&user, &v, &b.source, queue, &dest)?;
    let (src, dst, key) = (
        ShortStr::from(b.source.as_str()),
        ShortStr::from(b.destination.as_str()),
        ShortStr::from(b.routing_key.as_str()),
    );
    if queue {
        vh.unbind_queue(
            &dst,
            &src,
            &key,
            &b.arguments,
            crate::api::queues::API_CONNECTION,
        )
    } else {
        vh.unbind_exchange(&dst, &src, &key, &b.arguments)
    }
    .map_err(ApiError::from_broker)?;
    Ok(no_content())
}
