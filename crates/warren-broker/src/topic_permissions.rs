//! Topic permissions (RabbitMQ's `rabbit_topic_permission`): per user, vhost and topic exchange,
//! a `write` and a `read` regular expression that routing keys must match to publish to the
//! exchange, or to bind to and unbind from it. [`TopicAccess`] is one user's rules in one vhost,
//! compiled once with `{username}` and `{vhost}` expanded, for a connection to cache.
//!
//! As in RabbitMQ: no rule for an exchange allows every key; an empty pattern means `^$`;
//! a pattern matches anywhere in the key unless anchored. RabbitMQ compiles with PCRE, Warren
//! with the `regex` crate: look-around and back-references are refused when set.

use regex::Regex;

pub use crate::permissions::InvalidRegex;

/// One topic permission as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPermission {
    /// The vhost.
    pub vhost: String,
    /// The exchange it applies to (an exact name, not a pattern).
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: String,
    /// Routing keys the user may bind with.
    pub read: String,
}

/// Checks that `pattern` compiles (before it is stored).
pub fn validate(pattern: &str) -> Result<(), InvalidRegex> {
    compile(pattern).map(|_| ())
}

fn compile(pattern: &str) -> Result<Regex, InvalidRegex> {
    let given = if pattern.is_empty() { "^$" } else { pattern };
    Regex::new(&literal_braces(given)).map_err(|e| InvalidRegex {
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })
}

/// PCRE reads a `{` that does not start a quantifier (`{n}`, `{n,}`, `{n,m}`) as a literal,
/// and so a lone `}`; the regex crate refuses both. Escapes them, so `^{username}\.` (stored
/// unexpanded) and other such patterns RabbitMQ accepts compile here too.
pub(crate) fn literal_braces(pattern: &str) -> String {
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 4);
    let (mut i, mut in_class) = (0, false);
    let quantifier_end = |from: usize| -> Option<usize> {
        let mut j = from + 1;
        let digits = |j: &mut usize| {
            let start = *j;
            while *j < b.len() && b[*j].is_ascii_digit() {
                *j += 1;
            }
            *j > start
        };
        if !digits(&mut j) {
            return None;
        }
        if j < b.len() && b[j] == b',' {
            j += 1;
            digits(&mut j);
        }
        (j < b.len() && b[j] == b'}').then_some(j)
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' if i + 1 < b.len() => {
                // An escape: copy it and the character it escapes, whole (UTF-8 included).
                let next = pattern[i + 1..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&pattern[i..i + 1 + next]);
                i += 1 + next;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'{' if !in_class => match quantifier_end(i) {
                Some(end) => {
                    out.push_str(&pattern[i..=end]);
                    i = end + 1;
                    continue;
                }
                None => {
                    out.push_str("\\{");
                    i += 1;
                    continue;
                }
            },
            b'}' if !in_class => {
                out.push_str("\\}");
                i += 1;
                continue;
            }
            _ => {}
        }
        let ch = pattern[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&pattern[i..i + ch]);
        i += ch;
    }
    out
}

/// Which check: publishing or binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicAction {
    /// `basic.publish`: the `write` pattern.
    Write,
    /// `queue.bind`, `exchange.bind` and their unbinds: the `read` pattern.
    Read,
}

#[derive(Debug)]
struct Compiled {
    exchange: String,
    write: Option<Regex>,
    read: Option<Regex>,
}

/// One user's topic permissions in one vhost, compiled.
#[derive(Debug, Default)]
pub struct TopicAccess {
    rules: Vec<Compiled>,
}

impl TopicAccess {
    /// Checks that `pattern` compiles, as setting it does.
    pub fn validate(pattern: &str) -> Result<(), InvalidRegex> {
        validate(pattern)
    }

