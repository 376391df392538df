//! The headers exchange's matcher: whether a binding's arguments match a message's headers.
//!
//! RabbitMQ (`rabbit_exchange_type_headers:headers_match/2`) sorts both tables by key and merges
//! them. A binding is compiled here once, at bind time, into its sorted match entries; a route then
//! looks each entry up in the headers as they arrived, without sorting or allocating. Pairing the
//! n-th binding entry of a key with the n-th header of that key reproduces the merge exactly, even
//! with duplicate keys.

use smallvec::SmallVec;
use warren_codec::{FieldTable, FieldValue, ShortStr};

use crate::erlang;
use crate::error::RouterError;

/// The `x-match` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XMatch {
    /// Every match entry must match (the default).
    All,
    /// At least one match entry must match.
    Any,
    /// As `All`, but `x-` arguments other than `x-match` are match entries too.
    AllWithX,
    /// As `Any`, but `x-` arguments other than `x-match` are match entries too.
    AnyWithX,
}

impl XMatch {
    fn is_all(self) -> bool {
        matches!(self, XMatch::All | XMatch::AllWithX)
    }

    fn with_x(self) -> bool {
        matches!(self, XMatch::AllWithX | XMatch::AnyWithX)
    }
}

/// `validate_binding/2`: `x-match` must be absent or one of the four long strings.
pub(crate) fn validate(args: &FieldTable) -> Result<(), RouterError> {
    match args.get("x-match") {
        None => Ok(()),
        Some(FieldValue::LongStr(s)) => match s.as_bytes() {
            b"all" | b"any" | b"all-with-x" | b"any-with-x" => Ok(()),
            other => Err(RouterError::InvalidBinding {
                text: format!(
                    "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
                    erlang::format_binary_p(other)
                ),
            }),
        },
        Some(other) => Err(RouterError::InvalidBinding {
            text: format!(
                "Invalid x-match field type {} (value {}); expected longstr",
                erlang::type_name(other),
                erlang::format_value_p(other)
            ),
        }),
    }
}

