//! Policies, operator policies and parameters over the management HTTP API of the real server
//! (issue 13). The texts, status codes and access rules were checked against RabbitMQ 3.10.8;
//! `conformance/management_api.py` re-checks them against both brokers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};
use warren_server::ServerHandle;

/// One request on its own connection: status and JSON body (`Value::Null` when empty).
async fn call(
    server: &ServerHandle,
    method: &str,
    path: &str,
    auth: (&str, &str),
    body: Option<Value>,
) -> (u16, Value) {
    let addr = server.management_addr().expect("management API enabled");
    let r = common::http::request(addr, method, path, Some(auth), body, &[]).await;
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

const G: (&str, &str) = ("guest", "guest");

async fn publish(server: &ServerHandle, queue: &str, payload: &str) {
    let body = json!({"routing_key": queue, "payload": payload, "payload_encoding": "string", "properties": {}});
    let (status, _) = call(
        server,
        "POST",
        "/api/exchanges/%2F/amq.default/publish",
        G,
        Some(body),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_policy_set_over_http_limits_an_existing_queue_and_shows_on_it() {
    let server = common::start().await;
    let q = "/api/queues/%2F/orders";
    assert_eq!(
        call(&server, "PUT", q, G, Some(json!({"durable": true})))
            .await
            .0,
        201
    );
    for i in 0..3 {
        publish(&server, "orders", &format!("m{i}")).await;
    }
    let policy = json!({"pattern": "^ord", "definition": {"max-length": 1}, "priority": 2, "apply-to": "queues"});
    assert_eq!(
        call(
            &server,
            "PUT",
            "/api/policies/%2F/cap",
            G,
            Some(policy.clone())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(&server, "PUT", "/api/policies/%2F/cap", G, Some(policy))
            .await
            .0,
        204
    );
    let (_, shown) = call(&server, "GET", q, G, None).await;
    assert_eq!(shown["policy"], json!("cap"));
    assert_eq!(shown["operator_policy"], Value::Null);
    assert_eq!(
        shown["effective_policy_definition"],
        json!({"max-length": 1})
    );
    assert_eq!(shown["messages"], json!(1));
    assert_eq!(
        call(&server, "GET", "/api/policies/%2F/cap", G, None)
            .await
            .1,
        json!({"vhost": "/", "name": "cap", "pattern": "^ord", "apply-to": "queues",
               "definition": {"max-length": 1}, "priority": 2})
    );
    assert_eq!(
        call(&server, "DELETE", "/api/policies/%2F/cap", G, None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&server, "DELETE", "/api/policies/%2F/cap", G, None)
            .await
            .0,
        404
    );
    let (_, shown) = call(&server, "GET", q, G, None).await;
    assert_eq!(shown["policy"], Value::Null);
    assert_eq!(shown["effective_policy_definition"], json!({}));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn policies_need_policymaker_on_the_vhost_and_operator_policies_an_administrator() {
    let server = common::start().await;
    for (user, tags) in [("pm", "policymaker"), ("mg", "management")] {
        let body = json!({"password": "pw", "tags": tags});
        assert_eq!(
            call(&server, "PUT", &format!("/api/users/{user}"), G, Some(body))
                .await
                .0,
            201
        );
    }
    let policy = json!({"pattern": ".", "definition": {"max-length": 5}});
    let refused =
        json!({"error": "not_authorised", "reason": "User not authorised to access object"});
    assert_eq!(
        call(
            &server,
            "PUT",
            "/api/policies/%2F/p",
            ("pm", "pw"),
            Some(policy.clone())
        )
        .await,
        (401, refused.clone())
    );
    let perm = json!({"configure": ".*", "write": ".*", "read": ".*"});
    for user in ["pm", "mg"] {
        let path = format!("/api/permissions/%2F/{user}");
        assert_eq!(
            call(&server, "PUT", &path, G, Some(perm.clone())).await.0,
            201
        );
    }
    assert_eq!(
        call(
            &server,
            "PUT",
            "/api/policies/%2F/p",
            ("pm", "pw"),
            Some(policy.clone())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            "/api/policies/%2F/p",
            ("mg", "pw"),
            Some(policy.clone())
        )
        .await,
        (401, refused)
    );
    // A management user lists them; only an administrator touches operator policies.
    assert_eq!(
        call(&server, "GET", "/api/policies/%2F", ("mg", "pw"), None)
            .await
            .1[0]["name"],
        "p"
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            "/api/operator-policies/%2F/o",
            ("pm", "pw"),
            Some(policy)
        )
        .await,
        (
            401,
            json!({"error": "not_authorised", "reason": "Not administrator user"})
        )
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn policies_and_global_parameters_round_trip_through_definitions_and_a_restart() {
    let dir = common::fresh_data_dir();
    let server = common::start_with(|c| c.data_dir = dir.clone()).await;
    let policy = json!({"pattern": "^x", "definition": {"alternate-exchange": "ae"}, "apply-to": "exchanges", "priority": 1});
    assert_eq!(
        call(&server, "PUT", "/api/policies/%2F/ae", G, Some(policy))
            .await
            .0,
        201
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            "/api/global-parameters/cluster_tag",
            G,
            Some(json!({"value": {"a": 1}}))
        )
        .await
        .0,
        201
    );
    let (_, defs) = call(&server, "GET", "/api/definitions", G, None).await;
    assert_eq!(
        defs["policies"],
        json!([{"vhost": "/", "name": "ae", "pattern": "^x", "apply-to": "exchanges",
                "definition": {"alternate-exchange": "ae"}, "priority": 1}])
    );
    assert_eq!(
        defs["global_parameters"],
        json!([{"name": "cluster_tag", "value": {"a": 1}}])
    );
    server.shutdown().await.unwrap();

    // Back after a restart.
    let server = common::start_with(|c| c.data_dir = dir.clone()).await;
    assert_eq!(
        call(&server, "GET", "/api/policies", G, None).await.1,
        defs["policies"]
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/api/global-parameters/cluster_tag",
            G,
            None
        )
        .await
        .1,
        json!({"name": "cluster_tag", "value": {"a": 1}})
    );
    server.shutdown().await.unwrap();

    // Imported into another broker.
    let other = common::start().await;
    assert_eq!(
        call(&other, "POST", "/api/definitions", G, Some(defs.clone()))
            .await
            .0,
        204
    );
    assert_eq!(
        call(&other, "GET", "/api/policies", G, None).await.1,
        defs["policies"]
    );
    let bad = json!({"policies": [{"vhost": "/", "name": "b", "pattern": "a", "definition": {"bogus": 1}}]});
    assert_eq!(
        call(&other, "POST", "/api/definitions", G, Some(bad)).await,
        (
            400,
            json!({"error": "bad_request", "reason":
            "Validation failed\n\n[{&lt;&lt;\"bogus\"&gt;&gt;,1}] are not recognised policy settings\n"})
        )
    );
    other.shutdown().await.unwrap();
}
