//! Vhost limits, user limits and topic permissions through a real client (lapin) and the
//! management API, on the real server in-process: RabbitMQ's reply codes and texts (checked
//! against RabbitMQ 3.10.8 by `conformance/limits_api.py`), runtime changes applying at once,
//! and everything surviving a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::call;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use warren_server::ServerHandle;

fn url(server: &ServerHandle, user: &str, vhost: &str) -> String {
    let pass = if user == "guest" { "guest" } else { "pw" };
    format!(
        "amqp://{user}:{pass}@{}/{}",
        server.addr(),
        vhost.replace('/', "%2f")
    )
}

/// A connection, or the (code, text) it was refused with.
async fn open(server: &ServerHandle, user: &str, vhost: &str) -> Result<Connection, (u16, String)> {
    Connection::connect(&url(server, user, vhost), ConnectionProperties::default())
        .await
        .map_err(|e| match e {
            lapin::Error::ProtocolError(amqp) => (amqp.get_id(), amqp.get_message().to_string()),
            other => (0, other.to_string()),
        })
}

/// A user `bob` (password `pw`) with full permissions on `/` and on `v`.
async fn setup(server: &ServerHandle) {
    assert_eq!(call(server, "PUT", "/api/vhosts/v", None).await.status, 201);
    let r = call(
        server,
        "PUT",
        "/api/users/bob",
        Some(json!({"password": "pw", "tags": ""})),
    )
    .await;
    assert_eq!(r.status, 201);
    for v in ["%2F", "v"] {
        let r = call(
            server,
            "PUT",
            &format!("/api/permissions/{v}/bob"),
            Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
        )
        .await;
        assert_eq!(r.status, 201);
    }
}

async fn limit(server: &ServerHandle, path: &str, value: Option<i64>) {
    let r = match value {
        Some(v) => call(server, "PUT", path, Some(json!({ "value": v }))).await,
        None => call(server, "DELETE", path, None).await,
    };
    assert_eq!(r.status, 204, "{path}: {}", r.body);
}

#[tokio::test]
async fn vhost_and_user_connection_limits_refuse_with_530_and_free_on_close() {
    let server = common::start().await;
    setup(&server).await;
    limit(&server, "/api/vhost-limits/v/max-connections", Some(1)).await;
    let first = open(&server, "guest", "v").await.unwrap();
    assert_eq!(
        open(&server, "bob", "v").await.err().unwrap(),
        (
            530,
            "NOT_ALLOWED - access to vhost 'v' refused for user 'bob': connection limit (1) is reached"
                .into()
        )
    );
    first.close(200, "bye").await.unwrap();
    // The count drops when the server has seen the close: retry briefly.
    let mut again = Err((0, String::new()));
    for _ in 0..50 {
        again = open(&server, "bob", "v").await;
        if again.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let bobs = again.unwrap();
    limit(&server, "/api/vhost-limits/v/max-connections", Some(-1)).await;
    limit(&server, "/api/user-limits/bob/max-connections", Some(1)).await;
    assert_eq!(
        open(&server, "bob", "/").await.err().unwrap(),
        (
            530,
            "NOT_ALLOWED - connection refused for user 'bob': user connection limit (1) is reached"
                .into()
        )
    );
    // Others are not limited, and lowering a limit closes nothing.
    let _guest = open(&server, "guest", "v").await.unwrap();
    limit(&server, "/api/user-limits/bob/max-connections", Some(0)).await;
    assert!(bobs.status().connected());
    assert_eq!(
        open(&server, "bob", "v").await.err().unwrap().1,
        "NOT_ALLOWED - connection refused for user 'bob': user connection limit (0) is reached"
    );
    limit(&server, "/api/user-limits/bob/max-connections", None).await;
    open(&server, "bob", "v").await.unwrap();
}

#[tokio::test]
async fn user_channel_limit_counts_every_connection_and_closes_the_connection() {
    let server = common::start().await;
    setup(&server).await;
    limit(&server, "/api/user-limits/bob/max-channels", Some(2)).await;
    let a = open(&server, "bob", "/").await.unwrap();
    let b = open(&server, "bob", "v").await.unwrap();
    let _ch1 = a.create_channel().await.unwrap();
    let _ch2 = b.create_channel().await.unwrap();
    let err = a.create_channel().await.unwrap_err();
    let lapin::Error::ProtocolError(amqp) = err else {
        panic!("not a protocol error: {err:?}");
    };
    assert_eq!(amqp.get_id(), 530);
    assert_eq!(
        amqp.get_message().as_str(),
        "NOT_ALLOWED - number of channels opened for user 'bob' has reached the maximum allowed user limit of (2)"
    );
    // The refused connection is gone with its channel: one more may open. Its end is
    // asynchronous, and a refused channel.open closes its connection, so each attempt uses a
    // fresh connection.
    let mut opened = false;
    for _ in 0..50 {
        let c = open(&server, "bob", "v").await.unwrap();
        if c.create_channel().await.is_ok() {
            opened = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(opened, "the closed connection's channel still counted");
    drop(b);
}

#[tokio::test]
async fn queue_limit_refuses_new_queues_with_406_over_amqp_and_400_over_http() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "q1").await.unwrap();
    limit(&server, "/api/vhost-limits/%2F/max-queues", Some(1)).await;
    common::declare_queue(&ch, "q1").await.unwrap();
    let mut closed = common::watch_close(&ch);
    assert!(common::declare_queue(&ch, "q2").await.is_err());
    assert_eq!(
        common::closed_with(&mut closed).await,
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost '/' (1) is reached"
                .into()
        )
    );
    let r = call(
        &server,
        "PUT",
        "/api/queues/%2F/q3",
        Some(json!({"durable": false})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error": "bad_request", "reason": "cannot declare queue 'q3': queue limit in vhost '/' (1) is reached"})
        )
    );
    limit(&server, "/api/vhost-limits/%2F/max-queues", Some(2)).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "q2").await.unwrap();
}