/// `parse_x_match/1`: anything unrecognised means `all` (bindings restored from old stores were
/// never validated).
fn parse_x_match(args: &FieldTable) -> XMatch {
    match args.get("x-match") {
        Some(FieldValue::LongStr(s)) => match s.as_bytes() {
            b"any" => XMatch::Any,
            b"all-with-x" => XMatch::AllWithX,
            b"any-with-x" => XMatch::AnyWithX,
            _ => XMatch::All,
        },
        _ => XMatch::All,
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: ShortStr,
    /// Which occurrence of `key` in the headers this entry pairs with.
    occurrence: u32,
    /// `None` for a void value: the header need only be present.
    value: Option<FieldValue>,
}

/// One headers binding, compiled for matching.
#[derive(Debug, Clone)]
pub struct HeadersMatcher {
    mode: XMatch,
    entries: SmallVec<[Entry; 2]>,
}

impl HeadersMatcher {
    /// Compiles binding arguments (in any order).
    pub fn new(args: &FieldTable) -> Self {
        let mode = parse_x_match(args);
        let mut sorted: Vec<(&ShortStr, &FieldValue)> = args.iter().collect();
        // Stable, like lists:keysort, so duplicates keep their relative order.
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut entries: SmallVec<[Entry; 2]> = SmallVec::new();
        let mut prev: Option<&[u8]> = None;
        let mut occurrence = 0;
        for (k, v) in sorted {
            let key = k.as_bytes();
            occurrence = if prev == Some(key) { occurrence + 1 } else { 0 };
            prev = Some(key);
            // Skipped entries consume no header in the merge, so they need no occurrence slot.
            if key == b"x-match" || (key.starts_with(b"x-") && !mode.with_x()) {
                continue;
            }
            entries.push(Entry {
                key: k.clone(),
                occurrence,
                value: match v {
                    FieldValue::Void => None,
                    other => Some(other.clone()),
                },
            });
        }
        HeadersMatcher { mode, entries }
    }

    /// The binding's `x-match` mode.
    pub fn mode(&self) -> XMatch {
        self.mode
    }

    /// True when the message headers satisfy the binding. No headers match like an empty table.
    pub fn matches(&self, headers: Option<&FieldTable>) -> bool {
        let all = self.mode.is_all();
        for e in &self.entries {
            let found = headers.and_then(|h| {
                h.iter()
                    .filter(|(k, _)| k.as_bytes() == e.key.as_bytes())
                    .nth(e.occurrence as usize)
            });
            let ok = match (found, &e.value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some((_, have)), Some(want)) => erlang::values_equal(want, have),
            };
            if ok != all {
                return ok;
            }
        }
        // With no match entries, `all` matches everything and `any` nothing, as in RabbitMQ.
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        entries.iter().cloned().collect()
    }

    fn m(args: &[(&str, FieldValue)], headers: &[(&str, FieldValue)]) -> bool {
        let h = table(headers);
        HeadersMatcher::new(&table(args)).matches(Some(&h))
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(v.into())
    }

    #[test]
    fn all_is_the_default_and_needs_every_entry() {
        let args = [("a", s("1")), ("b", s("2"))];
        assert!(m(&args, &[("a", s("1")), ("b", s("2")), ("c", s("3"))]));
        assert!(!m(&args, &[("a", s("1"))]));
        assert!(!m(&args, &[("a", s("1")), ("b", s("x"))]));
    }

    #[test]
    fn any_needs_one_entry() {
        let args = [("x-match", s("any")), ("a", s("1")), ("b", s("2"))];
        assert!(m(&args, &[("b", s("2"))]));
        assert!(!m(&args, &[("a", s("2")), ("b", s("1"))]));
        assert!(!m(&args, &[]));
    }

    #[test]
    fn binding_without_match_keys_all_matches_everything_any_matches_nothing() {
        assert!(m(&[], &[]));
        assert!(m(&[("x-match", s("all"))], &[("k", s("v"))]));
        assert!(!m(&[("x-match", s("any"))], &[("k", s("v"))]));
        assert!(HeadersMatcher::new(&FieldTable::new()).matches(None));
    }

    #[test]
    fn x_arguments_are_ignored_unless_with_x() {
        let args = [("x-foo", s("1"))];
        assert!(m(&args, &[]));
        let args = [("x-match", s("all-with-x")), ("x-foo", s("1"))];
        assert!(!m(&args, &[]));
        assert!(m(&args, &[("x-foo", s("1"))]));
        let args = [
            ("x-match", s("any-with-x")),
            ("x-foo", s("1")),
            ("a", s("1")),
        ];
        assert!(m(&args, &[("x-foo", s("1"))]));
        assert!(!m(&args, &[("x-match", s("any-with-x"))]));
    }

    #[test]
    fn void_binding_value_matches_on_presence() {
        let args = [("a", FieldValue::Void)];
        assert!(m(&args, &[("a", s("anything"))]));
        assert!(m(&args, &[("a", FieldValue::Void)]));
        assert!(!m(&args, &[("b", s("1"))]));
    }

    #[test]
    fn integer_widths_and_floats_compare_by_value() {
        assert!(m(&[("n", FieldValue::I8(3))], &[("n", FieldValue::I64(3))]));
        assert!(m(
            &[("n", FieldValue::I32(3))],
            &[("n", FieldValue::F64(3.0))]
        ));
        assert!(!m(&[("n", FieldValue::I32(3))], &[("n", s("3"))]));
    }

    #[test]
    fn missing_headers_match_like_an_empty_table() {
        let any = HeadersMatcher::new(&table(&[("x-match", s("any")), ("a", s("1"))]));
        assert!(!any.matches(None));
        let all = HeadersMatcher::new(&table(&[("a", s("1"))]));
        assert!(!all.matches(None));
    }

    #[test]
    fn duplicate_keys_pair_in_order() {
        // The merge pairs the first binding entry for a key with the first such header.
        assert!(!m(&[("k", s("2"))], &[("k", s("1")), ("k", s("2"))]));
        assert!(m(&[("k", s("1"))], &[("k", s("1")), ("k", s("2"))]));
    }

    #[test]
    fn invalid_x_match_is_refused_with_rabbitmq_text() {
        let err = validate(&table(&[("x-match", s("some"))])).map_err(|e| e.reply_text());
        assert_eq!(
            err,
            Err("Invalid x-match field value <<\"some\">>; \
                 expected all, any, all-with-x, or any-with-x"
                .to_owned())
        );
        let err = validate(&table(&[("x-match", FieldValue::I32(1))])).map_err(|e| e.reply_text());
        assert_eq!(
            err,
            Err("Invalid x-match field type signedint (value 1); expected longstr".to_owned())
        );
        assert_eq!(validate(&FieldTable::new()), Ok(()));
    }

    // A transcription of RabbitMQ's merge over key-sorted lists, as the reference.
    fn reference(args: &FieldTable, headers: &FieldTable) -> bool {
        let mode = parse_x_match(args);
        let sort = |t: &FieldTable| {
            let mut v: Vec<(Vec<u8>, FieldValue)> = t
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let (p, d) = (sort(args), sort(headers));
        let (mut i, mut j) = (0, 0);
        let (mut all_ok, mut any_ok) = (true, false);
        loop {
            if !all_ok && mode.is_all() {
                return false;
            }
            if any_ok && !mode.is_all() {
                return true;
            }
            let Some((pk, pv)) = p.get(i) else {
                return if mode.is_all() { all_ok } else { any_ok };
            };
            if pk.as_slice() == b"x-match" || (pk.starts_with(b"x-") && !mode.with_x()) {
                i += 1;
                continue;
            }
            let Some((dk, dv)) = d.get(j) else {
                all_ok = false;
                i = p.len();
                continue;
            };
            if pk > dk {
                j += 1;
            } else if pk < dk {
                all_ok = false;
                i += 1;
            } else {
                if *pv == FieldValue::Void || erlang::values_equal(pv, dv) {
                    any_ok = true;
                } else {
                    all_ok = false;
                }
                i += 1;
                j += 1;
            }
        }
    }

    fn value() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            Just(FieldValue::Void),
            (0i32..3).prop_map(FieldValue::I32),
            (0i64..3).prop_map(FieldValue::I64),
            (0u8..3).prop_map(|v| FieldValue::F64(f64::from(v))),
            prop_oneof![Just("0"), Just("1")].prop_map(|v| FieldValue::LongStr(v.into())),
            any::<bool>().prop_map(FieldValue::Bool),
        ]
    }

    fn entry() -> impl Strategy<Value = (String, FieldValue)> {
        let key = prop_oneof![
            Just("a"),
            Just("b"),
            Just("c"),
            Just("x-a"),
            Just("x-match")
        ];
        let mode = prop_oneof![
            Just("all"),
            Just("any"),
            Just("all-with-x"),
            Just("any-with-x")
        ];
        prop_oneof![
            4 => (key, value()).prop_map(|(k, v)| (k.to_owned(), v)),
            1 => mode.prop_map(|m| ("x-match".to_owned(), FieldValue::LongStr(m.into()))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn matcher_agrees_with_rabbitmq_merge(
            args in prop::collection::vec(entry(), 0..6),
            headers in prop::collection::vec(entry(), 0..6),
        ) {
            let args: FieldTable = args.into_iter().collect();
            let headers: FieldTable = headers.into_iter().collect();
            prop_assert_eq!(
                HeadersMatcher::new(&args).matches(Some(&headers)),
                reference(&args, &headers)
            );
        }
    }
}
