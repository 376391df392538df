//! Routing: fanout to many queues, the topic patterns and the headers exchange's matching.

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, ExchangeKind};

use crate::harness::{Res, Scenario, check, eq};
use crate::topology::{bind, drain, strings};
use crate::world::with_world;

/// The scenarios of this module.
pub fn scenarios() -> Vec<Scenario> {
    crate::scenarios![
        "fanout_many" => fanout_many,
        "topic_routing" => topic_routing,
        "headers_routing" => headers_routing,
    ]
}

async fn fanout_many(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let ex = w
            .exchange("ex-fan", ExchangeKind::Fanout, Default::default())
            .await?;
        let mut qs = Vec::new();
        for i in 0..20 {
            let q = w.queue(&format!("q-fan{i}"), Default::default()).await?;
            bind(&w, &q, &ex, "ignored", FieldTable::default()).await?;
            qs.push(q);
        }
        for i in 0..3 {
            let body = format!("m{i}");
            w.publish(&ex, &format!("any{i}"), body.as_bytes()).await?;
        }
        for q in &qs {
            eq(
                drain(&w, q).await?,
                strings(&["m0", "m1", "m2"]),
                &format!("queue {q}"),
            )?;
        }
        Ok(String::new())
    })
    .await
}

const TOPIC_PATTERNS: [&str; 11] = [
    "a.b.c", "a.*.c", "a.#", "#", "*", "*.b.*", "#.c", "", "a.#.c", "*.*", "a.*.#",
];
/// Routing key -> the patterns that match it (RabbitMQ 3.10).
const TOPIC_EXPECTED: [(&str, &[&str]); 11] = [
    (
        "a.b.c",
        &[
            "a.b.c", "a.*.c", "a.#", "#", "*.b.*", "#.c", "a.#.c", "a.*.#",
        ],
    ),
    ("a.x.c", &["a.*.c", "a.#", "#", "#.c", "a.#.c", "a.*.#"]),
    ("a", &["a.#", "#", "*"]),
    ("a.b", &["a.#", "#", "*.*", "a.*.#"]),
    ("a.b.c.d", &["a.#", "#", "a.*.#"]),
    ("", &["#", ""]),
    ("b", &["#", "*"]),
    ("x.b.y", &["#", "*.b.*"]),
    ("c", &["#", "*", "#.c"]),
    ("a.c", &["a.#", "#", "#.c", "a.#.c", "*.*", "a.*.#"]),
    ("a.b.b.c", &["a.#", "#", "#.c", "a.#.c", "a.*.#"]),
];

async fn topic_routing(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let ex = w
            .exchange("ex-topic", ExchangeKind::Topic, Default::default())
            .await?;
        let mut qs = Vec::new();
        for pat in TOPIC_PATTERNS {
            let q = w.queue("q-topic", Default::default()).await?;
            bind(&w, &q, &ex, pat, FieldTable::default()).await?;
            qs.push((pat, q));
        }
        for (key, _) in TOPIC_EXPECTED {
            w.publish(&ex, key, key.as_bytes()).await?;
        }
        let mut errors = Vec::new();
        for (pat, q) in &qs {
            let got = drain(&w, q).await?;
            let want: Vec<&str> = TOPIC_EXPECTED
                .iter()
                .filter(|(_, pats)| pats.contains(pat))
                .map(|(k, _)| *k)
                .collect();
            if got != want {
                errors.push(format!("pattern {pat:?}: got {got:?}, want {want:?}"));
            }
        }
        check(errors.is_empty(), errors.join("; "))?;
        Ok(String::new())
    })
    .await
}

fn table(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
    }
    t
}

async fn headers_routing(url: String) -> Res {
    with_world(url, |w| async move {
        w.confirm().await?;
        let ex = w
            .exchange("ex-headers", ExchangeKind::Headers, Default::default())
            .await?;
        let bindings = [
            (
                "all",
                table(&[("x-match", "all"), ("format", "pdf"), ("type", "report")]),
            ),
            (
                "any",
                table(&[("x-match", "any"), ("format", "pdf"), ("type", "report")]),
            ),
            ("default_all", table(&[("format", "zip")])),
            ("all_empty", table(&[("x-match", "all")])),
            ("any_empty", table(&[("x-match", "any")])),
        ];
        let messages: [(&str, Option<FieldTable>, &[&str]); 6] = [
            (
                "both",
                Some(table(&[("format", "pdf"), ("type", "report")])),
                &["all", "any", "all_empty"],
            ),
            (
                "both_plus",
                Some(table(&[
                    ("format", "pdf"),
                    ("type", "report"),
                    ("extra", "1"),
                ])),
                &["all", "any", "all_empty"],
            ),
            (
                "format_only",
                Some(table(&[("format", "pdf")])),
                &["any", "all_empty"],
            ),
            (
                "type_only",
                Some(table(&[("type", "report")])),
                &["any", "all_empty"],
            ),
            (
                "wrong_value",
                Some(table(&[("format", "zip"), ("type", "log")])),
                &["default_all", "all_empty"],
            ),
            ("none", None, &["all_empty"]),
        ];
        let mut qs = Vec::new();
        for (name, args) in bindings {
            let q = w
                .queue(&format!("q-hdr-{name}"), Default::default())
                .await?;
            bind(&w, &q, &ex, "", args).await?;
            qs.push((name, q));
        }
        for (tag, headers, _) in &messages {
            let mut props = BasicProperties::default();
            if let Some(h) = headers {
                props = props.with_headers(h.clone());
            }
            let opts = BasicPublishOptions::default();
            w.ch()
                .basic_publish(&ex, "rk", opts, tag.as_bytes(), props)
                .await?
                .await?;
        }
        let mut errors = Vec::new();
        for (name, q) in &qs {
            let got = drain(&w, q).await?;
            let want: Vec<&str> = messages
                .iter()
                .filter(|(_, _, routes)| routes.contains(name))
                .map(|(t, _, _)| *t)
                .collect();
            if got != want {
                errors.push(format!("binding {name}: got {got:?}, want {want:?}"));
            }
        }
        check(errors.is_empty(), errors.join("; "))?;
        Ok(String::new())
    })
    .await
}
