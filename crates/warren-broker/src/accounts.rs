//! Users: password hashes, tags, vhost permissions, limits and topic permissions, their store
//! records, and the
//! `rabbitmqctl`-style administration of users and virtual hosts over a [`DefinitionStore`].
//!
//! Passwords are hashed as RabbitMQ hashes them (`crate::password`). Permissions are RabbitMQ's
//! configure/write/read regular expressions per vhost (`crate::permissions`); having any
//! permission on a vhost is what lets a user open it.

use std::collections::BTreeSet;

use bytes::Bytes;
use warren_store::{DefinitionStore, Definitions, StoreError, UserRecord};

use crate::limits::UserLimits;
use crate::topic_permissions::TopicPermission;

/// Starts the extension section of a permissions record: a vhost length is never 0, so old
/// records (a list of vhosts only) never contain it.
const EXTENSIONS: u8 = 0;
/// An extension entry: a user limit (short name, i64 BE).
const EXT_LIMIT: u8 = 1;
/// An extension entry: a topic permission (short vhost, short exchange, long write, long read).
const EXT_TOPIC: u8 = 2;

pub use crate::password::PasswordHash;
use crate::permissions::{InvalidRegex, Permission, VhostPermissions};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// The password's hash.
    pub password: PasswordHash,
    /// Tags (`administrator`, `monitoring`, ...): kept and listed, as RabbitMQ does for
    /// management tools; AMQP access does not depend on them.
    pub tags: Vec<String>,
    /// The user's permissions by vhost: the vhosts it may open, each with its configure, write
    /// and read expressions.
    pub vhosts: VhostPermissions,
    /// `max-connections` and `max-channels`.
    pub limits: UserLimits,
    /// Topic permissions, sorted by vhost then exchange.
    pub topic_permissions: Vec<TopicPermission>,
}

impl User {
    /// A user with `password`, the given tags and no permissions.
    pub fn new(name: &str, password: &str, tags: Vec<String>) -> Self {
        User {
            name: name.to_string(),
            password: PasswordHash::new(password),
            tags,
            vhosts: VhostPermissions::default(),
            limits: UserLimits::default(),
            topic_permissions: Vec::new(),
        }
    }

    /// The store record of this user.
    pub fn to_record(&self) -> UserRecord {
        // The permissions section ends where the extensions (limits, topic permissions) begin:
        // see `VhostPermissions::encode`.
        let mut permissions = self.vhosts.encode();
        self.encode_extensions(&mut permissions);
        UserRecord {
            name: Bytes::copy_from_slice(self.name.as_bytes()),
            password_hash: self.password.encode(),
            tags: Bytes::from(self.tags.join(",")),
            permissions: Bytes::from(permissions),
        }
    }

