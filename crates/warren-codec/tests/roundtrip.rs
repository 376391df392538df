//! Property tests: every method, field table and property list survives encode → decode, and no
//! truncation or chunking of a valid stream makes the decoder panic or disagree with itself.

mod support;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use support::*;
use warren_codec::{
    BasicProperties, CodecError, FieldTable, Frame, FrameDecoder, Method, RawProperties,
    encode_content, encode_method, wire::Reader,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Reference bytes → generated decoder → generated encoder gives the same bytes, for every method.
    #[test]
    fn every_method_round_trips_byte_for_byte((layout, values) in method_args()) {
        let args = encode_args(&values);
        let method = Method::decode(layout.class_id, layout.method_id, &args)
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", layout.name)))?;
        prop_assert_eq!(method.name(), layout.name);
        let mut out = BytesMut::new();
        method.encode(&mut out);
        prop_assert_eq!(&out[4..], &args[..]);
        // And the decoded value survives a second trip.
        let again = Method::decode(layout.class_id, layout.method_id, &Bytes::copy_from_slice(&out[4..]));
        prop_assert_eq!(again.as_ref(), Ok(&method));
    }

    /// Cutting a method's arguments short (with the frame size fixed up) is an error, never a panic.
    #[test]
    fn truncated_arguments_are_malformed((layout, values) in method_args(), cut in any::<prop::sample::Index>()) {
        let args = encode_args(&values);
        prop_assume!(!args.is_empty());
        let short = &args[..cut.index(args.len())];
        let mut frame = method_frame(1, layout, short);
        let res = FrameDecoder::new(0).decode(&mut frame);
        let is_malformed = matches!(res, Err(CodecError::MalformedMethod { .. }));
        prop_assert!(is_malformed, "{}: {:?}", layout.name, res);
    }

    /// Every strict prefix of a valid frame is "incomplete" and consumes nothing.
    #[test]
    fn every_prefix_of_a_frame_is_incomplete((layout, values) in method_args()) {
        let frame = method_frame(3, layout, &encode_args(&values));
        let dec = FrameDecoder::new(0);
        for cut in 0..frame.len() {
            let mut part = BytesMut::from(&frame[..cut]);
            prop_assert_eq!(dec.decode(&mut part), Ok(None));
            prop_assert_eq!(part.len(), cut);
        }
    }

    #[test]
    fn field_tables_round_trip(table in field_table()) {
        let mut buf = BytesMut::new();
        table.encode(&mut buf);
        let bytes = buf.freeze();
        let mut r = Reader::new(&bytes);
        prop_assert_eq!(FieldTable::decode(&mut r), Ok(table));
        prop_assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn properties_round_trip(props in properties()) {
        let raw = props.to_raw();
        prop_assert_eq!(raw.decode(), Ok(props.clone()));
        let (again, parsed) = RawProperties::parse(Bytes::copy_from_slice(raw.as_bytes()))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again, raw);
        prop_assert_eq!(parsed, BasicProperties { headers: None, ..props });
    }

    /// The one-pass field lookup finds what the full decoder finds.
    #[test]
    fn broker_fields_agree_with_full_decode(props in properties()) {
        let f = props.to_raw().broker_fields();
        prop_assert_eq!(f.delivery_mode, props.delivery_mode);
        prop_assert_eq!(f.priority, props.priority);
        prop_assert_eq!(f.reply_to, props.reply_to);
        prop_assert_eq!(f.expiration, props.expiration);
    }

    /// A stream of content frames decodes identically whatever the chunking of its bytes.
    #[test]
    fn any_chunking_decodes_the_same(
        props in properties(),
        body in proptest::collection::vec(any::<u8>(), 0..9000),
        chunks in proptest::collection::vec(1usize..700, 1..64),
    ) {
        let mut wire = BytesMut::new();
        let publish = Method::BasicPublish(warren_codec::BasicPublish {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            mandatory: false,
            immediate: false,
        });
        let raw = props.to_raw();
        // A content header must fit in one frame: a large generated header table raises
        // frame_max just enough (the body is still split into many frames).
        let frame_max = 4096u32.max(u32::try_from(raw.as_bytes().len()).unwrap_or(u32::MAX).saturating_add(64));
        encode_content(&mut wire, 7, &publish, &raw, &body, frame_max);
        encode_method(&mut wire, 0, &Method::ConnectionCloseOk(warren_codec::ConnectionCloseOk));
        let dec = FrameDecoder::new(frame_max);

        let mut whole = wire.clone();
        let mut expected = Vec::new();
        while let Some(f) = dec.decode(&mut whole).map_err(|e| TestCaseError::fail(e.to_string()))? {
            expected.push(f);
        }
        prop_assert!(whole.is_empty());

        let mut got: Vec<Frame> = Vec::new();
        let mut buf = BytesMut::new();
        let mut rest = &wire[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = chunks[i % chunks.len()].min(rest.len());
            i += 1;
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(f) = dec.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
                got.push(f);
            }
        }
        prop_assert_eq!(got, expected);
    }

    /// Arbitrary bytes never panic the decoder; it either waits, yields frames, or errors.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut buf = BytesMut::from(&bytes[..]);
        let dec = FrameDecoder::new(4096);
        for _ in 0..bytes.len() + 1 {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn every_method_of_the_spec_and_the_extensions_is_generated() {
    assert_eq!(warren_codec::METHOD_LAYOUTS.len(), 64);
    for (class, method) in [
        (10, 60),
        (10, 61),
        (10, 70),
        (10, 71),
        (85, 10),
        (85, 11),
        (60, 120),
        (40, 30),
        (40, 40),
    ] {
        assert!(
            warren_codec::method_name(class, method).is_some(),
            "{class}/{method}"
        );
    }
}

proptest! {
    /// The building-free property check accepts exactly what the parsing walk accepts, on
    /// valid lists and on any truncation or extension of them.
    #[test]
    fn property_check_agrees_with_property_parse(props in properties(), noise in proptest::collection::vec(any::<u8>(), 0..16), cut in any::<prop::sample::Index>()) {
        let mut buf = BytesMut::from(props.to_raw().as_bytes());
        buf.extend_from_slice(&noise);
        let all = buf.freeze();
        let bytes = all.slice(..cut.index(all.len() + 1).min(all.len()));
        let parsed = RawProperties::parse(bytes.clone()).map(|(raw, _)| raw);
        prop_assert_eq!(RawProperties::check(bytes), parsed);
    }

    /// The building-free property check agrees with the parsing walk on arbitrary bytes.
    #[test]
    fn property_check_agrees_with_property_parse_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let bytes = Bytes::from(bytes);
        let parsed = RawProperties::parse(bytes.clone()).map(|(raw, _)| raw);
        prop_assert_eq!(RawProperties::check(bytes), parsed);
    }

    /// The allocation-free table check accepts exactly what the full decoder accepts.
    #[test]
    fn table_check_agrees_with_table_decode(table in field_table(), noise in proptest::collection::vec(any::<u8>(), 0..64), cut in any::<prop::sample::Index>()) {
        let mut buf = BytesMut::new();
        table.encode(&mut buf);
        buf.extend_from_slice(&noise);
        let all = buf.freeze();
        let bytes = all.slice(..cut.index(all.len() + 1).min(all.len()));
        let mut a = Reader::new(&bytes);
        let mut b = Reader::new(&bytes);
        let decoded = FieldTable::decode(&mut a);
        let checked = FieldTable::skip(&mut b);
        prop_assert_eq!(decoded.is_ok(), checked.is_ok());
        prop_assert_eq!(a.remaining(), b.remaining());
    }
}
