//! The container files (`docker/Dockerfile`, `docker/compose.yaml`, `docker/warren.toml`)
//! checked against the code they depend on, without a container engine (CI has none; the full
//! build-and-run proof is `docker/build-local.sh`): the binary the builder builds exists, every
//! `WARREN_*` variable the image sets is a configuration field and gives the intended
//! configuration, the exposed ports and the volume are the configuration's, the example file
//! loads, and the `HEALTHCHECK` command, run as the image would run it, passes against a
//! running broker and fails against a stopped one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use warren_server::config::Config;

fn repo_file(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// The Dockerfile's instructions, continuation lines joined and comments dropped.
fn instructions() -> Vec<String> {
    let text = repo_file("docker/Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The instructions of the stage `FROM ... AS name`, without its `FROM`.
fn stage(name: &str) -> Vec<String> {
    let all = instructions();
    let start = all
        .iter()
        .position(|i| i.starts_with("FROM ") && i.ends_with(&format!(" AS {name}")))
        .unwrap_or_else(|| panic!("no stage {name}"));
    all[start + 1..]
        .iter()
        .take_while(|i| !i.starts_with("FROM "))
        .cloned()
        .collect()
}

/// The arguments of the instructions named `name` in the image's common stage (`base`: all
/// but the binary).
fn runtime(name: &str) -> Vec<String> {
    stage("base")
        .iter()
        .filter_map(|i| i.strip_prefix(&format!("{name} ")))
        .map(str::to_string)
        .collect()
}

/// `ENV A=1 B=2` of the image as pairs.
fn image_env() -> Vec<(String, String)> {
    runtime("ENV")
        .iter()
        .flat_map(|line| {
            line.split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn healthcheck_command() -> Vec<String> {
    let hc = runtime("HEALTHCHECK");
    assert_eq!(hc.len(), 1, "{hc:?}");
    let cmd = &hc[0][hc[0].find("CMD ").unwrap() + 4..];
    serde_json::from_str(cmd).unwrap()
}

#[test]
fn the_builder_builds_the_warren_binary_with_the_locked_dependencies() {
    let builder = stage("builder").join("\n");
    assert!(
        builder.contains("cargo build --release --locked --bin warren")
            && builder.contains("target/release/warren /out/warren"),
        "{builder}"
    );
    // The default (last) stage and `--target prebuilt` are `base` plus the binary, in the
    // same place.
    let all = instructions();
    let last = all.iter().rposition(|i| i.starts_with("FROM ")).unwrap();
    assert_eq!(all[last], "FROM base AS runtime");
    assert_eq!(
        stage("runtime"),
        vec!["COPY --from=builder /out/warren /usr/local/bin/warren".to_string()]
    );
    assert_eq!(
        stage("prebuilt"),
        vec!["COPY warren /usr/local/bin/warren".to_string()]
    );
    // `warren` is the binary's name (this test's own CARGO_BIN_EXE_warren would not exist
    // otherwise) and the entry point.
    assert!(std::path::Path::new(env!("CARGO_BIN_EXE_warren")).exists());
    assert_eq!(runtime("ENTRYPOINT"), vec![r#"["warren"]"#.to_string()]);
    assert_eq!(runtime("USER"), vec!["warren:warren".to_string()]);
}

#[test]
fn every_variable_the_image_sets_is_a_configuration_field() {
    let env = image_env();
    assert!(!env.is_empty());
    let (known, unknown) = Config::environment(env.clone().into_iter());
    assert!(unknown.is_empty(), "not configuration fields: {unknown:?}");
    assert_eq!(known.len(), env.len());
}

#[test]
fn the_image_configuration_binds_everywhere_keeps_data_in_the_volume_and_lets_guest_in() {
    let mut cmd = common::warren_binary();
    cmd.env_remove("WARREN_MANAGEMENT_PORT")
        .env_remove("WARREN_PROMETHEUS_PORT");
    for (k, v) in image_env() {
        cmd.env(k, v);
    }
    let out = cmd.arg("--print-config").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("ignoring"), "{err}");
    let config: Config = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let volume = runtime("VOLUME");
    assert_eq!(volume, vec![r#"["/var/lib/warren"]"#.to_string()]);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/warren"));
    assert!(config.bind.is_unspecified());
    // As RabbitMQ's official image (`loopback_users.guest = false`).
    assert!(!config.loopback_only_default_user);
    // The exposed ports are the configuration's defaults (5671 is AMQP over TLS).
    let exposed: Vec<u16> = runtime("EXPOSE")
        .join(" ")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    for port in [
        config.port,
        config.management_port,
        config.prometheus_port,
        5671,
    ] {
        assert!(exposed.contains(&port), "{port} not in EXPOSE {exposed:?}");
    }
}

#[test]
fn an_empty_image_variable_lets_the_mounted_file_decide() {
    let dir = common::fresh_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("warren.toml");
    std::fs::write(&file, "data_dir = \"/srv/warren\"\n").unwrap();
    let mut cmd = common::warren_binary();
    for (k, v) in image_env() {
        cmd.env(k, v);
    }
    let out = cmd
        .env("WARREN_CONFIG", &file)
        .env("WARREN_DATA_DIR", "")
        .arg("--print-config")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("data_dir = \"/srv/warren\""), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_example_configuration_file_loads() {
    let example = repo_file("docker/warren.toml");
    let config: Config = toml::from_str(&example).unwrap();
    config.validate().unwrap();
}

#[test]
fn compose_uses_the_image_volume_ports_and_healthcheck() {
    let compose = repo_file("docker/compose.yaml");
    for needle in [
        "dockerfile: docker/Dockerfile",
        "warren-data:/var/lib/warren",
        "./warren.toml:/etc/warren/warren.toml:ro",
        "WARREN_CONFIG: /etc/warren/warren.toml",
        "\"5672:5672\"",
        "\"15672:15672\"",
        "\"15692:15692\"",
    ] {
        assert!(compose.contains(needle), "compose.yaml lacks {needle:?}");
    }
    // The same command as the image's HEALTHCHECK.
    let mut test = vec!["CMD".to_string()];
    test.extend(healthcheck_command());
    let line = format!("test: {}", serde_json::to_string(&test).unwrap());
    assert!(
        compose.contains(&line.replace(",", ", ")),
        "compose.yaml lacks {line}"
    );
    // Every variable compose sets is a configuration field or the file's name.
    let vars = compose
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter(|(k, _)| k.starts_with("WARREN_"))
        .map(|(k, _)| (k.to_string(), String::new()));
    let (_, unknown) = Config::environment(vars);
    assert!(unknown.is_empty(), "{unknown:?}");
}

#[tokio::test]
async fn the_healthcheck_command_passes_against_a_serving_broker_and_fails_once_it_stops() {
    let server = common::start().await;
    let command = healthcheck_command();
    assert_eq!(command[0], "warren");
    let run = |port: u16, api: u16| {
        let mut cmd = common::warren_binary();
        for (k, v) in image_env() {
            cmd.env(k, v);
        }
        cmd.env("WARREN_PORT", port.to_string())
            .env("WARREN_MANAGEMENT_PORT", api.to_string())
            .args(&command[1..]);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let port = server.addr().port();
    let api = server.management_addr().unwrap().port();
    let out = run(port, api).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    server.shutdown().await.unwrap();
    let out = run(port, api).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
