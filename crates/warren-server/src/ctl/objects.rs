//! Queues, exchanges, bindings, connections and policies over the management API, listed in
//! rabbitmqctl's columns.

use serde_json::{Map, Value, json};

use super::client::{Client, seg};
use super::output::{Format, columns, objects};
use super::{CtlCommand, CtlError};

/// rabbitmqctl's `list_queues` info keys (the ones the API has no field for print empty).
const QUEUE_KEYS: &[&str] = &[
    "name",
    "durable",
    "auto_delete",
    "arguments",
    "policy",
    "pid",
    "owner_pid",
    "exclusive",
    "exclusive_consumer_pid",
    "exclusive_consumer_tag",
    "messages_ready",
    "messages_unacknowledged",
    "messages",
    "messages_ready_ram",
    "messages_unacknowledged_ram",
    "messages_ram",
    "messages_persistent",
    "message_bytes",
    "message_bytes_ready",
    "message_bytes_unacknowledged",
    "message_bytes_ram",
    "message_bytes_persistent",
    "head_message_timestamp",
    "disk_reads",
    "disk_writes",
    "consumers",
    "consumer_utilisation",
    "consumer_capacity",
    "memory",
    "slave_pids",
    "synchronised_slave_pids",
    "state",
    "type",
    "leader",
    "members",
    "online",
];

const EXCHANGE_KEYS: &[&str] = &[
    "name",
    "type",
    "durable",
    "auto_delete",
    "internal",
    "arguments",
    "policy",
];

const BINDING_KEYS: &[&str] = &[
    "source_name",
    "source_kind",
    "destination_name",
    "destination_kind",
    "routing_key",
    "arguments",
];

const CONNECTION_KEYS: &[&str] = &[
    "pid",
    "name",
    "port",
    "host",
    "peer_port",
    "peer_host",
    "ssl",
    "peer_cert_subject",
    "peer_cert_issuer",
    "peer_cert_validity",
    "state",
    "channels",
    "protocol",
    "auth_mechanism",
    "user",
    "vhost",
    "timeout",
    "frame_max",
    "channel_max",
    "client_properties",
    "recv_oct",
    "recv_cnt",
    "send_oct",
    "send_cnt",
    "send_pend",
    "connected_at",
];

