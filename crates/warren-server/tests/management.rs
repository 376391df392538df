//! The management HTTP API against the real server, in-process: status codes, headers and JSON
//! fields as RabbitMQ 3.10 answers them (each expectation was checked against RabbitMQ 3.10.8 with
//! its management plugin; `conformance/management_api.py` re-checks them against both).

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::http::Reply;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};
use warren_codec::Method;
use warren_server::ServerHandle;

/// A request to the management API (common::http's client).
async fn http(
    server: &ServerHandle,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> Reply {
    let addr = server.management_addr().expect("management API enabled");
    common::http::request(addr, method, path, auth, body, extra).await
}

const GUEST: Option<(&str, &str)> = Some(("guest", "guest"));

async fn get(server: &ServerHandle, path: &str) -> Reply {
    http(server, "GET", path, GUEST, None, &[]).await
}

async fn put(server: &ServerHandle, path: &str, body: Value) -> Reply {
    http(server, "PUT", path, GUEST, Some(body), &[]).await
}

async fn post(server: &ServerHandle, path: &str, body: Value) -> Reply {
    http(server, "POST", path, GUEST, Some(body), &[]).await
}

async fn delete(server: &ServerHandle, path: &str) -> Reply {
    http(server, "DELETE", path, GUEST, None, &[]).await
}

fn not_found() -> Value {
    json!({"error": "Object Not Found", "reason": "Not Found"})
}

#[tokio::test]
async fn credentials_are_checked_with_rabbitmqs_401s() {
    let server = common::start().await;
    let anonymous = http(&server, "GET", "/api/overview", None, None, &[]).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Basic realm=\"RabbitMQ Management\"")
    );
    let wrong = http(
        &server,
        "GET",
        "/api/overview",
        Some(("guest", "nope")),
        None,
        &[],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("www-authenticate").is_some());
    assert_eq!(
        wrong.json(),
        json!({"error": "not_authorized", "reason": "Login failed"})
    );

    // A user without a management tag may log in over AMQP but not use the API.
    assert_eq!(
        put(
            &server,
            "/api/users/plain",
            json!({"password": "pw", "tags": ""})
        )
        .await
        .status,
        201
    );
    let plain = http(
        &server,
        "GET",
        "/api/overview",
        Some(("plain", "pw")),
        None,
        &[],
    )
    .await;
    assert_eq!(plain.status, 401);
    assert!(plain.header("www-authenticate").is_none());
    assert_eq!(
        plain.json(),
        json!({"error": "not_authorised", "reason": "Not management user"})
    );

    // A monitoring user reads but may not administer.
    assert_eq!(
        put(
            &server,
            "/api/users/mon",
            json!({"password": "pw", "tags": "monitoring"})
        )
        .await
        .status,
        201
    );
    let mon = Some(("mon", "pw"));
    assert_eq!(
        http(&server, "GET", "/api/overview", mon, None, &[])
            .await
            .status,
        200
    );
    let refused = http(&server, "PUT", "/api/vhosts/v2", mon, Some(json!({})), &[]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.json(),
        json!({"error": "not_authorised", "reason": "Not administrator user"})
    );
    // Without permissions on `/`, a monitor's queue listing is empty (RabbitMQ's filter_vhost),
    // and a queue in `/` is refused.
    put(&server, "/api/queues/%2F/q", json!({})).await;
    assert_eq!(
        http(&server, "GET", "/api/queues", mon, None, &[])
            .await
            .json(),
        json!([])
    );
    let one = http(&server, "GET", "/api/queues/%2F/q", mon, None, &[]).await;
    assert_eq!(one.status, 401);
    assert_eq!(
        one.json()["reason"],
        "User not authorised to access virtual host"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let server = common::start().await;
    let r = get(&server, "/api/nosuch").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), not_found());
    assert_eq!(
        get(&server, "/api/queues/%2F/nosuch").await.json(),
        not_found()
    );
    assert_eq!(get(&server, "/api/vhosts/nosuch").await.status, 404);
    let r = post(&server, "/api/overview", json!({})).await;
    assert_eq!(r.status, 405);
    let allow = r.header("allow").expect("an allow header");
    assert!(allow.contains("GET"), "{allow}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn overview_and_node_fields_that_clients_read_are_there() {
    let server = common::start().await;
    let o = get(&server, "/api/overview").await.json();
    for key in [
        "rabbitmq_version",
        "management_version",
        "product_name",
        "node",
        "object_totals",
        "queue_totals",
        "message_stats",
        "listeners",
        "cluster_name",
        "exchange_types",
    ] {
        assert!(o.get(key).is_some(), "overview lacks {key}: {o}");
    }
    assert_eq!(o["rabbitmq_version"], "3.10.8");
    // RabbitMQ counts 7: Warren has no `amq.rabbitmq.trace` (no firehose tracing).
    assert_eq!(o["object_totals"]["exchanges"], 6);
    assert_eq!(o["object_totals"]["queues"], 0);
    let ports: Vec<u64> = o["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["port"].as_u64().unwrap())
        .collect();
    assert!(ports.contains(&u64::from(server.addr().port())));
    assert_eq!(
        get(&server, "/api/whoami").await.json(),
        json!({"name": "guest", "tags": ["administrator"]})
    );
    let node = o["node"].as_str().unwrap().to_string();
    assert_eq!(get(&server, "/api/cluster-name").await.json()["name"], node);
    let nodes = get(&server, "/api/nodes").await.json();
    assert_eq!(nodes[0]["name"], node);
    assert_eq!(
        get(&server, &format!("/api/nodes/{node}")).await.status,
        200
    );
    assert_eq!(
        get(&server, "/api/aliveness-test/%2F").await.json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        get(&server, "/api/health/checks/alarms").await.json(),
        json!({"status": "ok"})
    );
    let port = server.addr().port();
    let ok = get(&server, &format!("/api/health/checks/port-listener/{port}")).await;
    assert_eq!(ok.json(), json!({"status": "ok", "port": port}));
    let missing = get(&server, "/api/health/checks/port-listener/1").await;
    assert_eq!(missing.status, 503);
    assert_eq!(missing.json()["reason"], "No active listener");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn queues_are_declared_counted_purged_and_deleted_like_rabbitmq() {
    let server = common::start().await;
    let path = "/api/queues/%2F/work";
    assert_eq!(
        put(
            &server,
            path,
            json!({"durable": true, "arguments": {"x-max-length": 5}})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        put(
            &server,
            path,
            json!({"durable": true, "arguments": {"x-max-length": 5}})
        )
        .await
        .status,
        204
    );
    let bad = put(&server, path, json!({"durable": false})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json()["reason"],
        "inequivalent arg 'durable' for queue 'work' in vhost '/': received 'false' but current is 'true'"
    );
    let garbage = http(
        &server,
        "PUT",
        "/api/queues/%2F/other",
        GUEST,
        None,
        &[("Content-Type", "application/json")],
    )
    .await;
    assert_eq!(garbage.status, 201, "an empty body is an empty object");

    // Messages and a consumer from AMQP show in the API.
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    for i in 0..3 {
        ch.basic_publish(
            "",
            "work",
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let q = get(&server, path).await.json();
    assert_eq!(q["messages"], 3);
    assert_eq!(q["messages_ready"], 3);
    assert_eq!(q["messages_unacknowledged"], 0);
    assert_eq!(q["consumers"], 0);
    assert_eq!(
        (
            q["durable"].clone(),
            q["auto_delete"].clone(),
            q["exclusive"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(q["arguments"], json!({"x-max-length": 5}));
    assert_eq!(
        (q["vhost"].as_str(), q["name"].as_str(), q["state"].as_str()),
        (Some("/"), Some("work"), Some("running"))
    );
    let consumer_ch = conn.create_channel().await.unwrap();
    consumer_ch.basic_qos(1, Default::default()).await.unwrap();
    let _consumer = consumer_ch
        .basic_consume(
            "work",
            "c1",
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let mut q = Value::Null;
    for _ in 0..50 {
        q = get(&server, path).await.json();
        if q["messages_unacknowledged"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (
            q["messages_ready"].clone(),
            q["messages_unacknowledged"].clone(),
            q["consumers"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    assert_eq!(q["consumer_details"][0]["consumer_tag"], "c1");
    let consumers = get(&server, "/api/consumers").await.json();
    assert_eq!(consumers[0]["queue"]["name"], "work");

    let r = delete(&server, "/api/queues/%2F/work?if-unused=true").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "queue 'work' in vhost '/' in use");
    let r = delete(&server, "/api/queues/%2F/other?if-empty=true").await;
    assert_eq!(r.status, 204);
    ch.basic_publish(
        "",
        "work",
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    consumer_ch.close(200, "bye").await.unwrap();
    let r = delete(&server, "/api/queues/%2F/work?if-empty=true").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "queue 'work' in vhost '/' not empty");
    assert_eq!(
        delete(&server, "/api/queues/%2F/work/contents")
            .await
            .status,
        204
    );
    assert_eq!(get(&server, path).await.json()["messages"], 0);
    assert_eq!(delete(&server, path).await.status, 204);
    assert_eq!(delete(&server, path).await.json(), not_found());
    let gone = common::passive_queue(&ch, "work").await.unwrap_err();
    assert_eq!(common::reply_code(&gone), Some(404));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn exchanges_bindings_publish_and_get_work_through_the_api() {
    let server = common::start().await;
    assert_eq!(
        put(&server, "/api/queues/%2F/q1", json!({})).await.status,
        201
    );
    assert_eq!(
        put(
            &server,
            "/api/exchanges/%2F/x1",
            json!({"type": "fanout", "durable": true})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        put(
            &server,
            "/api/exchanges/%2F/x1",
            json!({"type": "fanout", "durable": true})
        )
        .await
        .status,
        204
    );
    let bad = put(&server, "/api/exchanges/%2F/x2", json!({"type": "bogus"})).await;
    assert_eq!(
        bad.json(),
        json!({"error": "bad_request", "reason": "unknown exchange type 'bogus'"})
    );
    let x = get(&server, "/api/exchanges/%2F/x1").await.json();
    assert_eq!(
        (
            x["type"].as_str(),
            x["durable"].as_bool(),
            x["internal"].as_bool()
        ),
        (Some("fanout"), Some(true), Some(false))
    );
    assert_eq!(
        get(&server, "/api/exchanges/%2F/amq.default").await.json()["name"],
        ""
    );

    let created = post(
        &server,
        "/api/bindings/%2F/e/x1/q/q1",
        json!({"routing_key": "k1", "arguments": {}}),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("location"), Some("q1/k1"));
    let listed = get(&server, "/api/bindings/%2F/e/x1/q/q1").await.json();
    assert_eq!(
        listed,
        json!([{"source": "x1", "vhost": "/", "destination": "q1", "destination_type": "queue",
                "routing_key": "k1", "arguments": {}, "properties_key": "k1"}])
    );
    // The default exchange's implicit binding is listed too, as RabbitMQ lists it.
    let of_queue = get(&server, "/api/queues/%2F/q1/bindings").await.json();
    assert_eq!(of_queue.as_array().unwrap().len(), 2);
    assert_eq!(of_queue[0]["source"], "");

    let published = post(
        &server,
        "/api/exchanges/%2F/x1/publish",
        json!({"routing_key": "k1", "payload": "hello", "payload_encoding": "string",
               "properties": {"delivery_mode": 2, "headers": {"h": 1}}}),
    )
    .await;
    assert_eq!(published.json(), json!({"routed": true}));
    let got = post(
        &server,
        "/api/queues/%2F/q1/get",
        json!({"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    )
    .await
    .json();
    assert_eq!(got.as_array().unwrap().len(), 1);
    assert_eq!(got[0]["payload"], "hello");
    assert_eq!(got[0]["payload_encoding"], "string");
    assert_eq!(got[0]["exchange"], "x1");
    assert_eq!(got[0]["properties"]["delivery_mode"], 2);
    assert_eq!(got[0]["properties"]["headers"], json!({"h": 1}));
    // Requeued: still there, now redelivered; then taken for good.
    let again = post(
        &server,
        "/api/queues/%2F/q1/get",
        json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64"}),
    )
    .await
    .json();
    assert_eq!(again[0]["redelivered"], true);
    assert_eq!(again[0]["payload"], "aGVsbG8=");
    assert_eq!(
        get(&server, "/api/queues/%2F/q1").await.json()["messages"],
        0
    );

    assert_eq!(
        delete(&server, "/api/bindings/%2F/e/x1/q/q1/k1")
            .await
            .status,
        204
    );
    assert_eq!(
        delete(&server, "/api/bindings/%2F/e/x1/q/q1/k1")
            .await
            .status,
        404
    );
    let unrouted = post(
        &server,
        "/api/exchanges/%2F/x1/publish",
        json!({"routing_key": "", "payload": "x", "payload_encoding": "string", "properties": {}}),
    )
    .await;
    assert_eq!(unrouted.json(), json!({"routed": false}));
    let refused = delete(&server, "/api/exchanges/%2F/amq.direct").await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.json(),
        json!({"error": "not_authorised", "reason": "Access refused."})
    );
    assert_eq!(delete(&server, "/api/exchanges/%2F/x1").await.status, 204);
    assert_eq!(delete(&server, "/api/exchanges/%2F/x1").await.status, 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn users_vhosts_and_permissions_change_live_and_survive_a_restart() {
    let dir = common::fresh_data_dir();
    let server = common::start_with(|c| c.data_dir = dir.clone()).await;
    assert_eq!(
        put(&server, "/api/vhosts/prod", json!({})).await.status,
        201
    );
    assert_eq!(
        put(&server, "/api/vhosts/prod", json!({})).await.status,
        204
    );
    // As RabbitMQ's put_vhost: the creator (guest) gets full permissions on the new vhost.
    assert_eq!(
        get(&server, "/api/permissions/prod/guest").await.json()["configure"],
        ".*"
    );
    assert_eq!(
        put(
            &server,
            "/api/users/bob",
            json!({"password": "s3cret", "tags": "management"})
        )
        .await
        .status,
        201
    );
    let missing = put(&server, "/api/users/nopw", json!({})).await;
    assert_eq!(
        missing.json(),
        json!({"error": "bad_request", "reason": "tags_not_present"})
    );
    let url = format!("amqp://bob:s3cret@{}/prod", server.addr());
    // No permission yet: the vhost is refused.
    assert!(
        Connection::connect(&url, ConnectionProperties::default())
            .await
            .is_err()
    );
    let perm = json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(
        put(&server, "/api/permissions/prod/bob", perm.clone())
            .await
            .status,
        201
    );
    let nobody = put(&server, "/api/permissions/prod/nobody", perm.clone()).await;
    assert_eq!(
        nobody.json(),
        json!({"error": "bad_request", "reason": "vhost_or_user_not_found"})
    );
    let narrow = put(
        &server,
        "/api/permissions/prod/bob",
        json!({"configure": "(", "write": ".*", "read": ".*"}),
    )
    .await;
    assert_eq!(narrow.status, 400, "an expression that does not compile");
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("bob may open prod now");
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "in-prod",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .unwrap();
    conn.close(200, "bye").await.unwrap();
    // bob sees his vhost's queues; users are an administrator's business.
    let bob = Some(("bob", "s3cret"));
    let queues = http(&server, "GET", "/api/queues", bob, None, &[])
        .await
        .json();
    assert_eq!(queues[0]["name"], "in-prod");
    assert_eq!(
        http(&server, "GET", "/api/users", bob, None, &[])
            .await
            .status,
        401
    );
    let users = get(&server, "/api/users").await.json();
    let bob_json = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(
        bob_json["hashing_algorithm"],
        "rabbit_password_hashing_sha256"
    );
    assert_eq!(bob_json["tags"], json!(["management"]));
    assert_eq!(
        get(&server, "/api/permissions/prod/bob").await.json(),
        json!({"user": "bob", "vhost": "prod", "configure": ".*", "write": ".*", "read": ".*"})
    );

    // A user created from a RabbitMQ password hash logs in with its password (RabbitMQ 3.10.8's
    // hash of "s3cret", from `rabbitmqctl export_definitions`).
    let hashed = json!({"password_hash": "DsW/ERHjhwAiSoGLBCw87ZZlxbvevucjY4Q0ix4CuDaUpqrL",
                        "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "monitoring"});
    assert_eq!(
        put(&server, "/api/users/imported", hashed).await.status,
        201
    );
    assert_eq!(
        http(
            &server,
            "GET",
            "/api/whoami",
            Some(("imported", "s3cret")),
            None,
            &[]
        )
        .await
        .status,
        200
    );

    let defs = get(&server, "/api/definitions").await.json();
    assert!(
        defs["vhosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "prod")
    );
    assert!(
        defs["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "in-prod" && q["vhost"] == "prod")
    );
    assert_eq!(defs["rabbit_version"], "3.10.8");

    server.shutdown().await.unwrap();
    let server = common::start_with(|c| c.data_dir = dir.clone()).await;
    let url = format!("amqp://bob:s3cret@{}/prod", server.addr());
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("bob and prod survive a restart");
    conn.close(200, "bye").await.unwrap();
    assert_eq!(
        delete(&server, "/api/permissions/prod/bob").await.status,
        204
    );
    assert_eq!(
        delete(&server, "/api/permissions/prod/bob").await.status,
        404
    );
    assert!(
        Connection::connect(&url, ConnectionProperties::default())
            .await
            .is_err()
    );
    assert_eq!(delete(&server, "/api/vhosts/prod").await.status, 204);
    assert_eq!(delete(&server, "/api/vhosts/prod").await.status, 404);
    assert_eq!(delete(&server, "/api/users/bob").await.status, 204);
    assert_eq!(delete(&server, "/api/users/bob").await.status, 404);
    server.shutdown().await.unwrap();
    let server = common::start_with(|c| c.data_dir = dir.clone()).await;
    assert_eq!(get(&server, "/api/vhosts/prod").await.status, 404);
    assert_eq!(get(&server, "/api/users/bob").await.status, 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleting_a_connection_closes_it_with_320_and_the_x_reason() {
    let server = common::start().await;
    let mut raw = common::Raw::open(&server).await;
    let conns = get(&server, "/api/connections").await.json();
    let name = conns[0]["name"].as_str().unwrap().to_string();
    assert_eq!(conns[0]["user"], "guest");
    assert_eq!(conns[0]["vhost"], "/");
    assert_eq!(
        get(&server, "/api/overview").await.json()["object_totals"]["connections"],
        1
    );
    let path = format!(
        "/api/connections/{}",
        name.replace(' ', "%20").replace('>', "%3E")
    );
    assert_eq!(get(&server, &path).await.json()["name"], name.as_str());
    // Channels are listed as they open and close.
    assert_eq!(get(&server, "/api/channels").await.json(), json!([]));
    raw.open_channel(3).await;
    let channels = get(&server, "/api/channels").await.json();
    assert_eq!(channels[0]["number"], 3);
    assert_eq!(channels[0]["name"], format!("{name} (3)"));
    assert_eq!(channels[0]["connection_details"]["name"], name.as_str());
    assert_eq!(
        get(&server, &format!("{path}/channels")).await.json()[0]["number"],
        3
    );
    assert_eq!(get(&server, &path).await.json()["channels"], 1);
    assert_eq!(
        get(&server, "/api/overview").await.json()["object_totals"]["channels"],
        1
    );
    let r = http(
        &server,
        "DELETE",
        &path,
        GUEST,
        None,
        &[("X-Reason", "maintenance")],
    )
    .await;
    assert_eq!(r.status, 204);
    match raw.method().await {
        Method::ConnectionClose(c) => {
            assert_eq!(c.reply_code, 320);
            assert_eq!(c.reply_text.to_string(), "CONNECTION_FORCED - maintenance");
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
    assert_eq!(
        http(
            &server,
            "DELETE",
            "/api/connections/nosuch",
            GUEST,
            None,
            &[]
        )
        .await
        .status,
        404
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_api_can_be_turned_off() {
    let server = common::start_with(|c| c.management_enabled = false).await;
    assert!(server.management_addr().is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_rabbitmq_export_imports_and_its_users_log_in_with_their_passwords() {
    // `GET /api/definitions` of RabbitMQ 3.10.8 after: vhost prod, user bob/s3cret (management)
    // allowed on prod, durable queue orders (x-message-ttl 60000), topic exchange events,
    // binding events -> orders "order.*".
    let file: Value =
        serde_json::from_str(include_str!("fixtures/rabbitmq-3.10.8-definitions.json")).unwrap();
    let server = common::start().await;
    let mut with_policy = file.clone();
    with_policy["policies"] = json!([{"vhost": "/", "name": "ttl", "pattern": ".*", "apply-to": "queues",
                                      "definition": {"bogus": 1}, "priority": 0}]);
    let refused = post(&server, "/api/definitions", with_policy).await;
    assert_eq!(
        refused.status, 400,
        "an invalid policy refuses the file: {}",
        refused.body
    );
    assert_eq!(
        get(&server, "/api/vhosts/prod").await.status,
        404,
        "a refused file changes nothing"
    );

    assert_eq!(
        post(&server, "/api/definitions", file.clone()).await.status,
        204
    );
    let url = format!("amqp://bob:s3cret@{}/prod", server.addr());
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("bob logs in with his RabbitMQ password");
    let ch = conn.create_channel().await.unwrap();
    let orders = common::passive_queue(&ch, "orders").await.unwrap();
    assert_eq!(orders.message_count(), 0);
    conn.close(200, "bye").await.unwrap();
    let q = get(&server, "/api/queues/prod/orders").await.json();
    assert_eq!(
        (q["durable"].clone(), q["arguments"].clone()),
        (json!(true), json!({"x-message-ttl": 60000}))
    );
    assert_eq!(
        get(&server, "/api/exchanges/prod/events").await.json()["type"],
        "topic"
    );
    // guest has no permission on prod until the file's permissions are imported: it has now.
    let routed = post(&server, "/api/exchanges/prod/events/publish",
        json!({"routing_key": "order.new", "payload": "x", "payload_encoding": "string", "properties": {}})).await;
    assert_eq!(routed.json(), json!({"routed": true}));

    // Importing again changes nothing and succeeds (RabbitMQ's merge keeps what exists).
    assert_eq!(post(&server, "/api/definitions", file).await.status, 204);
    assert_eq!(
        get(&server, "/api/queues/prod/orders").await.json()["messages"],
        1
    );

    // Warren's export imports into a fresh Warren and exports the same.
    let exported = get(&server, "/api/definitions").await.json();
    let other = common::start().await;
    assert_eq!(
        post(&other, "/api/definitions", exported.clone())
            .await
            .status,
        204
    );
    let again = get(&other, "/api/definitions").await.json();
    for key in [
        "vhosts",
        "permissions",
        "queues",
        "exchanges",
        "bindings",
        "users",
    ] {
        assert_eq!(again[key], exported[key], "{key}");
    }
    other.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn ten_thousand_queues_are_listed_quickly() {
    let server = common::start().await;
    let vhost = server.broker().vhost("/").unwrap();
    for i in 0..10_000 {
        vhost
            .declare_queue(warren_broker::QueueDeclare {
                name: format!("bulk-{i:05}").as_str().into(),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: Default::default(),
                connection: 0,
            })
            .unwrap();
    }
    let started = std::time::Instant::now();
    let all = get(&server, "/api/queues").await;
    let elapsed = started.elapsed();
    assert_eq!(all.json().as_array().unwrap().len(), 10_000);
    eprintln!("GET /api/queues with 10,000 queues: {elapsed:?}");
    // The issue asks for under a second; a debug build on a shared machine gets slack.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let page = get(&server, "/api/queues?page=3&page_size=100&columns=name")
        .await
        .json();
    assert_eq!(page["items"][0]["name"], "bulk-00200");
    assert_eq!(page["page_count"], 100);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn load_definitions_imports_a_file_at_every_start() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rabbitmq-3.10.8-definitions.json");
    let dir = common::fresh_data_dir();
    for start in 0..2 {
        let server = common::start_with(|c| {
            c.data_dir = dir.clone();
            c.load_definitions = file.clone();
        })
        .await;
        let url = format!("amqp://bob:s3cret@{}/prod", server.addr());
        let conn = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("start {start}: bob logs in: {e}"));
        let ch = conn.create_channel().await.unwrap();
        common::passive_queue(&ch, "orders").await.unwrap();
        conn.close(200, "bye").await.unwrap();
        server.shutdown().await.unwrap();
    }
    // A file that cannot be imported fails the start.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"policies": [{"name": "p"}]}"#).unwrap();
    let mut config = warren_server::config::Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        management_port: 0,
        prometheus_port: 0,
        data_dir: common::fresh_data_dir(),
        ..Default::default()
    };
    config.load_definitions = bad;
    let refused = warren_server::Server::bind(config).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("load_definitions")));
}