#[tokio::test]
async fn topic_permissions_refuse_publishes_and_binds_with_403_and_change_live() {
    let server = common::start().await;
    setup(&server).await;
    let r = call(
        &server,
        "PUT",
        "/api/topic-permissions/%2F/bob",
        Some(json!({"exchange": "amq.topic", "write": "^a\\.|^{username}\\.", "read": "^b"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let conn = open(&server, "bob", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let publish = |ch: lapin::Channel, x: &'static str, key: &'static str| async move {
        ch.basic_publish(
            x,
            key,
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await?
        .await
    };
    publish(ch.clone(), "amq.topic", "a.1").await.unwrap();
    publish(ch.clone(), "amq.topic", "bob.1").await.unwrap();
    publish(ch.clone(), "amq.direct", "x").await.unwrap();
    let mut closed = common::watch_close(&ch);
    let _ = publish(ch.clone(), "amq.topic", "x.a").await;
    assert_eq!(
        common::closed_with(&mut closed).await,
        (
            403,
            "ACCESS_REFUSED - access to topic 'x.a' in exchange 'amq.topic' in vhost '/' refused for user 'bob'"
                .into()
        )
    );
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "tq").await.unwrap();
    let bind = |ch: lapin::Channel, key: &'static str| async move {
        ch.queue_bind(
            "tq",
            "amq.topic",
            key,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
    };
    bind(ch.clone(), "b.1").await.unwrap();
    let mut closed = common::watch_close(&ch);
    assert!(bind(ch.clone(), "c.1").await.is_err());
    assert_eq!(
        common::closed_with(&mut closed).await.1,
        "ACCESS_REFUSED - access to topic 'c.1' in exchange 'amq.topic' in vhost '/' refused for user 'bob'"
    );
    // Cleared: the same connection may publish anything from its next batch on.
    assert_eq!(
        call(&server, "DELETE", "/api/topic-permissions/%2F/bob", None)
            .await
            .status,
        204
    );
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(ch.clone(), "amq.topic", "x.a").await.unwrap();
}

#[tokio::test]
async fn limits_and_topic_permissions_survive_a_restart() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(|c| c.data_dir = d).await;
    setup(&server).await;
    limit(&server, "/api/vhost-limits/v/max-queues", Some(3)).await;
    limit(&server, "/api/vhost-limits/v/max-connections", Some(5)).await;
    limit(&server, "/api/user-limits/bob/max-channels", Some(7)).await;
    let r = call(
        &server,
        "PUT",
        "/api/topic-permissions/v/bob",
        Some(json!({"exchange": "logs", "write": "^w", "read": ""})),
    )
    .await;
    assert_eq!(r.status, 201);
    server.shutdown().await.unwrap();
    let d = dir.clone();
    let server = common::start_with(|c| c.data_dir = d).await;
    assert_eq!(
        call(&server, "GET", "/api/vhost-limits/v", None)
            .await
            .json(),
        json!([{"vhost": "v", "value": {"max-connections": 5, "max-queues": 3}}])
    );
    assert_eq!(
        call(&server, "GET", "/api/user-limits", None).await.json(),
        json!([{"user": "bob", "value": {"max-channels": 7}}])
    );
    assert_eq!(
        call(&server, "GET", "/api/topic-permissions", None)
            .await
            .json(),
        json!([{"user": "bob", "vhost": "v", "exchange": "logs", "write": "^w", "read": ""}])
    );
    // Deleting the vhost takes its limits and topic permissions with it.
    assert_eq!(
        call(&server, "DELETE", "/api/vhosts/v", None).await.status,
        204
    );
    assert_eq!(
        call(&server, "GET", "/api/topic-permissions", None)
            .await
            .json(),
        json!([])
    );
    assert_eq!(
        call(&server, "PUT", "/api/vhosts/v", None).await.status,
        201
    );
    assert_eq!(
        call(&server, "GET", "/api/vhost-limits/v", None)
            .await
            .json(),
        json!([])
    );
}

#[tokio::test]
async fn the_api_validates_limits_and_topic_permissions_as_rabbitmq() {
    let server = common::start().await;
    setup(&server).await;
    let put = |path: &'static str, body: serde_json::Value| {
        let server = &server;
        async move {
            let r = call(server, "PUT", path, Some(body)).await;
            (r.status, r.body)
        }
    };
    let bad =
        |reason: serde_json::Value| json!({"error": "bad_request", "reason": reason}).to_string();
    assert_eq!(
        put("/api/vhost-limits/v/max-foo", json!({"value": 5})).await,
        (
            400,
            bad(json!(
                "Validation failed\n\nUnrecognised terms [{<<\"max-foo\">>,5}] in limits\n"
            ))
        )
    );
    assert_eq!(
        put("/api/vhost-limits/v/max-queues", json!({"value": "x"})).await,
        (
            400,
            bad(json!(
                "Validation failed\n\nmax-queues should be a number, actually was <<\"x\">>\n"
            ))
        )
    );
    assert_eq!(
        put("/api/vhost-limits/v/max-queues", json!({"valu": 1})).await,
        (400, bad(json!("[{key_missing,value}]")))
    );
    assert_eq!(
        put("/api/vhost-limits/nope/max-queues", json!({"value": 1})).await,
        (
            404,
            json!({"error": "not_found", "reason": "vhost_not_found"}).to_string()
        )
    );
    assert_eq!(
        put("/api/user-limits/bob/max-queues", json!({"value": 1})).await,
        (
            400,
            bad(json!(
                "Unrecognised terms [{<<\"max-queues\">>,1}] in user-limits"
            ))
        )
    );
    assert_eq!(
        put("/api/user-limits/nope/max-channels", json!({"value": 1})).await,
        (400, bad(json!(["no_such_user", "nope"])))
    );
    assert_eq!(
        put(
            "/api/topic-permissions/v/bob",
            json!({"exchange": "x", "read": ".*"})
        )
        .await,
        (400, bad(json!("[{key_missing,write}]")))
    );
    let (status, body) = put(
        "/api/topic-permissions/v/bob",
        json!({"exchange": "x", "write": "(", "read": ".*"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("[\"invalid_regexp\",\"(\""), "{body}");
    assert_eq!(
        put(
            "/api/topic-permissions/v/nobody",
            json!({"exchange": "x", "write": "", "read": ""})
        )
        .await,
        (400, bad(json!("vhost_or_user_not_found")))
    );
    // Clearing every limit keeps the (empty) parameter in the list, as RabbitMQ does.
    limit(&server, "/api/vhost-limits/v/max-queues", Some(2)).await;
    limit(&server, "/api/vhost-limits/v/max-queues", None).await;
    assert_eq!(
        call(&server, "GET", "/api/vhost-limits/v", None)
            .await
            .json(),
        json!([])
    );
    assert_eq!(
        call(&server, "GET", "/api/vhost-limits", None).await.json(),
        json!([{"vhost": "v", "value": []}])
    );
    assert_eq!(
        call(
            &server,
            "DELETE",
            "/api/user-limits/nope/max-channels",
            None
        )
        .await
        .status,
        500
    );
}

#[tokio::test]
async fn definitions_carry_limits_and_topic_permissions_both_ways() {
    let server = common::start().await;
    setup(&server).await;
    limit(&server, "/api/vhost-limits/v/max-queues", Some(4)).await;
    limit(&server, "/api/user-limits/bob/max-connections", Some(2)).await;
    let r = call(
        &server,
        "PUT",
        "/api/topic-permissions/v/bob",
        Some(json!({"exchange": "amq.topic", "write": "^w", "read": "^r"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let defs = call(&server, "GET", "/api/definitions", None).await.json();
    assert_eq!(
        defs["parameters"],
        json!([{"value": {"max-queues": 4}, "vhost": "v", "component": "vhost-limits", "name": "limits"}])
    );
    let bob = defs["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(bob["limits"], json!({"max-connections": 2}));
    assert_eq!(
        defs["topic_permissions"],
        json!([{"user": "bob", "vhost": "v", "exchange": "amq.topic", "write": "^w", "read": "^r"}])
    );
    let one = call(&server, "GET", "/api/definitions/v", None)
        .await
        .json();
    assert_eq!(one["parameters"], defs["parameters"]);
    // Into a fresh broker: the same limits and permissions, enforced.
    let other = common::start().await;
    let r = call(&other, "POST", "/api/definitions", Some(defs.clone())).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let again = call(&other, "GET", "/api/definitions", None).await.json();
    for key in ["parameters", "topic_permissions"] {
        assert_eq!(again[key], defs[key], "{key}");
    }
    let _one = open(&other, "bob", "v").await.unwrap();
    let _two = open(&other, "bob", "v").await.unwrap();
    assert_eq!(
        open(&other, "bob", "/").await.err().unwrap().0,
        530,
        "the imported user limit holds"
    );
    // A file with another kind of parameter is still refused whole.
    let mut policy = defs.clone();
    policy["parameters"] =
        json!([{"value": {}, "vhost": "v", "component": "federation-upstream", "name": "u"}]);
    assert_eq!(
        call(&other, "POST", "/api/definitions", Some(policy))
            .await
            .status,
        400
    );
}
