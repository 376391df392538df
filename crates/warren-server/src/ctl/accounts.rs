//! Users, vhosts and permissions over the management API, with rabbitmqctl's banners and
//! refusals (`User "bob" already exists`, `Virtual host 'v' does not exist`).

use serde_json::{Map, Value, json};

use super::client::{Client, seg};
use super::output::{Format, columns, objects};
use super::{CtlCommand, CtlError};

/// Runs `command` if it is an account command; `Ok(false)` when it is not one.
pub fn run(
    client: &Client,
    format: &Format,
    command: &CtlCommand,
    out: &mut String,
) -> Result<bool, CtlError> {
    match command {
        CtlCommand::AddUser { user, password } => {
            format.banner(out, &format!("Adding user \"{user}\" ..."));
            if client.get(&format!("/api/users/{}", seg(user)))?.status == 200 {
                return Err(CtlError::Refused(format!("User \"{user}\" already exists")));
            }
            client
                .put(
                    &format!("/api/users/{}", seg(user)),
                    &json!({"password": password, "tags": ""}),
                )?
                .ok()?;
            format.banner(
                out,
                "Done. Don't forget to grant the user permissions to some virtual hosts! See 'rabbitmqctl help set_permissions' to learn more.",
            );
        }
        CtlCommand::DeleteUser { user } => {
            format.banner(out, &format!("Deleting user \"{user}\" ..."));
            let reply = client.delete(&format!("/api/users/{}", seg(user)), &[])?;
            if reply.status == 404 {
                return Err(no_such_user(user));
            }
            reply.ok()?;
        }
        CtlCommand::ChangePassword { user, password } => {
            format.banner(out, &format!("Changing password for user \"{user}\" ..."));
            let existing = existing_user(client, user)?;
            let tags = existing.get("tags").cloned().unwrap_or(json!([]));
            client
                .put(
                    &format!("/api/users/{}", seg(user)),
                    &json!({"password": password, "tags": tags_text(&tags)}),
                )?
                .ok()?;
        }
        CtlCommand::SetUserTags { user, tags } => {
            format.banner(
                out,
                &format!(
                    "Setting tags for user \"{user}\" to [{}] ...",
                    tags.join(", ")
                ),
            );
            let existing = existing_user(client, user)?;
            // The stored hash goes back unchanged: the API has no "tags only" update.
            let mut body = json!({"tags": tags.join(",")});
            for key in ["password_hash", "hashing_algorithm"] {
                if let Some(v) = existing.get(key) {
                    body[key] = v.clone();
                }
            }
            client
                .put(&format!("/api/users/{}", seg(user)), &body)?
                .ok()?;
        }
        CtlCommand::ListUsers => {
            format.banner(out, "Listing users ...");
            let rows: Vec<Map<String, Value>> = objects(client.get("/api/users")?.ok()?)
                .into_iter()
                .map(|mut u| {
                    let name = u.remove("name").unwrap_or(Value::Null);
                    let tags = match u.remove("tags") {
                        // RabbitMQ before 3.9 sent tags as one comma-separated string.
                        Some(Value::String(s)) => {
                            json!(s.split(',').filter(|t| !t.is_empty()).collect::<Vec<_>>())
                        }
                        Some(v) => v,
                        None => json!([]),
                    };
                    Map::from_iter([("user".to_string(), name), ("tags".to_string(), tags)])
                })
                .collect();
            format.table(out, &["user".into(), "tags".into()], &rows);
        }
        CtlCommand::AddVhost { vhost } => {
            format.banner(out, &format!("Adding vhost \"{vhost}\" ..."));
            client
                .put(&format!("/api/vhosts/{}", seg(vhost)), &json!({}))?
                .ok()?;
        }
        CtlCommand::DeleteVhost { vhost } => {
            format.banner(out, &format!("Deleting vhost \"{vhost}\" ..."));
            let reply = client.delete(&format!("/api/vhosts/{}", seg(vhost)), &[])?;
            if reply.status == 404 {
                return Err(CtlError::NoSuchVhost(vhost.clone()));
            }
            reply.ok()?;
        }
        CtlCommand::ListVhosts { columns: asked } => {
            format.banner(out, "Listing vhosts ...");
            let cols = columns(
                asked,
                &["name"],
                &["name", "description", "tags", "tracing", "cluster_state"],
            )?;
            let rows = objects(client.get("/api/vhosts")?.ok()?);
            format.table(out, &cols, &rows);
        }
        CtlCommand::SetPermissions {
            vhost,
            user,
            configure,
            write,
            read,
        } => {
            format.banner(
                out,
                &format!("Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."),
            );
            let reply = client.put(
                &format!("/api/permissions/{}/{}", seg(vhost), seg(user)),
                &json!({"configure": configure, "write": write, "read": read}),
            )?;
            if reply.status == 400 && reply.reason() == "vhost_or_user_not_found" {
                return Err(which_is_missing(client, vhost, user)?);
            }
            reply.ok()?;
        }
        CtlCommand::ClearPermissions { vhost, user } => {
            format.banner(
                out,
                &format!("Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."),
            );
            let reply = client.delete(
                &format!("/api/permissions/{}/{}", seg(vhost), seg(user)),
                &[],
            )?;
            // RabbitMQ clears a permission that is not there without complaint, but not one of
            // a missing user or vhost.
            if reply.status == 404 {
                return match which_is_missing(client, vhost, user)? {
                    CtlError::Api { .. } => Ok(true),
                    e => Err(e),
                };
            }
            reply.ok()?;
        }
        CtlCommand::ListPermissions { vhost } => {
            format.banner(
                out,
                &format!("Listing permissions for vhost \"{vhost}\" ..."),
            );
            let reply = client.get(&format!("/api/vhosts/{}/permissions", seg(vhost)))?;
            if reply.status == 404 {
                return Err(CtlError::NoSuchVhost(vhost.clone()));
            }
            let rows: Vec<Map<String, Value>> = objects(reply.ok()?)
                .into_iter()
                .map(|mut p| {
                    let user = p.remove("user").unwrap_or(Value::Null);
                    p.insert("user".into(), user);
                    p
                })
                .collect();
            let cols = ["user", "configure", "write", "read"].map(String::from);
            format.table(out, &cols, &rows);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn no_such_user(user: &str) -> CtlError {
    CtlError::Refused(format!("User \"{user}\" does not exist"))
}

/// The user's record, or rabbitmqctl's "does not exist".
fn existing_user(client: &Client, user: &str) -> Result<Map<String, Value>, CtlError> {
    let reply = client.get(&format!("/api/users/{}", seg(user)))?;
    if reply.status == 404 {
        return Err(no_such_user(user));
    }
    match reply.ok()? {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

/// Whether the vhost or the user is the missing one, as rabbitmqctl reports it; an
/// [`CtlError::Api`] 404 when both exist.
fn which_is_missing(client: &Client, vhost: &str, user: &str) -> Result<CtlError, CtlError> {
    if client.get(&format!("/api/vhosts/{}", seg(vhost)))?.status == 404 {
        return Ok(CtlError::NoSuchVhost(vhost.to_string()));
    }
    if client.get(&format!("/api/users/{}", seg(user)))?.status == 404 {
        // rabbitmqctl's permission commands name the user without quotes.
        return Ok(CtlError::Refused(format!("User {user} does not exist")));
    }
    Ok(CtlError::Api {
        status: 404,
        reason: "Not Found".into(),
    })
}

/// Tags as the API's PUT takes them: one comma-separated string.
fn tags_text(tags: &Value) -> String {
    match tags {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}