    /// The user a store record describes.
    pub fn from_record(r: &UserRecord) -> Result<Self, StoreError> {
        let text = |b: &[u8], what: &str| {
            String::from_utf8(b.to_vec())
                .map_err(|_| StoreError::Corrupt(format!("user record: {what} is not UTF-8")))
        };
        let name = text(&r.name, "name")?;
        let password = PasswordHash::decode(&r.password_hash).ok_or_else(|| {
            StoreError::Corrupt(format!("user {name}: unknown password hash format"))
        })?;
        let tags = text(&r.tags, "tags")?;
        let tags = tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let (vhosts, extensions) = VhostPermissions::decode(&r.permissions)
            .ok_or_else(|| StoreError::Corrupt(format!("user {name}: damaged permissions")))?;
        let mut user = User {
            name,
            password,
            tags,
            vhosts,
            limits: UserLimits::default(),
            topic_permissions: Vec::new(),
        };
        user.decode_extensions(extensions).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "user {}: damaged limits or topic permissions",
                user.name
            ))
        })?;
        Ok(user)
    }

    fn encode_extensions(&self, out: &mut Vec<u8>) {
        if self.limits.is_empty() && self.topic_permissions.is_empty() {
            return;
        }
        out.push(EXTENSIONS);
        let short = |out: &mut Vec<u8>, s: &str| {
            // Names are short strings: the API and `add_vhost` refuse longer ones.
            let b = &s.as_bytes()[..s.len().min(255)];
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        };
        let long = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        for (name, value) in &self.limits.0 {
            out.push(EXT_LIMIT);
            short(out, name);
            out.extend_from_slice(&value.to_be_bytes());
        }
        for p in &self.topic_permissions {
            out.push(EXT_TOPIC);
            short(out, &p.vhost);
            short(out, &p.exchange);
            long(out, &p.write);
            long(out, &p.read);
        }
    }

    fn decode_extensions(&mut self, mut b: &[u8]) -> Option<()> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = b.split_at_checked(n)?;
            *b = tail;
            Some(head)
        }
        fn text(b: &[u8]) -> Option<String> {
            String::from_utf8(b.to_vec()).ok()
        }
        fn short(b: &mut &[u8]) -> Option<String> {
            let len = take(b, 1)?[0];
            text(take(b, usize::from(len))?)
        }
        fn long(b: &mut &[u8]) -> Option<String> {
            let len = u32::from_be_bytes(take(b, 4)?.try_into().ok()?);
            text(take(b, usize::try_from(len).ok()?)?)
        }
        while let Some(kind) = take(&mut b, 1) {
            match kind[0] {
                EXT_LIMIT => {
                    let name = short(&mut b)?;
                    let value = i64::from_be_bytes(take(&mut b, 8)?.try_into().ok()?);
                    self.limits.0.push((name, value));
                }
                EXT_TOPIC => self.topic_permissions.push(TopicPermission {
                    vhost: short(&mut b)?,
                    exchange: short(&mut b)?,
                    write: long(&mut b)?,
                    read: long(&mut b)?,
                }),
                _ => return None,
            }
        }
        Some(())
    }

    /// Sets (or replaces) the topic permission for `p.vhost` and `p.exchange`.
    pub fn set_topic_permission(&mut self, p: TopicPermission) {
        let key = |t: &TopicPermission| (t.vhost.clone(), t.exchange.clone());
        match self
            .topic_permissions
            .binary_search_by(|t| key(t).cmp(&key(&p)))
        {
            Ok(at) => self.topic_permissions[at] = p,
            Err(at) => self.topic_permissions.insert(at, p),
        }
    }

    /// Removes every topic permission in `vhost`; true when there was one.
    pub fn clear_topic_permissions(&mut self, vhost: &str) -> bool {
        let before = self.topic_permissions.len();
        self.topic_permissions.retain(|t| t.vhost != vhost);
        self.topic_permissions.len() != before
    }
}

/// Why an administration command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `add_user` of a name in use.
    #[error("User \"{0}\" already exists")]
    UserExists(String),
    /// A command naming a user that does not exist.
    #[error("User \"{0}\" does not exist")]
    NoSuchUser(String),
    /// A command naming a vhost that does not exist.
    #[error("Virtual host '{0}' does not exist")]
    NoSuchVhost(String),
    /// A name that is empty or longer than an AMQP short string.
    #[error("invalid {what} name \"{name}\": it must be 1 to 255 bytes")]
    InvalidName {
        /// "user" or "vhost".
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// A permission expression that does not compile (or is longer than 65535 bytes).
    #[error(transparent)]
    InvalidPermission(#[from] InvalidRegex),
    /// A limit name or value RabbitMQ refuses.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
    /// A topic permission pattern that does not compile.
    #[error(transparent)]
    InvalidRegex(InvalidRegex),
    /// The store failed or holds a record it cannot read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Compiles a permission as `set_permissions` takes it: configure, write, read.
pub fn compile_permission([configure, write, read]: [&str; 3]) -> Result<Permission, AdminError> {
    if let Some(long) = [configure, write, read]
        .into_iter()
        .find(|p| p.len() > usize::from(u16::MAX))
    {
        return Err(AdminError::InvalidPermission(InvalidRegex {
            pattern: long.chars().take(40).collect(),
            reason: "longer than 65535 bytes".into(),
        }));
    }
    Ok(Permission::new(configure, write, read)?)
}

/// What a fresh broker is given: RabbitMQ's first-boot vhost and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstBoot {
    /// The default vhost (`/`).
    pub vhost: String,
    /// The default user's name (`guest`).
    pub user: String,
    /// The default user's password (`guest`).
    pub password: String,
}

impl Default for FirstBoot {
    fn default() -> Self {
        FirstBoot {
            vhost: "/".into(),
            user: "guest".into(),
            password: "guest".into(),
        }
    }
}

/// Users and vhosts of a store, read once, changed through `rabbitmqctl`'s commands; every
/// change is written to the store before the call returns.
pub struct Admin<'a> {
    store: &'a dyn DefinitionStore,
    vhosts: BTreeSet<String>,
    users: Vec<User>,
}

