//! Protocol errors at the byte level: what the server answers to malformed, out-of-order and
//! over-limit frames, matching the codes RabbitMQ 3.10 sends (see
//! crates/warren-codec/tests/golden/rabbitmq-behaviour.md). Other connections must carry on.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::{BufMut, BytesMut};
use common::Raw;
use warren_codec::{
    BasicConsume, BasicPublish, ChannelCloseOk, ChannelOpen, ContentHeader, FieldTable, FieldValue,
    Method, PROTOCOL_HEADER, RawProperties, encode_body, encode_header, encode_method,
};

#[tokio::test]
async fn wrong_protocol_header_is_answered_with_ours_then_closed() {
    let server = common::start().await;
    let mut raw = Raw::connect(&server).await;
    raw.write(b"AMQP\x00\x00\x09\x02").await;
    let mut got = [0u8; 8];
    tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut got)
        .await
        .unwrap();
    assert_eq!(got, PROTOCOL_HEADER);
    assert!(raw.closed().await);
}

#[tokio::test]
async fn http_request_gets_the_amqp_header_back() {
    let server = common::start().await;
    let mut raw = Raw::connect(&server).await;
    raw.write(b"GET / HTTP/1.1\r\n\r\n").await;
    let mut got = [0u8; 8];
    tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut got)
        .await
        .unwrap();
    assert_eq!(got, PROTOCOL_HEADER);
}

#[tokio::test]
async fn silent_client_is_dropped_after_the_handshake_timeout() {
    let server = common::start_with(|c| c.handshake_timeout = 1).await;
    let mut raw = Raw::connect(&server).await;
    raw.write(b"AMQ").await;
    assert!(raw.closed().await);
}

#[tokio::test]
async fn unknown_frame_type_is_frame_error() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.write(&[5, 0, 1, 0, 0, 0, 3, b'a', b'b', b'c', 0xce])
        .await;
    raw.connection_close(501).await;
}

#[tokio::test]
async fn bad_frame_end_is_frame_error() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.write(&[1, 0, 1, 0, 0, 0, 4, 0, 20, 0, 10, 0x00]).await;
    raw.connection_close(501).await;
}

#[tokio::test]
async fn frame_over_frame_max_is_refused_before_it_is_buffered() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    // Negotiated frame_max is 4096: announce a 1 MiB body frame and send nothing more.
    raw.write(&[3, 0, 1, 0, 0x10, 0, 0]).await;
    let (_, _, text) = raw.connection_close(501).await;
    assert!(text.starts_with("FRAME_ERROR"), "{text}");
}

#[tokio::test]
async fn truncated_method_arguments_are_frame_error_naming_the_method() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    // queue.declare (50/10) with its arguments cut short.
    raw.write(&[1, 0, 1, 0, 0, 0, 9, 0, 50, 0, 10, 0, 0, 7, b'q', b'u', 0xce])
        .await;
    assert_eq!(raw.connection_close(501).await.0, 50);
}

#[tokio::test]
async fn unknown_method_drops_the_socket_without_a_word() {
    // RabbitMQ 3.10's reader exits on an unknown class or method id: no connection.close,
    // the socket just closes (rabbitmq-behaviour.md, probes b, b2, b3).
    let server = common::start().await;
    for bytes in [
        [1, 0, 1, 0, 0, 0, 4, 0, 60, 0x03, 0xe7, 0xce],
        [1, 0, 1, 0, 0, 0, 4, 0, 99, 0, 10, 0xce],
        [1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 99, 0xce],
    ] {
        let mut raw = Raw::open(&server).await;
        raw.write(&bytes).await;
        assert!(
            raw.frame().await.is_none(),
            "no frame before the socket closes"
        );
    }
}

#[tokio::test]
async fn method_on_unopened_channel_is_channel_error() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.send_declare(3, "q", false).await;
    let (class, method, _) = raw.connection_close(504).await;
    assert_eq!((class, method), (50, 10));
}

#[tokio::test]
async fn second_channel_open_is_channel_error() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(1, ChannelOpen).await;
    raw.connection_close(504).await;
}

#[tokio::test]
async fn channel_max_counts_open_channels_not_their_numbers() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await; // negotiates channel_max 2047
    // Any number opens while fewer than channel_max channels are open (RabbitMQ 3.10).
    raw.open_channel(65535).await;
    raw.open_channel(2048).await;
    for n in 1..=2045 {
        raw.open_channel(n).await;
    }
    raw.send(3000, ChannelOpen).await;
    let (class, method, text) = raw.connection_close(530).await;
    assert_eq!((class, method), (0, 0));
    assert_eq!(
        text,
        "NOT_ALLOWED - number of channels opened (2047) has reached the negotiated channel_max (2047)"
    );
}

#[tokio::test]
async fn body_without_publish_is_unexpected_frame() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    let mut buf = BytesMut::new();
    encode_body(&mut buf, 1, b"stray");
    raw.write(&buf).await;
    raw.connection_close(505).await;
}

