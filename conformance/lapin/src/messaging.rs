//! Publish and consume: properties, get, acknowledgements, prefetch, round-robin.

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel};

use crate::harness::{Res, Scenario, check, eq, fail, sleep};
use crate::world::{self, World, bodies, consume, sink, wait_len, with_world};

/// The scenarios of this module.
pub fn scenarios() -> Vec<Scenario> {
    crate::scenarios![
        "publish_consume_properties" => publish_consume_properties,
        "basic_get" => basic_get,
        "ack" => ack,
        "ack_multiple" => ack_multiple,
        "nack_requeue" => nack_requeue,
        "nack_discard" => nack_discard,
        "reject_requeue" => reject_requeue,
        "reject_discard" => reject_discard,
        "prefetch" => prefetch,
        "round_robin" => round_robin,
    ]
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

/// One header of every field type lapin can send.
fn headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("nested".into(), s("yes"));
    nested.insert("n".into(), AMQPValue::LongInt(1));
    let mut inner = FieldTable::default();
    inner.insert("x".into(), s("y"));
    let array = FieldArray::from(vec![
        AMQPValue::LongInt(1),
        s("two"),
        AMQPValue::Boolean(true),
        AMQPValue::FieldTable(inner),
    ]);
    let mut h = FieldTable::default();
    for (k, v) in [
        ("str", s("value")),
        ("empty", s("")),
        ("unicode", s("h\u{e9}llo \u{2603}")),
        ("byte", AMQPValue::ShortShortInt(-5)),
        ("ubyte", AMQPValue::ShortShortUInt(200)),
        ("short", AMQPValue::ShortInt(-1000)),
        ("ushort", AMQPValue::ShortUInt(60000)),
        ("int", AMQPValue::LongInt(42)),
        ("uint", AMQPValue::LongUInt(4_000_000_000)),
        ("neg", AMQPValue::LongInt(-7)),
        ("big", AMQPValue::LongLongInt(1 << 40)),
        ("bool_t", AMQPValue::Boolean(true)),
        ("bool_f", AMQPValue::Boolean(false)),
        ("float", AMQPValue::Float(0.5)),
        ("double", AMQPValue::Double(1.5)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 314,
            }),
        ),
        ("ts", AMQPValue::Timestamp(1_577_934_245)),
        ("table", AMQPValue::FieldTable(nested)),
        ("array", AMQPValue::FieldArray(array)),
        ("void", AMQPValue::Void),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 255])),
        ),
    ] {
        h.insert(k.into(), v);
    }
    h
}

async fn publish_consume_properties(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-props", Default::default()).await?;
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_headers(headers())
            .with_delivery_mode(2)
            .with_priority(5)
            .with_correlation_id("corr-1".into())
            .with_reply_to("reply.q".into())
            .with_expiration("60000".into())
            .with_message_id("msg-1".into())
            .with_timestamp(1_700_000_000)
            .with_type("t.kind".into())
            .with_user_id("guest".into())
            .with_app_id("conformance".into())
            .with_cluster_id("c1".into());
        let body = br#"{"hello": "world"}"#;
        World::publish_on(w.ch(), "", &q, body, props.clone()).await?;
        let got = world::collect(w.ch(), &q, 1, 5000).await?;
        let Some(d) = got.first() else {
            return fail("no delivery");
        };
        eq(d.data.as_slice(), body.as_slice(), "body")?;
        eq(
            (d.exchange.as_str(), d.routing_key.as_str(), d.redelivered),
            ("", q.as_str(), false),
            "deliver fields",
        )?;
        // every property and header value as sent (lapin decodes the field types it encoded)
        eq(&d.properties, &props, "properties")?;
        World::publish_on(w.ch(), "", &q, b"bare", BasicProperties::default()).await?;
        let got = world::collect(w.ch(), &q, 1, 5000).await?;
        let Some(d) = got.first() else {
            return fail("no delivery (bare)");
        };
        eq(
            &d.properties,
            &BasicProperties::default(),
            "bare message properties",
        )?;
        Ok(String::new())
    })
    .await
}

