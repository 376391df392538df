//! Golden vectors: frames captured from pika talking to RabbitMQ 3.10 (see tests/golden/README.md).
//! Each must decode to the method its file is named after and re-encode to the identical bytes.

use std::path::PathBuf;

use bytes::BytesMut;
use warren_codec::{
    FieldValue, Frame, FrameDecoder, Method, PROTOCOL_HEADER, encode_body, encode_header,
    encode_method,
};

/// Frames in which the client set a reserved field: pika sends connection.open's deprecated
/// `insist` bit as 1. We decode past it and send reserved fields as zero.
const RESERVED_SET_BY_CLIENT: &[&str] = &["c2s-connection.open.bin"];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameDecoder::new(131_072).decode(&mut buf);
    let Ok(Some(frame)) = frame else {
        panic!("not one whole frame: {frame:?}")
    };
    assert!(buf.is_empty(), "file holds exactly one frame");
    frame
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(golden_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_golden_frame_decodes_and_reencodes_identically() {
    let mut methods = 0;
    let mut entries: Vec<_> = std::fs::read_dir(golden_dir()).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".bin") || name.contains("protocol-header") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let stem = name.trim_end_matches(".bin");
        let mut out = BytesMut::new();
        match decode_one(&bytes) {
            Frame::Method { channel, method } => {
                let expected = stem.split_once('-').map(|(_, m)| m).unwrap();
                assert_eq!(method.name(), expected, "{name}");
                encode_method(&mut out, channel, &method);
                methods += 1;
            }
            Frame::Header { channel, header } => {
                assert!(stem.ends_with(".header"), "{name}");
                header
                    .properties
                    .decode()
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                encode_header(&mut out, channel, &header);
            }
            Frame::Body { channel, payload } => {
                assert!(stem.ends_with(".body"), "{name}");
                encode_body(&mut out, channel, &payload);
            }
            Frame::Heartbeat => panic!("{name}: unexpected heartbeat"),
        }
        if RESERVED_SET_BY_CLIENT.contains(&name.as_str()) {
            // Reserved fields are not kept, so only the meaning survives: decode ours and compare.
            assert_eq!(
                decode_one(&out),
                decode_one(&bytes),
                "{name} re-encodes to the same method"
            );
        } else {
            assert_eq!(&out[..], &bytes[..], "{name} re-encodes byte for byte");
        }
    }
    assert!(methods >= 10, "only {methods} golden methods");
}

#[test]
fn pika_sends_the_0_9_1_protocol_header() {
    assert_eq!(read("c2s-protocol-header.bin"), PROTOCOL_HEADER);
}

#[test]
fn start_ok_carries_plain_credentials_and_capabilities() {
    let Frame::Method {
        method: Method::ConnectionStartOk(m),
        ..
    } = decode_one(&read("c2s-connection.start-ok.bin"))
    else {
        panic!("not start-ok")
    };
    assert_eq!(m.mechanism, "PLAIN");
    assert_eq!(m.response.as_bytes(), b"\0guest\0guest");
    let Some(FieldValue::Table(caps)) = m.client_properties.get("capabilities") else {
        panic!("no capabilities table")
    };
    assert_eq!(
        caps.get("publisher_confirms"),
        Some(&FieldValue::Bool(true))
    );
}

#[test]
fn rabbitmq_start_advertises_its_capabilities() {
    let Frame::Method {
        method: Method::ConnectionStart(m),
        channel,
    } = decode_one(&read("s2c-connection.start.bin"))
    else {
        panic!("not connection.start")
    };
    assert_eq!((channel, m.version_major, m.version_minor), (0, 0, 9));
    assert_eq!(m.mechanisms.as_bytes(), b"AMQPLAIN PLAIN");
    let Some(FieldValue::Table(caps)) = m.server_properties.get("capabilities") else {
        panic!("no capabilities table")
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
    ] {
        assert_eq!(caps.get(cap), Some(&FieldValue::Bool(true)), "{cap}");
    }
}

#[test]
fn published_properties_decode() {
    let Frame::Header { header, .. } = decode_one(&read("c2s-basic.publish.header.bin")) else {
        panic!("not a header")
    };
    let p = header.properties.decode().unwrap();
    assert_eq!(p.delivery_mode, Some(2));
    assert!(p.headers.is_some());
    assert!(p.content_type.is_some());
}
