//! Publishing: mandatory returns, confirms, transactions, purge, body sizes, many channels.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use crate::harness::{Res, Scenario, check, eq, fail, sleep};
use crate::world::{self, World, with_world};

/// The scenarios of this module.
pub fn scenarios() -> Vec<Scenario> {
    crate::scenarios![
        "mandatory_return" => mandatory_return,
        "publisher_confirms" => publisher_confirms,
        "tx_commit" => tx_commit,
        "tx_rollback" => tx_rollback,
        "purge" => purge,
        "body_0b" => body_0b,
        "body_1b" => body_1b,
        "body_frame_max_minus_1" => body_frame_max_minus_1,
        "body_10mib" => body_10mib,
        "many_channels" => many_channels,
    ]
}

async fn mandatory_return(url: String) -> Res {
    with_world(url, |w| async move {
        // lapin hands returned messages over with the publisher confirm
        w.confirm().await?;
        let ex = w
            .exchange("ex-mand", ExchangeKind::Direct, Default::default())
            .await?;
        let props = BasicProperties::default().with_message_id("m1".into());
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = w
            .ch()
            .basic_publish(&ex, "nowhere", mandatory, b"lost", props)
            .await?
            .await?;
        check(
            confirm.is_ack(),
            format!("confirm of a returned publish: {confirm:?}"),
        )?;
        let Some(r) = confirm.take_message() else {
            return fail("no basic.return for a mandatory unroutable publish");
        };
        eq(
            (
                r.reply_code,
                r.reply_text.as_str(),
                r.delivery.exchange.as_str(),
            ),
            (312, "NO_ROUTE", ex.as_str()),
            "basic.return reply code, text, exchange",
        )?;
        eq(
            r.delivery.routing_key.as_str(),
            "nowhere",
            "basic.return routing key",
        )?;
        eq(
            r.delivery.data.as_slice(),
            b"lost".as_slice(),
            "returned body",
        )?;
        let id = r
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string());
        eq(id, Some("m1".to_string()), "returned message_id")?;
        // not mandatory: dropped silently, acked without a return
        let c = w.publish(&ex, "nowhere", b"dropped").await?;
        eq(c, Confirmation::Ack(None), "confirm of a dropped publish")?;
        Ok(String::new())
    })
    .await
}

async fn publisher_confirms(url: String) -> Res {
    with_world(url, |w| async move {
        let q = w.queue("q-confirm", Default::default()).await?;
        w.confirm().await?;
        let mut pending = Vec::new();
        for i in 0..50 {
            let opts = BasicPublishOptions::default();
            let body = format!("m{i}");
            let props = BasicProperties::default();
            pending.push(
                w.ch()
                    .basic_publish("", &q, opts, body.as_bytes(), props)
                    .await?,
            );
        }
        for (i, p) in pending.into_iter().enumerate() {
            let c = p.await?;
            check(c.is_ack(), format!("publish {i} not acked: {c:?}"))?;
        }
        let c = w
            .publish("amq.direct", &format!("nobody-{q}"), b"x")
            .await?;
        check(c.is_ack(), "an unroutable (not mandatory) publish is acked")?;
        eq(
            w.count(&q).await?,
            50,
            "messages in queue after confirmed publishes",
        )?;
        Ok(String::new())
    })
    .await
}

async fn get_one(w: &World, q: &str, no_ack: bool) -> Res<(u64, String, bool)> {
    let Some(m) = w.ch().basic_get(q, BasicGetOptions { no_ack }).await? else {
        return fail("unexpected get-empty");
    };
    let d = m.delivery;
    Ok((
        d.delivery_tag,
        String::from_utf8_lossy(&d.data).into_owned(),
        d.redelivered,
    ))
}

async fn tx_commit(url: String) -> Res {
    with_world(url, |w| async move {
        let q = w.queue("q-tx", Default::default()).await?;
        w.ch().tx_select().await?;
        for i in 0..3 {
            w.publish("", &q, format!("m{i}").as_bytes()).await?;
        }
        eq(w.count(&q).await?, 0, "messages visible before commit")?;
        w.ch().tx_commit().await?;
        eq(w.count_eventually(&q, 3).await?, 3, "messages after commit")?;
        // acks are transactional too: a committed ack settles, a rolled back one does not
        let (tag, _, _) = get_one(&w, &q, false).await?;
        w.ch().basic_ack(tag, BasicAckOptions::default()).await?;
        w.ch().tx_commit().await?;
        let (tag, _, _) = get_one(&w, &q, false).await?;
        w.ch().basic_ack(tag, BasicAckOptions::default()).await?;
        w.ch().tx_rollback().await?;
        w.ch().close(200, "done").await?;
        let n = w.count_eventually(&q, 2).await?;
        eq(
            n,
            2,
            "ready messages after committed ack + rolled back ack + channel close",
        )?;
        let ch = w.channel().await?;
        let m = ch.basic_get(&q, BasicGetOptions { no_ack: true }).await?;
        let got = m.map(|m| (m.delivery.data, m.delivery.redelivered));
        eq(
            got,
            Some((b"m1".to_vec(), true)),
            "message whose ack was rolled back",
        )?;
        Ok(String::new())
    })
    .await
}

