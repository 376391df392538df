//! Users, vhosts and permissions: `warren ctl` (rabbitmqctl's commands) writes them to the data
//! directory, the broker loads them at start and checks logins and vhost access against them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use warren_server::ServerHandle;

/// `warren ctl ARGS` on `dir`: (exit code, stdout, stderr).
fn ctl(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = common::warren_binary()
        .arg("--data-dir")
        .arg(dir)
        .arg("ctl")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ctl_ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = ctl(dir, args);
    assert_eq!(code, 0, "warren ctl {args:?} failed: {err}");
    out
}

fn url(server: &ServerHandle, user: &str, pass: &str, vhost: &str) -> String {
    let vhost = vhost.replace('/', "%2f");
    format!("amqp://{user}:{pass}@{}/{vhost}", server.addr())
}

/// The reply code the server closed the connection with, or `None` if it opened.
async fn login(url: &str) -> Result<lapin::Connection, Option<u16>> {
    lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| common::reply_code(&e))
}

#[tokio::test]
async fn users_and_vhosts_made_with_ctl_govern_logins_after_a_restart() {
    let dir = common::fresh_data_dir();
    // A fresh directory gets RabbitMQ's first-boot defaults.
    assert_eq!(
        ctl_ok(&dir, &["list_users"]),
        "user\ttags\nguest\t[administrator]\n"
    );
    assert_eq!(ctl_ok(&dir, &["list_vhosts"]), "name\n/\n");
    // As in RabbitMQ, adding a vhost that exists succeeds.
    ctl_ok(&dir, &["add_vhost", "/"]);
    ctl_ok(&dir, &["add_user", "bob", "s3cret"]);
    ctl_ok(&dir, &["add_vhost", "prod"]);
    ctl_ok(
        &dir,
        &["set_permissions", "-p", "prod", "bob", ".*", ".*", ".*"],
    );
    ctl_ok(&dir, &["set_user_tags", "bob", "monitoring"]);
    assert_eq!(
        ctl_ok(&dir, &["list_permissions", "-p", "prod"]),
        "user\tconfigure\twrite\tread\nbob\t.*\t.*\t.*\n"
    );
    // Expressions are stored as given and listed back.
    ctl_ok(&dir, &["add_user", "carol", "pw"]);
    ctl_ok(
        &dir,
        &["set_permissions", "-p", "prod", "carol", "^c", "", "(a|b)"],
    );
    assert!(ctl_ok(&dir, &["list_permissions", "-p", "prod"]).ends_with("carol\t^c\t\t(a|b)\n"),);
    ctl_ok(&dir, &["delete_user", "carol"]);
    assert_eq!(
        ctl_ok(&dir, &["list_users"]),
        "user\ttags\nbob\t[monitoring]\nguest\t[administrator]\n"
    );

    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    // bob may use prod, with his password only; guest may not (no permission there).
    let conn = login(&url(&server, "bob", "s3cret", "prod")).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "in-prod").await.unwrap();
    conn.close(200, "bye").await.unwrap();
    assert!(login(&url(&server, "bob", "wrong", "prod")).await.is_err());
    assert_eq!(
        login(&url(&server, "guest", "guest", "prod")).await.err(),
        Some(Some(530))
    );
    // ... and bob may not open "/", where he has no permission.
    assert_eq!(
        login(&url(&server, "bob", "s3cret", "/")).await.err(),
        Some(Some(530))
    );
    login(&url(&server, "guest", "guest", "/")).await.unwrap();

    // The running broker holds the directory: ctl refuses it rather than write under it.
    let (code, _, err) = ctl(&dir, &["add_user", "carol", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("in use"), "{err}");
    server.shutdown().await.unwrap();

    ctl_ok(&dir, &["change_password", "bob", "n3w"]);
    ctl_ok(&dir, &["delete_user", "guest"]);
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    assert!(login(&url(&server, "bob", "s3cret", "prod")).await.is_err());
    login(&url(&server, "bob", "n3w", "prod")).await.unwrap();
    // guest was deleted and is not seeded again: the directory is not new.
    assert!(login(&url(&server, "guest", "guest", "/")).await.is_err());
    server.shutdown().await.unwrap();
}

#[test]
fn ctl_refuses_what_rabbitmqctl_refuses_with_a_message_and_status_1() {
    let dir = common::fresh_data_dir();
    for (args, text) in [
        (
            &["add_user", "guest", "x"][..],
            "User \"guest\" already exists",
        ),
        (
            &["delete_user", "nobody"][..],
            "User \"nobody\" does not exist",
        ),
        (
            &["delete_vhost", "nope"][..],
            "Virtual host 'nope' does not exist",
        ),
        (
            &["set_permissions", "-p", "nope", "guest", ".*", ".*", ".*"][..],
            "Virtual host 'nope' does not exist",
        ),
        (
            &["set_permissions", "guest", "(", ".*", ".*"][..],
            "invalid regular expression '('",
        ),
    ] {
        let (code, _, err) = ctl(&dir, args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(text), "{args:?}: {err}");
    }
}

/// Adds `vhost`, lets guest use it, starts the broker and opens a channel there.
async fn new_vhost_for_guest(dir: &Path, vhost: &str) -> (ServerHandle, lapin::Channel) {
    ctl_ok(dir, &["add_vhost", vhost]);
    ctl_ok(
        dir,
        &["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
    );
    let d = dir.to_path_buf();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = login(&url(&server, "guest", "guest", vhost)).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    (server, ch)
}

#[tokio::test]
async fn deleting_a_vhost_deletes_its_durable_queues() {
    let dir = common::fresh_data_dir();
    let (server, ch) = new_vhost_for_guest(&dir, "tmp").await;
    ch.queue_declare(
        "kept",
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap();
    server.shutdown().await.unwrap();

    ctl_ok(&dir, &["delete_vhost", "tmp"]);
    let (server, ch) = new_vhost_for_guest(&dir, "tmp").await;
    let err = common::passive_queue(&ch, "kept").await.unwrap_err();
    assert_eq!(common::reply_code(&err), Some(404));
    server.shutdown().await.unwrap();
}
