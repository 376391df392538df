//! RabbitMQ's configure/write/read permissions: one set of three regular expressions per user
//! and vhost, how a resource name is matched against them, and their store encoding.
//!
//! The rule is `rabbit_auth_backend_internal:check_resource_access` (3.10): the expression is
//! searched for anywhere in the name (`re:run`, not anchored: `"q"` permits `"myq"`; anchor with
//! `^...$` to mean one name), and an empty expression means `"^$"`, which permits only the empty
//! name (so `""` grants nothing in practice: the default exchange is checked as `amq.default`).
//! Expressions are compiled by Rust's `regex` crate, not PCRE: look-around and back-references
//! are refused when set, and `$` matches only at the very end of a name (PCRE's `$` also matches
//! before a final newline, which AMQP names do not contain in practice).
//!
//! What each AMQP method needs is the channel's business (warren-server's `channel/access.rs`);
//! this module only answers "may this user do this kind of thing to this name".

use std::collections::BTreeMap;

use regex::bytes::Regex;

/// The three kinds of access RabbitMQ checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Create or delete the resource (declare, delete).
    Configure,
    /// Put messages in (publish to an exchange; bind a queue or exchange as destination).
    Write,
    /// Take messages out (consume, get, purge; bind from an exchange as source).
    Read,
}

/// A permission expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression '{pattern}': {reason}")]
pub struct InvalidRegex {
    /// The expression given.
    pub pattern: String,
    /// Why it does not compile.
    pub reason: String,
}

/// One compiled permission expression, with its source text.
#[derive(Clone)]
struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    fn new(source: &str) -> Result<Self, InvalidRegex> {
        // RabbitMQ: an empty expression stands for "^$". PCRE reads a `{` that starts no
        // quantifier as a literal, where the regex crate refuses it.
        let effective = if source.is_empty() { "^$" } else { source };
        let regex =
            Regex::new(&crate::topic_permissions::literal_braces(effective)).map_err(|e| {
                InvalidRegex {
                    pattern: source.to_string(),
                    reason: e.to_string(),
                }
            })?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }
}

/// A user's configure, write and read expressions on one vhost, compiled.
#[derive(Clone)]
pub struct Permission {
    configure: Pattern,
    write: Pattern,
    read: Pattern,
}

impl PartialEq for Permission {
    fn eq(&self, other: &Self) -> bool {
        self.sources() == other.sources()
    }
}

impl Eq for Permission {}

impl std::fmt::Debug for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [c, w, r] = self.sources();
        write!(f, "Permission({c:?}, {w:?}, {r:?})")
    }
}

impl Permission {
    /// Compiles `configure`, `write` and `read`; an invalid expression is refused whole.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, InvalidRegex> {
        Ok(Permission {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    /// Full access: `".*"` three times (what the first-boot user gets).
    pub fn full() -> Self {
        let all = || Pattern {
            source: ".*".into(),
            // A literal that compiles: no error is possible.
            regex: Regex::new(".*").unwrap_or_else(|_| unreachable!()),
        };
        Permission {
            configure: all(),
            write: all(),
            read: all(),
        }
    }

    /// The source texts, in RabbitMQ's order: configure, write, read.
    pub fn sources(&self) -> [&str; 3] {
        [
            &self.configure.source,
            &self.write.source,
            &self.read.source,
        ]
    }

    /// Whether `access` to a resource named `name` is permitted (RabbitMQ's unanchored
    /// `re:run`). The default exchange is named `""` in AMQP: callers pass `amq.default`, see
    /// [`checked_exchange_name`].
    pub fn permits(&self, access: Access, name: &[u8]) -> bool {
        let p = match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        };
        p.regex.is_match(name)
    }
}

/// The name an exchange is checked under: RabbitMQ checks the default exchange `""` as
/// `amq.default` (`rabbit_access_control:check_resource_access`), and says so in its refusal.
pub fn checked_exchange_name(name: &[u8]) -> &[u8] {
    if name.is_empty() {
        b"amq.default"
    } else {
        name
    }
}

/// A user's permissions, by vhost name. Iterating yields the vhost names, so code that only
/// asks "may this user open that vhost" reads it as a set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VhostPermissions(BTreeMap<String, Permission>);

impl VhostPermissions {
    /// Whether the user has any permission on `vhost` (and so may open it).
    pub fn contains(&self, vhost: &str) -> bool {
        self.0.contains_key(vhost)
    }