async fn basic_get(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-get", Default::default()).await?;
        for i in 0..3 {
            w.publish("", &q, format!("m{i}").as_bytes()).await?;
        }
        eq(w.count(&q).await?, 3, "message_count")?;
        for i in 0..3u32 {
            let m = w
                .ch()
                .basic_get(&q, BasicGetOptions { no_ack: true })
                .await?;
            let Some(m) = m else {
                return fail(format!("get {i} returned get-empty"));
            };
            eq(
                &m.delivery.data,
                &format!("m{i}").into_bytes(),
                &format!("body {i}"),
            )?;
            eq(m.message_count, 2 - i, &format!("get-ok message_count {i}"))?;
            let d = &m.delivery;
            eq(
                (d.redelivered, d.exchange.as_str(), d.routing_key.as_str()),
                (false, "", q.as_str()),
                &format!("get-ok fields {i}"),
            )?;
        }
        let m = w
            .ch()
            .basic_get(&q, BasicGetOptions { no_ack: true })
            .await?;
        check(
            m.is_none(),
            "basic.get on an empty queue did not answer get-empty",
        )?;
        Ok(String::new())
    })
    .await
}

/// basic.get without auto-ack, n times: (delivery tag, body).
async fn get_n(ch: &Channel, q: &str, n: usize) -> Res<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let Some(m) = ch.basic_get(q, BasicGetOptions { no_ack: false }).await? else {
            return fail("unexpected get-empty");
        };
        let body = String::from_utf8_lossy(&m.delivery.data).into_owned();
        out.push((m.delivery.delivery_tag, body));
    }
    Ok(out)
}

/// Everything left in the queue, basic.get with auto-ack: (body, redelivered).
async fn rest(ch: &Channel, q: &str) -> Res<Vec<(String, bool)>> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(q, BasicGetOptions { no_ack: true }).await? {
        let d = m.delivery;
        out.push((String::from_utf8_lossy(&d.data).into_owned(), d.redelivered));
    }
    Ok(out)
}

fn pairs(v: &[(&str, bool)]) -> Vec<(String, bool)> {
    v.iter().map(|(b, r)| (b.to_string(), *r)).collect()
}

async fn ack(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-ack", Default::default()).await?;
        for i in 0..2 {
            w.publish("", &q, format!("m{i}").as_bytes()).await?;
        }
        let ch = w.channel().await?;
        let got = get_n(&ch, &q, 2).await?;
        eq(
            got.iter().map(|(t, _)| *t).collect(),
            vec![1, 2],
            "delivery tags",
        )?;
        ch.basic_ack(1, BasicAckOptions::default()).await?;
        ch.close(200, "done").await?;
        eq(
            rest(w.ch(), &q).await?,
            pairs(&[("m1", true)]),
            "requeued on channel close",
        )?;
        Ok(String::new())
    })
    .await
}

async fn ack_multiple(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-ackm", Default::default()).await?;
        for i in 0..5 {
            w.publish("", &q, format!("m{i}").as_bytes()).await?;
        }
        let ch = w.channel().await?;
        let got = get_n(&ch, &q, 5).await?;
        eq(
            got.iter().map(|(t, _)| *t).collect(),
            vec![1, 2, 3, 4, 5],
            "delivery tags",
        )?;
        ch.basic_ack(3, BasicAckOptions { multiple: true }).await?;
        ch.close(200, "done").await?;
        let want = pairs(&[("m3", true), ("m4", true)]);
        eq(
            rest(w.ch(), &q).await?,
            want,
            "requeued after ack(3, multiple)",
        )?;
        Ok(String::new())
    })
    .await
}

