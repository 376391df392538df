//! Proptest strategies shared by the codec's integration tests.

#![allow(dead_code)]

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use warren_codec::{
    Arg, ArgType, BasicProperties, Decimal, FieldTable, FieldValue, LongStr, MethodLayout,
    ShortStr, wire,
};

/// A short string of any bytes, sometimes at the 255-byte limit.
pub fn short_str() -> impl Strategy<Value = ShortStr> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => proptest::collection::vec(any::<u8>(), 255..=255),
    ]
    .prop_map(|v| ShortStr::from(v.as_slice()))
}

/// A long string of any bytes.
pub fn long_str() -> impl Strategy<Value = LongStr> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| LongStr::from(v.as_slice()))
}

fn finite_f32() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("NaN never equals itself", |f| !f.is_nan())
}

fn finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan())
}

/// Any field value, nested up to a few levels.
pub fn field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        finite_f32().prop_map(FieldValue::F32),
        finite_f64().prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| FieldValue::Decimal(Decimal { scale, value })),
        long_str().prop_map(FieldValue::LongStr),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|v| FieldValue::Bytes(Bytes::from(v))),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
            proptest::collection::vec((short_str(), inner), 0..6)
                .prop_map(|kv| FieldValue::Table(kv.into_iter().collect())),
        ]
    })
}

/// Any field table.
pub fn field_table() -> impl Strategy<Value = FieldTable> {
    proptest::collection::vec((short_str(), field_value()), 0..8)
        .prop_map(|kv| kv.into_iter().collect())
}

/// Any set of basic properties.
pub fn properties() -> impl Strategy<Value = BasicProperties> {
    let strs = proptest::collection::vec(proptest::option::of(short_str()), 11);
    (
        strs,
        proptest::option::of(field_table()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(mut s, headers, delivery_mode, priority, timestamp)| {
            let mut next = || s.pop().flatten();
            BasicProperties {
                content_type: next(),
                content_encoding: next(),
                headers,
                delivery_mode,
                priority,
                correlation_id: next(),
                reply_to: next(),
                expiration: next(),
                message_id: next(),
                timestamp,
                kind: next(),
                user_id: next(),
                app_id: next(),
                cluster_id: next(),
            }
        })
}

/// One argument value, tagged with how to write it.
#[derive(Debug, Clone)]
pub enum ArgValue {
    /// A fixed-width integer of `width` bytes.
    Int(u64, usize),
    /// A bit.
    Bit(bool),
    /// A short string.
    Short(ShortStr),
    /// A long string.
    Long(LongStr),
    /// A table.
    Table(FieldTable),
}

fn arg_value(arg: &Arg) -> BoxedStrategy<ArgValue> {
    if arg.reserved {
        return match arg.ty {
            ArgType::Bit => Just(ArgValue::Bit(false)).boxed(),
            ArgType::ShortStr => Just(ArgValue::Short(ShortStr::default())).boxed(),
            ArgType::LongStr => Just(ArgValue::Long(LongStr::default())).boxed(),
            ArgType::Table => Just(ArgValue::Table(FieldTable::new())).boxed(),
            ArgType::Octet => Just(ArgValue::Int(0, 1)).boxed(),
            ArgType::Short => Just(ArgValue::Int(0, 2)).boxed(),
            ArgType::Long => Just(ArgValue::Int(0, 4)).boxed(),
            ArgType::LongLong | ArgType::Timestamp => Just(ArgValue::Int(0, 8)).boxed(),
        };
    }
    match arg.ty {
        ArgType::Octet => any::<u8>().prop_map(|v| ArgValue::Int(v.into(), 1)).boxed(),
        ArgType::Short => any::<u16>()
            .prop_map(|v| ArgValue::Int(v.into(), 2))
            .boxed(),
        ArgType::Long => any::<u32>()
            .prop_map(|v| ArgValue::Int(v.into(), 4))
            .boxed(),
        ArgType::LongLong | ArgType::Timestamp => {
            any::<u64>().prop_map(|v| ArgValue::Int(v, 8)).boxed()
        }
        ArgType::Bit => any::<bool>().prop_map(ArgValue::Bit).boxed(),
        ArgType::ShortStr => short_str().prop_map(ArgValue::Short).boxed(),
        ArgType::LongStr => long_str().prop_map(ArgValue::Long).boxed(),
        ArgType::Table => field_table().prop_map(ArgValue::Table).boxed(),
    }
}

/// A method layout and valid argument values for it.
pub fn method_args() -> impl Strategy<Value = (&'static MethodLayout, Vec<ArgValue>)> {
    (0..warren_codec::METHOD_LAYOUTS.len()).prop_flat_map(|i| {
        let layout = &warren_codec::METHOD_LAYOUTS[i];
        let values: Vec<BoxedStrategy<ArgValue>> = layout.args.iter().map(arg_value).collect();
        (Just(layout), values)
    })
}

/// Encodes argument values independently of the generated code: the reference encoding.
pub fn encode_args(values: &[ArgValue]) -> Bytes {
    let mut buf = BytesMut::new();
    let mut bits: Option<(u8, u8)> = None;
    for v in values {
        if let ArgValue::Bit(b) = v {
            let (mut acc, n) = bits.unwrap_or((0, 0));
            if n == 8 {
                buf.put_u8(acc);
                bits = Some((u8::from(*b), 1));
                continue;
            }
            acc |= u8::from(*b) << n;
            bits = Some((acc, n + 1));
            continue;
        }
        if let Some((acc, _)) = bits.take() {
            buf.put_u8(acc);
        }
        match v {
            ArgValue::Int(x, 1) => buf.put_u8(*x as u8),
            ArgValue::Int(x, 2) => buf.put_u16(*x as u16),
            ArgValue::Int(x, 4) => buf.put_u32(*x as u32),
            ArgValue::Int(x, _) => buf.put_u64(*x),
            ArgValue::Short(s) => wire::put_short_str(&mut buf, s),
            ArgValue::Long(s) => wire::put_long_str(&mut buf, s),
            ArgValue::Table(t) => t.encode(&mut buf),
            ArgValue::Bit(_) => {}
        }
    }
    if let Some((acc, _)) = bits {
        buf.put_u8(acc);
    }
    buf.freeze()
}

/// A whole method frame on `channel` for the layout with the given argument bytes.
pub fn method_frame(channel: u16, layout: &MethodLayout, args: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u8(1);
    buf.put_u16(channel);
    buf.put_u32((args.len() + 4) as u32);
    buf.put_u16(layout.class_id);
    buf.put_u16(layout.method_id);
    buf.put_slice(args);
    buf.put_u8(0xce);
    buf
}
