//! Issue 11, as a client sees it: a persistent message published with confirms to an exchange
//! that routes it to three durable queues reaches all three, whatever consumes each queue
//! (nobody, a no-ack consumer, a manual-ack consumer), through every exchange type, and after a
//! restart every queue still holds what it had not had acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

/// Who consumes a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nobody,
    NoAck,
    Manual,
}

const KINDS: [Kind; 3] = [Kind::Nobody, Kind::NoAck, Kind::Manual];
const MESSAGES: usize = 3;

fn exchanges() -> [(&'static str, ExchangeKind); 4] {
    [
        ("fx", ExchangeKind::Fanout),
        ("dx", ExchangeKind::Direct),
        ("tx", ExchangeKind::Topic),
        ("hx", ExchangeKind::Headers),
    ]
}

fn headers() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("app".into(), AMQPValue::LongString("orders".into()));
    t
}

/// Every layout: an exchange kind and one consumer kind per queue.
fn layouts() -> Vec<(usize, [Kind; 3])> {
    let mut out = Vec::new();
    for x in 0..exchanges().len() {
        for a in KINDS {
            for b in KINDS {
                for c in KINDS {
                    out.push((x, [a, b, c]));
                }
            }
        }
    }
    out
}

fn queue_name(case: usize, i: usize) -> String {
    format!("case{case}-q{i}")
}

#[tokio::test]
async fn persistent_fan_out_reaches_every_durable_queue_for_every_consumer_kind() {
    let dir = common::fresh_data_dir();
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable_x = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let consumers_ch = conn.create_channel().await.unwrap();
    let mut consumers = Vec::new();
    for (case, (x, kinds)) in layouts().into_iter().enumerate() {
        // Each case has its own exchange, so no message reaches another case's queues.
        let (kind_name, kind) = exchanges()[x].clone();
        let exchange = format!("{kind_name}{case}");
        ch.exchange_declare(&exchange, kind, durable_x, FieldTable::default())
            .await
            .unwrap();
        for (i, kind) in kinds.iter().enumerate() {
            let q = queue_name(case, i);
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.queue_declare(&q, durable, FieldTable::default())
                .await
                .unwrap();
            let (key, args) = match kind_name {
                "tx" => ("orders.#".to_string(), FieldTable::default()),
                "hx" => (String::new(), headers()),
                _ => (format!("case{case}"), FieldTable::default()),
            };
            ch.queue_bind(&q, &exchange, &key, QueueBindOptions::default(), args)
                .await
                .unwrap();
            if *kind != Kind::Nobody {
                let c = consumers_ch
                    .basic_consume(
                        &q,
                        &format!("c-{q}"),
                        BasicConsumeOptions {
                            no_ack: *kind == Kind::NoAck,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
                consumers.push((case, i, *kind, c));
            }
        }
        let key = match kind_name {
            "tx" => "orders.created".to_string(),
            "hx" => String::new(),
            _ => format!("case{case}"),
        };
        for n in 0..MESSAGES {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers());
            let confirm = ch
                .basic_publish(
                    &exchange,
                    &key,
                    BasicPublishOptions::default(),
                    format!("case{case}-m{n}").as_bytes(),
                    props,
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack(), "case {case} {exchange} {kinds:?}: nacked");
        }
    }
    // Every consumer gets every message of its queue, in order.
    for (case, i, kind, consumer) in &mut consumers {
        for n in 0..MESSAGES {
            let d = tokio::time::timeout(Duration::from_secs(5), consumer.next())
                .await
                .unwrap_or_else(|_| panic!("case {case} q{i} {kind:?}: message {n} not delivered"))
                .unwrap()
                .unwrap();
            assert_eq!(d.data, format!("case{case}-m{n}").as_bytes());
            assert!(!d.redelivered);
        }
    }
    // Queues nobody consumes hold every message.
    let layouts = layouts();
    for (case, (_, kinds)) in layouts.iter().enumerate() {
        for (i, kind) in kinds.iter().enumerate() {
            let q = common::passive_queue(&ch, &queue_name(case, i))
                .await
                .unwrap();
            let expect = if *kind == Kind::Nobody { MESSAGES } else { 0 };
            assert_eq!(
                q.message_count() as usize,
                expect,
                "case {case} q{i} {kind:?}"
            );
        }
    }
    drop(consumers);
    server.shutdown().await.unwrap();

    // After a restart: everything not acknowledged is back; manual-ack deliveries redelivered.
    let d = dir.clone();
    let server = common::start_with(move |c| c.data_dir = d).await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    for (case, (_, kinds)) in layouts.iter().enumerate() {
        for (i, kind) in kinds.iter().enumerate() {
            let q = queue_name(case, i);
            let mut got = Vec::new();
            while let Some(m) = ch
                .basic_get(&q, BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                got.push((
                    String::from_utf8_lossy(&m.delivery.data).into_owned(),
                    m.delivery.redelivered,
                ));
            }
            let expect: Vec<(String, bool)> = match kind {
                Kind::NoAck => Vec::new(),
                _ => (0..MESSAGES)
                    .map(|n| (format!("case{case}-m{n}"), *kind == Kind::Manual))
                    .collect(),
            };
            assert_eq!(got, expect, "case {case} q{i} {kind:?} after restart");
        }
    }
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
