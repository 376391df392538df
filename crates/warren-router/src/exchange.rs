//! What an exchange is: its kind, its declared properties, and RabbitMQ's rules for whether a
//! redeclaration is equivalent to what exists. Bindings and routing live elsewhere.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use warren_codec::{FieldTable, FieldValue, ShortStr};

use crate::erlang;
use crate::error::RouterError;

/// The exchange argument naming the alternate exchange (no `x-` prefix, as in RabbitMQ).
pub const ALTERNATE_EXCHANGE: &str = "alternate-exchange";

/// The routing algorithm of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Routes to bindings whose key equals the routing key.
    Direct,
    /// Routes to every binding.
    Fanout,
    /// Routes to bindings whose `*`/`#` pattern matches the routing key's words.
    Topic,
    /// Routes to bindings whose arguments match the message headers.
    Headers,
}

impl ExchangeKind {
    /// The name used in `exchange.declare`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }

    /// Parses the type field of `exchange.declare`, which may be any bytes.
    pub fn parse(name: &[u8]) -> Result<Self, RouterError> {
        match name {
            b"direct" => Ok(ExchangeKind::Direct),
            b"fanout" => Ok(ExchangeKind::Fanout),
            b"topic" => Ok(ExchangeKind::Topic),
            b"headers" => Ok(ExchangeKind::Headers),
            other => Err(RouterError::UnknownExchangeType { kind: other.into() }),
        }
    }
}

impl FromStr for ExchangeKind {
    type Err = RouterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exchange as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDef {
    /// The exchange name; empty for the default exchange.
    pub name: ShortStr,
    /// The routing algorithm.
    pub kind: ExchangeKind,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding as source goes.
    pub auto_delete: bool,
    /// Clients may not publish to it directly; only other exchanges route to it.
    pub internal: bool,
    /// Declaration arguments, as received.
    pub arguments: FieldTable,
}

impl ExchangeDef {
    /// A non-internal exchange with no arguments.
    pub fn new(name: impl Into<ShortStr>, kind: ExchangeKind) -> Self {
        ExchangeDef {
            name: name.into(),
            kind,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
        }
    }

    /// The alternate exchange named by the arguments. Only a long string names one: RabbitMQ
    /// refuses other types at declaration.
    pub fn alternate_exchange(&self) -> Option<&[u8]> {
        match self.arguments.get(ALTERNATE_EXCHANGE) {
            Some(FieldValue::LongStr(s)) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub(crate) fn alternate_bytes(&self) -> Option<Bytes> {
        match self.arguments.get(ALTERNATE_EXCHANGE) {
            Some(FieldValue::LongStr(s)) => Some(s.bytes().clone()),
            _ => None,
        }
    }
}

/// What `declare_exchange` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// A new exchange was created.
    Created,
    /// An equivalent exchange already existed; nothing changed.
    Existing,
}

fn quoted(s: &str) -> String {
    format!("'{s}'")
}

/// `rabbit_exchange:assert_equivalence/6`: type, durable, auto_delete, internal, then the only
/// argument RabbitMQ checks for exchanges, `alternate-exchange`. Other arguments may differ.
pub(crate) fn assert_equivalent(
    current: &ExchangeDef,
    requested: &ExchangeDef,
    vhost: &ShortStr,
) -> Result<(), RouterError> {
    let fail = |arg: &'static str, received: String, current: String| RouterError::Inequivalent {
        arg,
        name: requested.name.clone(),
        vhost: vhost.clone(),
        received: received.into(),
        current: current.into(),
    };
    if current.kind != requested.kind {
        return Err(fail(
            "type",
            quoted(requested.kind.as_str()),
            quoted(current.kind.as_str()),
        ));
    }
    let flags = [
        ("durable", current.durable, requested.durable),
        ("auto_delete", current.auto_delete, requested.auto_delete),
        ("internal", current.internal, requested.internal),
    ];
    for (arg, have, want) in flags {
        if have != want {
            return Err(fail(
                arg,
                quoted(&want.to_string()),
                quoted(&have.to_string()),
            ));
        }
    }
    let have = current.arguments.get(ALTERNATE_EXCHANGE);
    let want = requested.arguments.get(ALTERNATE_EXCHANGE);
    match (have, want) {
        (None, None) => Ok(()),
        (Some(h), Some(w)) => {
            if erlang::type_class(h) == erlang::type_class(w) && erlang::values_equal(h, w) {
                Ok(())
            } else {
                // Both present: RabbitMQ prints the bare values.
                Err(fail(
                    ALTERNATE_EXCHANGE,
                    quoted(&erlang::format_value_s(w)),
                    quoted(&erlang::format_value_s(h)),
                ))
            }
        }
        (h, w) => Err(fail(ALTERNATE_EXCHANGE, typed_or_none(w), typed_or_none(h))),
    }
}

/// `rabbit_misc:val/1` for a `{Type, Value}` pair or `undefined`.
fn typed_or_none(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".to_owned(),
        Some(v) => format!(
            "the value '{}' of type '{}'",
            erlang::format_value_s(v),
            erlang::type_name(v)
        ),
    }
}