async fn tx_rollback(url: String) -> Res {
    with_world(url, |w| async move {
        let q = w.queue("q-txrb", Default::default()).await?;
        w.ch().tx_select().await?;
        for i in 0..3 {
            w.publish("", &q, format!("m{i}").as_bytes()).await?;
        }
        w.ch().tx_rollback().await?;
        eq(w.count(&q).await?, 0, "messages after rollback")?;
        w.publish("", &q, b"after").await?;
        w.ch().tx_commit().await?;
        eq(
            w.count_eventually(&q, 1).await?,
            1,
            "messages after publish+commit following rollback",
        )?;
        let (_, body, _) = get_one(&w, &q, true).await?;
        eq(body.as_str(), "after", "body")?;
        Ok(String::new())
    })
    .await
}

async fn purge(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-purge", Default::default()).await?;
        for _ in 0..5 {
            w.publish("", &q, b"x").await?;
        }
        eq(
            w.ch().queue_purge(&q, Default::default()).await?,
            5,
            "purge-ok message_count",
        )?;
        eq(w.count(&q).await?, 0, "messages after purge")?;
        eq(
            w.ch().queue_purge(&q, Default::default()).await?,
            0,
            "second purge-ok",
        )?;
        Ok(String::new())
    })
    .await
}

async fn body_size(url: String, size_of: fn(usize) -> usize) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let q = w.queue("q-size", Default::default()).await?;
        let fm = w.conn().configuration().frame_max() as usize;
        let size = size_of(fm);
        let seed = crate::harness::random_u64();
        let body: Vec<u8> = (0..size as u64)
            .map(|i| (seed.wrapping_mul(i | 1).rotate_left((i % 64) as u32) >> 24) as u8)
            .collect();
        let props = BasicProperties::default().with_message_id("sz".into());
        World::publish_on(w.ch(), "", &q, &body, props).await?;
        let got = world::collect(w.ch(), &q, 1, 15000).await?;
        let Some(d) = got.first() else {
            return fail("no delivery");
        };
        eq(d.data.len(), size, "body length")?;
        check(d.data == body, "body bytes differ")?;
        Ok(format!("{size} bytes (frame_max {fm})"))
    })
    .await
}

async fn body_0b(url: String) -> Res {
    body_size(url, |_| 0).await
}

async fn body_1b(url: String) -> Res {
    body_size(url, |_| 1).await
}

async fn body_frame_max_minus_1(url: String) -> Res {
    body_size(url, |fm| fm - 1).await
}

async fn body_10mib(url: String) -> Res {
    body_size(url, |_| 10 * 1024 * 1024).await
}

async fn many_channels(url: String) -> Res {
    with_world(url, |w| async move {
        let mut chans = Vec::new();
        for _ in 0..50 {
            chans.push(w.channel().await?);
        }
        let mut ids: Vec<u16> = chans.iter().map(|c| c.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        eq(ids.len(), 50, "distinct channel numbers")?;
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        for (i, c) in chans.iter().enumerate() {
            let q = c
                .queue_declare("", exclusive, FieldTable::default())
                .await?;
            let body = format!("c{i}");
            World::publish_on(
                c,
                "",
                q.name().as_str(),
                body.as_bytes(),
                Default::default(),
            )
            .await?;
            let mut got = None;
            for _ in 0..150 {
                let opts = BasicGetOptions { no_ack: true };
                if let Some(m) = c.basic_get(q.name().as_str(), opts).await? {
                    got = Some(m.delivery.data);
                    break;
                }
                sleep(20).await;
            }
            eq(
                got,
                Some(body.into_bytes()),
                &format!("body on channel {}", c.id()),
            )?;
        }
        for c in &chans {
            c.close(200, "done").await?;
        }
        check(w.conn().status().connected(), "connection closed")?;
        Ok(String::new())
    })
    .await
}
