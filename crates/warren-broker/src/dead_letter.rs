//! Dead-lettering: the message a dead letter becomes (RabbitMQ's `x-death` and
//! `x-first-death-*` headers) and the cycle rule that keeps a message from dying forever.
//!
//! RabbitMQ 3.10 is the reference (`rabbit_dead_letter`): the first death adds the three
//! `x-first-death-*` headers and an `x-death` entry whose keys are in the order `count, reason,
//! queue, time, exchange, routing-keys[, original-expiration]`; a later death for the same queue
//! and reason increments that entry's count (its other fields stay as first written) and moves
//! it to the front, keys sorted; a death for another queue or reason adds a sorted entry in
//! front. Every write sorts the top-level headers by key, as `rabbit_misc:set_table_value` does.

use std::sync::Arc;

use warren_codec::{FieldError, FieldTable, FieldValue, LongStr, ShortStr};

use crate::Message;

/// Why a message died, as the `reason` of its `x-death` entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// `basic.reject` or `basic.nack` without requeue.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// Dropped or refused by a length limit.
    Maxlen,
    /// Returned more often than `x-delivery-limit` allows.
    DeliveryLimit,
}

impl DeathReason {
    /// The reason as RabbitMQ writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message that left its queue by dying.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The message as it was in the queue.
    pub message: Arc<Message>,
    /// Why it died.
    pub reason: DeathReason,
    /// Its position in the queue when the queue's store holds it (to be removed once the dead
    /// letter is safely elsewhere); the store id is the message's.
    pub stored_seq: Option<u64>,
}

impl DeadLetter {
    /// A dead letter.
    pub fn new(message: Arc<Message>, reason: DeathReason, stored_seq: Option<u64>) -> Self {
        DeadLetter {
            message,
            reason,
            stored_seq,
        }
    }
}

/// Where a dead letter goes: the queue's `x-dead-letter-exchange` and optional
/// `x-dead-letter-routing-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTarget {
    /// The exchange.
    pub exchange: ShortStr,
    /// Replaces the message's routing keys when set.
    pub routing_key: Option<ShortStr>,
}

fn long_str(s: &[u8]) -> FieldValue {
    FieldValue::LongStr(LongStr::from(s))
}

fn sorted(t: FieldTable) -> FieldTable {
    let mut entries: Vec<(ShortStr, FieldValue)> =
        t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // Stable, like Erlang's lists:keysort.
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    entries.into_iter().collect()
}

fn text_of(t: &FieldTable, key: &str) -> Option<Vec<u8>> {
    t.get(key).and_then(|v| v.as_bytes()).map(<[u8]>::to_vec)
}

