//! Limits on what the network can make the broker hold: `connection_max` (RabbitMQ's: the
//! listener stops accepting), `handshake_max` (Warren's: half-open handshakes beyond it are
//! closed at once) and `max_unconfirmed_publishes` (the publisher's socket is not read while
//! that many publishes wait for a slow disk). Raw bytes, so what a client sees is exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::Raw;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_codec::{
    BasicProperties, BasicPublish, ConfirmSelect, ContentHeader, Method, PROTOCOL_HEADER,
    QueueDeclare, ShortStr, encode_body, encode_header, encode_method,
};
use warren_server::Server;
use warren_server::config::Config;
use warren_store::{FaultyStore, MemoryStore};

/// True when the server sends something (it answered the protocol header) within `wait`.
async fn answers_within(raw: &mut Raw, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, raw.stream.read(&mut buf)).await,
        Ok(Ok(n)) if n > 0
    )
}

#[tokio::test]
async fn at_connection_max_the_next_client_waits_until_a_connection_closes() {
    let server = common::start_with(|c| c.connection_max = 2).await;
    let first = Raw::open(&server).await;
    let _second = Raw::open(&server).await;

    // As RabbitMQ's listener: the socket connects (the kernel's backlog) but nobody answers.
    let mut third = Raw::connect(&server).await;
    third.write(&PROTOCOL_HEADER).await;
    assert!(!answers_within(&mut third, Duration::from_millis(700)).await);

    drop(first);
    // Now it is accepted and its protocol header, waiting in the socket, is answered.
    assert!(matches!(third.method().await, Method::ConnectionStart(_)));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn half_open_handshakes_beyond_handshake_max_are_closed_at_once() {
    let server = common::start_with(|c| c.handshake_max = 2).await;
    // Two sockets that never send a byte hold both places.
    let mut silent = vec![Raw::connect(&server).await, Raw::connect(&server).await];
    // Let the listener accept them before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = Raw::connect(&server).await;
    assert!(refused.closed().await, "the third handshake is closed");

    // A finished handshake frees its place, so established connections do not count.
    silent.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut opened = Raw::open(&server).await;
    opened.open_channel(1).await;
    let mut next = Raw::open(&server).await;
    next.open_channel(1).await;
    drop(silent);
    server.shutdown().await.unwrap();
}

fn persistent_publish(frames: &mut BytesMut, body: &[u8]) {
    encode_method(
        frames,
        1,
        &BasicPublish {
            routing_key: ShortStr::from("dq"),
            ..Default::default()
        }
        .into(),
    );
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    encode_header(
        frames,
        1,
        &ContentHeader::basic(body.len() as u64, props.to_raw()),
    );
    encode_body(frames, 1, body);
}

/// Lets held store syncs go when dropped.
struct ReleaseSyncs(Arc<FaultyStore<MemoryStore>>);

impl Drop for ReleaseSyncs {
    fn drop(&mut self) {
        self.0.set_syncs_held(false);
    }
}

#[tokio::test]
async fn a_publisher_waiting_for_a_slow_disk_is_not_read_beyond_max_unconfirmed_publishes() {
    const CAP: u64 = 100;
    const MESSAGES: u32 = 200_000;
    let store = Arc::new(FaultyStore::new(MemoryStore::new()));
    let config = Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        management_port: 0,
        prometheus_port: 0,
        max_unconfirmed_publishes: CAP,
        ..Config::default()
    };
    let server = Server::bind_with_store(config, store.clone())
        .await
        .unwrap()
        .spawn();
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        QueueDeclare {
            queue: ShortStr::from("dq"),
            durable: true,
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(raw.method().await, Method::QueueDeclareOk(_)));
    raw.send(1, ConfirmSelect { nowait: false }).await;
    assert!(matches!(raw.method().await, Method::ConfirmSelectOk(_)));

    // The disk stops answering; the publisher sends 200 000 persistent messages (about 25 MB, more than loopback socket buffers hold).
    store.set_syncs_held(true);
    // Released however the test ends: a held sync would keep the runtime from shutting down.
    let _release = ReleaseSyncs(store.clone());
    let mut frames = BytesMut::new();
    for _ in 0..MESSAGES {
        persistent_publish(&mut frames, &[7u8; 64]);
    }
    let (mut rd, mut wr) = raw.stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&frames).await.unwrap();
        wr
    });
    let queue = || {
        server
            .broker()
            .vhost("/")
            .unwrap()
            .queue(&ShortStr::from("dq"), 0)
            .unwrap()
            .message_count()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Past the cap Warren decodes at most what one read brought (64 KiB: under 1 000 of these
    // messages), then stops reading: the rest waits in the client's and the kernel's buffers.
    let held = queue();
    assert!(
        u64::from(held) >= CAP && held < 2_000,
        "{held} messages taken in"
    );
    assert!(!writer.is_finished(), "the publisher is held back by TCP");

    // The disk answers: every publish is taken in and confirmed.
    store.set_syncs_held(false);
    let _wr = writer.await.unwrap();
    let mut inbuf = BytesMut::new();
    let decoder = warren_codec::FrameDecoder::new(0);
    let mut acked = 0u64;
    while acked < u64::from(MESSAGES) {
        match decoder.decode(&mut inbuf).unwrap() {
            Some(warren_codec::Frame::Method {
                method: Method::BasicAck(a),
                ..
            }) => {
                assert!(a.delivery_tag > acked);
                acked = a.delivery_tag;
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => {
                let n = tokio::time::timeout(Duration::from_secs(10), rd.read_buf(&mut inbuf))
                    .await
                    .expect("confirms keep coming")
                    .unwrap();
                assert!(n > 0, "the server closed the connection");
            }
        }
    }
    assert_eq!(queue(), MESSAGES);
    server.shutdown().await.unwrap();
}
