//! Node-wide commands: definitions import and export, the memory watermark (Warren's
//! `/api/warren/vm-memory-high-watermark`), `status` and `await_startup`.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::Client;
use super::output::Format;
use super::{CtlCommand, CtlError, CtlOptions};

/// Runs a node-wide command (the last group: anything else is a bug in the dispatch).
pub fn run(
    client: &Client,
    format: &Format,
    options: &CtlOptions,
    command: &CtlCommand,
    out: &mut String,
) -> Result<(), CtlError> {
    match command {
        CtlCommand::ImportDefinitions { file } => {
            let text = if file == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| CtlError::Io(format!("cannot read standard input: {e}")))?;
                text
            } else {
                std::fs::read_to_string(file).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        CtlError::Validation(format!("Bad argument: File {file} does not exist"))
                    }
                    _ => CtlError::Io(format!("cannot read {file}: {e}")),
                })?
            };
            let where_from = if file == "-" {
                "standard input".to_string()
            } else {
                format!("a file at \"{file}\"")
            };
            format.banner(
                out,
                &format!("Importing definitions in JSON from {where_from} ..."),
            );
            client.post("/api/definitions", text)?.ok()?;
            format.banner(
                out,
                "Successfully started definition import. This process is asynchronous and can take some time.",
            );
        }
        CtlCommand::ExportDefinitions { file } => {
            let defs = client.get("/api/definitions")?.ok()?;
            if file == "-" {
                // rabbitmqctl prints the document alone, so it can be piped.
                out.push_str(&defs.to_string());
            } else {
                format.banner(
                    out,
                    &format!("Exporting definitions in JSON to a file at \"{file}\" ..."),
                );
                std::fs::File::create(file)
                    .and_then(|mut f| f.write_all(defs.to_string().as_bytes()))
                    .map_err(|e| CtlError::Io(format!("cannot write {file}: {e}")))?;
            }
        }
        CtlCommand::SetVmMemoryHighWatermark { value } => {
            let (body, shown) = watermark_request(value)?;
            let node = node_name(client)?;
            format.banner(
                out,
                &format!("Setting memory threshold on {node} to {shown} ..."),
            );
            let reply = client.put("/api/warren/vm-memory-high-watermark", &body)?;
            if matches!(reply.status, 404 | 405) {
                return Err(CtlError::Refused(
                    "this broker has no /api/warren/vm-memory-high-watermark (a Warren extension of the management API)".into(),
                ));
            }
            reply.ok()?;
        }
        CtlCommand::SetDiskFreeLimit { value } => {
            let (body, shown) = disk_limit_request(value)?;
            let node = node_name(client)?;
            format.banner(
                out,
                &format!("Setting disk free limit on {node} to {shown} ..."),
            );
            let reply = client.put("/api/warren/disk-free-limit", &body)?;
            if matches!(reply.status, 404 | 405) {
                return Err(CtlError::Refused(
                    "this broker has no /api/warren/disk-free-limit (a Warren extension of the management API)".into(),
                ));
            }
            reply.ok()?;
        }
        CtlCommand::ReloadCertificates => {
            let node = node_name(client)?;
            format.banner(
                out,
                &format!("Reloading TLS certificates on node {node} ..."),
            );
            let reply = client.post("/api/warren/tls/reload", String::new())?;
            if matches!(reply.status, 404 | 405) {
                return Err(CtlError::Refused(
                    "this broker has no /api/warren/tls/reload (a Warren extension of the management API)".into(),
                ));
            }
            let reloaded = reply.ok()?;
            let names: Vec<&str> = reloaded
                .get("reloaded")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if names.is_empty() {
                out.push_str("No TLS listener is configured.\n");
            } else {
                out.push_str(&format!("Reloaded: {}\n", names.join(", ")));
            }
        }
        CtlCommand::Status => status(client, format, out)?,
        CtlCommand::AwaitStartup => await_startup(client, options.timeout)?,
        _ => {
            return Err(CtlError::Validation(format!(
                "{command:?} has no online implementation"
            )));
        }
    }
    Ok(())
}

fn node_name(client: &Client) -> Result<String, CtlError> {
    let overview = client.get("/api/overview")?.ok()?;
    Ok(overview
        .get("node")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string())
}

/// The request body for `<fraction>` or `absolute <value>`, and the value as rabbitmqctl
/// echoes it.
pub fn watermark_request(args: &[String]) -> Result<(Value, String), CtlError> {
    match args {
        [fraction] => {
            let f: f64 = fraction
                .parse()
                .ok()
                .filter(|f: &f64| *f > 0.0 && *f <= 1.0)
                .ok_or_else(|| {
                    CtlError::Validation(
                        "Bad argument: The threshold should be a fraction between 0.0 and 1.0"
                            .into(),
                    )
                })?;
            Ok((json!({"relative": f}), fraction.clone()))
        }
        [word, value] if word == "absolute" => {
            let bytes = parse_bytes(value).ok_or_else(|| {
                CtlError::Validation(format!(
                    "Bad argument: The threshold should be an integer and optional unit, got {value}"
                ))
            })?;
            Ok((json!({"absolute": bytes}), format!("{value} bytes")))
        }
        _ => Err(CtlError::Validation(
            "Bad argument: expected <fraction> or absolute <value>".into(),
        )),
    }
}