async fn nack_or_reject(url: String, nack: bool, requeue: bool) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-nack", Default::default()).await?;
        for i in 0..3 {
            w.publish("", &q, format!("m{i}").as_bytes()).await?;
        }
        let ch = w.channel().await?;
        get_n(&ch, &q, 3).await?;
        if nack {
            let opts = BasicNackOptions {
                multiple: true,
                requeue,
            };
            ch.basic_nack(2, opts).await?;
        } else {
            for tag in [1, 2] {
                ch.basic_reject(tag, BasicRejectOptions { requeue }).await?;
            }
        }
        ch.basic_ack(3, BasicAckOptions::default()).await?;
        let want = if requeue {
            pairs(&[("m0", true), ("m1", true)])
        } else {
            Vec::new()
        };
        eq(rest(&ch, &q).await?, want, "messages back in the queue")?;
        ch.close(200, "done").await?;
        eq(w.count(&q).await?, 0, "nothing left after channel close")?;
        Ok(String::new())
    })
    .await
}

async fn nack_requeue(url: String) -> Res {
    nack_or_reject(url, true, true).await
}

async fn nack_discard(url: String) -> Res {
    nack_or_reject(url, true, false).await
}

async fn reject_requeue(url: String) -> Res {
    nack_or_reject(url, false, true).await
}

async fn reject_discard(url: String) -> Res {
    nack_or_reject(url, false, false).await
}

fn tags(sink: &world::Sink) -> Vec<u64> {
    world::lock(sink)
        .iter()
        .filter_map(|g| match g {
            world::Got::Msg(_, d) => Some(d.delivery_tag),
            world::Got::Cancelled => None,
        })
        .collect()
}

async fn prefetch(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-prefetch", Default::default()).await?;
        for i in 0..10 {
            w.publish("", &q, format!("m{i}").as_bytes()).await?;
        }
        let ch = w.channel().await?;
        ch.basic_qos(3, BasicQosOptions::default()).await?;
        let got = sink();
        let _tag = consume(&ch, &q, "c", false, &got).await?;
        wait_len(&got, 3, 5000).await;
        sleep(500).await;
        eq(tags(&got).len(), 3, "unacked deliveries with prefetch 3")?;
        ch.basic_ack(1, BasicAckOptions::default()).await?;
        sleep(500).await;
        eq(tags(&got).len(), 4, "deliveries after one ack")?;
        let last = tags(&got).last().copied().unwrap_or(0);
        ch.basic_ack(last, BasicAckOptions { multiple: true })
            .await?;
        sleep(500).await;
        eq(tags(&got).len(), 7, "deliveries after ack multiple")?;
        let last = tags(&got).last().copied().unwrap_or(0);
        ch.basic_ack(last, BasicAckOptions { multiple: true })
            .await?;
        sleep(500).await;
        let order: Vec<String> = bodies(&got).into_iter().map(|(_, b)| b).collect();
        let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        eq(order, want, "all deliveries, in order")?;
        Ok(String::new())
    })
    .await
}

async fn round_robin(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-rr", Default::default()).await?;
        let (ch1, ch2) = (w.channel().await?, w.channel().await?);
        let got = sink();
        let _c1 = consume(&ch1, &q, "c1", true, &got).await?;
        let _c2 = consume(&ch2, &q, "c2", true, &got).await?;
        for i in 0..10 {
            w.publish("", &q, format!("m{i}").as_bytes()).await?;
        }
        eq(wait_len(&got, 10, 5000).await, 10, "deliveries")?;
        let all = bodies(&got);
        let of = |c: &str| -> Vec<String> {
            all.iter()
                .filter(|(l, _)| l == c)
                .map(|(_, b)| b.clone())
                .collect()
        };
        let (c1, c2) = (of("c1"), of("c2"));
        let evens: Vec<String> = (0..10).step_by(2).map(|i| format!("m{i}")).collect();
        let odds: Vec<String> = (1..10).step_by(2).map(|i| format!("m{i}")).collect();
        let mut sorted = [c1.clone(), c2.clone()];
        sorted.sort();
        let mut want = [evens, odds];
        want.sort();
        check(
            sorted == want,
            format!("not alternating: c1={c1:?} c2={c2:?}"),
        )?;
        Ok(String::new())
    })
    .await
}
