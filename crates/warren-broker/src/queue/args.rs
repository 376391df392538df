//! Queue arguments (`x-...`): parsed and checked once at declare time, as RabbitMQ does.

use warren_codec::{FieldTable, FieldValue};

use crate::BrokerError;

/// What a queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest message.
    #[default]
    DropHead,
    /// Refuse new messages (nack them under confirms).
    RejectPublish,
    /// Refuse new messages and dead-letter them.
    RejectPublishDlx,
}

/// The queue arguments Warren understands, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueArgs {
    /// `x-message-ttl`, milliseconds.
    pub message_ttl: Option<u64>,
    /// `x-expires`, milliseconds.
    pub expires: Option<u64>,
    /// `x-max-length`.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-priority`.
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-delivery-limit`: returns allowed before a message is dead-lettered (RabbitMQ honours
    /// it on quorum queues only; Warren's classic queues do too).
    pub delivery_limit: Option<u64>,
}

fn invalid(key: &str, queue: &str, vhost: &str, why: String) -> BrokerError {
    BrokerError::precondition(format!(
        "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {why}"
    ))
}

fn integer(v: &FieldValue, key: &str, queue: &str, vhost: &str) -> Result<i64, BrokerError> {
    v.as_i64()
        .ok_or_else(|| invalid(key, queue, vhost, expected_integer(v)))
}

/// An integer argument that must not be negative, refused with RabbitMQ's terms otherwise.
fn non_negative(v: &FieldValue, key: &str, queue: &str, vhost: &str) -> Result<u64, BrokerError> {
    let n = integer(v, key, queue, vhost)?;
    u64::try_from(n).map_err(|_| invalid(key, queue, vhost, format!("{{value_negative,{n}}}")))
}

/// RabbitMQ's complaint about a non-integer where an integer belongs, quotes included.
fn expected_integer(v: &FieldValue) -> String {
    format!("\"expected integer, got {}\"", type_name(v))
}

/// The AMQP type of a value as RabbitMQ names it in error texts.
/// The name RabbitMQ gives a field value's type in its error terms (`longstr`, `signedint`, ...).
pub fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Bool(_) => "bool",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Table(_) => "table",
        FieldValue::Array(_) => "array",
        FieldValue::Void => "void",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Decimal(_) => "decimal",
        FieldValue::Bytes(_) => "binary",
    }
}

fn text(v: &FieldValue, key: &str, queue: &str, vhost: &str) -> Result<String, BrokerError> {
    match v {
        FieldValue::LongStr(s) => Ok(s.to_string()),
        other => Err(invalid(
            key,
            queue,
            vhost,
            format!("{{unacceptable_type,{}}}", type_name(other)),
        )),
    }
}

impl QueueArgs {
    /// Validates `x-` arguments as RabbitMQ 3.10 does; unknown arguments are accepted and ignored.
    pub fn parse(args: &FieldTable, queue: &str, vhost: &str) -> Result<QueueArgs, BrokerError> {
        let mut out = QueueArgs::default();
        for (key, value) in args.iter() {
            let Some(key) = key.as_str() else { continue };
            match key {
                "x-message-ttl" => out.message_ttl = Some(non_negative(value, key, queue, vhost)?),
                "x-expires" => {
                    let v = non_negative(value, key, queue, vhost)?;
                    if v == 0 {
                        return Err(invalid(key, queue, vhost, "{value_zero,0}".into()));
                    }
                    out.expires = Some(v);
                }
                "x-max-length" | "x-max-length-bytes" => {
                    let v = non_negative(value, key, queue, vhost)?;
                    if key == "x-max-length" {
                        out.max_length = Some(v);
                    } else {
                        out.max_length_bytes = Some(v);
                    }
                }
                "x-delivery-limit" => {
                    out.delivery_limit = Some(non_negative(value, key, queue, vhost)?)
                }
                "x-max-priority" => {
                    let v = non_negative(value, key, queue, vhost)?;
                    let max = u8::try_from(v).map_err(|_| {
                        invalid(key, queue, vhost, format!("{{max_value_exceeded,{v}}}"))
                    })?;
                    out.max_priority = Some(max);
                }
                "x-overflow" => {
                    out.overflow = match text(value, key, queue, vhost)?.as_str() {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        "reject-publish-dlx" => Overflow::RejectPublishDlx,
                        _ => {
                            return Err(invalid(key, queue, vhost, "invalid_overflow".into()));
                        }
                    }
                }
                "x-dead-letter-exchange" => match value {
                    FieldValue::LongStr(s) => out.dead_letter_exchange = Some(s.to_string()),
                    other => {
                        // RabbitMQ words this one differently from every other argument.
                        return Err(BrokerError::precondition(format!(
                            "invalid type '{}' for arg '{key}' in queue '{queue}' in vhost '{vhost}'",
                            type_name(other)
                        )));
                    }
                },
                "x-dead-letter-routing-key" => {
                    out.dead_letter_routing_key = Some(text(value, key, queue, vhost)?)
                }
                "x-single-active-consumer" => match value {
                    FieldValue::Bool(b) => out.single_active_consumer = *b,
                    other => {
                        return Err(invalid(
                            key,
                            queue,
                            vhost,
                            format!("{{unacceptable_type,{}}}", type_name(other)),
                        ));
                    }
                },
                "x-queue-mode" => match text(value, key, queue, vhost)?.as_str() {
                    "default" | "lazy" => {}
                    other => {
                        return Err(invalid(
                            key,
                            queue,
                            vhost,
                            format!("{{unknown_value,<<\"{other}\">>}}"),
                        ));
                    }
                },
                "x-queue-type" => match text(value, key, queue, vhost)?.as_str() {
                    "classic" => {}
                    // Types RabbitMQ has and Warren has not yet: a documented gap.
                    other @ ("quorum" | "stream") => {
                        return Err(invalid(
                            key,
                            queue,
                            vhost,
                            format!("queue type '{other}' is not supported by Warren yet"),
                        ));
                    }
                    // RabbitMQ's text for a type nobody has.
                    other => {
                        return Err(invalid(
                            key,
                            queue,
                            vhost,
                            format!("\"unsupported queue type '{other}'\""),
                        ));
                    }
                },
                _ => {}
            }
        }
        if out.dead_letter_routing_key.is_some() && out.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                queue,
                vhost,
                "routing_key_but_no_dlx_defined".into(),
            ));
        }
        Ok(out)
    }
}

/// The arguments of `basic.consume`, validated as RabbitMQ 3.10 does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumeArgs {
    /// `x-priority`.
    pub priority: i32,
}

impl ConsumeArgs {
    /// Checks `x-priority` (an integer) and `x-cancel-on-ha-failover` (a boolean, accepted and
    /// ignored: Warren has no mirrors to fail over); others are ignored.
    pub fn parse(args: &FieldTable, queue_desc: &str) -> Result<ConsumeArgs, BrokerError> {
        let bad = |key: &str, why: String| {
            BrokerError::precondition(format!("invalid arg '{key}' for {queue_desc}: {why}"))
        };
        let mut out = ConsumeArgs::default();
        for (key, value) in args.iter() {
            match key.as_str() {
                Some("x-priority") => {
                    let p = value
                        .as_i64()
                        .ok_or_else(|| bad("x-priority", expected_integer(value)))?;
                    out.priority = p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
                }
                Some("x-cancel-on-ha-failover") if !matches!(value, FieldValue::Bool(_)) => {
                    return Err(bad(
                        "x-cancel-on-ha-failover",
                        format!("{{unacceptable_type,{}}}", type_name(value)),
                    ));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_ttl_is_a_precondition_failure() {
        let t: FieldTable = [("x-message-ttl", FieldValue::I32(-1))]
            .into_iter()
            .collect();
        let e = QueueArgs::parse(&t, "q", "/").unwrap_err();
        assert_eq!(e.code, warren_codec::ReplyCode::PreconditionFailed);
        assert!(e.text.contains("x-message-ttl"), "{}", e.text);
    }

    #[test]
    fn unknown_arguments_are_accepted() {
        let t: FieldTable = [("x-made-up", FieldValue::I32(1))].into_iter().collect();
        assert_eq!(QueueArgs::parse(&t, "q", "/"), Ok(QueueArgs::default()));
    }

    #[test]
    fn string_ttl_is_refused() {
        let t: FieldTable = [("x-message-ttl", "100")].into_iter().collect();
        assert!(QueueArgs::parse(&t, "q", "/").is_err());
    }
}
