//! The reply codes and texts of common mistakes, and the server's consumer cancel.

use std::sync::{Arc, Mutex};

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use crate::harness::{Res, Scenario, check, close_of, eq, expect_close, fail, sleep, unique};
use crate::topology::passive;
use crate::world::{self, World, consume, sink, wait_len, with_world};

/// The scenarios of this module.
pub fn scenarios() -> Vec<Scenario> {
    crate::scenarios![
        "error_404_passive_missing_queue" => error_404,
        "error_406_queue_redeclare" => error_406_queue,
        "error_406_exchange_redeclare" => error_406_exchange,
        "error_405_exclusive_other_connection" => error_405,
        "error_403_amq_prefix" => error_403,
        "error_406_unknown_delivery_tag" => error_406_tag,
        "consumer_cancel_on_delete" => consumer_cancel_on_delete,
    ]
}

/// A new channel can still declare a queue: the connection survived the channel error.
async fn still_usable(w: &World) -> Res<()> {
    let ch = w.channel().await?;
    let opts = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare("", opts, FieldTable::default()).await?;
    ch.close(200, "done").await?;
    Ok(())
}

async fn error_404(url: String) -> Res {
    with_world(url, |w| async move {
        let name = unique("q-missing");
        let r = w
            .ch()
            .queue_declare(&name, passive(), FieldTable::default())
            .await;
        let d = expect_close(
            r,
            404,
            &format!("NOT_FOUND - no queue '{name}' in vhost '/'"),
        )?;
        still_usable(&w).await?;
        Ok(d)
    })
    .await
}

async fn error_406_queue(url: String) -> Res {
    with_world(url, |w| async move {
        let name = w.queue("q-redecl", Default::default()).await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let r = w
            .ch()
            .queue_declare(&name, durable, FieldTable::default())
            .await;
        let text = format!(
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{name}' in vhost '/': \
             received 'true' but current is 'false'"
        );
        let d = expect_close(r, 406, &text)?;
        still_usable(&w).await?;
        Ok(d)
    })
    .await
}

async fn error_406_exchange(url: String) -> Res {
    with_world(url, |w| async move {
        let name = w
            .exchange("ex-redecl", ExchangeKind::Direct, Default::default())
            .await?;
        let r = w
            .ch()
            .exchange_declare(
                &name,
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        let text = format!(
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{name}' in vhost '/': \
             received 'fanout' but current is 'direct'"
        );
        let d = expect_close(r, 406, &text)?;
        still_usable(&w).await?;
        Ok(d)
    })
    .await
}

async fn error_405(url: String) -> Res {
    with_world(url, |w| async move {
        let name = unique("q-locked");
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        w.ch()
            .queue_declare(&name, exclusive, FieldTable::default())
            .await?;
        let c2 = w.connect().await?;
        let text = format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost \
             '/'. It could be originally declared on another connection or the exclusive \
             property value does not match that of the original declaration."
        );
        let ch2 = c2.create_channel().await?;
        let r = ch2
            .basic_consume(
                &name,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        let d = expect_close(r, 405, &text)?;
        let ch2 = c2.create_channel().await?;
        let r = ch2
            .queue_declare(&name, passive(), FieldTable::default())
            .await;
        expect_close(r, 405, &text)?;
        let ch2 = c2.create_channel().await?;
        let r = ch2
            .queue_declare(&name, exclusive, FieldTable::default())
            .await;
        expect_close(r, 405, &text)?;
        Ok(d)
    })
    .await
}

async fn error_403(url: String) -> Res {
    with_world(url, |w| async move {
        let name = format!("amq.{}", unique("x"));
        let r = w
            .ch()
            .exchange_declare(
                &name,
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        let text =
            format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'");
        let d = expect_close(r, 403, &text)?;
        still_usable(&w).await?;
        Ok(d)
    })
    .await
}

/// Records the errors lapin reports for a channel (e.g. a `channel.close` from the server
/// that no pending call was waiting for).
fn watch(ch: &Channel) -> Arc<Mutex<Vec<lapin::Error>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    ch.on_error(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e));
    seen
}

async fn error_406_tag(url: String) -> Res {
    with_world(url, |w| async move {
        let ch = w.channel().await?;
        let seen = watch(&ch);
        ch.basic_ack(999, BasicAckOptions::default()).await?;
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        // the next calls sync with the server; one of them meets the channel.close
        let mut errors = Vec::new();
        for _ in 0..2 {
            if let Err(e) = ch.queue_declare("", exclusive, FieldTable::default()).await {
                errors.push(e);
                break;
            }
            sleep(500).await;
        }
        // lapin may fail the pending call (InvalidChannelState(Closing)) before it hands the
        // server's channel.close to on_error: give the callback a moment.
        for _ in 0..20 {
            errors.extend(seen.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
            if errors.iter().any(|e| close_of(e).is_some()) {
                break;
            }
            sleep(100).await;
        }
        let Some(close) = errors.iter().find_map(close_of) else {
            return fail(format!("no channel.close 406 (errors: {errors:?})"));
        };
        eq(close.0, 406, "reply code")?;
        eq(
            close.1.as_str(),
            "PRECONDITION_FAILED - unknown delivery tag 999",
            "reply text",
        )?;
        still_usable(&w).await?;
        Ok(format!("{} {}", close.0, close.1))
    })
    .await
}

async fn consumer_cancel_on_delete(url: String) -> Res {
    with_world(url, |w| async move {
        let q = unique("q-cancel");
        w.ch()
            .queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
            .await?;
        let events = sink();
        let tag = consume(w.ch(), &q, "c", true, &events).await?;
        let other = w.channel().await?;
        other
            .queue_delete(&q, QueueDeleteOptions::default())
            .await?;
        wait_len(&events, 1, 5000).await;
        let cancelled = world::lock(&events)
            .iter()
            .any(|g| matches!(g, world::Got::Cancelled));
        check(
            cancelled,
            "no basic.cancel from the server (the consumer stream did not end)",
        )?;
        check(
            w.ch().status().connected(),
            "channel closed after consumer cancel",
        )?;
        still_usable(&w).await?;
        Ok(format!("cancelled {tag}"))
    })
    .await
}
