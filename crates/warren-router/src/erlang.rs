//! How RabbitMQ (an Erlang program) sees field-table values: which values compare equal, what
//! their type is called, and how they print in error texts.
//!
//! RabbitMQ decodes a field value into a `{Type, Value}` pair and compares the bare values with
//! Erlang's `==`, which ignores the integer width and compares integers and floats by value. Warren
//! must give the same answers, so the comparison lives here, in one place, rather than in the
//! derived `PartialEq` of the codec's types (which is exact). Nothing here allocates except the
//! error-text formatting.

use std::fmt::Write as _;

use warren_codec::{FieldTable, FieldValue};

/// A number as Erlang holds it: an integer of any size or a double.
#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

fn number(v: &FieldValue) -> Option<Number> {
    Some(match *v {
        FieldValue::Timestamp(t) => Number::Int(i128::from(t)),
        FieldValue::F32(f) => Number::Float(f64::from(f)),
        FieldValue::F64(f) => Number::Float(f),
        ref other => Number::Int(i128::from(other.as_i64()?)),
    })
}

fn int_eq_float(i: i128, f: f64) -> bool {
    // Erlang compares an integer with a float exactly, so 1 == 1.0 but 2^60+1 /= 2.0^60.
    // `as i128` saturates, so the range check keeps huge floats from aliasing i128::MAX.
    f.is_finite() && f.fract() == 0.0 && f.abs() < 1.0e38 && f as i128 == i
}

fn numbers_equal(a: Number, b: Number) -> bool {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => x == y,
        (Number::Float(x), Number::Float(y)) => x == y,
        (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
            int_eq_float(i, f)
        }
    }
}

/// Erlang's `==` on the bare values of two fields, the way the headers exchange compares a
/// binding argument with a message header: type tags are ignored at this level.
pub(crate) fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return numbers_equal(x, y);
    }
    // Long strings and byte arrays both decode to Erlang binaries.
    if let (Some(x), Some(y)) = (a.as_bytes(), b.as_bytes()) {
        return x == y;
    }
    match (a, b) {
        (FieldValue::Bool(x), FieldValue::Bool(y)) => x == y,
        (FieldValue::Decimal(x), FieldValue::Decimal(y)) => x == y,
        (FieldValue::Void, FieldValue::Void) => true,
        // Inside arrays and tables the type tags are part of the compared tuples.
        (FieldValue::Array(x), FieldValue::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| type_name(p) == type_name(q) && values_equal(p, q))
        }
        (FieldValue::Table(x), FieldValue::Table(y)) => tables_equal(x, y),
        _ => false,
    }
}

fn tables_equal(x: &FieldTable, y: &FieldTable) -> bool {
    x.len() == y.len()
        && x.iter().zip(y.iter()).all(|((kp, p), (kq, q))| {
            kp == kq && type_name(p) == type_name(q) && values_equal(p, q)
        })
}

/// Exact identity, as Mnesia matches binding records: same tags, same values, floats by bits.
pub(crate) fn values_identical(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (FieldValue::F32(x), FieldValue::F32(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::F64(x), FieldValue::F64(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::Array(x), FieldValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_identical(p, q))
        }
        (FieldValue::Table(x), FieldValue::Table(y)) => tables_identical(x, y),
        _ => a == b,
    }
}

/// Exact identity of two tables, entry by entry in order.
pub(crate) fn tables_identical(x: &FieldTable, y: &FieldTable) -> bool {
    x.len() == y.len()
        && x.iter()
            .zip(y.iter())
            .all(|((kp, p), (kq, q))| kp == kq && values_identical(p, q))
}

/// RabbitMQ's `type_class/1`: integer types form one class and floats another, so that a
/// redeclaration may change an argument's width but not its kind.
pub(crate) fn type_class(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::I8(_)
        | FieldValue::U8(_)
        | FieldValue::I16(_)
        | FieldValue::U16(_)
        | FieldValue::I32(_)
        | FieldValue::U32(_)
        | FieldValue::I64(_)
        | FieldValue::Decimal(_) => "int",
        FieldValue::F32(_) | FieldValue::F64(_) => "float",
        other => type_name(other),
    }
}

/// The atom RabbitMQ names a field type with in its error texts.
pub(crate) fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal(_) => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::Bytes(_) => "binary",
    }
}

