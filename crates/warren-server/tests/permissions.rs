//! Configure/write/read permissions through AMQP (issue 14): every rule of RabbitMQ's table
//! (see `channel/access.rs`), each refusal's 403 and text, permission changes reaching open
//! channels, and credentials (SHA-512 users imported from RabbitMQ; one login refusal for a
//! wrong password and an unknown user).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use warren_broker::PasswordHash;
use warren_server::ServerHandle;

/// Adds user `u` (password `pw`) with the given configure, write and read expressions on `/`.
fn grant(server: &ServerHandle, perms: [&str; 3]) {
    let b = server.broker();
    if b.user("u").is_none() {
        b.put_user_live("u", Some(PasswordHash::new("pw")), vec![])
            .unwrap();
    }
    b.set_permissions_live("u", "/", perms).unwrap();
}

async fn login_u(server: &ServerHandle) -> Connection {
    let url = format!("amqp://u:pw@{}/%2f", server.addr());
    Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("u logs in")
}

/// Guest's channel, to prepare what `u` acts on.
async fn admin(server: &ServerHandle) -> Channel {
    common::connect(server)
        .await
        .create_channel()
        .await
        .unwrap()
}

/// The 403 text a refused synchronous method failed with.
fn refused<T: std::fmt::Debug>(r: lapin::Result<T>) -> String {
    match r {
        Err(lapin::Error::ProtocolError(e)) => {
            assert_eq!(e.get_id(), 403, "{}", e.get_message());
            e.get_message().to_string()
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

fn q_refused(name: &str) -> String {
    format!("ACCESS_REFUSED - access to queue '{name}' in vhost '/' refused for user 'u'")
}

fn x_refused(name: &str) -> String {
    format!("ACCESS_REFUSED - access to exchange '{name}' in vhost '/' refused for user 'u'")
}

fn args(key: &str, value: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(key.into(), AMQPValue::LongString(value.into()));
    t
}

async fn declare_x(ch: &Channel, name: &str, arguments: FieldTable) -> lapin::Result<()> {
    ch.exchange_declare(
        name,
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        arguments,
    )
    .await
}

async fn declare_q(ch: &Channel, name: &str, arguments: FieldTable) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(name, QueueDeclareOptions::default(), arguments)
        .await
}

/// Publishes on a fresh confirm channel of `conn`: `Ok` when confirmed, else the close.
async fn publish(conn: &Connection, exchange: &str, key: &str) -> Result<(), (u16, String)> {
    let ch = conn.create_channel().await.unwrap();
    let mut closed = common::watch_close(&ch);
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let sent = ch
        .basic_publish(
            exchange,
            key,
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await;
    let confirmed = match sent {
        Ok(confirm) => confirm.await.is_ok(),
        Err(_) => false,
    };
    if confirmed {
        Ok(())
    } else {
        Err(common::closed_with(&mut closed).await)
    }
}

#[tokio::test]
async fn exchange_declare_and_delete_need_configure_on_the_exchange() {
    let server = common::start().await;
    grant(&server, ["^ok", ".*", ".*"]);
    let conn = login_u(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare_x(&ch, "ok-x", FieldTable::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(declare_x(&ch, "no-x", FieldTable::default()).await),
        x_refused("no-x")
    );
    // Redeclaring an existing exchange needs configure too.
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(declare_x(&ch, "amq.direct", FieldTable::default()).await),
        x_refused("amq.direct")
    );
    // A passive declare needs nothing.
    let ch = conn.create_channel().await.unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "amq.direct",
        ExchangeKind::Direct,
        passive,
        FieldTable::default(),
    )
    .await
    .unwrap();
    admin(&server).await;
    let a = admin(&server).await;
    declare_x(&a, "no-x", FieldTable::default()).await.unwrap();
    assert_eq!(
        refused(
            ch.exchange_delete("no-x", ExchangeDeleteOptions::default())
                .await
        ),
        x_refused("no-x")
    );
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete("ok-x", ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_alternate_exchange_needs_read_on_the_exchange_and_write_on_the_alternate() {
    let server = common::start().await;
    let ae = || args("alternate-exchange", "ae");
    grant(&server, [".*", ".*", "^$"]);
    let conn = login_u(&server).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(refused(declare_x(&ch, "x", ae()).await), x_refused("x"));
    grant(&server, [".*", "^$", ".*"]);
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(refused(declare_x(&ch, "x", ae()).await), x_refused("ae"));
    grant(&server, [".*", "^ae$", "^x$"]);
    let ch = conn.create_channel().await.unwrap();
    declare_x(&ch, "x", ae()).await.unwrap();
    // Redeclaring the existing exchange checks configure only.
    grant(&server, [".*", "^$", "^$"]);
    declare_x(&ch, "x", ae()).await.unwrap();
}

#[tokio::test]
async fn queue_declare_needs_configure_server_named_queues_included_passive_none() {
    let server = common::start().await;
    grant(&server, ["^q", ".*", ".*"]);
    let conn = login_u(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare_q(&ch, "q1", FieldTable::default()).await.unwrap();
    assert_eq!(
        refused(declare_q(&ch, "other", FieldTable::default()).await),
        q_refused("other")
    );
    let ch = conn.create_channel().await.unwrap();
    let text = refused(declare_q(&ch, "", FieldTable::default()).await);
    assert!(
        text.starts_with("ACCESS_REFUSED - access to queue 'amq.gen-")
            && text.ends_with("' in vhost '/' refused for user 'u'"),
        "{text}"
    );
    grant(&server, ["^amq\\.gen-", ".*", ".*"]);
    let ch = conn.create_channel().await.unwrap();
    let q = declare_q(&ch, "", FieldTable::default()).await.unwrap();
    assert!(q.name().as_str().starts_with("amq.gen-"));
    // No permission at all on anything: a passive declare still answers.
    grant(&server, ["", "", ""]);
    common::passive_queue(&ch, "q1").await.unwrap();
}

#[tokio::test]
async fn a_dead_letter_exchange_needs_read_on_the_queue_and_write_on_the_exchange() {
    let server = common::start().await;
    let dlx = |x: &str| args("x-dead-letter-exchange", x);
    grant(&server, [".*", ".*", "^$"]);
    let conn = login_u(&server).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(declare_q(&ch, "dq", dlx("dlx")).await),
        q_refused("dq")
    );
    grant(&server, [".*", "^$", ".*"]);
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(declare_q(&ch, "dq", dlx("dlx")).await),
        x_refused("dlx")
    );
    // The default exchange as dead-letter exchange is checked as amq.default.
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(declare_q(&ch, "dq", dlx("")).await),
        x_refused("amq.default")
    );
    grant(&server, [".*", "^dlx$", "^dq$"]);
    let ch = conn.create_channel().await.unwrap();
    declare_q(&ch, "dq", dlx("dlx")).await.unwrap();
}

#[tokio::test]
async fn delete_needs_configure_and_purge_get_consume_need_read_on_the_queue() {
    let server = common::start().await;
    let a = admin(&server).await;
    declare_q(&a, "q", FieldTable::default()).await.unwrap();
    grant(&server, ["^$", ".*", "^$"]);
    let conn = login_u(&server).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(ch.queue_delete("q", QueueDeleteOptions::default()).await),
        q_refused("q")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(ch.queue_purge("q", QueuePurgeOptions::default()).await),
        q_refused("q")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(ch.basic_get("q", BasicGetOptions::default()).await),
        q_refused("q")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(
            ch.basic_consume(
                "q",
                "",
                BasicConsumeOptions::default(),
                FieldTable::default()
            )
            .await
        ),
        q_refused("q")
    );
    // Read is checked before the queue is looked up: a missing queue is refused, not 404.
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(ch.basic_get("missing", BasicGetOptions::default()).await),
        q_refused("missing")
    );
    grant(&server, ["^q$", ".*", "^q$"]);
    let ch = conn.create_channel().await.unwrap();
    ch.queue_purge("q", QueuePurgeOptions::default())
        .await
        .unwrap();
    ch.basic_get("q", BasicGetOptions::default()).await.unwrap();
    ch.basic_consume(
        "q",
        "c",
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_delete("q", QueueDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn queue_bind_needs_write_on_the_queue_and_read_on_the_exchange() {
    let server = common::start().await;
    let a = admin(&server).await;
    declare_q(&a, "q", FieldTable::default()).await.unwrap();
    a.queue_bind(
        "q",
        "amq.topic",
        "k",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let bind = |ch: Channel| async move {
        ch.queue_bind(
            "q",
            "amq.direct",
            "k",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
    };
    let unbind = |ch: Channel| async move {
        ch.queue_unbind("q", "amq.topic", "k", FieldTable::default())
            .await
    };
    grant(&server, [".*", "^$", ".*"]);
    let conn = login_u(&server).await;
    assert_eq!(
        refused(bind(conn.create_channel().await.unwrap()).await),
        q_refused("q")
    );
    assert_eq!(
        refused(unbind(conn.create_channel().await.unwrap()).await),
        q_refused("q")
    );
    grant(&server, [".*", ".*", "^$"]);
    assert_eq!(
        refused(bind(conn.create_channel().await.unwrap()).await),
        x_refused("amq.direct")
    );
    assert_eq!(
        refused(unbind(conn.create_channel().await.unwrap()).await),
        x_refused("amq.topic")
    );
    grant(&server, ["^$", "^q$", "^amq\\."]);
    bind(conn.create_channel().await.unwrap()).await.unwrap();
    unbind(conn.create_channel().await.unwrap()).await.unwrap();
}

#[tokio::test]
async fn exchange_bind_needs_write_on_the_destination_and_read_on_the_source() {
    let server = common::start().await;
    let a = admin(&server).await;
    declare_x(&a, "dst", FieldTable::default()).await.unwrap();
    let bind = |ch: Channel| async move {
        ch.exchange_bind(
            "dst",
            "amq.fanout",
            "",
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
    };
    grant(&server, [".*", "^amq", ".*"]);
    let conn = login_u(&server).await;
    assert_eq!(
        refused(bind(conn.create_channel().await.unwrap()).await),
        x_refused("dst")
    );
    grant(&server, [".*", ".*", "^dst$"]);
    assert_eq!(
        refused(bind(conn.create_channel().await.unwrap()).await),
        x_refused("amq.fanout")
    );
    grant(&server, ["^$", "^dst$", "^amq\\.fanout$"]);
    bind(conn.create_channel().await.unwrap()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_unbind(
        "dst",
        "amq.fanout",
        "",
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn publish_needs_write_on_the_exchange_and_the_default_exchange_is_amq_default() {
    let server = common::start().await;
    grant(&server, [".*", "^amq\\.direct$", ".*"]);
    let conn = login_u(&server).await;
    publish(&conn, "amq.direct", "k").await.unwrap();
    assert_eq!(
        publish(&conn, "amq.topic", "k").await,
        Err((403, x_refused("amq.topic")))
    );
    assert_eq!(
        publish(&conn, "", "q").await,
        Err((403, x_refused("amq.default")))
    );
    // Write is checked before the exchange is looked up: a missing one is refused, not 404.
    assert_eq!(
        publish(&conn, "missing", "k").await,
        Err((403, x_refused("missing")))
    );
    // "^$" would match the default exchange's AMQP name, but RabbitMQ checks `amq.default`.
    grant(&server, [".*", "^$", ".*"]);
    assert_eq!(
        publish(&conn, "", "q").await,
        Err((403, x_refused("amq.default")))
    );
    grant(&server, [".*", "^amq\\.default$", ".*"]);
    publish(&conn, "", "q").await.unwrap();
}

#[tokio::test]
async fn a_permission_change_reaches_an_open_channel_at_its_next_operation() {
    let server = common::start().await;
    grant(&server, [".*", ".*", ".*"]);
    let conn = login_u(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut closed = common::watch_close(&ch);
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        ch.basic_publish(
            "amq.direct",
            "k",
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // Revoked through the management path while the channel has cached the decision.
    grant(&server, [".*", "^$", ".*"]);
    let _ = ch
        .basic_publish(
            "amq.direct",
            "k",
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await;
    assert_eq!(
        common::closed_with(&mut closed).await,
        (403, x_refused("amq.direct"))
    );
    // Granted again: a new channel of the same connection may publish.
    grant(&server, [".*", ".*", ".*"]);
    publish(&conn, "amq.direct", "k").await.unwrap();
    // Cleared entirely: everything is refused on the open connection.
    server.broker().clear_permissions_live("u", "/").unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(declare_q(&ch, "q", FieldTable::default()).await),
        q_refused("q")
    );
}

#[tokio::test]
async fn the_management_api_stores_real_expressions_and_definitions_keep_them() {
    let server = common::start().await;
    let defs = serde_json::json!({
        "rabbit_version": "3.10.8",
        "users": [{"name": "sha512user", "tags": [],
                   "hashing_algorithm": "rabbit_password_hashing_sha512",
                   "password_hash": SHA512_USER_HASH}],
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": "sha512user", "vhost": "/",
                         "configure": "^cfg", "write": "", "read": "^(a|b)$"}],
    });
    warren_mgmt::import_definitions(&server.broker(), defs.to_string().as_bytes()).unwrap();
    let p = server.broker().permission("sha512user", "/").unwrap();
    assert_eq!(p.sources(), ["^cfg", "", "^(a|b)$"]);
    // The SHA-512 user logs in with its password.
    let url = format!("amqp://sha512user:s3cret@{}/%2f", server.addr());
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("an imported SHA-512 user logs in");
    let ch = conn.create_channel().await.unwrap();
    declare_q(&ch, "cfg-q", FieldTable::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refused(declare_q(&ch, "x", FieldTable::default()).await),
        "ACCESS_REFUSED - access to queue 'x' in vhost '/' refused for user 'sha512user'"
    );
    let bad = serde_json::json!({"permissions": [{"user": "guest", "vhost": "/",
        "configure": "(", "write": ".*", "read": ".*"}]});
    assert!(warren_mgmt::import_definitions(&server.broker(), bad.to_string().as_bytes()).is_err());
}

/// `s3cret` as `rabbit_password_hashing_sha512` stores it (base64 of a 4-byte salt and
/// SHA-512 of salt then password); conformance/permissions_check.py imports the same hash into
/// RabbitMQ 3.10.8 and logs in with it.
const SHA512_USER_HASH: &str =
    "XhGgB8izvoFnR75NhqrR+4tEChW5UUE/mhxtnUTVALOSs06U/GR6+NpQj2zcBdcKZp6NU5O1R8OoC7KigXP2gswJwH8=";

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_refusal() {
    let server = common::start().await;
    grant(&server, [".*", ".*", ".*"]);
    let mut texts = Vec::new();
    for (user, password) in [("u", "wrong"), ("nobody", "pw")] {
        let mut raw = common::Raw::connect(&server).await;
        let caps: warren_codec::FieldTable = [(
            "authentication_failure_close",
            warren_codec::FieldValue::Bool(true),
        )]
        .into_iter()
        .collect();
        raw.start(caps, format!("\0{user}\0{password}").as_bytes())
            .await;
        match raw.method().await {
            warren_codec::Method::ConnectionClose(c) => {
                texts.push((c.reply_code, c.reply_text.to_string()));
            }
            other => panic!("expected connection.close, got {other:?}"),
        }
    }
    let want = (
        403,
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
            .to_string(),
    );
    assert_eq!(texts, [want.clone(), want]);
}