    /// The permission on `vhost`.
    pub fn get(&self, vhost: &str) -> Option<&Permission> {
        self.0.get(vhost)
    }

    /// Sets the permission on `vhost`; true when it changed anything.
    pub fn set(&mut self, vhost: &str, p: Permission) -> bool {
        match self.0.insert(vhost.to_string(), p.clone()) {
            Some(old) => old != p,
            None => true,
        }
    }

    /// Removes the permission on `vhost`; true when there was one.
    pub fn remove(&mut self, vhost: &str) -> bool {
        self.0.remove(vhost).is_some()
    }

    /// Whether the user has no permission anywhere.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The vhost names, in order.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    /// Every (vhost, permission), in vhost order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Permission)> {
        self.0.iter()
    }

    /// The store encoding: a `0` marker byte, then per vhost its name (1-byte length) and the
    /// three expressions (2-byte big-endian lengths). The marker tells it from the older
    /// encoding (names only, meaning full access), whose first byte is a non-zero length.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8];
        for (vhost, p) in &self.0 {
            // Vhost names are at most 255 bytes (checked when created) and expressions are
            // checked by `Admin::set_permissions`: a longer one is never stored.
            let Ok(len) = u8::try_from(vhost.len()) else {
                continue;
            };
            if p.sources().iter().any(|s| s.len() > usize::from(u16::MAX)) {
                continue;
            }
            out.push(len);
            out.extend_from_slice(vhost.as_bytes());
            for s in p.sources() {
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        out
    }

    /// Reads [`VhostPermissions::encode`]'s bytes, or the older names-only encoding (full
    /// access on each), up to the end or to a zero byte (a vhost name is never empty), which
    /// starts the user record's extensions (`accounts.rs`): returns those bytes after it.
    /// `None` when damaged.
    pub fn decode(b: &[u8]) -> Option<(Self, &[u8])> {
        let mut out = BTreeMap::new();
        let Some((&0, mut rest)) = b.split_first() else {
            // The older encoding, or nothing at all.
            let mut rest = b;
            while let Some((&len, tail)) = rest.split_first() {
                if len == 0 {
                    return Some((VhostPermissions(out), tail));
                }
                let (vhost, tail) = tail.split_at_checked(usize::from(len))?;
                out.insert(String::from_utf8(vhost.to_vec()).ok()?, Permission::full());
                rest = tail;
            }
            return Some((VhostPermissions(out), &[]));
        };
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        while let Some((&len, tail)) = rest.split_first() {
            if len == 0 {
                return Some((VhostPermissions(out), tail));
            }
            let (vhost, mut tail) = tail.split_at_checked(usize::from(len))?;
            let mut sources: [String; 3] = Default::default();
            for s in &mut sources {
                let (n, t) = tail.split_first_chunk::<2>()?;
                let (value, t) = t.split_at_checked(usize::from(u16::from_be_bytes(*n)))?;
                *s = text(value)?;
                tail = t;
            }
            let [c, w, r] = &sources;
            out.insert(text(vhost)?, Permission::new(c, w, r).ok()?);
            rest = tail;
        }
        Some((VhostPermissions(out), &[]))
    }
}

impl<'a> IntoIterator for &'a VhostPermissions {
    type Item = &'a String;
    type IntoIter = std::collections::btree_map::Keys<'a, String, Permission>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.keys()
    }
}

#[cfg(test)]
#[path = "permissions_tests.rs"]
mod tests;
