//! Statistics through the real server: the management API's counts and rates (RabbitMQ 3.10's
//! field names, checked against RabbitMQ by `conformance/management_api.py`) and the
//! Prometheus endpoints (every line parses; RabbitMQ's names and types).

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use serde_json::Value;
use warren_mgmt::prometheus::parse_exposition;
use warren_server::ServerHandle;

/// `GET path` on `addr` as guest; (status, body).
async fn get_at(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = common::http::request(addr, "GET", path, Some(("guest", "guest")), None, &[]).await;
    (r.status, r.body)
}

async fn api(server: &ServerHandle, path: &str) -> Value {
    let (status, body) = get_at(server.management_addr().unwrap(), path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn scrape(server: &ServerHandle, path: &str) -> String {
    let (status, body) = get_at(server.prometheus_addr().unwrap(), path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn start() -> ServerHandle {
    common::start_with(|c| c.collect_statistics_interval = 100).await
}

/// Polls `path` until `check` holds (up to 10 s), returning the last answer.
async fn poll(server: &ServerHandle, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = api(server, path).await;
        if check(&v) || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rate(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur["rate"].as_f64().unwrap_or(-1.0)
}

#[tokio::test]
async fn queue_channel_and_connection_counts_follow_the_traffic() {
    let server = start().await;
    let conn = common::connect(&server).await;
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    common::declare_queue(&publisher, "stats-q").await.unwrap();
    for _ in 0..10 {
        publisher
            .basic_publish(
                "",
                "stats-q",
                BasicPublishOptions::default(),
                b"hello",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Unroutable, mandatory: returned.
    publisher
        .basic_publish(
            "",
            "stats-nowhere",
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let consumer = conn.create_channel().await.unwrap();
    consumer
        .basic_qos(5, BasicQosOptions::default())
        .await
        .unwrap();
    let got = consumer
        .basic_get("stats-q", BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    consumer
        .basic_get("stats-q", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    let mut deliveries = consumer
        .basic_consume(
            "stats-q",
            "c",
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();
    for i in 0..5 {
        let d = deliveries.next().await.unwrap().unwrap();
        if i < 3 {
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    // 10 published, 2 got, 5 + 3 delivered (prefetch 5, 3 acked), 5 unacked.
    let q = poll(&server, "/api/queues/%2F/stats-q", |q| {
        q["message_stats"]["deliver"] == 8 && q["messages_unacknowledged"] == 5
    })
    .await;
    assert_eq!(q["messages"], 5);
    assert_eq!(q["messages_ready"], 0);
    assert_eq!(q["message_bytes"], 25);
    assert_eq!(q["message_bytes_unacknowledged"], 25);
    assert_eq!(q["message_bytes_ready"], 0);
    assert_eq!(q["consumers"], 1);
    let ms = &q["message_stats"];
    for (k, v) in [
        ("publish", 10),
        ("deliver", 8),
        ("deliver_no_ack", 0),
        ("get", 1),
        ("get_no_ack", 1),
        ("get_empty", 0),
        ("ack", 4),
        ("redeliver", 0),
        ("deliver_get", 10),
    ] {
        assert_eq!(ms[k], v, "{k} in {ms}");
        assert!(ms[format!("{k}_details")]["rate"].is_f64(), "{k}_details");
    }
    // Channels: the publisher's and the consumer's groups, RabbitMQ's way.
    let channels = poll(&server, "/api/channels", |c| {
        c.as_array().is_some_and(|a| {
            a.iter().any(|c| c["messages_unacknowledged"] == 5)
                && a.iter().any(|c| c["message_stats"]["confirm"] == 11)
        })
    })
    .await;
    let chans = channels.as_array().unwrap();
    let p = chans.iter().find(|c| c["number"] == 1).unwrap();
    let c = chans.iter().find(|c| c["number"] == 2).unwrap();
    assert_eq!(p["message_stats"]["publish"], 11, "{p}");
    assert_eq!(p["message_stats"]["confirm"], 11);
    assert_eq!(p["message_stats"]["return_unroutable"], 1);
    assert_eq!(p["messages_unconfirmed"], 0);
    assert!(p["message_stats"].get("deliver").is_none(), "{p}");
    assert_eq!(c["prefetch_count"], 5);
    assert_eq!(c["global_prefetch_count"], 0);
    assert_eq!(c["consumer_count"], 1);
    assert_eq!(c["messages_unacknowledged"], 5);
    assert_eq!(c["message_stats"]["deliver"], 8);
    assert_eq!(c["message_stats"]["ack"], 4);
    assert_eq!(c["message_stats"]["get"], 1);
    assert_eq!(c["message_stats"]["get_no_ack"], 1);
    assert!(c["message_stats"].get("publish").is_none(), "{c}");
    // The connection's socket counters.
    let conns = api(&server, "/api/connections").await;
    let c0 = &conns[0];
    assert!(c0["recv_oct"].as_u64().unwrap() > 100, "{c0}");
    assert!(c0["send_oct"].as_u64().unwrap() > 100);
    assert!(c0["recv_cnt"].as_u64().unwrap() > 0);
    assert!(c0["send_cnt"].as_u64().unwrap() > 0);
    assert!(c0["recv_oct_details"]["rate"].is_f64());
    assert_eq!(c0["channels"], 2);
    // The vhost's and the node's aggregates (from channels, after a sample).
    let vh = poll(&server, "/api/vhosts/%2F", |v| {
        v["message_stats"]["publish"] == 11
    })
    .await;
    assert_eq!(vh["message_stats"]["publish"], 11, "{vh}");
    assert_eq!(vh["message_stats"]["deliver_get"], 10);
    assert_eq!(vh["messages_unacknowledged"], 5);
    assert!(vh["recv_oct"].as_u64().unwrap() > 100);
    let ov = api(&server, "/api/overview").await;
    assert_eq!(ov["message_stats"]["publish"], 11, "{ov}");
    assert_eq!(ov["message_stats"]["ack"], 4);
    assert_eq!(ov["queue_totals"]["messages_unacknowledged"], 5);
    assert!(ov["queue_totals"]["messages_details"]["rate"].is_f64());
    assert_eq!(ov["object_totals"]["channels"], 2);
    // Closing the channels keeps their counts in the vhost's totals.
    drop(deliveries);
    conn.close(200, "bye").await.unwrap();
    poll(&server, "/api/connections", |c| {
        c.as_array().is_some_and(Vec::is_empty)
    })
    .await;
    // Two samples later the closed channels are retired into the vhost's totals.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let vh = api(&server, "/api/vhosts/%2F").await;
    assert_eq!(vh["message_stats"]["publish"], 11, "{vh}");
    assert_eq!(vh["message_stats"]["ack"], 4);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn rates_become_non_zero_under_traffic() {
    let server = start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "rates-q").await.unwrap();
    let publishing = tokio::spawn(async move {
        let end = Instant::now() + Duration::from_secs(8);
        while Instant::now() < end {
            for _ in 0..50 {
                let _ = ch
                    .basic_publish(
                        "",
                        "rates-q",
                        BasicPublishOptions::default(),
                        b"x",
                        BasicProperties::default(),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let q = poll(&server, "/api/queues/%2F/rates-q", |q| {
        rate(q, &["message_stats", "publish_details"]) > 0.0 && rate(q, &["messages_details"]) > 0.0
    })
    .await;
    assert!(rate(&q, &["message_stats", "publish_details"]) > 0.0, "{q}");
    let ov = poll(&server, "/api/overview", |o| {
        rate(o, &["message_stats", "publish_details"]) > 0.0
    })
    .await;
    assert!(
        rate(&ov, &["message_stats", "publish_details"]) > 0.0,
        "{ov}"
    );
    let c = poll(&server, "/api/connections", |c| {
        rate(&c[0], &["recv_oct_details"]) > 0.0
    })
    .await;
    assert!(rate(&c[0], &["recv_oct_details"]) > 0.0, "{c}");
    let chans = poll(&server, "/api/channels", |c| {
        rate(&c[0], &["message_stats", "publish_details"]) > 0.0
    })
    .await;
    assert!(
        rate(&chans[0], &["message_stats", "publish_details"]) > 0.0,
        "{chans}"
    );
    publishing.abort();
    server.shutdown().await.unwrap();
}

/// A name as a path segment (connection and channel names hold spaces, `>` and parentheses).
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The newest point of `details.samples`, and how many there are.
fn newest(details: &Value) -> (Option<u64>, usize) {
    let samples = details["samples"].as_array().cloned().unwrap_or_default();
    (
        samples.first().and_then(|s| s["sample"].as_u64()),
        samples.len(),
    )
}

#[tokio::test]
async fn channel_and_connection_history_follows_their_counters() {
    let server = start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "hist-q").await.unwrap();
    for _ in 0..10 {
        ch.basic_publish(
            "",
            "hist-q",
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let chans = poll(&server, "/api/channels", |c| {
        c[0]["message_stats"]["publish"] == 10
    })
    .await;
    let channel = encode(chans[0]["name"].as_str().unwrap());
    let connection = encode(chans[0]["connection_details"]["name"].as_str().unwrap());
    // Samples come every 100 ms; points are one per second, so two need two seconds.
    let path = format!("/api/channels/{channel}?msg_rates_age=2&msg_rates_incr=1");
    let one = poll(&server, &path, |c| {
        newest(&c["message_stats"]["publish_details"]) == (Some(10), 3)
    })
    .await;
    let publish = &one["message_stats"]["publish_details"];
    assert_eq!(newest(publish), (Some(10), 3), "{one}");
    assert!(
        publish["avg"].is_number() && publish["avg_rate"].is_number(),
        "{one}"
    );
    // A connection's history is asked for with `data_rates_*`, as RabbitMQ's.
    let path = format!("/api/connections/{connection}?data_rates_age=2&data_rates_incr=1");
    let c = poll(&server, &path, |c| newest(&c["recv_oct_details"]).1 == 3).await;
    let (recv, n) = newest(&c["recv_oct_details"]);
    assert_eq!(n, 3, "{c}");
    assert!(
        recv.unwrap() > 0 && recv.unwrap() <= c["recv_oct"].as_u64().unwrap(),
        "{c}"
    );
    assert_eq!(newest(&c["send_oct_details"]).1, 3, "{c}");
    // Without the parameters, rates only; `msg_rates_*` is not a connection's range.
    let path = format!("/api/connections/{connection}?msg_rates_age=2&msg_rates_incr=1");
    let plain = api(&server, &path).await;
    assert!(
        plain["recv_oct_details"].get("samples").is_none(),
        "{plain}"
    );
    let (status, _) = get_at(
        server.management_addr().unwrap(),
        &format!("/api/connections/{connection}?data_rates_age=2&data_rates_incr=0"),
    )
    .await;
    assert_eq!(status, 400);
    server.shutdown().await.unwrap();
}

/// The metric names and types of RabbitMQ 3.10.8's `/metrics` that Warren serves (checked
/// against a real scrape by `conformance/prometheus_check.py`).
const EXPECTED: &[(&str, &str)] = &[
    ("rabbitmq_identity_info", "untyped"),
    ("rabbitmq_build_info", "untyped"),
    ("rabbitmq_connections", "gauge"),
    ("rabbitmq_channels", "gauge"),
    ("rabbitmq_consumers", "gauge"),
    ("rabbitmq_queues", "gauge"),
    ("rabbitmq_queue_messages_ready", "gauge"),
    ("rabbitmq_queue_messages_unacked", "gauge"),
    ("rabbitmq_queue_messages", "gauge"),
    ("rabbitmq_channel_messages_published_total", "counter"),
    ("rabbitmq_channel_messages_delivered_ack_total", "counter"),
    ("rabbitmq_channel_messages_confirmed_total", "counter"),
    ("rabbitmq_channel_messages_redelivered_total", "counter"),
    ("rabbitmq_channel_messages_acked_total", "counter"),
    ("rabbitmq_process_open_fds", "gauge"),
    ("rabbitmq_process_max_fds", "gauge"),
    ("rabbitmq_process_resident_memory_bytes", "gauge"),
    ("rabbitmq_alarms_memory_used_watermark", "untyped"),
    ("rabbitmq_connection_incoming_bytes_total", "counter"),
];

#[tokio::test]
async fn prometheus_scrapes_parse_with_rabbitmqs_names_and_types() {
    let server = start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "prom-q").await.unwrap();
    for _ in 0..3 {
        ch.basic_publish(
            "",
            "prom-q",
            BasicPublishOptions::default(),
            b"abcd",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let parsed = loop {
        let text = scrape(&server, "/metrics").await;
        let parsed = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let ready = parsed
            .get("rabbitmq_queue_messages_ready")
            .and_then(|f| f.2.first())
            .map_or(0.0, |s| s.1);
        if ready == 3.0 || Instant::now() > deadline {
            break parsed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (name, kind) in EXPECTED {
        let f = parsed.get(*name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(f.0, *kind, "{name}");
        assert!(!f.1.is_empty(), "{name} has HELP");
    }
    let one = |n: &str| parsed[n].2[0].1;
    assert_eq!(one("rabbitmq_queue_messages_ready"), 3.0);
    assert_eq!(one("rabbitmq_queue_messages_bytes"), 12.0);
    assert_eq!(one("rabbitmq_channel_messages_published_total"), 3.0);
    assert_eq!(one("rabbitmq_connections"), 1.0);
    assert_eq!(one("rabbitmq_channels"), 1.0);
    assert_eq!(one("rabbitmq_queues"), 1.0);
    // Aggregated: no labels on per-object families.
    assert!(parsed["rabbitmq_queue_messages_ready"].2[0].0.is_empty());
    assert_eq!(
        parsed["rabbitmq_build_info"].2[0].0["rabbitmq_version"],
        "3.10.8"
    );
    // Per object: one sample per queue with vhost and queue labels.
    let per = parse_exposition(&scrape(&server, "/metrics/per-object").await).unwrap();
    let s = &per["rabbitmq_queue_messages_ready"].2;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0["vhost"], "/");
    assert_eq!(s[0].0["queue"], "prom-q");
    assert!(
        per["rabbitmq_channel_messages_published_total"].2[0]
            .0
            .contains_key("channel")
    );
    // Detailed: only the families asked for, prefixed, queues of the vhosts asked for.
    let det = parse_exposition(
        &scrape(
            &server,
            "/metrics/detailed?family=queue_coarse_metrics&family=channel_metrics",
        )
        .await,
    )
    .unwrap();
    assert!(det.contains_key("rabbitmq_detailed_queue_messages_ready"));
    assert!(det.contains_key("rabbitmq_detailed_channel_messages_unacked"));
    assert!(!det.contains_key("rabbitmq_detailed_channel_messages_published_total"));
    assert!(!det.contains_key("rabbitmq_queue_messages_ready"));
    assert!(det.contains_key("rabbitmq_identity_info"));
    let other = parse_exposition(
        &scrape(
            &server,
            "/metrics/detailed?family=queue_coarse_metrics&vhost=other",
        )
        .await,
    )
    .unwrap();
    assert!(other["rabbitmq_detailed_queue_messages_ready"].2.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn prometheus_can_be_turned_off() {
    let server = common::start_with(|c| c.prometheus_enabled = false).await;
    assert!(server.prometheus_addr().is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn scraping_ten_thousand_queues() {
    let server = start().await;
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
    for path in ["/metrics", "/metrics/per-object"] {
        let started = Instant::now();
        let text = scrape(&server, path).await;
        let elapsed = started.elapsed();
        let parsed = parse_exposition(&text).unwrap();
        eprintln!(
            "{path} with 10,000 queues: {elapsed:?}, {} bytes",
            text.len()
        );
        assert_eq!(parsed["rabbitmq_queues"].2[0].1, 10_000.0);
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
    let started = Instant::now();
    let q = api(&server, "/api/queues").await;
    eprintln!(
        "GET /api/queues with 10,000 queues and statistics: {:?}",
        started.elapsed()
    );
    assert_eq!(q.as_array().unwrap().len(), 10_000);
    server.shutdown().await.unwrap();
}
