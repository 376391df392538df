//! Connection, exchanges, queues, bindings and routing.

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use crate::harness::{Res, Scenario, check, eq, expect_close, sleep, unique};
use crate::world::{World, with_world};

/// The scenarios of this module.
pub fn scenarios() -> Vec<Scenario> {
    crate::scenarios![
        "connect_heartbeat" => connect_heartbeat,
        "exchange_declare_types" => exchange_declare_types,
        "queue_declare_named" => queue_declare_named,
        "queue_declare_server_named" => queue_declare_server_named,
        "queue_declare_exclusive" => queue_declare_exclusive,
        "queue_declare_auto_delete" => queue_declare_auto_delete,
        "queue_declare_durable" => queue_declare_durable,
        "bind_unbind" => bind_unbind,
        "exchange_to_exchange_bind" => exchange_to_exchange_bind,
    ]
}

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

/// Drains a queue with basic.get (auto-ack): the bodies as strings.
pub(crate) async fn drain(w: &World, queue: &str) -> Res<Vec<String>> {
    let mut out = Vec::new();
    while let Some(m) = w
        .ch()
        .basic_get(queue, lapin::options::BasicGetOptions { no_ack: true })
        .await?
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    Ok(out)
}

/// Whether a passive declare of `queue` (on a new channel) answers 404.
pub(crate) async fn queue_gone(w: &World, queue: &str) -> Res<bool> {
    let ch = w.channel().await?;
    match ch
        .queue_declare(queue, passive(), FieldTable::default())
        .await
    {
        Ok(_) => {
            let _ = ch.close(200, "done").await;
            Ok(false)
        }
        Err(e) => Ok(crate::harness::close_of(&e).map(|(c, _)| c) == Some(404)),
    }
}

async fn connect_heartbeat(url: String) -> Res {
    let w = World::open(&url, "?heartbeat=2").await?;
    let res = async {
        let cfg = w.conn().configuration();
        eq(cfg.heartbeat(), 2, "negotiated heartbeat")?;
        eq(
            cfg.frame_max(),
            131072,
            "negotiated frame_max (server proposes 131072)",
        )?;
        eq(
            cfg.channel_max(),
            2047,
            "negotiated channel_max (server proposes 2047)",
        )?;
        // idle for three heartbeat intervals: the connection must stay open and usable
        sleep(6000).await;
        check(
            w.conn().status().connected(),
            "connection closed while idle with heartbeat 2",
        )?;
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        w.ch()
            .queue_declare("", opts, FieldTable::default())
            .await?;
        Ok(format!(
            "heartbeat {}, frame_max {} (lapin does not expose the server properties)",
            cfg.heartbeat(),
            cfg.frame_max()
        ))
    }
    .await;
    w.close().await;
    res
}

async fn exchange_declare_types(url: String) -> Res {
    with_world(url, |w| async move {
        let kinds = [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ];
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        for kind in kinds {
            let name = w
                .exchange("ex-type", kind.clone(), ExchangeDeclareOptions::default())
                .await?;
            let none = FieldTable::default;
            w.ch()
                .exchange_declare(
                    &name,
                    kind.clone(),
                    ExchangeDeclareOptions::default(),
                    none(),
                )
                .await?;
            w.ch()
                .exchange_declare(&name, kind.clone(), passive, none())
                .await?;
            w.ch()
                .exchange_delete(&name, ExchangeDeleteOptions::default())
                .await?;
            let ch = w.channel().await?;
            let r = ch.exchange_declare(&name, kind, passive, none()).await;
            expect_close(
                r,
                404,
                &format!("NOT_FOUND - no exchange '{name}' in vhost '/'"),
            )?;
        }
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (name, kind) in [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            let none = FieldTable::default;
            w.ch()
                .exchange_declare(name, kind.clone(), passive, none())
                .await?;
            w.ch().exchange_declare(name, kind, durable, none()).await?;
        }
        Ok(String::new())
    })
    .await
}

async fn queue_declare_named(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let name = unique("q-named");
        let none = FieldTable::default;
        let q = w
            .ch()
            .queue_declare(&name, QueueDeclareOptions::default(), none())
            .await?;
        w.track_queue(&name);
        eq(q.name().as_str(), name.as_str(), "declare-ok queue")?;
        eq((q.message_count(), q.consumer_count()), (0, 0), "counts")?;
        w.publish("", &name, b"x").await?;
        let q = w
            .ch()
            .queue_declare(&name, QueueDeclareOptions::default(), none())
            .await?;
        eq(q.message_count(), 1, "redeclare message_count")?;
        let q = w.ch().queue_declare(&name, passive(), none()).await?;
        eq(q.message_count(), 1, "passive message_count")?;
        let n = w
            .ch()
            .queue_delete(&name, QueueDeleteOptions::default())
            .await?;
        eq(n, 1, "delete-ok message_count")?;
        Ok(String::new())
    })
    .await
}

async fn queue_declare_server_named(url: String) -> Res {
    with_world(url, |w| async move {
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        let q = w
            .ch()
            .queue_declare("", opts, FieldTable::default())
            .await?;
        let q = q.name().as_str().to_string();
        check(
            q.starts_with("amq.gen-"),
            format!("server-named queue {q:?}"),
        )?;
        w.publish("", &q, b"hello").await?;
        let body = wait_get(&w, &q).await?;
        eq(body.as_str(), "hello", "body via server-named queue")?;
        Ok(q)
    })
    .await
}