/// Runs `command` if it is about queues, exchanges, bindings, connections or policies;
/// `Ok(false)` when it is not.
pub fn run(
    client: &Client,
    format: &Format,
    command: &CtlCommand,
    out: &mut String,
) -> Result<bool, CtlError> {
    match command {
        CtlCommand::ListQueues {
            vhost,
            columns: asked,
        } => {
            let cols = columns(asked, &["name", "messages"], QUEUE_KEYS)?;
            format.banner(out, "Timeout: 60.0 seconds ...");
            format.banner(out, &format!("Listing queues for vhost {vhost} ..."));
            let rows = list(client, &format!("/api/queues/{}", seg(vhost)))?;
            format.table(out, &cols, &rows);
        }
        CtlCommand::ListExchanges {
            vhost,
            columns: asked,
        } => {
            let cols = columns(asked, &["name", "type"], EXCHANGE_KEYS)?;
            format.banner(out, &format!("Listing exchanges for vhost {vhost} ..."));
            let rows = list(client, &format!("/api/exchanges/{}", seg(vhost)))?;
            format.table(out, &cols, &rows);
        }
        CtlCommand::ListBindings {
            vhost,
            columns: asked,
        } => {
            let cols = columns(asked, BINDING_KEYS, BINDING_KEYS)?;
            format.banner(out, &format!("Listing bindings for vhost {vhost}..."));
            let rows: Vec<Map<String, Value>> =
                list(client, &format!("/api/bindings/{}", seg(vhost)))?
                    .into_iter()
                    .map(binding_row)
                    .collect();
            format.table(out, &cols, &rows);
        }
        CtlCommand::ListConnections { columns: asked } => {
            let cols = columns(
                asked,
                &["user", "peer_host", "peer_port", "state"],
                CONNECTION_KEYS,
            )?;
            format.banner(out, "Listing connections ...");
            let rows = list(client, "/api/connections")?;
            format.table(out, &cols, &rows);
        }
        CtlCommand::CloseConnection { name, reason } => {
            format.banner(
                out,
                &format!("Closing connection {name}, reason: {reason}..."),
            );
            let reply = client.delete(
                &format!("/api/connections/{}", seg(name)),
                &[("x-reason", reason)],
            )?;
            if reply.status == 404 {
                return Err(CtlError::Refused(format!("Connection '{name}' not found")));
            }
            reply.ok()?;
        }
        CtlCommand::PurgeQueue { vhost, queue } => {
            format.banner(
                out,
                &format!("Purging queue '{queue}' in vhost '{vhost}' ..."),
            );
            let reply = client.delete(
                &format!("/api/queues/{}/{}/contents", seg(vhost), seg(queue)),
                &[],
            )?;
            if reply.status == 404 {
                return Err(CtlError::Refused("not_found".into()));
            }
            reply.ok()?;
        }
        CtlCommand::DeleteQueue {
            vhost,
            if_empty,
            if_unused,
            queue,
        } => delete_queue(client, format, out, vhost, queue, *if_empty, *if_unused)?,
        CtlCommand::SetPolicy {
            vhost,
            priority,
            apply_to,
            name,
            pattern,
            definition,
        } => {
            format.banner(
                out,
                &format!(
                    "Setting policy \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" for vhost \"{vhost}\" ..."
                ),
            );
            let definition: Value = serde_json::from_str(definition)
                .map_err(|e| CtlError::Refused(format!("JSON decoding error. Reason: {e}")))?;
            let reply = client.put(
                &format!("/api/policies/{}/{}", seg(vhost), seg(name)),
                &json!({
                    "pattern": pattern,
                    "definition": definition,
                    "priority": priority,
                    "apply-to": apply_to,
                }),
            )?;
            if reply.status == 404 && vhost_missing(client, vhost)? {
                return Err(CtlError::NoSuchVhost(vhost.clone()));
            }
            reply.ok()?;
        }
        CtlCommand::ClearPolicy { vhost, name } => {
            format.banner(
                out,
                &format!("Clearing policy \"{name}\" on vhost \"{vhost}\" ..."),
            );
            let reply =
                client.delete(&format!("/api/policies/{}/{}", seg(vhost), seg(name)), &[])?;
            if reply.status == 404 {
                if vhost_missing(client, vhost)? {
                    return Err(CtlError::NoSuchVhost(vhost.clone()));
                }
                return Err(CtlError::Refused("Parameter does not exist".into()));
            }
            reply.ok()?;
        }
        CtlCommand::ListPolicies { vhost } => {
            format.banner(out, &format!("Listing policies for vhost \"{vhost}\" ..."));
            let reply = client.get(&format!("/api/policies/{}", seg(vhost)))?;
            if reply.status == 404 && vhost_missing(client, vhost)? {
                return Err(CtlError::NoSuchVhost(vhost.clone()));
            }
            let rows: Vec<Map<String, Value>> = objects(reply.ok()?)
                .into_iter()
                .map(|mut p| {
                    // rabbitmqctl prints the definition as its JSON text.
                    if let Some(d) = p.get("definition").map(Value::to_string) {
                        p.insert("definition".into(), Value::String(d));
                    }
                    p
                })
                .collect();
            let cols = [
                "vhost",
                "name",
                "pattern",
                "apply-to",
                "definition",
                "priority",
            ]
            .map(String::from);
            format.table(out, &cols, &rows);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A list endpoint's objects; a missing vhost lists nothing, as rabbitmqctl's listings do.
fn list(client: &Client, path: &str) -> Result<Vec<Map<String, Value>>, CtlError> {
    let reply = client.get(path)?;
    if reply.status == 404 {
        return Ok(Vec::new());
    }
    Ok(objects(reply.ok()?))
}

fn vhost_missing(client: &Client, vhost: &str) -> Result<bool, CtlError> {
    Ok(client.get(&format!("/api/vhosts/{}", seg(vhost)))?.status == 404)
}

/// An API binding in rabbitmqctl's columns.
fn binding_row(b: Map<String, Value>) -> Map<String, Value> {
    let get = |k: &str| b.get(k).cloned().unwrap_or(Value::Null);
    Map::from_iter([
        ("source_name".to_string(), get("source")),
        ("source_kind".to_string(), json!("exchange")),
        ("destination_name".to_string(), get("destination")),
        ("destination_kind".to_string(), get("destination_type")),
        ("routing_key".to_string(), get("routing_key")),
        ("arguments".to_string(), get("arguments")),
    ])
}

fn delete_queue(
    client: &Client,
    format: &Format,
    out: &mut String,
    vhost: &str,
    queue: &str,
    if_empty: bool,
    if_unused: bool,
) -> Result<(), CtlError> {
    format.banner(
        out,
        &format!("Deleting queue '{queue}' on vhost '{vhost}' ..."),
    );
    let path = format!("/api/queues/{}/{}", seg(vhost), seg(queue));
    let found = client.get(&path)?;
    if found.status == 404 {
        return Err(CtlError::Refused("Queue not found".into()));
    }
    let ready = found.ok()?.get("messages_ready").and_then(Value::as_u64);
    let mut query = Vec::new();
    if if_empty {
        query.push("if-empty=true");
    }
    if if_unused {
        query.push("if-unused=true");
    }
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let reply = client.delete(&path, &[])?;
    match reply.status {
        404 => return Err(CtlError::Refused("Queue not found".into())),
        400 if if_empty || if_unused => {
            let why = if if_empty { "not empty" } else { "in use" };
            return Err(CtlError::Refused(format!("Queue is {why}")));
        }
        _ => {}
    }
    reply.ok()?;
    // Not a banner: rabbitmqctl prints the count even with --quiet.
    out.push_str(&format!(
        "Queue was successfully deleted with {} ready messages\n",
        ready.unwrap_or(0)
    ));
    Ok(())
}