/// Checks the arguments of an exchange about to be created, as `rabbit_channel` does before
/// `rabbit_exchange:declare`.
pub(crate) fn validate_new(def: &ExchangeDef, vhost: &ShortStr) -> Result<(), RouterError> {
    if def.name.as_bytes().starts_with(b"amq.") {
        return Err(RouterError::ReservedName {
            name: def.name.clone(),
        });
    }
    match def.arguments.get(ALTERNATE_EXCHANGE) {
        None | Some(FieldValue::LongStr(_)) => Ok(()),
        Some(other) => Err(RouterError::InvalidArgumentType {
            type_name: erlang::type_name(other),
            arg: ALTERNATE_EXCHANGE,
            name: def.name.clone(),
            vhost: vhost.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vhost() -> ShortStr {
        "/".into()
    }

    #[test]
    fn kind_parses_and_prints() {
        for k in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ] {
            assert_eq!(k.as_str().parse::<ExchangeKind>(), Ok(k));
        }
        let err = "x-consistent-hash".parse::<ExchangeKind>();
        assert_eq!(
            err.map_err(|e| e.reply_text()),
            Err("unknown exchange type 'x-consistent-hash'".to_owned())
        );
    }

    #[test]
    fn different_type_is_inequivalent_with_rabbitmq_text() {
        let have = ExchangeDef::new("x", ExchangeKind::Direct);
        let want = ExchangeDef::new("x", ExchangeKind::Fanout);
        let err = assert_equivalent(&have, &want, &vhost()).map_err(|e| e.reply_text());
        assert_eq!(
            err,
            Err("inequivalent arg 'type' for exchange 'x' in vhost '/': \
                 received 'fanout' but current is 'direct'"
                .to_owned())
        );
    }

    #[test]
    fn different_durable_is_inequivalent() {
        let have = ExchangeDef::new("x", ExchangeKind::Direct);
        let mut want = have.clone();
        want.durable = true;
        let err = assert_equivalent(&have, &want, &vhost()).map_err(|e| e.reply_text());
        assert_eq!(
            err,
            Err("inequivalent arg 'durable' for exchange 'x' in vhost '/': \
                 received 'true' but current is 'false'"
                .to_owned())
        );
    }

    #[test]
    fn only_alternate_exchange_argument_is_compared() {
        let have = ExchangeDef::new("x", ExchangeKind::Direct);
        let mut want = have.clone();
        want.arguments.insert("x-whatever", 1);
        assert_eq!(assert_equivalent(&have, &want, &vhost()), Ok(()));
        want.arguments.insert(ALTERNATE_EXCHANGE, "ae");
        let err = assert_equivalent(&have, &want, &vhost()).map_err(|e| e.reply_text());
        assert_eq!(
            err,
            Err(
                "inequivalent arg 'alternate-exchange' for exchange 'x' in vhost '/': \
                 received the value 'ae' of type 'longstr' but current is none"
                    .to_owned()
            )
        );
        let mut have2 = have.clone();
        have2.arguments.insert(ALTERNATE_EXCHANGE, "ae1");
        let err = assert_equivalent(&have2, &want, &vhost()).map_err(|e| e.reply_text());
        assert_eq!(
            err,
            Err(
                "inequivalent arg 'alternate-exchange' for exchange 'x' in vhost '/': \
                 received 'ae' but current is 'ae1'"
                    .to_owned()
            )
        );
    }

    #[test]
    fn new_exchange_refuses_non_string_alternate_and_amq_prefix() {
        let mut def = ExchangeDef::new("x", ExchangeKind::Direct);
        def.arguments.insert(ALTERNATE_EXCHANGE, 5);
        let err = validate_new(&def, &vhost()).map_err(|e| e.reply_text());
        assert_eq!(
            err,
            Err("invalid type 'signedint' for arg 'alternate-exchange' \
                 in exchange 'x' in vhost '/'"
                .to_owned())
        );
        let def = ExchangeDef::new("amq.mine", ExchangeKind::Direct);
        let err = validate_new(&def, &vhost()).map_err(|e| e.reply_text());
        assert_eq!(
            err,
            Err("exchange name 'amq.mine' contains reserved prefix 'amq.*'".to_owned())
        );
    }
}