/// The request body for `<disk_limit>` or `mem_relative <fraction>`, and the value as
/// rabbitmqctl's banner shows it.
pub fn disk_limit_request(args: &[String]) -> Result<(Value, String), CtlError> {
    let bad = || CtlError::Validation("Bad argument".into());
    match args {
        [word] if word == "mem_relative" => {
            Err(CtlError::Validation("Not enough arguments".into()))
        }
        [limit] => {
            let bytes = crate::config::parse_information_unit(limit).ok_or_else(bad)?;
            Ok((json!({"absolute": bytes}), format!("{limit} bytes")))
        }
        [word, fraction] if word == "mem_relative" => {
            let f: f64 = fraction
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite() && *f >= 0.0)
                .ok_or_else(bad)?;
            Ok((
                json!({"mem_relative": f}),
                format!("{fraction} times the total RAM"),
            ))
        }
        _ => Err(CtlError::Validation("Too many arguments".into())),
    }
}

/// `1024`, `512MiB`, `2GB`, `1k`: RabbitMQ's memory units (`k`/`KiB`, `M`/`MiB`, `G`/`GiB` are
/// binary; `kB`, `MB`, `GB` decimal).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" | "KiB" | "kiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor).filter(|b| *b > 0)
}

/// A short `status`: rabbitmqctl's section names with what the API knows.
fn status(client: &Client, format: &Format, out: &mut String) -> Result<(), CtlError> {
    let overview = client.get("/api/overview")?.ok()?;
    let text = |v: &Value, k: &str| {
        v.get(k)
            .map(|x| super::output::cell(Some(x)))
            .unwrap_or_default()
    };
    let node = text(&overview, "node");
    format.banner(out, &format!("Status of node {node} ..."));
    let _ = writeln!(out, "Runtime\n");
    let _ = writeln!(
        out,
        "RabbitMQ version: {}",
        text(&overview, "rabbitmq_version")
    );
    let _ = writeln!(
        out,
        "Product: {} {}",
        text(&overview, "product_name"),
        text(&overview, "product_version")
    );
    let _ = writeln!(out, "Node name: {node}\n");
    let alarms = client.get("/api/health/checks/alarms")?;
    let _ = writeln!(out, "Alarms\n");
    if alarms.status == 200 {
        let _ = writeln!(out, "(none)\n");
    } else {
        let resources: Vec<&str> = alarms
            .body
            .get("alarms")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("resource").and_then(Value::as_str))
            .collect();
        for resource in resources {
            let name = if resource == "disk space" {
                "Free disk space"
            } else {
                "Memory"
            };
            let _ = writeln!(out, "{name} alarm on node {node}\n");
        }
    }
    let watermark = client.get("/api/warren/vm-memory-high-watermark")?;
    if watermark.status == 200 {
        let w = watermark.body;
        let limit = w.get("mem_limit").and_then(Value::as_u64);
        let setting = match (
            w.pointer("/setting/relative"),
            w.pointer("/setting/absolute"),
        ) {
            (Some(r), _) => format!("{r} of available memory"),
            (None, Some(a)) => format!("{a} bytes"),
            _ => String::new(),
        };
        let _ = writeln!(out, "Memory\n");
        let gb = |b: u64| format!("{:.4} gb", b as f64 / 1e9);
        let _ = writeln!(
            out,
            "Memory high watermark setting: {setting}, computed to: {}\n",
            limit.map(gb).unwrap_or_else(|| "none".into())
        );
    }
    let _ = writeln!(out, "Listeners\n");
    for l in overview
        .get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "Interface: {}, port: {}, protocol: {}",
            text(l, "ip_address"),
            text(l, "port"),
            text(l, "protocol")
        );
    }
    Ok(())
}

/// Polls `/api/overview` until it answers 200 or `timeout_secs` pass.
fn await_startup(client: &Client, timeout_secs: u64) -> Result<(), CtlError> {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        let error = match client.get("/api/overview") {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => CtlError::Api {
                status: r.status,
                reason: r.reason(),
            },
            Err(CtlError::Refused(m)) => return Err(CtlError::Refused(m)),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(error);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_are_rabbitmqs() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("2GB"), Some(2_000_000_000));
        assert_eq!(parse_bytes("1G"), Some(1 << 30));
        assert_eq!(parse_bytes("3kB"), Some(3000));
        assert_eq!(parse_bytes("0"), None);
        assert_eq!(parse_bytes("12XB"), None);
        assert_eq!(parse_bytes("GB"), None);
    }

    #[test]
    fn a_disk_limit_is_bytes_or_a_multiple_of_memory() {
        let (body, shown) = disk_limit_request(&["50MB".into()]).unwrap();
        assert_eq!(
            (body, shown.as_str()),
            (json!({"absolute": 50_000_000}), "50MB bytes")
        );
        let (body, shown) = disk_limit_request(&["mem_relative".into(), "1.5".into()]).unwrap();
        assert_eq!(
            (body, shown.as_str()),
            (json!({"mem_relative": 1.5}), "1.5 times the total RAM")
        );
        assert!(disk_limit_request(&["mem_relative".into()]).is_err());
        assert!(disk_limit_request(&["mem_relative".into(), "-1".into()]).is_err());
        assert!(disk_limit_request(&["5TB".into()]).is_err());
        assert!(disk_limit_request(&["1".into(), "2".into()]).is_err());
    }

    #[test]
    fn a_watermark_is_a_fraction_or_absolute() {
        let (body, shown) = watermark_request(&["0.5".into()]).unwrap();
        assert_eq!((body, shown.as_str()), (json!({"relative": 0.5}), "0.5"));
        let (body, shown) = watermark_request(&["absolute".into(), "2GB".into()]).unwrap();
        assert_eq!(
            (body, shown.as_str()),
            (json!({"absolute": 2_000_000_000u64}), "2GB bytes")
        );
        let err = watermark_request(&["2".into()]).unwrap_err();
        assert_eq!(
            err.report(),
            "Error (argument validation): Bad argument: The threshold should be a fraction between 0.0 and 1.0"
        );
        assert!(watermark_request(&["relative".into(), "1".into()]).is_err());
    }
}
