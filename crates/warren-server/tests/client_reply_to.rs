//! Direct reply-to (`amq.rabbitmq.reply-to`), through lapin, with the codes, texts and quirks
//! RabbitMQ 3.10 shows.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Consumer};

const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";

/// A no-ack consumer on the pseudo-queue.
async fn reply_consumer(ch: &Channel, tag: &str) -> Consumer {
    ch.basic_consume(
        PSEUDO_QUEUE,
        tag,
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

async fn publish(ch: &Channel, routing_key: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish("", routing_key, BasicPublishOptions::default(), body, props)
        .await
        .unwrap();
}

/// Publishes a request with `reply-to: amq.rabbitmq.reply-to` to queue `requests` and returns
/// the address the responder sees in its place.
async fn request(requester: &Channel, responder: &Channel) -> String {
    common::declare_queue(responder, "requests").await.unwrap();
    let props = BasicProperties::default()
        .with_reply_to(PSEUDO_QUEUE.into())
        .with_correlation_id("c-1".into());
    publish(requester, "requests", b"ping", props).await;
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(m) = responder
                .basic_get("requests", BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the request arrived");
    assert_eq!(
        got.delivery
            .properties
            .correlation_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "c-1"
    );
    got.delivery
        .properties
        .reply_to()
        .as_ref()
        .expect("reply-to kept")
        .to_string()
}

async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("a delivery in time")
        .expect("the consumer is open")
        .unwrap()
}

/// True when nothing arrives at `consumer` for a moment.
async fn stays_empty(consumer: &mut Consumer) -> bool {
    tokio::time::timeout(Duration::from_millis(200), consumer.next())
        .await
        .is_err()
}

#[tokio::test]
async fn reply_published_to_the_rewritten_address_reaches_the_requester_without_a_queue() {
    let server = common::start().await;
    let (c1, c2) = (
        common::connect(&server).await,
        common::connect(&server).await,
    );
    let requester = c1.create_channel().await.unwrap();
    let responder = c2.create_channel().await.unwrap();
    let mut replies = reply_consumer(&requester, "replies").await;
    let address = request(&requester, &responder).await;
    assert!(
        address.starts_with("amq.rabbitmq.reply-to.") && address.len() > PSEUDO_QUEUE.len() + 1,
        "{address}"
    );

    let props = BasicProperties::default().with_correlation_id("c-1".into());
    publish(&responder, &address, b"pong", props).await;
    let reply = next(&mut replies).await;
    assert_eq!(reply.data, b"pong");
    assert_eq!(reply.exchange.as_str(), "");
    assert_eq!(reply.routing_key.as_str(), address);
    assert!(!reply.redelivered);
    assert_eq!(
        reply.properties.correlation_id().as_ref().unwrap().as_str(),
        "c-1"
    );
    // No queue stands behind the address.
    let e = common::declare_queue(&responder, "amq.rabbitmq.reply-to.x")
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
}

#[tokio::test]
async fn replies_take_the_next_delivery_tag_without_using_it_up() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let responder = conn.create_channel().await.unwrap();
    let mut replies = reply_consumer(&ch, "replies").await;
    let address = request(&ch, &responder).await;
    publish(&responder, &address, b"one", BasicProperties::default()).await;
    publish(&responder, &address, b"two", BasicProperties::default()).await;
    assert_eq!(next(&mut replies).await.delivery_tag, 1);
    assert_eq!(next(&mut replies).await.delivery_tag, 1);
    // RabbitMQ 3.10 hands the same tag to the next real delivery.
    common::declare_queue(&ch, "plain").await.unwrap();
    publish(&ch, "plain", b"m", BasicProperties::default()).await;
    let got = ch
        .basic_get("plain", BasicGetOptions::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.delivery.delivery_tag, 1);
}

#[tokio::test]
async fn cc_header_reaches_a_reply_address_with_the_publish_routing_key() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let requester = conn.create_channel().await.unwrap();
    let responder = conn.create_channel().await.unwrap();
    let mut replies = reply_consumer(&requester, "replies").await;
    let address = request(&requester, &responder).await;
    let mut headers = FieldTable::default();
    let cc = vec![
        AMQPValue::LongString(address.clone().into()),
        AMQPValue::LongString(address.clone().into()),
    ];
    headers.insert("CC".into(), AMQPValue::FieldArray(FieldArray::from(cc)));
    let props = BasicProperties::default().with_headers(headers);
    publish(&responder, "elsewhere", b"cc", props).await;
    let reply = next(&mut replies).await;
    assert_eq!(reply.data, b"cc");
    assert_eq!(reply.routing_key.as_str(), "elsewhere");
    // Named twice, delivered once.
    assert!(stays_empty(&mut replies).await);
}

#[tokio::test]
async fn reply_consumer_in_manual_ack_mode_is_refused_with_406() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let e = ch
        .basic_consume(
            PSEUDO_QUEUE,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    let lapin::Error::ProtocolError(amqp) = e else {
        panic!("{e:?}")
    };
    assert_eq!(amqp.get_id(), 406);
    assert_eq!(
        amqp.get_message().as_str(),
        "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    );
}

#[tokio::test]
async fn second_reply_consumer_on_a_channel_is_refused_with_406() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut closed = common::watch_close(&ch);
    let _first = reply_consumer(&ch, "first").await;
    let _ = ch
        .basic_consume(
            PSEUDO_QUEUE,
            "second",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_eq!(
        common::closed_with(&mut closed).await,
        (
            406,
            "PRECONDITION_FAILED - reply consumer already set".into()
        )
    );
    // Other channels each have their own.
    let other = conn.create_channel().await.unwrap();
    let _third = reply_consumer(&other, "third").await;
}

#[tokio::test]
async fn request_on_a_channel_without_a_reply_consumer_closes_it_with_406() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut closed = common::watch_close(&ch);
    let props = BasicProperties::default().with_reply_to(PSEUDO_QUEUE.into());
    publish(&ch, "anywhere", b"req", props).await;
    assert_eq!(
        common::closed_with(&mut closed).await,
        (
            406,
            "PRECONDITION_FAILED - fast reply consumer does not exist".into()
        )
    );
    assert!(conn.status().connected());
}