impl<'a> Admin<'a> {
    /// Reads the users and vhosts of `store`. A store that has neither is a fresh node's and
    /// gets `first_boot` (as RabbitMQ seeds its default user and vhost on first start only, so
    /// deleting `guest` later is not undone by a restart).
    pub fn open(
        store: &'a dyn DefinitionStore,
        first_boot: &FirstBoot,
    ) -> Result<Self, AdminError> {
        let defs = store.load_definitions()?;
        Self::with_definitions(store, &defs, first_boot)
    }

    /// As [`Admin::open`], from definitions already loaded from `store`.
    pub fn with_definitions(
        store: &'a dyn DefinitionStore,
        defs: &Definitions,
        first_boot: &FirstBoot,
    ) -> Result<Self, AdminError> {
        let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        let users = defs
            .users
            .iter()
            .map(User::from_record)
            .collect::<Result<Vec<_>, _>>()?;
        let mut admin = Admin {
            store,
            vhosts: defs.vhosts.iter().map(text).collect(),
            users,
        };
        if admin.vhosts.is_empty() && admin.users.is_empty() {
            admin.add_vhost(&first_boot.vhost)?;
            admin.add_user(
                &first_boot.user,
                &first_boot.password,
                vec!["administrator".into()],
            )?;
            admin.set_permissions(&first_boot.user, &first_boot.vhost, [".*", ".*", ".*"])?;
        }
        Ok(admin)
    }

    /// Every user, by name.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Every vhost name, in order.
    pub fn vhosts(&self) -> impl Iterator<Item = &str> {
        self.vhosts.iter().map(String::as_str)
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User, AdminError> {
        self.users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| AdminError::NoSuchUser(name.into()))
    }

    fn check_name(what: &'static str, name: &str) -> Result<(), AdminError> {
        if name.is_empty() || name.len() > 255 {
            return Err(AdminError::InvalidName {
                what,
                name: name.into(),
            });
        }
        Ok(())
    }

    /// `add_user`: a new user with no permissions.
    pub fn add_user(
        &mut self,
        name: &str,
        password: &str,
        tags: Vec<String>,
    ) -> Result<(), AdminError> {
        Self::check_name("user", name)?;
        if self.users.iter().any(|u| u.name == name) {
            return Err(AdminError::UserExists(name.into()));
        }
        let user = User::new(name, password, tags);
        self.store.put_user(&user.to_record())?;
        let at = self.users.partition_point(|u| u.name.as_str() < name);
        self.users.insert(at, user);
        Ok(())
    }

    /// `delete_user`.
    pub fn delete_user(&mut self, name: &str) -> Result<(), AdminError> {
        self.user_mut(name)?;
        self.store.delete_user(name.as_bytes())?;
        self.users.retain(|u| u.name != name);
        Ok(())
    }