/// basic.get until a message comes (publishes are not confirmed here), 3 s at most.
async fn wait_get(w: &World, q: &str) -> Res<String> {
    for _ in 0..150 {
        let opts = lapin::options::BasicGetOptions { no_ack: true };
        if let Some(m) = w.ch().basic_get(q, opts).await? {
            return Ok(String::from_utf8_lossy(&m.delivery.data).into_owned());
        }
        sleep(20).await;
    }
    crate::harness::fail("no message within 3 s")
}

async fn queue_declare_exclusive(url: String) -> Res {
    with_world(url, |w| async move {
        let c2 = w.connect().await?;
        let ch2 = c2.create_channel().await?;
        let name = unique("q-excl");
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        ch2.queue_declare(&name, opts, FieldTable::default())
            .await?;
        ch2.queue_declare(&name, passive(), FieldTable::default())
            .await?;
        c2.close(200, "done").await?;
        let mut gone = false;
        for _ in 0..25 {
            if queue_gone(&w, &name).await? {
                gone = true;
                break;
            }
            sleep(200).await;
        }
        check(
            gone,
            "exclusive queue still exists after its connection closed",
        )?;
        Ok(String::new())
    })
    .await
}

async fn queue_declare_auto_delete(url: String) -> Res {
    with_world(url, |w| async move {
        let opts = QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        };
        let name = w.queue("q-autodel", opts).await?;
        w.ch()
            .queue_declare(&name, passive(), FieldTable::default())
            .await?;
        let consumer = w
            .ch()
            .basic_consume(&name, "", Default::default(), FieldTable::default())
            .await?;
        w.ch()
            .basic_cancel(consumer.tag().as_str(), Default::default())
            .await?;
        let mut gone = false;
        for _ in 0..25 {
            if queue_gone(&w, &name).await? {
                gone = true;
                break;
            }
            sleep(200).await;
        }
        check(
            gone,
            "auto-delete queue still exists after its last consumer left",
        )?;
        Ok(String::new())
    })
    .await
}

async fn queue_declare_durable(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let name = w.queue("q-durable", durable).await?;
        w.ch()
            .queue_declare(&name, durable, FieldTable::default())
            .await?;
        let props = BasicProperties::default().with_delivery_mode(2);
        World::publish_on(w.ch(), "", &name, b"p", props).await?;
        eq(w.count(&name).await?, 1, "message_count")?;
        let n = w
            .ch()
            .queue_delete(&name, QueueDeleteOptions::default())
            .await?;
        eq(n, 1, "delete-ok message_count")?;
        Ok(String::new())
    })
    .await
}

pub(crate) async fn bind(w: &World, q: &str, ex: &str, key: &str, args: FieldTable) -> Res<()> {
    Ok(w.ch()
        .queue_bind(q, ex, key, QueueBindOptions::default(), args)
        .await?)
}

async fn bind_unbind(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let ex = w
            .exchange("ex-bind", ExchangeKind::Direct, Default::default())
            .await?;
        let q = w.queue("q-bind", Default::default()).await?;
        for k in ["k1", "k1", "k2"] {
            bind(&w, &q, &ex, k, FieldTable::default()).await?;
        }
        for k in ["k1", "k2", "k3"] {
            w.publish(&ex, k, k.as_bytes()).await?;
        }
        eq(w.count(&q).await?, 2, "messages routed with bindings k1,k2")?;
        let none = FieldTable::default;
        w.ch().queue_unbind(&q, &ex, "k1", none()).await?;
        for k in ["k1", "k2"] {
            w.publish(&ex, k, k.as_bytes()).await?;
        }
        eq(w.count(&q).await?, 3, "messages after unbind of k1")?;
        // unbinding what is not bound is not an error in RabbitMQ
        w.ch().queue_unbind(&q, &ex, "never-bound", none()).await?;
        eq(drain(&w, &q).await?, strings(&["k1", "k2", "k2"]), "bodies")?;
        Ok(String::new())
    })
    .await
}

async fn exchange_to_exchange_bind(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let src = w
            .exchange("ex-src", ExchangeKind::Topic, Default::default())
            .await?;
        let dst = w
            .exchange("ex-dst", ExchangeKind::Fanout, Default::default())
            .await?;
        let q = w.queue("q-e2e", Default::default()).await?;
        bind(&w, &q, &dst, "", FieldTable::default()).await?;
        let none = FieldTable::default;
        w.ch()
            .exchange_bind(&dst, &src, "a.*", ExchangeBindOptions::default(), none())
            .await?;
        w.publish(&src, "a.b", b"1").await?;
        w.publish(&src, "x.b", b"2").await?;
        eq(w.count(&q).await?, 1, "messages routed through e2e binding")?;
        w.ch()
            .exchange_unbind(&dst, &src, "a.*", ExchangeUnbindOptions::default(), none())
            .await?;
        w.publish(&src, "a.b", b"3").await?;
        eq(w.count(&q).await?, 1, "messages after exchange.unbind")?;
        let opts = lapin::options::BasicGetOptions { no_ack: true };
        let m = w.ch().basic_get(&q, opts).await?;
        let got = m.map(|m| {
            let d = m.delivery;
            (d.exchange.to_string(), d.routing_key.to_string(), d.data)
        });
        eq(
            got,
            Some((src, "a.b".to_string(), b"1".to_vec())),
            "exchange/routing key/body",
        )?;
        Ok(String::new())
    })
    .await
}