#[tokio::test]
async fn request_after_cancelling_the_reply_consumer_closes_the_channel() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut closed = common::watch_close(&ch);
    let _replies = reply_consumer(&ch, "replies").await;
    ch.basic_cancel("replies", BasicCancelOptions::default())
        .await
        .unwrap();
    let props = BasicProperties::default().with_reply_to(PSEUDO_QUEUE.into());
    publish(&ch, "anywhere", b"req", props).await;
    assert_eq!(common::closed_with(&mut closed).await.0, 406);
}

#[tokio::test]
async fn reply_to_a_cancelled_consumer_is_dropped_and_a_mandatory_one_returned() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let requester = conn.create_channel().await.unwrap();
    let responder = conn.create_channel().await.unwrap();
    responder
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let _replies = reply_consumer(&requester, "replies").await;
    let address = request(&requester, &responder).await;
    requester
        .basic_cancel("replies", BasicCancelOptions::default())
        .await
        .unwrap();
    let e = common::passive_queue(&responder, &address)
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));

    let responder = conn.create_channel().await.unwrap();
    responder
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = responder
        .basic_publish(
            "",
            &address,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"late",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let returned = confirm.take_message().expect("returned as unroutable");
    assert_eq!(returned.reply_code, 312);
    // A new reply consumer gets a new address; the old one stays dead.
    let mut again = reply_consumer(&requester, "again").await;
    publish(&responder, &address, b"stale", BasicProperties::default()).await;
    assert!(stays_empty(&mut again).await);
}

#[tokio::test]
async fn mandatory_reply_is_delivered_and_also_returned_as_in_rabbitmq() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let requester = conn.create_channel().await.unwrap();
    let responder = conn.create_channel().await.unwrap();
    let mut replies = reply_consumer(&requester, "replies").await;
    let address = request(&requester, &responder).await;
    responder
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = responder
        .basic_publish(
            "",
            &address,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"both",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next(&mut replies).await.data, b"both");
    assert_eq!(confirm.take_message().map(|m| m.reply_code), Some(312));
}

#[tokio::test]
async fn unknown_or_malformed_reply_addresses_are_unroutable() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let requester = conn.create_channel().await.unwrap();
    let mut replies = reply_consumer(&requester, "replies").await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let address = request(&requester, &ch).await;
    // The right shape with one character of the key changed.
    let last = if address.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &address[..address.len() - 1]);
    for key in [
        "amq.rabbitmq.reply-to.",
        "amq.rabbitmq.reply-to.nonsense",
        "amq.rabbitmq.reply-to..",
        forged.as_str(),
    ] {
        let confirm = ch
            .basic_publish(
                "",
                key,
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"x",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(
            confirm.take_message().map(|m| m.reply_code),
            Some(312),
            "{key}"
        );
    }
    // Only the default exchange knows reply addresses.
    ch.basic_publish(
        "amq.direct",
        &address,
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert!(stays_empty(&mut replies).await);
    assert!(conn.status().connected());
}

#[tokio::test]
async fn declaring_the_pseudo_queue_reports_no_messages_and_one_consumer() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let q = common::passive_queue(&ch, PSEUDO_QUEUE).await.unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (0, 1));
    let q = common::declare_queue(&ch, PSEUDO_QUEUE).await.unwrap();
    assert_eq!(q.name().as_str(), PSEUDO_QUEUE);

    let _replies = reply_consumer(&ch, "replies").await;
    let responder = conn.create_channel().await.unwrap();
    let address = request(&ch, &responder).await;
    let q = common::passive_queue(&responder, &address).await.unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (0, 1));
    let e = common::passive_queue(&responder, "amq.rabbitmq.reply-to.garbage")
        .await
        .unwrap_err();
    let lapin::Error::ProtocolError(amqp) = e else {
        panic!("{e:?}")
    };
    assert_eq!(
        amqp.get_message().as_str(),
        "NOT_FOUND - no queue 'amq.rabbitmq.reply-to.garbage' in vhost '/'"
    );
}

#[tokio::test]
async fn consuming_the_empty_name_after_declaring_the_pseudo_queue_makes_a_reply_consumer() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let requester = conn.create_channel().await.unwrap();
    let responder = conn.create_channel().await.unwrap();
    common::passive_queue(&requester, PSEUDO_QUEUE)
        .await
        .unwrap();
    let mut replies = requester
        .basic_consume(
            "",
            "replies",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let address = request(&requester, &responder).await;
    publish(&responder, &address, b"pong", BasicProperties::default()).await;
    assert_eq!(next(&mut replies).await.data, b"pong");
}

#[tokio::test]
async fn closing_the_requester_channel_retires_its_address() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let requester = conn.create_channel().await.unwrap();
    let responder = conn.create_channel().await.unwrap();
    let _replies = reply_consumer(&requester, "replies").await;
    let address = request(&requester, &responder).await;
    requester.close(200, "bye").await.unwrap();
    let e = common::passive_queue(&responder, &address)
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&e), Some(404));
}
