//! Virtual host limits (`max-connections`, `max-queues`) and user limits (`max-connections`,
//! `max-channels`): their values, validation, RabbitMQ's ordering and the broker's encoding of
//! them in store records. Counting what a limit bounds is [`crate::tracking`]'s.
//!
//! RabbitMQ's rules (`rabbit_vhost_limit`, `rabbit_auth_backend_internal`): a negative value
//! means no limit, 0 allows nothing, a positive N allows N. Values must be integers.

/// A limit name and value, as RabbitMQ's JSON carries them.
pub type Limit = (String, i64);

/// The limit names a virtual host accepts.
pub const VHOST_LIMIT_NAMES: [&str; 2] = ["max-connections", "max-queues"];
/// The limit names a user accepts.
pub const USER_LIMIT_NAMES: [&str; 2] = ["max-connections", "max-channels"];

/// Why a limit was refused, in RabbitMQ's words (the management API's 400 reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A name the object does not have (RabbitMQ: "Unrecognised terms [...] in limits").
    #[error("Unrecognised terms [{{<<\"{name}\">>,{value}}}] in {component}")]
    Unrecognised {
        /// The name given.
        name: String,
        /// Its value, as RabbitMQ prints it.
        value: String,
        /// `limits` (vhost) or `user-limits`.
        component: &'static str,
    },
    /// A value that is not an integer.
    #[error("{name} should be a number, actually was {value}")]
    NotANumber {
        /// The limit's name.
        name: String,
        /// The value, as RabbitMQ prints it.
        value: String,
    },
}

/// The limit a set of limits puts on `name`: `None` when there is none (absent or negative).
fn effective(limits: &[Limit], name: &str) -> Option<u64> {
    limits
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| u64::try_from(*v).ok())
}

/// Whether one more of something counted `count` goes over `limit`.
pub fn over(limit: Option<u64>, count: u64) -> bool {
    limit.is_some_and(|l| count >= l)
}

/// A virtual host's limits, most recently set first (RabbitMQ keeps its `vhost-limits`
/// parameter as a list it prepends to, and shows it in that order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VhostLimits(pub Vec<Limit>);

impl VhostLimits {
    /// `max-connections`, if limited.
    pub fn max_connections(&self) -> Option<u64> {
        effective(&self.0, "max-connections")
    }

    /// `max-queues`, if limited.
    pub fn max_queues(&self) -> Option<u64> {
        effective(&self.0, "max-queues")
    }

    /// Sets one limit (moving it to the front, as RabbitMQ does).
    pub fn set(&mut self, name: &str, value: i64) -> Result<(), LimitError> {
        check_name(name, &VHOST_LIMIT_NAMES, "limits", value)?;
        self.0.retain(|(n, _)| n != name);
        self.0.insert(0, (name.to_string(), value));
        Ok(())
    }

    /// Removes one limit; true when it was set.
    pub fn clear(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| n != name);
        self.0.len() != before
    }

    /// The store encoding: `name=value` pairs joined by commas, in order.
    pub fn encode(&self) -> String {
        encode(&self.0)
    }

    /// The limits an encoding describes; `None` when it is damaged.
    pub fn decode(text: &str) -> Option<Self> {
        decode(text).map(VhostLimits)
    }
}

/// A user's limits, by name (RabbitMQ keeps them in a map, shown sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLimits(pub Vec<Limit>);

impl UserLimits {
    /// `max-connections`, if limited.
    pub fn max_connections(&self) -> Option<u64> {
        effective(&self.0, "max-connections")
    }

    /// `max-channels`, if limited.
    pub fn max_channels(&self) -> Option<u64> {
        effective(&self.0, "max-channels")
    }

    /// Sets one limit.
    pub fn set(&mut self, name: &str, value: i64) -> Result<(), LimitError> {
        check_name(name, &USER_LIMIT_NAMES, "user-limits", value)?;
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => self.0.insert(at, (name.to_string(), value)),
        }
        Ok(())
    }

    /// Removes one limit; true when it was set.
    pub fn clear(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| n != name);
        self.0.len() != before
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn check_name(
    name: &str,
    known: &[&str],
    component: &'static str,
    value: i64,
) -> Result<(), LimitError> {
    if known.contains(&name) {
        Ok(())
    } else {
        Err(LimitError::Unrecognised {
            name: name.into(),
            value: value.to_string(),
            component,
        })
    }
}

pub(crate) fn encode(limits: &[Limit]) -> String {
    limits
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn decode(text: &str) -> Option<Vec<Limit>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|pair| {
            let (n, v) = pair.split_once('=')?;
            Some((n.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_is_unlimited_and_zero_allows_nothing() {
        let mut l = VhostLimits::default();
        assert_eq!(l.max_connections(), None);
        l.set("max-connections", -1).unwrap();
        assert_eq!(l.max_connections(), None);
        assert!(!over(l.max_connections(), 1_000_000));
        l.set("max-connections", 0).unwrap();
        assert!(over(l.max_connections(), 0));
        l.set("max-connections", 2).unwrap();
        assert!(!over(l.max_connections(), 1));
        assert!(over(l.max_connections(), 2));
    }

    #[test]
    fn vhost_limits_keep_the_latest_first_and_user_limits_sorted() {
        let mut v = VhostLimits::default();
        v.set("max-queues", 3).unwrap();
        v.set("max-connections", 3).unwrap();
        v.set("max-queues", 4).unwrap();
        assert_eq!(
            v.0,
            [("max-queues".into(), 4), ("max-connections".into(), 3)]
        );
        let mut u = UserLimits::default();
        u.set("max-connections", 5).unwrap();
        u.set("max-channels", 0).unwrap();
        assert_eq!(
            u.0,
            [("max-channels".into(), 0), ("max-connections".into(), 5)]
        );
        assert!(u.clear("max-channels") && !u.clear("max-channels"));
    }

    #[test]
    fn unknown_names_are_refused_in_rabbitmq_words() {
        let e = VhostLimits::default().set("max-foo", 5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unrecognised terms [{<<\"max-foo\">>,5}] in limits"
        );
        let e = UserLimits::default().set("max-queues", 5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unrecognised terms [{<<\"max-queues\">>,5}] in user-limits"
        );
    }

    #[test]
    fn encodings_round_trip_and_damage_is_detected() {
        let v = VhostLimits(vec![
            ("max-queues".into(), -5),
            ("max-connections".into(), 7),
        ]);
        assert_eq!(VhostLimits::decode(&v.encode()), Some(v));
        assert_eq!(VhostLimits::decode(""), Some(VhostLimits::default()));
        assert_eq!(VhostLimits::decode("max-queues"), None);
        assert_eq!(VhostLimits::decode("max-queues=x"), None);
    }
}