/// The message that `message`, dying in `queue` at `now_secs` for `reason`, becomes, and the
/// routing keys it is dead-lettered with.
pub fn dead_lettered(
    message: &Message,
    reason: DeathReason,
    queue: &ShortStr,
    target: &DeadLetterTarget,
    now_ms: u64,
) -> Result<(Message, Vec<ShortStr>), FieldError> {
    let mut props = message.properties.decode()?;
    let mut headers = props.headers.take().unwrap_or_default();
    // The first key is the publish's; the others come from CC (BCC never reaches a queue).
    let mut death_keys = vec![message.routing_key.clone()];
    if let Some(FieldValue::Array(cc)) = headers.get("CC") {
        death_keys.extend(cc.iter().filter_map(|v| v.as_bytes()).map(ShortStr::from));
    }
    let mut info = FieldTable::new();
    info.insert("reason", long_str(reason.as_str().as_bytes()));
    info.insert("queue", long_str(queue.as_bytes()));
    info.insert("time", FieldValue::Timestamp(now_ms / 1000));
    info.insert("exchange", long_str(message.exchange.as_bytes()));
    info.insert(
        "routing-keys",
        FieldValue::Array(death_keys.iter().map(|k| long_str(k.as_bytes())).collect()),
    );
    if let Some(exp) = &props.expiration {
        info.insert("original-expiration", long_str(exp.as_bytes()));
    }
    let with_count = |info: &FieldTable| -> FieldTable {
        let mut t: FieldTable = [("count", FieldValue::I64(1))].into_iter().collect();
        for (k, v) in info.iter() {
            t.insert(k.clone(), v.clone());
        }
        t
    };
    headers = match headers.remove("x-death") {
        Some(FieldValue::Array(deaths)) => {
            let key = (
                Some(queue.as_bytes().to_vec()),
                Some(reason.as_str().as_bytes().to_vec()),
            );
            let mut entry = None;
            let mut others = Vec::with_capacity(deaths.len() + 1);
            for d in group_by_queue_and_reason(deaths) {
                match d {
                    FieldValue::Table(t) if entry.is_none() && death_key(&t) == key => {
                        entry = Some(t)
                    }
                    other => others.push(other),
                }
            }
            let entry = match entry {
                // The old entry with its count incremented: its other fields keep their values.
                Some(mut t) => {
                    let count = t.get("count").and_then(FieldValue::as_i64).unwrap_or(0);
                    t.insert("count", FieldValue::I64(count + 1));
                    t
                }
                None => with_count(&info),
            };
            others.insert(0, FieldValue::Table(sorted(entry)));
            headers.insert("x-death", FieldValue::Array(others));
            sorted(headers)
        }
        // A client-made x-death that is not an array is replaced, as RabbitMQ does; the
        // x-first-death headers are written only when there was no x-death at all.
        Some(_) => {
            headers.insert(
                "x-death",
                FieldValue::Array(vec![FieldValue::Table(with_count(&info))]),
            );
            sorted(headers)
        }
        None => {
            headers.insert("x-first-death-reason", long_str(reason.as_str().as_bytes()));
            headers.insert("x-first-death-queue", long_str(queue.as_bytes()));
            headers.insert(
                "x-first-death-exchange",
                long_str(message.exchange.as_bytes()),
            );
            headers.insert(
                "x-death",
                FieldValue::Array(vec![FieldValue::Table(with_count(&info))]),
            );
            sorted(headers)
        }
    };
    let keys = match &target.routing_key {
        Some(rk) => {
            headers.remove("CC");
            vec![rk.clone()]
        }
        None => death_keys,
    };
    props.headers = Some(headers);
    // The TTL applied once; the dead letter starts afresh (the original is in x-death).
    props.expiration = None;
    let routing_key = keys.first().cloned().unwrap_or_default();
    let dead = Message {
        exchange: target.exchange.clone(),
        routing_key,
        properties: props.to_raw(),
        body: message.body.clone(),
        persistent: message.persistent,
        priority: message.priority,
        expiration_ms: None,
        timestamp_ms: now_ms,
        // A new message: stored, if at all, under a new id.
        store_id: None,
    };
    Ok((dead, keys))
}

/// The (queue, reason) an `x-death` entry is about.
fn death_key(t: &FieldTable) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    (text_of(t, "queue"), text_of(t, "reason"))
}

/// RabbitMQ 3.10's `group_by_queue_and_reason`, applied to an existing `x-death` array before a
/// new death is recorded (for entries written before RabbitMQ merged them per queue and reason,
/// rabbitmq-server#78). With two or more entries: each (queue, reason) keeps only its first
/// entry, which gets a `count` of how many entries it had when it had none; the result is in
/// the **reverse** order of first appearance (3.10 builds it by prepending). One entry is left
/// as it is. Elements that are not tables are kept, after the tables (RabbitMQ's queue would
/// crash on them).
fn group_by_queue_and_reason(deaths: Vec<FieldValue>) -> Vec<FieldValue> {
    if deaths.len() <= 1 {
        return deaths;
    }
    let keys: Vec<_> = deaths
        .iter()
        .map(|d| match d {
            FieldValue::Table(t) => Some(death_key(t)),
            _ => None,
        })
        .collect();
    let mut grouped = Vec::new();
    let mut rest = Vec::new();
    let mut seen = Vec::new();
    for (i, d) in deaths.iter().enumerate() {
        let (Some(key), FieldValue::Table(first)) = (&keys[i], d) else {
            rest.push(d.clone());
            continue;
        };
        if seen.contains(key) {
            continue;
        }
        seen.push(key.clone());
        let n = keys.iter().filter(|k| k.as_ref() == Some(key)).count();
        let mut table = first.clone();
        if table.get("count").is_none() {
            // Erlang prepends the field: count comes first.
            let mut counted: FieldTable =
                [("count", FieldValue::I64(n as i64))].into_iter().collect();
            for (k, v) in table.iter() {
                counted.insert(k.clone(), v.clone());
            }
            table = counted;
        }
        grouped.push(FieldValue::Table(table));
    }
    grouped.reverse();
    grouped.extend(rest);
    grouped
}