    fn update_user(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut User),
    ) -> Result<(), AdminError> {
        let store = self.store;
        let user = self.user_mut(name)?;
        let mut changed = user.clone();
        change(&mut changed);
        store.put_user(&changed.to_record())?;
        *user = changed;
        Ok(())
    }

    /// `change_password`.
    pub fn change_password(&mut self, name: &str, password: &str) -> Result<(), AdminError> {
        self.update_user(name, |u| u.password = PasswordHash::new(password))
    }

    /// `set_user_tags`: replaces the user's tags.
    pub fn set_user_tags(&mut self, name: &str, tags: Vec<String>) -> Result<(), AdminError> {
        self.update_user(name, |u| u.tags = tags)
    }

    /// `add_vhost`; adding one that exists succeeds and changes nothing, as in RabbitMQ.
    pub fn add_vhost(&mut self, name: &str) -> Result<(), AdminError> {
        Self::check_name("vhost", name)?;
        if self.vhosts.contains(name) {
            return Ok(());
        }
        self.store.put_vhost(name.as_bytes())?;
        self.vhosts.insert(name.into());
        Ok(())
    }

    /// `delete_vhost`: the vhost with everything in it, and every user's permission on it.
    pub fn delete_vhost(&mut self, name: &str) -> Result<(), AdminError> {
        if !self.vhosts.contains(name) {
            return Err(AdminError::NoSuchVhost(name.into()));
        }
        let holders: Vec<String> = self
            .users
            .iter()
            .filter(|u| {
                u.vhosts.contains(name) || u.topic_permissions.iter().any(|t| t.vhost == name)
            })
            .map(|u| u.name.clone())
            .collect();
        for user in holders {
            self.update_user(&user, |u| {
                u.vhosts.remove(name);
                u.clear_topic_permissions(name);
            })?;
        }
        self.store.delete_vhost(name.as_bytes())?;
        self.vhosts.remove(name);
        Ok(())
    }

    /// `set_permissions -p VHOST USER CONF WRITE READ`: three regular expressions.
    pub fn set_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        [configure, write, read]: [&str; 3],
    ) -> Result<(), AdminError> {
        let permission = compile_permission([configure, write, read])?;
        if !self.vhosts.contains(vhost) {
            return Err(AdminError::NoSuchVhost(vhost.into()));
        }
        self.update_user(user, |u| {
            u.vhosts.set(vhost, permission);
        })
    }

    /// `clear_permissions -p VHOST USER`.
    pub fn clear_permissions(&mut self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if !self.vhosts.contains(vhost) {
            return Err(AdminError::NoSuchVhost(vhost.into()));
        }
        self.update_user(user, |u| {
            u.vhosts.remove(vhost);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_store::MemoryStore;

    #[test]
    fn a_user_round_trips_through_its_record() {
        let mut u = User::new(
            "bob",
            "pw",
            vec!["administrator".into(), "monitoring".into()],
        );
        u.vhosts.set("/", Permission::full());
        u.vhosts
            .set("prod", Permission::new("^app\\.", "", "^(a|b)$").unwrap());
        let back = User::from_record(&u.to_record()).unwrap();
        assert_eq!(back, u);
        assert!(back.password.verify("pw"));
        // With limits and topic permissions (an empty exchange name included).
        u.limits.set("max-channels", 0).unwrap();
        u.limits.set("max-connections", -3).unwrap();
        for (v, x) in [("prod", "logs"), ("/", ""), ("/", "amq.topic")] {
            u.set_topic_permission(TopicPermission {
                vhost: v.into(),
                exchange: x.into(),
                write: "^{username}\\.".into(),
                read: String::new(),
            });
        }
        let back = User::from_record(&u.to_record()).unwrap();
        assert_eq!(back, u);
        assert_eq!(back.topic_permissions[0].exchange, "");
        // Every truncation of the extensions is an error, never a panic.
        let r = u.to_record();
        let plain = User::new("bob", "pw", vec![]).to_record();
        for cut in 1..r.permissions.len() {
            let bad = UserRecord {
                permissions: r.permissions.slice(..cut),
                ..plain.clone()
            };
            let _ = User::from_record(&bad);
        }
    }

    #[test]
    fn damaged_user_records_are_errors_not_panics() {
        let r = User::new("bob", "pw", vec![]).to_record();
        for cut in 0..r.password_hash.len() {
            let bad = UserRecord {
                password_hash: r.password_hash.slice(..cut),
                ..r.clone()
            };
            assert!(User::from_record(&bad).is_err(), "hash cut at {cut}");
        }
        let bad = UserRecord {
            permissions: Bytes::from_static(b"\x05ab"),
            ..r
        };
        assert!(User::from_record(&bad).is_err());
    }

    #[test]
    fn a_fresh_store_gets_the_default_vhost_and_user_once() {
        let store = MemoryStore::new();
        let admin = Admin::open(&store, &FirstBoot::default()).unwrap();
        assert_eq!(admin.vhosts().collect::<Vec<_>>(), ["/"]);
        let guest = &admin.users()[0];
        assert_eq!(guest.name, "guest");
        assert!(guest.password.verify("guest"));
        assert!(guest.vhosts.contains("/"));
        assert_eq!(guest.tags, ["administrator"]);

        let mut admin = Admin::open(&store, &FirstBoot::default()).unwrap();
        admin.add_user("bob", "pw", vec![]).unwrap();
        admin.delete_user("guest").unwrap();
        // Not fresh any more: guest stays deleted.
        let admin = Admin::open(&store, &FirstBoot::default()).unwrap();
        let names: Vec<_> = admin.users().iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["bob"]);
    }

    #[test]
    fn commands_refuse_what_rabbitmqctl_refuses() {
        let store = MemoryStore::new();
        let mut a = Admin::open(&store, &FirstBoot::default()).unwrap();
        assert!(matches!(
            a.add_user("guest", "x", vec![]),
            Err(AdminError::UserExists(_))
        ));
        assert!(matches!(
            a.delete_user("nobody"),
            Err(AdminError::NoSuchUser(_))
        ));
        a.add_vhost("/").unwrap();
        assert!(matches!(
            a.delete_vhost("nope"),
            Err(AdminError::NoSuchVhost(_))
        ));
        assert!(matches!(
            a.set_permissions("guest", "nope", [".*", ".*", ".*"]),
            Err(AdminError::NoSuchVhost(_))
        ));
        assert!(matches!(
            a.set_permissions("nobody", "/", [".*", ".*", ".*"]),
            Err(AdminError::NoSuchUser(_))
        ));
        assert!(matches!(
            a.set_permissions("guest", "/", ["(", ".*", ".*"]),
            Err(AdminError::InvalidPermission(_))
        ));
        assert!(matches!(
            a.set_permissions("guest", "/", [".*", ".*", "(?=x)"]),
            Err(AdminError::InvalidPermission(_))
        ));
        assert!(matches!(
            a.add_vhost(""),
            Err(AdminError::InvalidName { .. })
        ));
        assert!(matches!(
            a.add_user(&"u".repeat(256), "x", vec![]),
            Err(AdminError::InvalidName { .. })
        ));
    }

    #[test]
    fn deleting_a_vhost_takes_its_permissions_with_it() {
        let store = MemoryStore::new();
        let mut a = Admin::open(&store, &FirstBoot::default()).unwrap();
        a.add_vhost("prod").unwrap();
        a.set_permissions("guest", "prod", [".*", ".*", ".*"])
            .unwrap();
        a.delete_vhost("prod").unwrap();
        let a = Admin::open(&store, &FirstBoot::default()).unwrap();
        assert_eq!(a.vhosts().collect::<Vec<_>>(), ["/"]);
        assert_eq!(
            a.users()[0].vhosts.iter().collect::<Vec<_>>(),
            [&"/".to_string()]
        );
    }

    #[test]
    fn changes_are_in_the_store_when_the_call_returns() {
        let store = MemoryStore::new();
        let mut a = Admin::open(&store, &FirstBoot::default()).unwrap();
        a.add_user("bob", "one", vec![]).unwrap();
        a.change_password("bob", "two").unwrap();
        a.set_user_tags("bob", vec!["monitoring".into()]).unwrap();
        a.add_vhost("v").unwrap();
        a.set_permissions("bob", "v", [".*", ".*", ".*"]).unwrap();
        a.clear_permissions("guest", "/").unwrap();
        a.set_permissions("bob", "/", ["^b", "", "q$"]).unwrap();
        let a = Admin::open(&store, &FirstBoot::default()).unwrap();
        let bob = a.users().iter().find(|u| u.name == "bob").unwrap();
        assert!(bob.password.verify("two") && !bob.password.verify("one"));
        assert_eq!(bob.tags, ["monitoring"]);
        assert!(bob.vhosts.contains("v"));
        assert_eq!(bob.vhosts.get("/").unwrap().sources(), ["^b", "", "q$"]);
        let guest = a.users().iter().find(|u| u.name == "guest").unwrap();
        assert!(guest.vhosts.is_empty());
    }
}
