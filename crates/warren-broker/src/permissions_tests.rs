//! Unit tests of permission matching and encoding.

use super::*;

fn p(c: &str, w: &str, r: &str) -> Permission {
    Permission::new(c, w, r).unwrap()
}

#[test]
fn expressions_are_searched_not_anchored_as_re_run_does() {
    let perm = p("q", "^app\\.", "^(a|b)$");
    assert!(perm.permits(Access::Configure, b"q"));
    assert!(perm.permits(Access::Configure, b"myqueue"));
    assert!(!perm.permits(Access::Configure, b"other"));
    assert!(perm.permits(Access::Write, b"app.x"));
    assert!(!perm.permits(Access::Write, b"my.app.x"));
    assert!(perm.permits(Access::Read, b"a"));
    assert!(!perm.permits(Access::Read, b"ab"));
}

#[test]
fn an_empty_expression_means_caret_dollar_and_permits_only_the_empty_name() {
    let perm = p("", "^$", ".*");
    for access in [Access::Configure, Access::Write] {
        assert!(!perm.permits(access, b"q"));
        assert!(!perm.permits(access, b"amq.default"));
        assert!(perm.permits(access, b""));
    }
    assert!(perm.permits(Access::Read, b"anything"));
    assert_eq!(perm.sources(), ["", "^$", ".*"]);
}

#[test]
fn the_default_exchange_is_checked_as_amq_default() {
    assert_eq!(checked_exchange_name(b""), b"amq.default");
    assert_eq!(checked_exchange_name(b"x"), b"x");
    let perm = p(".*", "^amq\\.default$", ".*");
    assert!(perm.permits(Access::Write, checked_exchange_name(b"")));
}

#[test]
fn invalid_expressions_are_refused_with_their_text() {
    let e = Permission::new(".*", "(", ".*").unwrap_err();
    assert_eq!(e.pattern, "(");
    assert!(Permission::new("a(?!b)", ".*", ".*").is_err());
}

#[test]
fn permissions_round_trip_through_the_store_encoding() {
    let mut v = VhostPermissions::default();
    assert!(v.set("/", p(".*", ".*", ".*")));
    assert!(!v.set("/", p(".*", ".*", ".*")));
    assert!(v.set("prod", p("", "^x$", "é+")));
    let bytes = v.encode();
    let (back, rest) = VhostPermissions::decode(&bytes).unwrap();
    assert_eq!(back, v);
    assert!(rest.is_empty());
    assert_eq!(back.iter().collect::<Vec<_>>(), ["/", "prod"]);
    assert_eq!(
        VhostPermissions::decode(&VhostPermissions::default().encode()),
        Some((VhostPermissions::default(), &[][..]))
    );
}

#[test]
fn the_older_names_only_encoding_reads_as_full_access() {
    let (v, _) = VhostPermissions::decode(b"\x01/\x04prod").unwrap();
    assert_eq!(v.get("/"), Some(&Permission::full()));
    assert_eq!(v.get("prod"), Some(&Permission::full()));
    assert_eq!(
        VhostPermissions::decode(b""),
        Some((VhostPermissions::default(), &[][..]))
    );
}

#[test]
fn every_truncation_of_an_encoding_is_refused_or_shorter_never_a_panic() {
    let mut v = VhostPermissions::default();
    v.set("vh", p("conf", "wr", "rd"));
    let full = v.encode();
    for cut in 1..full.len() {
        assert_ne!(
            VhostPermissions::decode(&full[..cut]).map(|(v, _)| v),
            Some(v.clone()),
            "cut {cut}"
        );
    }
    // An expression stored by a newer or damaged writer that no longer compiles.
    let bad = b"\x00\x02vh\x00\x01(\x00\x00\x00\x00";
    assert_eq!(VhostPermissions::decode(bad), None);
}

#[test]
fn a_zero_byte_after_the_entries_hands_over_the_user_record_extensions() {
    let mut v = VhostPermissions::default();
    v.set("vh", p("conf", "wr", "rd"));
    let mut bytes = v.encode();
    bytes.extend_from_slice(b"\x00ext");
    assert_eq!(VhostPermissions::decode(&bytes), Some((v, &b"ext"[..])));
    // The older names-only encoding followed by extensions.
    let (old, rest) = VhostPermissions::decode(b"\x01/\x00ext").unwrap();
    assert_eq!(old.get("/"), Some(&Permission::full()));
    assert_eq!(rest, b"ext");
}
