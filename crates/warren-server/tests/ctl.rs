//! `warren ctl` against the running broker, end to end: the `warren` binary as a client of the
//! management API, its rabbitmqctl output, and the effect of each command on AMQP clients.
//! (Each output shape was compared with `rabbitmqctl` 3.10.8 on a private RabbitMQ node.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Run;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::{BasicProperties, ConnectionProperties};
use warren_codec::Method;
use warren_server::ServerHandle;

/// `warren ctl --url <server's API> ARGS`, off the async runtime.
async fn ctl(server: &ServerHandle, args: &[&str]) -> Run {
    let url = format!("http://{}", server.management_addr().unwrap());
    ctl_raw(&[&["--url", &url], args].concat(), &[]).await
}

/// `warren ctl ARGS` with extra environment variables.
async fn ctl_raw(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = common::warren_binary();
    cmd.arg("ctl").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run(cmd).await
}

fn amqp_url(server: &ServerHandle, user: &str, pass: &str, vhost: &str) -> String {
    format!(
        "amqp://{user}:{pass}@{}/{}",
        server.addr(),
        vhost.replace('/', "%2f")
    )
}

async fn login(url: &str) -> Result<lapin::Connection, lapin::Error> {
    lapin::Connection::connect(url, ConnectionProperties::default()).await
}

