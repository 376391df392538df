//! Operations endpoints through the real server: the per-vhost channel list and one channel
//! (`/api/vhosts/{v}/channels`, `/api/channels/{name}`), and the node-wide Prometheus metrics
//! of RabbitMQ's Grafana dashboard (queue lifecycle totals, publishes expecting confirms,
//! free disk space, TCP sockets). Checked against RabbitMQ by `conformance/mgmt_vhost_lists.py`
//! and `conformance/prometheus_check.py`.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::http::call;
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use serde_json::{Value, json};
use warren_mgmt::prometheus::parse_exposition;
use warren_server::ServerHandle;

async fn start() -> ServerHandle {
    common::start_with(|c| c.collect_statistics_interval = 100).await
}

/// The value of an unlabelled sample of `/metrics`, or -1 when absent.
async fn metric(server: &ServerHandle, name: &str) -> f64 {
    let addr = server.prometheus_addr().unwrap();
    let r = common::http::request(addr, "GET", "/metrics", None, None, &[]).await;
    let parsed = parse_exposition(&r.body).unwrap_or_else(|e| panic!("{e}"));
    parsed
        .get(name)
        .and_then(|f| f.2.first())
        .map_or(-1.0, |s| s.1)
}

#[tokio::test]
async fn node_metrics_count_queues_confirm_publishes_disk_and_sockets() {
    let server = start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "ops-q").await.unwrap();
    common::declare_queue(&ch, "ops-q").await.unwrap();
    common::passive_queue(&ch, "ops-q").await.unwrap();
    ch.queue_delete("ops-q", QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(metric(&server, "rabbitmq_queues_declared_total").await, 2.0);
    assert_eq!(metric(&server, "rabbitmq_queues_created_total").await, 1.0);
    assert_eq!(metric(&server, "rabbitmq_queues_deleted_total").await, 1.0);

    // Two plain publishes, then three in confirm mode on another channel.
    for _ in 0..2 {
        ch.basic_publish(
            "",
            "nowhere",
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let confirming = conn.create_channel().await.unwrap();
    confirming
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        confirming
            .basic_publish(
                "",
                "nowhere",
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let name = "rabbitmq_global_messages_received_confirm_total";
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, name).await != 3.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&server, name).await, 3.0);
    // A closed channel's count stays in the total.
    confirming.close(200, "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(metric(&server, name).await, 3.0);
    assert_eq!(
        metric(&server, "rabbitmq_global_messages_received_total").await,
        5.0
    );

    assert_eq!(
        metric(&server, "rabbitmq_process_open_tcp_sockets").await,
        1.0
    );
    assert!(metric(&server, "rabbitmq_process_max_tcp_sockets").await > 0.0);
    assert!(metric(&server, "rabbitmq_disk_space_available_bytes").await > 0.0);
    assert_eq!(
        metric(&server, "rabbitmq_disk_space_available_limit_bytes").await,
        50_000_000.0
    );
    // Warren's own: nothing was lost to a spill I/O error.
    assert_eq!(
        metric(&server, "warren_spill_lost_messages_total").await,
        0.0
    );
    conn.close(200, "").await.unwrap();
    server.shutdown().await.unwrap();
}

async fn get(server: &ServerHandle, path: &str) -> (u16, Value) {
    let r = call(server, "GET", path, None).await;
    let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

#[tokio::test]
async fn vhost_channels_are_listed_unpaged_and_one_channel_is_found_by_name() {
    let server = start().await;
    assert_eq!(
        call(&server, "PUT", "/api/vhosts/ops-v", Some(json!({})))
            .await
            .status,
        201
    );
    let perm = json!({"configure": ".*", "write": ".*", "read": ".*"});
    call(&server, "PUT", "/api/permissions/ops-v/guest", Some(perm)).await;
    let url = format!("amqp://guest:guest@{}/ops-v", server.addr());
    let in_v = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let _a = in_v.create_channel().await.unwrap();
    let _b = in_v.create_channel().await.unwrap();
    let elsewhere = common::connect(&server).await;
    let _c = elsewhere.create_channel().await.unwrap();

    let (status, list) = get(&server, "/api/vhosts/ops-v/channels").await;
    assert_eq!(status, 200);
    let list = list.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|c| c["vhost"] == "ops-v"));
    // RabbitMQ's reply_list: paging parameters are ignored, sorting is not.
    let (_, paged) = get(
        &server,
        "/api/vhosts/ops-v/channels?page=1&page_size=1&sort=number&sort_reverse=true",
    )
    .await;
    let numbers: Vec<u64> = paged
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["number"].as_u64())
        .collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(get(&server, "/api/vhosts/nosuch/channels").await.0, 404);
    let (_, conns) = get(&server, "/api/vhosts/ops-v/connections?page=1").await;
    assert_eq!(conns.as_array().map(Vec::len), Some(1));

    let name = list[0]["name"].as_str().unwrap().to_string();
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, one) = get(&server, &format!("/api/channels/{encoded}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["name"], name.as_str());
    assert_eq!(one["vhost"], "ops-v");
    assert_eq!(get(&server, "/api/channels/no%20such%20(1)").await.0, 404);
    in_v.close(200, "").await.unwrap();
    elsewhere.close(200, "").await.unwrap();
    server.shutdown().await.unwrap();
}