/// Erlang's `~p` rendering of a binary: `<<"text">>` when printable, else `<<1,2,3>>`.
pub(crate) fn format_binary_p(bytes: &[u8]) -> String {
    let mut s = String::from("<<");
    if !bytes.is_empty() && bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        s.push('"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                s.push('\\');
            }
            s.push(char::from(b));
        }
        s.push('"');
    } else {
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{b}");
        }
    }
    s.push_str(">>");
    s
}

/// Erlang's `~p` rendering of a bare value, close enough for error texts.
pub(crate) fn format_value_p(v: &FieldValue) -> String {
    match v {
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::F32(f) => format!("{:?}", f64::from(*f)),
        FieldValue::F64(f) => format!("{f:?}"),
        FieldValue::Decimal(d) => format!("{{{},{}}}", d.scale, d.value),
        FieldValue::Timestamp(t) => t.to_string(),
        FieldValue::Void => "undefined".to_owned(),
        FieldValue::LongStr(_) | FieldValue::Bytes(_) => {
            format_binary_p(v.as_bytes().unwrap_or_default())
        }
        FieldValue::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|i| format!("{{{},{}}}", type_name(i), format_value_p(i)))
                .collect();
            format!("[{}]", inner.join(","))
        }
        FieldValue::Table(t) => {
            let inner: Vec<String> = t
                .iter()
                .map(|(k, i)| {
                    format!(
                        "{{{},{},{}}}",
                        format_binary_p(k.as_bytes()),
                        type_name(i),
                        format_value_p(i)
                    )
                })
                .collect();
            format!("[{}]", inner.join(","))
        }
        other => other.as_i64().map(|i| i.to_string()).unwrap_or_default(),
    }
}

/// A bare value as `rabbit_misc:val/1` quotes it: binaries with `~s`, the rest with `~p`.
pub(crate) fn format_value_s(v: &FieldValue) -> String {
    match v.as_bytes() {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => format_value_p(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_codec::Decimal;

    #[test]
    fn integers_of_different_widths_are_equal() {
        assert!(values_equal(&FieldValue::I8(5), &FieldValue::I64(5)));
        assert!(values_equal(&FieldValue::U32(7), &FieldValue::I16(7)));
        assert!(values_equal(&FieldValue::Timestamp(9), &FieldValue::I32(9)));
        assert!(!values_equal(
            &FieldValue::I32(-1),
            &FieldValue::U32(u32::MAX)
        ));
    }

    #[test]
    fn integer_equals_float_of_same_value() {
        assert!(values_equal(&FieldValue::I32(1), &FieldValue::F64(1.0)));
        assert!(values_equal(&FieldValue::F32(1.5), &FieldValue::F64(1.5)));
        assert!(!values_equal(&FieldValue::I32(1), &FieldValue::F64(1.5)));
        assert!(!values_equal(
            &FieldValue::F64(f64::NAN),
            &FieldValue::F64(f64::NAN)
        ));
    }

    #[test]
    fn longstr_equals_byte_array_with_same_bytes() {
        let s = FieldValue::LongStr("ab".into());
        let b = FieldValue::Bytes(bytes::Bytes::from_static(b"ab"));
        assert!(values_equal(&s, &b));
        assert!(!values_equal(&s, &FieldValue::Bool(true)));
    }

    #[test]
    fn bools_are_not_integers() {
        assert!(!values_equal(&FieldValue::Bool(true), &FieldValue::I32(1)));
    }

    #[test]
    fn array_elements_compare_with_their_type_tags() {
        let a = FieldValue::Array(vec![FieldValue::I32(1)]);
        let b = FieldValue::Array(vec![FieldValue::I64(1)]);
        assert!(!values_equal(&a, &b));
        assert!(values_equal(&a, &a.clone()));
    }

    #[test]
    fn decimals_compare_structurally() {
        let a = FieldValue::Decimal(Decimal {
            scale: 1,
            value: 10,
        });
        let b = FieldValue::Decimal(Decimal {
            scale: 2,
            value: 100,
        });
        assert!(!values_equal(&a, &b));
        assert!(!values_equal(&a, &FieldValue::I32(1)));
    }

    #[test]
    fn binaries_print_like_erlang() {
        assert_eq!(format_binary_p(b"foo"), "<<\"foo\">>");
        assert_eq!(format_binary_p(&[1, 200]), "<<1,200>>");
        assert_eq!(format_binary_p(b""), "<<>>");
    }
}