#[tokio::test]
async fn a_user_added_with_ctl_logs_in_over_amqp_at_once() {
    let server = common::start().await;
    let out = ctl(&server, &["add_user", "bob", "s3cret"]).await.ok();
    assert!(out.starts_with("Adding user \"bob\" ...\n"), "{out}");
    ctl(&server, &["add_vhost", "prod"]).await.ok();
    ctl(
        &server,
        &["set_permissions", "-p", "prod", "bob", ".*", ".*", ".*"],
    )
    .await
    .ok();
    ctl(
        &server,
        &["set_user_tags", "bob", "monitoring", "management"],
    )
    .await
    .ok();
    // No restart: the running broker knows bob.
    let conn = login(&amqp_url(&server, "bob", "s3cret", "prod"))
        .await
        .unwrap();
    conn.close(200, "bye").await.unwrap();
    assert!(
        login(&amqp_url(&server, "bob", "wrong", "prod"))
            .await
            .is_err()
    );
    assert_eq!(
        ctl(&server, &["list_users", "-q"]).await.ok(),
        "user\ttags\nbob\t[monitoring, management]\nguest\t[administrator]\n"
    );
    assert_eq!(
        ctl(&server, &["list_users"]).await.ok(),
        "Listing users ...\nuser\ttags\nbob\t[monitoring, management]\nguest\t[administrator]\n"
    );
    assert_eq!(
        ctl(&server, &["list_users", "--formatter", "json"])
            .await
            .ok(),
        "[\n{\"user\":\"bob\",\"tags\":[\"monitoring\",\"management\"]}\n,{\"user\":\"guest\",\"tags\":[\"administrator\"]}\n]\n"
    );
    assert_eq!(
        ctl(&server, &["list_permissions", "-p", "prod", "-s"])
            .await
            .ok(),
        // guest created prod through the API, so it has full permissions there (RabbitMQ's rule).
        "bob\t.*\t.*\t.*\nguest\t.*\t.*\t.*\n"
    );
    // change_password keeps the tags; the old password stops working.
    ctl(&server, &["change_password", "bob", "n3w"]).await.ok();
    assert!(
        login(&amqp_url(&server, "bob", "s3cret", "prod"))
            .await
            .is_err()
    );
    login(&amqp_url(&server, "bob", "n3w", "prod"))
        .await
        .unwrap();
    assert!(
        ctl(&server, &["list_users", "-s"])
            .await
            .ok()
            .contains("bob\t[monitoring, management]\n")
    );
    // clear_permissions takes the vhost away; delete_user the user.
    ctl(&server, &["clear_permissions", "-p", "prod", "bob"])
        .await
        .ok();
    assert!(
        login(&amqp_url(&server, "bob", "n3w", "prod"))
            .await
            .is_err()
    );
    ctl(&server, &["delete_user", "bob"]).await.ok();
    assert_eq!(
        ctl(&server, &["list_vhosts", "-q"]).await.ok(),
        "name\n/\nprod\n"
    );
    ctl(&server, &["delete_vhost", "prod"]).await.ok();
    assert_eq!(ctl(&server, &["list_vhosts", "-s"]).await.ok(), "/\n");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn list_queues_shows_a_declared_queue_with_its_count() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "orders",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        ch.basic_publish(
            "",
            "orders",
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    ch.queue_bind(
        "orders",
        "amq.direct",
        "rk",
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    let mut listed = String::new();
    for _ in 0..50 {
        listed = ctl(&server, &["list_queues", "-q"]).await.ok();
        if listed == "name\tmessages\norders\t3\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed, "name\tmessages\norders\t3\n");
    assert_eq!(
        ctl(&server, &["list_queues"]).await.ok(),
        "Timeout: 60.0 seconds ...\nListing queues for vhost / ...\nname\tmessages\norders\t3\n"
    );
    assert_eq!(
        ctl(
            &server,
            &[
                "list_queues",
                "name",
                "messages",
                "consumers",
                "durable",
                "arguments",
                "-q"
            ]
        )
        .await
        .ok(),
        "name\tmessages\tconsumers\tdurable\targuments\norders\t3\t0\ttrue\t[]\n"
    );
    assert_eq!(
        ctl(
            &server,
            &["list_queues", "--formatter", "json", "name", "messages"]
        )
        .await
        .ok(),
        "[\n{\"name\":\"orders\",\"messages\":3}\n]\n"
    );
    assert_eq!(
        ctl(&server, &["list_bindings", "-q"]).await.ok(),
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments\n\
         \texchange\torders\tqueue\torders\t[]\n\
         amq.direct\texchange\torders\tqueue\trk\t[]\n"
    );
    let exchanges = ctl(&server, &["list_exchanges", "-s"]).await.ok();
    assert!(exchanges.contains("\tdirect\n"), "{exchanges}");
    assert!(exchanges.contains("amq.topic\ttopic\n"), "{exchanges}");

    // purge_queue empties it; delete_queue reports what was left.
    let out = ctl(&server, &["purge_queue", "orders"]).await.ok();
    assert_eq!(out, "Purging queue 'orders' in vhost '/' ...\n");
    assert_eq!(
        ctl(&server, &["list_queues", "-s"]).await.ok(),
        "orders\t0\n"
    );
    ch.basic_publish(
        "",
        "orders",
        BasicPublishOptions::default(),
        b"y",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let err = ctl(&server, &["delete_queue", "--if-empty", "orders"])
        .await
        .failed();
    assert!(err.contains("Queue is not empty"), "{err}");
    assert_eq!(
        ctl(&server, &["delete_queue", "orders"]).await.ok(),
        "Deleting queue 'orders' on vhost '/' ...\nQueue was successfully deleted with 1 ready messages\n"
    );
    assert_eq!(ctl(&server, &["list_queues", "-s"]).await.ok(), "");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn close_connection_closes_a_live_connection_with_320_and_the_reason() {
    let server = common::start().await;
    let mut raw = common::Raw::open(&server).await;
    let listed = ctl(
        &server,
        &["list_connections", "-s", "name", "user", "vhost", "state"],
    )
    .await
    .ok();
    let fields: Vec<&str> = listed.trim_end().split('\t').collect();
    assert_eq!(fields[1..], ["guest", "/", "running"], "{listed}");
    let name = fields[0];
    let out = ctl(&server, &["close_connection", name, "maintenance window"])
        .await
        .ok();
    assert_eq!(
        out,
        format!("Closing connection {name}, reason: maintenance window...\n")
    );
    match raw.method().await {
        Method::ConnectionClose(c) => {
            assert_eq!(c.reply_code, 320);
            assert_eq!(
                c.reply_text.to_string(),
                "CONNECTION_FORCED - maintenance window"
            );
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
    let err = ctl(
        &server,
        &["close_connection", "127.0.0.1:1 -> 127.0.0.1:2", "x"],
    )
    .await
    .failed();
    assert_eq!(
        err,
        "Error:\nConnection '127.0.0.1:1 -> 127.0.0.1:2' not found\n"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn exported_definitions_import_into_another_broker() {
    let first = common::start().await;
    ctl(&first, &["add_vhost", "shop"]).await.ok();
    ctl(&first, &["add_user", "carol", "pw"]).await.ok();
    ctl(
        &first,
        &["set_permissions", "-p", "shop", "carol", ".*", ".*", ".*"],
    )
    .await
    .ok();
    let conn = login(&amqp_url(&first, "carol", "pw", "shop"))
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "carts",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .unwrap();
    conn.close(200, "bye").await.unwrap();

    let file = common::fresh_data_dir().with_extension("json");
    let path = file.to_str().unwrap();
    let out = ctl(&first, &["export_definitions", path]).await.ok();
    assert_eq!(
        out,
        format!("Exporting definitions in JSON to a file at \"{path}\" ...\n")
    );
    let stdout = ctl(&first, &["export_definitions", "-"]).await.ok();
    let exported: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    first.shutdown().await.unwrap();

    let second = common::start().await;
    let out = ctl(&second, &["import_definitions", path]).await.ok();
    assert!(
        out.starts_with(&format!(
            "Importing definitions in JSON from a file at \"{path}\" ...\n"
        )),
        "{out}"
    );
    // carol logs in with her exported password hash and finds her durable queue.
    let conn = login(&amqp_url(&second, "carol", "pw", "shop"))
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    common::passive_queue(&ch, "carts").await.unwrap();
    conn.close(200, "bye").await.unwrap();
    let again: serde_json::Value =
        serde_json::from_str(&ctl(&second, &["export_definitions", "-"]).await.ok()).unwrap();
    for section in [
        "users",
        "vhosts",
        "permissions",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert_eq!(again[section], exported[section], "{section}");
    }
    let _ = std::fs::remove_file(&file);
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn refusals_exit_1_with_rabbitmqctls_messages() {
    let server = common::start().await;
    for (args, stdout, stderr) in [
        (
            &["add_user", "guest", "x"][..],
            "Adding user \"guest\" ...\n",
            "Error:\nUser \"guest\" already exists\n",
        ),
        (
            &["delete_user", "nobody"][..],
            "Deleting user \"nobody\" ...\n",
            "Error:\nUser \"nobody\" does not exist\n",
        ),
        (
            &["change_password", "nobody", "x"][..],
            "Changing password for user \"nobody\" ...\n",
            "Error:\nUser \"nobody\" does not exist\n",
        ),
        (
            &["delete_vhost", "nope"][..],
            "Deleting vhost \"nope\" ...\n",
            "Virtual host 'nope' does not exist\n",
        ),
        (
            &["list_permissions", "-p", "nope"][..],
            "Listing permissions for vhost \"nope\" ...\n",
            "Virtual host 'nope' does not exist\n",
        ),
        (
            &["set_permissions", "-p", "nope", "guest", ".*", ".*", ".*"][..],
            "Setting permissions for user \"guest\" in vhost \"nope\" ...\n",
            "Virtual host 'nope' does not exist\n",
        ),
        (
            &["set_permissions", "nobody", ".*", ".*", ".*"][..],
            "Setting permissions for user \"nobody\" in vhost \"/\" ...\n",
            "Error:\nUser nobody does not exist\n",
        ),
        (
            &["purge_queue", "nope"][..],
            "Purging queue 'nope' in vhost '/' ...\n",
            "Error:\nnot_found\n",
        ),
        (
            &["delete_queue", "nope"][..],
            "Deleting queue 'nope' on vhost '/' ...\n",
            "Error:\nQueue not found\n",
        ),
        (
            &["list_queues", "bogus"][..],
            "",
            "Error (argument validation): Info key(s) bogus are not supported\n",
        ),
        (
            &["set_vm_memory_high_watermark", "2"][..],
            "",
            "Error (argument validation): Bad argument: The threshold should be a fraction between 0.0 and 1.0\n",
        ),
        (
            &["import_definitions", "/nonexistent/defs.json"][..],
            "",
            "Error (argument validation): Bad argument: File /nonexistent/defs.json does not exist\n",
        ),
    ] {
        let run = ctl(&server, args).await;
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert_eq!(run.out, stdout, "{args:?}");
        assert_eq!(run.err, stderr, "{args:?}");
    }
    // Wrong credentials and an unreachable API are errors too, not panics.
    let api = format!("http://{}", server.management_addr().unwrap());
    let err = ctl_raw(&["--url", &api, "--password", "wrong", "list_users"], &[])
        .await
        .failed();
    assert!(err.contains("refused the credentials"), "{err}");
    // A user without the administrator tag is told so, not that the login failed.
    ctl(&server, &["add_user", "mon", "pw"]).await.ok();
    ctl(&server, &["set_user_tags", "mon", "monitoring"])
        .await
        .ok();
    let err = ctl_raw(
        &[
            "--url",
            &api,
            "--user",
            "mon",
            "--password",
            "pw",
            "add_vhost",
            "x",
        ],
        &[],
    )
    .await
    .failed();
    assert!(err.starts_with("Error:\nnot authorised: "), "{err}");
    server.shutdown().await.unwrap();
    let err = ctl_raw(&["--url", &api, "list_users"], &[]).await.failed();
    assert!(
        err.starts_with("Error: cannot reach the management API at"),
        "{err}"
    );
}

#[tokio::test]
async fn the_connection_comes_from_flags_or_environment() {
    let server = common::start().await;
    let port = server.management_addr().unwrap().port().to_string();
    let out = ctl_raw(
        &["--host", "127.0.0.1", "--port", &port, "list_vhosts", "-s"],
        &[],
    )
    .await
    .ok();
    assert_eq!(out, "/\n");
    let out = ctl_raw(
        &["list_vhosts", "-s"],
        &[
            ("WARREN_CTL_PORT", port.as_str()),
            ("WARREN_CTL_USER", "guest"),
            ("WARREN_CTL_PASSWORD", "guest"),
        ],
    )
    .await;
    assert_eq!(
        out.err, "",
        "WARREN_CTL_* are not configuration fields to warn about"
    );
    assert_eq!(out.ok(), "/\n");
    ctl(&server, &["await_startup"]).await.ok();
    // --offline works on a data directory, never on the API.
    let dir = common::fresh_data_dir();
    let out = ctl_raw(
        &["--offline", "list_users"],
        &[("WARREN_DATA_DIR", dir.to_str().unwrap())],
    )
    .await
    .ok();
    assert_eq!(out, "user\ttags\nguest\t[administrator]\n");
    let err = ctl_raw(
        &["--offline", "list_queues"],
        &[("WARREN_DATA_DIR", dir.to_str().unwrap())],
    )
    .await
    .failed();
    assert!(
        err.contains("list_queues needs the running broker"),
        "{err}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_memory_watermark_changes_while_running() {
    let server = common::start().await;
    let status = ctl(&server, &["status"]).await.ok();
    assert!(status.contains("Alarms\n\n(none)\n"), "{status}");
    assert!(
        status.contains("Memory high watermark setting: 0.4 of available memory"),
        "{status}"
    );
    // One byte: the process is above it at once, and the alarm follows within a sample.
    let out = ctl(&server, &["set_vm_memory_high_watermark", "absolute", "1"])
        .await
        .ok();
    assert!(
        out.starts_with("Setting memory threshold on warren@"),
        "{out}"
    );
    assert!(out.ends_with(" to 1 bytes ...\n"), "{out}");
    let mut status = String::new();
    for _ in 0..50 {
        status = ctl(&server, &["status"]).await.ok();
        if status.contains("Memory alarm on node") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(status.contains("Memory alarm on node"), "{status}");
    assert!(
        status.contains("Memory high watermark setting: 1 bytes"),
        "{status}"
    );
    ctl(&server, &["set_vm_memory_high_watermark", "0.9"])
        .await
        .ok();
    for _ in 0..50 {
        status = ctl(&server, &["status"]).await.ok();
        if status.contains("Alarms\n\n(none)\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(status.contains("Alarms\n\n(none)\n"), "{status}");
    server.shutdown().await.unwrap();
}