/// True when dead-lettering a message whose `x-death` entries (its new one first) are `deaths`
/// into `queue` would close a cycle with no rejection in it: RabbitMQ drops it rather than let it
/// circle.
pub fn is_cycle(deaths: &[FieldValue], reason: DeathReason, queue: &[u8]) -> bool {
    if reason == DeathReason::Rejected {
        return false;
    }
    let Some(at) = deaths.iter().position(|d| match d {
        FieldValue::Table(t) => text_of(t, "queue").as_deref() == Some(queue),
        _ => false,
    }) else {
        return false;
    };
    // Fully automatic: no entry up to and including the queue's own was a rejection.
    deaths[..=at].iter().all(|d| match d {
        FieldValue::Table(t) => text_of(t, "reason").as_deref() != Some(b"rejected"),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use warren_codec::BasicProperties;

    use super::*;

    fn keys(t: &FieldTable) -> Vec<String> {
        t.iter().map(|(k, _)| k.to_string()).collect()
    }

    fn headers(m: &Message) -> FieldTable {
        m.properties.decode().unwrap().headers.unwrap()
    }

    fn deaths(m: &Message) -> Vec<FieldTable> {
        match headers(m).get("x-death") {
            Some(FieldValue::Array(a)) => a
                .iter()
                .map(|d| match d {
                    FieldValue::Table(t) => t.clone(),
                    _ => panic!("not a table"),
                })
                .collect(),
            _ => panic!("no x-death"),
        }
    }

    fn published() -> Message {
        let h: FieldTable = [
            ("mine", FieldValue::from("x")),
            ("CC", FieldValue::Array(vec![FieldValue::from("cc1")])),
        ]
        .into_iter()
        .collect();
        let props = BasicProperties {
            headers: Some(h),
            expiration: Some("60000".into()),
            ..Default::default()
        };
        Message::new(
            "ex".into(),
            "rk".into(),
            props.to_raw(),
            Bytes::from_static(b"body"),
            1,
        )
        .unwrap()
    }

    fn to(exchange: &str, rk: Option<&str>) -> DeadLetterTarget {
        DeadLetterTarget {
            exchange: exchange.into(),
            routing_key: rk.map(ShortStr::from),
        }
    }

    #[test]
    fn a_first_death_writes_rabbitmqs_layout() {
        let (dead, keys_out) = dead_lettered(
            &published(),
            DeathReason::Rejected,
            &"src".into(),
            &to("dlx", None),
            1_795_450_350_123,
        )
        .unwrap();
        assert_eq!(
            keys(&headers(&dead)),
            [
                "CC",
                "mine",
                "x-death",
                "x-first-death-exchange",
                "x-first-death-queue",
                "x-first-death-reason"
            ]
        );
        let d = &deaths(&dead)[0];
        assert_eq!(
            keys(d),
            [
                "count",
                "reason",
                "queue",
                "time",
                "exchange",
                "routing-keys",
                "original-expiration"
            ]
        );
        assert_eq!(d.get("count"), Some(&FieldValue::I64(1)));
        assert_eq!(d.get("time"), Some(&FieldValue::Timestamp(1_795_450_350)));
        assert_eq!(
            d.get("routing-keys"),
            Some(&FieldValue::Array(vec!["rk".into(), "cc1".into()]))
        );
        let rk: Vec<String> = keys_out.iter().map(|k| k.to_string()).collect();
        assert_eq!(rk, ["rk", "cc1"]);
        assert_eq!(
            (dead.exchange.to_string(), dead.routing_key.to_string()),
            ("dlx".into(), "rk".into())
        );
        assert_eq!(dead.properties.decode().unwrap().expiration, None);
    }

    #[test]
    fn a_dead_letter_routing_key_replaces_the_keys_and_drops_cc() {
        let (dead, k) = dead_lettered(
            &published(),
            DeathReason::Expired,
            &"src".into(),
            &to("", Some("elsewhere")),
            0,
        )
        .unwrap();
        assert_eq!(k, [ShortStr::from("elsewhere")]);
        assert!(!headers(&dead).contains_key("CC"));
    }

    #[test]
    fn a_repeated_death_counts_up_moves_to_the_front_and_keeps_old_fields() {
        let t = to("dlx", None);
        let (once, _) =
            dead_lettered(&published(), DeathReason::Rejected, &"src".into(), &t, 1000).unwrap();
        let (twice, _) =
            dead_lettered(&once, DeathReason::Rejected, &"dead".into(), &t, 2000).unwrap();
        let d = deaths(&twice);
        assert_eq!(d.len(), 2);
        assert_eq!(
            keys(&d[0]),
            [
                "count",
                "exchange",
                "queue",
                "reason",
                "routing-keys",
                "time"
            ]
        );
        assert_eq!(d[0].get("exchange"), Some(&FieldValue::from("dlx")));
        let (thrice, _) =
            dead_lettered(&twice, DeathReason::Rejected, &"src".into(), &t, 9000).unwrap();
        let d = deaths(&thrice);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].get("queue"), Some(&FieldValue::from("src")));
        assert_eq!(d[0].get("count"), Some(&FieldValue::I64(2)));
        assert_eq!(d[0].get("time"), Some(&FieldValue::Timestamp(1)));
        assert_eq!(
            keys(&d[0]),
            [
                "count",
                "exchange",
                "original-expiration",
                "queue",
                "reason",
                "routing-keys",
                "time"
            ]
        );
        assert_eq!(
            headers(&thrice).get("x-first-death-queue"),
            Some(&FieldValue::from("src"))
        );
    }

    #[test]
    fn automatic_cycles_are_detected_and_rejections_break_them() {
        let t = to("", None);
        let (expired, _) =
            dead_lettered(&published(), DeathReason::Expired, &"q".into(), &t, 0).unwrap();
        let d: Vec<FieldValue> = deaths(&expired)
            .into_iter()
            .map(FieldValue::Table)
            .collect();
        assert!(is_cycle(&d, DeathReason::Expired, b"q"));
        assert!(!is_cycle(&d, DeathReason::Expired, b"other"));
        assert!(!is_cycle(&d, DeathReason::Rejected, b"q"));
        // q rejected it into r, r expired it back: the chain holds a rejection, no cycle.
        let (rejected, _) =
            dead_lettered(&published(), DeathReason::Rejected, &"q".into(), &t, 0).unwrap();
        let (back, _) = dead_lettered(&rejected, DeathReason::Expired, &"r".into(), &t, 0).unwrap();
        let d: Vec<FieldValue> = deaths(&back).into_iter().map(FieldValue::Table).collect();
        assert!(!is_cycle(&d, DeathReason::Expired, b"q"));
        assert!(is_cycle(&d, DeathReason::Expired, b"r"));
    }

    fn entry(queue: &str, reason: &str, count: Option<i64>) -> FieldValue {
        let mut t = FieldTable::new();
        if let Some(n) = count {
            t.insert("count", FieldValue::I64(n));
        }
        t.insert("queue", long_str(queue.as_bytes()));
        t.insert("reason", long_str(reason.as_bytes()));
        FieldValue::Table(t)
    }

    fn summary(deaths: &[FieldValue]) -> Vec<(String, i64)> {
        deaths
            .iter()
            .map(|d| match d {
                FieldValue::Table(t) => (
                    String::from_utf8_lossy(&text_of(t, "queue").unwrap_or_default()).into_owned(),
                    t.get("count").and_then(FieldValue::as_i64).unwrap_or(-1),
                ),
                _ => (String::new(), -1),
            })
            .collect()
    }

    #[test]
    fn several_entries_are_grouped_per_queue_and_reason_in_reverse_as_rabbitmq_3_10_does() {
        let grouped = group_by_queue_and_reason(vec![
            entry("old", "expired", Some(1)),
            entry("old", "expired", None),
            entry("other", "rejected", None),
            entry("other", "rejected", None),
            entry("third", "maxlen", Some(5)),
        ]);
        assert_eq!(
            summary(&grouped),
            [("third".into(), 5), ("other".into(), 2), ("old".into(), 1)]
        );
        // A counted entry keeps its key order; an uncounted one gets count first.
        let FieldValue::Table(t) = &grouped[1] else {
            panic!("a table")
        };
        assert_eq!(keys(t), ["count", "queue", "reason"]);
        // One entry is left alone, even without a count.
        let one = group_by_queue_and_reason(vec![entry("q", "expired", None)]);
        assert_eq!(summary(&one), [("q".into(), -1)]);
    }
}
