//! Generated sequences of management API calls (queue, exchange and binding declares and
//! deletes, API publishes) checked against a model after every step: the status of each call,
//! the queue, exchange and binding listings, each queue's message count, and (every few steps)
//! what an AMQP passive declare finds. Seedable: `WARREN_MGMT_SEED=n` replays one sequence,
//! `WARREN_MGMT_RUNS=n` searches longer.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_server::ServerHandle;

/// xorshift64*: enough randomness for choosing operations, reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

async fn call(
    server: &ServerHandle,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let addr = server.management_addr().unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[derive(Debug, Default)]
struct Model {
    /// Queue name -> (durable, messages).
    queues: BTreeMap<String, (bool, u64)>,
    /// Exchange name -> type.
    exchanges: BTreeMap<String, &'static str>,
    /// (source, queue, key).
    bindings: BTreeSet<(String, String, String)>,
}

impl Model {
    /// The queues a publish to `x` with `key` reaches (each once).
    fn route(&self, x: &str, key: &str) -> BTreeSet<String> {
        let Some(kind) = self.exchanges.get(x) else {
            return BTreeSet::new();
        };
        self.bindings
            .iter()
            .filter(|(s, _, k)| s == x && (*kind == "fanout" || k == key))
            .map(|(_, q, _)| q.clone())
            .collect()
    }
}

const QUEUES: [&str; 4] = ["q0", "q1", "q2", "q3"];
const EXCHANGES: [&str; 3] = ["x0", "x1", "x2"];
const KEYS: [&str; 2] = ["a", "b"];
const KINDS: [&str; 2] = ["direct", "fanout"];

async fn step(server: &ServerHandle, model: &mut Model, rng: &mut Rng, log: &mut Vec<String>) {
    let q = QUEUES[rng.below(QUEUES.len())].to_string();
    let x = EXCHANGES[rng.below(EXCHANGES.len())].to_string();
    let key = KEYS[rng.below(KEYS.len())].to_string();
    let op = rng.below(8);
    let (what, got, want) = match op {
        0 => {
            let durable = rng.below(2) == 0;
            let (status, _) = call(
                server,
                "PUT",
                &format!("/api/queues/%2F/{q}"),
                Some(json!({"durable": durable})),
            )
            .await;
            let want = match model.queues.get(&q) {
                None => {
                    model.queues.insert(q.clone(), (durable, 0));
                    201
                }
                Some((d, _)) if *d == durable => 204,
                Some(_) => 400,
            };
            (format!("PUT queue {q} durable={durable}"), status, want)
        }
        1 => {
            let (status, _) = call(server, "DELETE", &format!("/api/queues/%2F/{q}"), None).await;
            let want = if model.queues.remove(&q).is_some() {
                model.bindings.retain(|(_, d, _)| *d != q);
                204
            } else {
                404
            };
            (format!("DELETE queue {q}"), status, want)
        }
        2 => {
            let kind = KINDS[rng.below(KINDS.len())];
            let (status, _) = call(
                server,
                "PUT",
                &format!("/api/exchanges/%2F/{x}"),
                Some(json!({"type": kind})),
            )
            .await;
            let want = match model.exchanges.get(&x) {
                None => {
                    model.exchanges.insert(x.clone(), kind);
                    201
                }
                Some(k) if *k == kind => 204,
                Some(_) => 400,
            };
            (format!("PUT exchange {x} {kind}"), status, want)
        }
        3 => {
            let (status, _) =
                call(server, "DELETE", &format!("/api/exchanges/%2F/{x}"), None).await;
            let want = if model.exchanges.remove(&x).is_some() {
                model.bindings.retain(|(s, _, _)| *s != x);
                204
            } else {
                404
            };
            (format!("DELETE exchange {x}"), status, want)
        }
        4 | 5 => {
            let (status, _) = call(
                server,
                "POST",
                &format!("/api/bindings/%2F/e/{x}/q/{q}"),
                Some(json!({"routing_key": key})),
            )
            .await;
            let want = if model.exchanges.contains_key(&x) && model.queues.contains_key(&q) {
                model.bindings.insert((x.clone(), q.clone(), key.clone()));
                201
            } else {
                404
            };
            (format!("bind {x} -> {q} ({key})"), status, want)
        }
        6 => {
            let (status, _) = call(
                server,
                "DELETE",
                &format!("/api/bindings/%2F/e/{x}/q/{q}/{key}"),
                None,
            )
            .await;
            let want = if model.bindings.remove(&(x.clone(), q.clone(), key.clone())) {
                204
            } else {
                404
            };
            (format!("unbind {x} -> {q} ({key})"), status, want)
        }
        _ => {
            let body = json!({"routing_key": key, "payload": "m", "payload_encoding": "string", "properties": {}});
            let (status, reply) = call(
                server,
                "POST",
                &format!("/api/exchanges/%2F/{x}/publish"),
                Some(body),
            )
            .await;
            let reached = model.route(&x, &key);
            let want = if model.exchanges.contains_key(&x) {
                assert_eq!(
                    reply["routed"],
                    json!(!reached.is_empty()),
                    "routed, after {log:#?}"
                );
                for name in &reached {
                    if let Some(q) = model.queues.get_mut(name) {
                        q.1 += 1;
                    }
                }
                200
            } else {
                404
            };
            (format!("publish {x} ({key})"), status, want)
        }
    };
    log.push(format!("{what}: {got}"));
    assert_eq!(got, want, "{what}, after {log:#?}");
}

async fn compare(server: &ServerHandle, model: &Model, log: &[String]) {
    let (_, queues) = call(server, "GET", "/api/queues/%2F", None).await;
    let got: BTreeMap<String, (bool, u64)> = queues
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap().to_string(),
                (
                    q["durable"].as_bool().unwrap(),
                    q["messages"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, model.queues, "queues, after {log:#?}");
    let (_, exchanges) = call(server, "GET", "/api/exchanges/%2F", None).await;
    let got: BTreeMap<String, String> = exchanges
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"].as_str().is_some_and(|n| n.starts_with('x')))
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                x["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = model
        .exchanges
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    assert_eq!(got, want, "exchanges, after {log:#?}");
    let (_, bindings) = call(server, "GET", "/api/bindings/%2F", None).await;
    let got: BTreeSet<(String, String, String)> = bindings
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["source"] != "")
        .map(|b| {
            (
                b["source"].as_str().unwrap().to_string(),
                b["destination"].as_str().unwrap().to_string(),
                b["routing_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, model.bindings, "bindings, after {log:#?}");
}

async fn run(seed: u64, steps: usize) {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut model = Model::default();
    let mut log = vec![format!("seed {seed}")];
    for i in 0..steps {
        step(&server, &mut model, &mut rng, &mut log).await;
        compare(&server, &model, &log).await;
        if i % 10 == 9 {
            // AMQP sees what the API made.
            for name in QUEUES {
                let ch = conn.create_channel().await.unwrap();
                let found = common::passive_queue(&ch, name).await;
                match model.queues.get(name) {
                    Some((_, messages)) => {
                        assert_eq!(
                            u64::from(found.unwrap().message_count()),
                            *messages,
                            "{name}, after {log:#?}"
                        );
                        ch.close(200, "ok").await.unwrap();
                    }
                    None => assert_eq!(
                        common::reply_code(&found.unwrap_err()),
                        Some(404),
                        "{name}, after {log:#?}"
                    ),
                }
            }
        }
    }
    conn.close(200, "bye").await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn generated_management_sequences_agree_with_the_model() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(seed) = env("WARREN_MGMT_SEED") {
        return run(seed, 300).await;
    }
    for seed in 0..env("WARREN_MGMT_RUNS").unwrap_or(4) {
        run(seed, 150).await;
    }
}
