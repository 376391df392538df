//! The broker: virtual hosts and users.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::VHost;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Password (plain: Warren has no password hashing yet).
    pub password: String,
    /// May log in only from a loopback address, as RabbitMQ's `guest`.
    pub loopback_only: bool,
}

/// All virtual hosts and users of one broker.
#[derive(Debug)]
pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    users: RwLock<HashMap<String, User>>,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// A broker with vhost `/` and user `guest`/`guest` (loopback only), as RabbitMQ starts.
    pub fn new() -> Self {
        let broker = Broker {
            vhosts: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
        };
        broker.add_vhost("/");
        broker.add_user(User {
            name: "guest".into(),
            password: "guest".into(),
            loopback_only: true,
        });
        broker
    }

    /// Adds a vhost (no-op if it exists) and returns it.
    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(VHost::new(name)))
            .clone()
    }

    /// The vhost of that name.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Adds or replaces a user.
    pub fn add_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), user);
    }

    /// Checks a login; `loopback` says whether the peer is on a loopback address.
    pub fn authenticate(&self, name: &str, password: &str, loopback: bool) -> Option<User> {
        let users = self.users.read();
        let user = users.get(name)?;
        (user.password == password && (loopback || !user.loopback_only)).then(|| user.clone())
    }
}
