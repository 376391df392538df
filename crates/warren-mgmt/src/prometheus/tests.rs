use super::text::escape;
use super::*;

#[test]
fn escaped_labels_parse_back() {
    let mut e = Exposition::default();
    e.family("rabbitmq_queue_messages", Kind::Gauge, "Sum");
    let q = escape("a \"q\"\\x\ny");
    e.sample(
        "rabbitmq_queue_messages",
        &format!("vhost=\"/\",queue=\"{q}\""),
        3,
    );
    let parsed = parse_exposition(&e.finish()).unwrap_or_default();
    let (kind, help, samples) = &parsed["rabbitmq_queue_messages"];
    assert_eq!((kind.as_str(), help.as_str()), ("gauge", "Sum"));
    assert_eq!(samples[0].0["queue"], "a \"q\"\\x\ny");
    assert_eq!(samples[0].1, 3.0);
}

#[test]
fn parser_refuses_malformed_lines() {
    for bad in [
        "x 1",                        // no TYPE first
        "# TYPE x gauge\nx{a=\"1} 1", // unterminated label
        "# TYPE x gauge\nx one",      // not a number
        "# TYPE x wat\nx 1",          // bad type
        "# TYPE x gauge\n1x 1",       // bad name
    ] {
        assert!(parse_exposition(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn family_groups_and_names_are_rabbitmqs() {
    for fam in FAMILIES {
        assert!(
            fam.name.starts_with("queue_")
                || fam.name.starts_with("channel_")
                || fam.name.starts_with("connection_")
                || fam.name == "consumer_prefetch"
        );
        assert_eq!(
            fam.kind == Kind::Counter,
            fam.name.ends_with("_total"),
            "{}",
            fam.name
        );
    }
}