#[tokio::test]
async fn method_instead_of_content_header_is_unexpected_frame() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        BasicPublish {
            routing_key: "q".into(),
            ..Default::default()
        },
    )
    .await;
    raw.send(1, BasicPublish::default()).await;
    let (class, method, _) = raw.connection_close(505).await;
    assert_eq!((class, method), (60, 40));
}

/// A publish with a 2-byte body announced, on channel 1 of a fresh connection.
async fn publish_announcing_two_bytes(server: &warren_server::ServerHandle) -> Raw {
    let mut raw = Raw::open(server).await;
    raw.open_channel(1).await;
    raw.declare(1, "overrun", false).await;
    raw.send(
        1,
        BasicPublish {
            routing_key: "overrun".into(),
            ..Default::default()
        },
    )
    .await;
    let mut buf = BytesMut::new();
    encode_header(&mut buf, 1, &ContentHeader::basic(2, RawProperties::EMPTY));
    raw.write(&buf).await;
    raw
}

#[tokio::test]
async fn a_body_longer_than_declared_waits_like_rabbitmq_then_fails_on_the_next_frame() {
    // RabbitMQ's assembler subtracts each body frame from the size still due; past zero it
    // never completes, swallows further body frames, and fails on the next other frame.
    let server = common::start().await;
    for next in ["method", "header", "close"] {
        let mut raw = publish_announcing_two_bytes(&server).await;
        let mut buf = BytesMut::new();
        encode_body(&mut buf, 1, b"too long");
        encode_body(&mut buf, 1, b"more");
        match next {
            "method" => encode_method(&mut buf, 1, &BasicPublish::default().into()),
            "header" => encode_header(&mut buf, 1, &ContentHeader::basic(1, RawProperties::EMPTY)),
            _ => encode_method(&mut buf, 1, &warren_codec::ChannelClose::default().into()),
        }
        raw.write(&buf).await;
        let (class, method, text) = raw.connection_close(505).await;
        assert_eq!(
            (class, method, text.as_str()),
            (
                60,
                40,
                "UNEXPECTED_FRAME - expected content body, got non content body frame instead"
            ),
            "{next}"
        );
    }
    // Nothing was routed.
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    assert_eq!(raw.declare(1, "overrun", true).await, 0);
}

#[tokio::test]
async fn channel_close_while_content_is_due_is_unexpected_frame() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        BasicPublish {
            routing_key: "q".into(),
            ..Default::default()
        },
    )
    .await;
    raw.send(1, warren_codec::ChannelClose::default()).await;
    let (class, method, text) = raw.connection_close(505).await;
    assert_eq!(
        (class, method, text.as_str()),
        (
            60,
            40,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
        )
    );
}

#[tokio::test]
async fn a_client_close_crossing_the_servers_close_ends_the_channel_cleanly() {
    // Issue 12: the server closes channel 1 for an error while the client closes it too. The
    // server answers the client's close, waits for the close-ok of its own, and the connection
    // and its other channels carry on (RabbitMQ's closing channel does the same).
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let mut buf = BytesMut::new();
    encode_method(
        &mut buf,
        1,
        &warren_codec::BasicAck {
            delivery_tag: 99,
            multiple: false,
        }
        .into(),
    );
    encode_method(&mut buf, 1, &warren_codec::ChannelClose::default().into());
    raw.write(&buf).await;
    match raw.method().await {
        Method::ChannelClose(c) => assert_eq!(c.reply_code, 406, "{}", c.reply_text),
        other => panic!("expected channel.close 406, got {other:?}"),
    }
    assert!(matches!(raw.method().await, Method::ChannelCloseOk(_)));
    raw.send(1, ChannelCloseOk).await;
    // Channel 1 can be opened again, and channel 2 never noticed.
    raw.open_channel(1).await;
    raw.declare(2, "after-crossing", false).await;
}

#[tokio::test]
async fn heartbeat_on_a_channel_is_unexpected_frame() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.write(&[8, 0, 1, 0, 0, 0, 0, 0xce]).await;
    raw.connection_close(505).await;
}

#[tokio::test]
async fn a_broken_connection_does_not_disturb_another() {
    let server = common::start().await;
    let mut good = Raw::open(&server).await;
    good.send(1, ChannelOpen).await;
    good.method().await;
    let mut bad = Raw::open(&server).await;
    let mut junk = BytesMut::new();
    junk.put_slice(&[9; 64]);
    bad.write(&junk).await;
    bad.connection_close(501).await;
    good.declare(1, "still-fine", false).await;
}

#[tokio::test]
async fn close_ok_after_server_close_ends_the_connection() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.write(&[5, 0, 0, 0, 0, 0, 0, 0xce]).await;
    raw.connection_close(501).await;
    raw.send(0, warren_codec::ConnectionCloseOk).await;
    assert!(raw.closed().await);
}

