//! What a publish may claim (issue 12): a `user_id` property must name the authenticated user
//! unless the user has the `impersonator` tag; a `CC` or `BCC` header must be an array. Both are
//! checked before routing, also inside a transaction, with RabbitMQ's 406 texts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use warren_broker::User;

async fn login(server: &warren_server::ServerHandle, user: &str, password: &str) -> Connection {
    let url = format!("amqp://{user}:{password}@{}/%2f", server.addr());
    Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("connect")
}

fn add_user(server: &warren_server::ServerHandle, name: &str, tags: &[&str]) {
    let mut user = User::new(name, "pw", tags.iter().map(|t| t.to_string()).collect());
    user.vhosts.set("/", warren_broker::Permission::full());
    server.broker().add_user(user);
}

async fn publish(ch: &lapin::Channel, queue: &str, props: BasicProperties) {
    ch.basic_publish("", queue, BasicPublishOptions::default(), b"m", props)
        .await
        .unwrap();
}

/// Ready messages of a queue.
async fn count(ch: &lapin::Channel, queue: &str) -> u32 {
    common::passive_queue(ch, queue)
        .await
        .unwrap()
        .message_count()
}

/// Publishes to queue `uid` claiming to be `user`.
async fn claim(ch: &lapin::Channel, user: &str) {
    publish(
        ch,
        "uid",
        BasicProperties::default().with_user_id(user.into()),
    )
    .await;
}

#[tokio::test]
async fn a_foreign_user_id_closes_the_channel_unless_the_user_is_an_impersonator() {
    let server = common::start().await;
    add_user(&server, "plain", &[]);
    add_user(&server, "imp", &["impersonator"]);
    let conn = login(&server, "plain", "pw").await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "uid").await.unwrap();
    let mut closed = common::watch_close(&ch);
    claim(&ch, "imp").await;
    assert_eq!(
        common::closed_with(&mut closed).await,
        (
            406,
            "PRECONDITION_FAILED - user_id property set to 'imp' but authenticated user was 'plain'"
                .into()
        )
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(count(&ch, "uid").await, 0, "not routed");
    // Its own name is fine.
    claim(&ch, "plain").await;
    assert_eq!(count(&ch, "uid").await, 1);

    // An impersonator may claim anyone.
    let conn = login(&server, "imp", "pw").await;
    let ch = conn.create_channel().await.unwrap();
    claim(&ch, "guest").await;
    assert_eq!(count(&ch, "uid").await, 2);
    ch.basic_get("uid", BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    let got = ch
        .basic_get("uid", BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.delivery
            .properties
            .user_id()
            .as_ref()
            .map(|u| u.as_str()),
        Some("guest")
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_foreign_user_id_in_a_transaction_is_refused_at_publish() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "uid-tx").await.unwrap();
    ch.tx_select().await.unwrap();
    let mut closed = common::watch_close(&ch);
    publish(
        &ch,
        "uid-tx",
        BasicProperties::default().with_user_id("nobody".into()),
    )
    .await;
    let (code, text) = common::closed_with(&mut closed).await;
    assert_eq!(code, 406, "{text}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cc_and_bcc_headers_must_be_arrays() {
    let server = common::start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    for q in ["cc-a", "cc-b"] {
        common::declare_queue(&ch, q).await.unwrap();
    }
    for (header, value, kind) in [
        ("CC", AMQPValue::LongString("cc-b".into()), "longstr"),
        ("BCC", AMQPValue::LongInt(5), "signedint"),
        ("CC", AMQPValue::FieldTable(FieldTable::default()), "table"),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let mut closed = common::watch_close(&ch);
        let mut headers = FieldTable::default();
        headers.insert(header.into(), value);
        publish(
            &ch,
            "cc-a",
            BasicProperties::default().with_headers(headers),
        )
        .await;
        assert_eq!(
            common::closed_with(&mut closed).await,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid message: {{unacceptable_type_in_header,\"{header}\",{kind}}}"
                )
            )
        );
    }
    // An array routes by its strings and ignores the rest.
    let mut headers = FieldTable::default();
    headers.insert(
        "CC".into(),
        AMQPValue::FieldArray(
            vec![
                AMQPValue::LongString("cc-b".into()),
                AMQPValue::LongInt(7),
                AMQPValue::Boolean(true),
            ]
            .into(),
        ),
    );
    publish(
        &ch,
        "cc-a",
        BasicProperties::default().with_headers(headers),
    )
    .await;
    for q in ["cc-a", "cc-b"] {
        assert_eq!(count(&ch, q).await, 1, "{q}");
    }
    server.shutdown().await.unwrap();
}