    /// Compiles `user`'s permissions in `vhost`, expanding `{username}` and `{vhost}` as
    /// RabbitMQ's `expand_topic_permission` does. A pattern stored before a rule change that no
    /// longer compiles after expansion denies everything (RabbitMQ's `re:run` would fail too).
    pub fn compile<'a>(
        user: &str,
        vhost: &str,
        permissions: impl IntoIterator<Item = &'a TopicPermission>,
    ) -> Self {
        let expand = |p: &str| p.replace("{vhost}", vhost).replace("{username}", user);
        let rules = permissions
            .into_iter()
            .filter(|p| p.vhost == vhost)
            .map(|p| Compiled {
                exchange: p.exchange.clone(),
                write: compile(&expand(&p.write)).ok(),
                read: compile(&expand(&p.read)).ok(),
            })
            .collect();
        TopicAccess { rules }
    }

    /// True when the user has no topic permission in the vhost: everything is allowed, and a
    /// caller may skip the check entirely.
    pub fn is_unrestricted(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `routing_key` may be used on the topic exchange `exchange`. Allocates nothing.
    pub fn allows(&self, exchange: &[u8], routing_key: &[u8], action: TopicAction) -> bool {
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.exchange.as_bytes() == exchange)
        else {
            return true;
        };
        let re = match action {
            TopicAction::Write => &rule.write,
            TopicAction::Read => &rule.read,
        };
        // Routing keys are short strings of any bytes; one that is not UTF-8 cannot match a
        // pattern written as text unless the pattern matches the empty string, as `.*` does.
        match (re, std::str::from_utf8(routing_key)) {
            (Some(re), Ok(key)) => re.is_match(key),
            (Some(re), Err(_)) => re.is_match(""),
            (None, _) => false,
        }
    }
}

/// RabbitMQ's refusal text for a topic check that failed (`rabbit_access_control`).
pub fn refusal_text(exchange: &[u8], vhost: &str, routing_key: &[u8], user: &str) -> String {
    format!(
        "access to topic '{}' in exchange '{}' in vhost '{vhost}' refused for user '{user}'",
        String::from_utf8_lossy(routing_key),
        String::from_utf8_lossy(exchange),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(vhost: &str, exchange: &str, write: &str, read: &str) -> TopicPermission {
        TopicPermission {
            vhost: vhost.into(),
            exchange: exchange.into(),
            write: write.into(),
            read: read.into(),
        }
    }

    #[test]
    fn no_rule_allows_and_a_rule_matches_unanchored() {
        let perms = [perm("/", "amq.topic", "^a\\.", "b")];
        let a = TopicAccess::compile("bob", "/", &perms);
        assert!(!a.is_unrestricted());
        assert!(a.allows(b"amq.topic", b"a.x", TopicAction::Write));
        assert!(!a.allows(b"amq.topic", b"x.a.x", TopicAction::Write));
        assert!(a.allows(b"amq.topic", b"xbx", TopicAction::Read));
        assert!(!a.allows(b"amq.topic", b"a.x", TopicAction::Read));
        assert!(a.allows(b"other", b"anything", TopicAction::Write));
        assert!(TopicAccess::compile("bob", "other", &perms).is_unrestricted());
    }

    #[test]
    fn empty_pattern_allows_only_the_empty_key_and_variables_expand() {
        let perms = [perm("v", "x", "", "^{username}\\.{vhost}$")];
        let a = TopicAccess::compile("bob", "v", &perms);
        assert!(a.allows(b"x", b"", TopicAction::Write));
        assert!(!a.allows(b"x", b"k", TopicAction::Write));
        assert!(a.allows(b"x", b"bob.v", TopicAction::Read));
        assert!(!a.allows(b"x", b"alice.v", TopicAction::Read));
    }

    #[test]
    fn braces_that_are_no_quantifier_are_literal_as_in_pcre() {
        assert_eq!(literal_braces("^{username}\\."), "^\\{username\\}\\.");
        assert_eq!(literal_braces("a{2}b{1,}c{1,3}"), "a{2}b{1,}c{1,3}");
        assert_eq!(literal_braces("[{}]\\{x}é"), "[{}]\\{x\\}é");
        assert!(validate("^{username}\\.").is_ok());
        let perms = [perm("/", "x", "a{2}|{vhost}", "")];
        let a = TopicAccess::compile("bob", "/", &perms);
        assert!(a.allows(b"x", b"aa", TopicAction::Write));
        assert!(a.allows(b"x", b"k/", TopicAction::Write));
        assert!(!a.allows(b"x", b"a", TopicAction::Write));
    }

    #[test]
    fn invalid_patterns_are_refused_and_the_text_is_rabbitmqs() {
        assert!(validate("(").is_err());
        assert!(validate("").is_ok());
        assert_eq!(
            refusal_text(b"amq.topic", "/", b"b.c", "bob"),
            "access to topic 'b.c' in exchange 'amq.topic' in vhost '/' refused for user 'bob'"
        );
    }
}