#[tokio::test]
async fn wrong_password_with_authentication_failure_close_gets_403() {
    let server = common::start().await;
    let mut raw = Raw::connect(&server).await;
    let caps = [("authentication_failure_close", FieldValue::Bool(true))]
        .into_iter()
        .collect();
    raw.start(caps, b"\0guest\0wrong").await;
    raw.connection_close(403).await;
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed() {
    let server = common::start().await;
    let mut raw = Raw::connect(&server).await;
    raw.start(FieldTable::new(), b"\0guest\0guest").await;
    raw.method().await;
    raw.tune_and_open("nope", 0).await;
    raw.connection_close(530).await;
}

#[tokio::test]
async fn server_sends_heartbeats_and_drops_a_silent_client() {
    let server = common::start().await;
    let mut raw = Raw::open_with_heartbeat(&server, 1).await;
    // With a 1 s heartbeat the server writes one within about half a second of idling.
    assert!(matches!(
        raw.frame().await,
        Some(warren_codec::Frame::Heartbeat)
    ));
    // We never answer: after two intervals of silence the server closes the socket.
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match tokio::io::AsyncReadExt::read(&mut raw.stream, &mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue, // more heartbeats
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true));
}

#[tokio::test]
async fn shutdown_closes_connections_with_connection_forced() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    let stopping = tokio::spawn(server.shutdown());
    raw.connection_close(320).await;
    raw.send(0, warren_codec::ConnectionCloseOk).await;
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn publish_with_immediate_is_not_implemented() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        BasicPublish {
            routing_key: "q".into(),
            immediate: true,
            ..Default::default()
        },
    )
    .await;
    let (class, method, _) = raw.connection_close(540).await;
    assert_eq!((class, method), (60, 40));
}

#[tokio::test]
async fn oversized_message_is_refused_with_precondition_failed() {
    let server = common::start_with(|c| c.max_message_size = 1000).await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        BasicPublish {
            routing_key: "q".into(),
            ..Default::default()
        },
    )
    .await;
    let mut buf = BytesMut::new();
    encode_header(
        &mut buf,
        1,
        &ContentHeader::basic(1001, RawProperties::EMPTY),
    );
    raw.write(&buf).await;
    match raw.method().await {
        Method::ChannelClose(c) => {
            assert_eq!((c.reply_code, c.class_id, c.method_id), (406, 60, 40))
        }
        other => panic!("expected channel.close, got {other:?}"),
    }
}

#[tokio::test]
async fn frames_after_channel_close_are_dropped_until_close_ok() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send_declare(1, "missing", true).await;
    assert!(matches!(raw.method().await, Method::ChannelClose(c) if c.reply_code == 404));
    // Ignored: the channel is closing.
    raw.send_declare(1, "ignored", false).await;
    raw.send(1, ChannelCloseOk).await;
    raw.open_channel(1).await;
    raw.send_declare(1, "ignored", true).await;
    assert!(matches!(raw.method().await, Method::ChannelClose(c) if c.reply_code == 404));
}

#[tokio::test]
async fn exclusive_consume_refuses_another_consumer() {
    let server = common::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.declare(1, "solo", false).await;
    raw.send(
        1,
        BasicConsume {
            queue: "solo".into(),
            consumer_tag: "a".into(),
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(raw.method().await, Method::BasicConsumeOk(_)));
    raw.send(
        2,
        BasicConsume {
            queue: "solo".into(),
            consumer_tag: "b".into(),
            ..Default::default()
        },
    )
    .await;
    match raw.method().await {
        Method::ChannelClose(c) => assert_eq!(c.reply_code, 403),
        other => panic!("expected channel.close 403, got {other:?}"),
    }
}

#[tokio::test]
async fn memory_alarm_blocks_publishers_with_connection_blocked_until_it_clears() {
    // A watermark far below any process's footprint: the alarm is set from the first sample.
    let server = common::start_with(|c| c.memory_high_watermark = 1e-9).await;
    let mut raw = Raw::open_blockable(&server).await;
    raw.declare(1, "held", false).await;
    // Let the monitor take its first sample.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    raw.publish(1, "held", b"x").await;
    assert_eq!(raw.blocked().await, "low on memory");
    // Blocked: the server no longer reads this socket, so a declare gets no answer.
    raw.send_declare(1, "unanswered", false).await;
    let answer = tokio::time::timeout(std::time::Duration::from_millis(500), raw.frame()).await;
    assert!(
        answer.is_err(),
        "a blocked connection is not read: {answer:?}"
    );
    // The watermark is raised (rabbitmqctl set_vm_memory_high_watermark): the alarm clears at
    // the next sample, the publisher hears connection.unblocked and its socket is read again.
    assert!(server.set_memory_high_watermark(0.0).is_err());
    assert!(server.set_memory_high_watermark(f64::NAN).is_err());
    server.set_memory_high_watermark(1.0).unwrap();
    raw.unblocked().await;
    match raw.method().await {
        Method::QueueDeclareOk(ok) => assert_eq!(ok.queue, "unanswered"),
        other => panic!("expected the held queue.declare's answer, got {other:?}"),
    }
    // Nothing was lost while blocked: the publish that met the alarm is in its queue.
    assert_eq!(raw.declare(1, "held", true).await, 1);
}
