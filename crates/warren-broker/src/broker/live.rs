//! Live administration of a running broker: users, vhosts and permissions changed while it
//! serves (the management API's writes), and read accessors for listings.
//!
//! Each change is written to the store first and applied in memory only once the store has it,
//! under the users (or vhosts) write lock, so two concurrent changes cannot interleave between
//! the store and memory. `warren ctl` on a stopped broker goes through [`crate::Admin`] instead;
//! both write the same records.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Broker;
use crate::VHost;
use crate::accounts::{AdminError, PasswordHash, User, compile_permission};
use crate::password::HashAlgorithm;
use crate::permissions::Permission;

fn check_name(what: &'static str, name: &str) -> Result<(), AdminError> {
    if name.is_empty() || name.len() > 255 {
        return Err(AdminError::InvalidName {
            what,
            name: name.into(),
        });
    }
    Ok(())
}

impl Broker {
    /// Every user, sorted by name (a copy: listing never holds the lock).
    pub fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = self.users.read().values().cloned().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    /// The user of that name.
    pub fn user(&self, name: &str) -> Option<User> {
        self.users.read().get(name).cloned()
    }

    /// Every vhost, sorted by name.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        let mut vhosts: Vec<Arc<VHost>> = self.vhosts.read().values().cloned().collect();
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        vhosts
    }

    /// Creates or replaces a user while running; `password` `None` keeps the old hash (or, for
    /// a new user, one no password matches). Returns true when the user is new.
    pub fn put_user_live(
        &self,
        name: &str,
        password: Option<PasswordHash>,
        tags: Vec<String>,
    ) -> Result<bool, AdminError> {
        check_name("user", name)?;
        let mut users = self.users.write();
        let old = users.get(name);
        let created = old.is_none();
        let user = User {
            name: name.to_string(),
            // A user created without a password cannot log in with one (RabbitMQ's
            // password-less users authenticate by other mechanisms only): a hash of a random
            // secret nobody knows.
            password: password
                .or_else(|| old.map(|u| u.password.clone()))
                .unwrap_or_else(|| PasswordHash::new(&format!("{:x}", rand::random::<u128>()))),
            tags,
            vhosts: old.map(|u| u.vhosts.clone()).unwrap_or_default(),
            limits: old.map(|u| u.limits.clone()).unwrap_or_default(),
            topic_permissions: old.map(|u| u.topic_permissions.clone()).unwrap_or_default(),
        };
        self.store.put_user(&user.to_record())?;
        users.insert(name.to_string(), user);
        Ok(created)
    }

    /// Deletes a user while running (connections it has open stay open, as in RabbitMQ).
    pub fn delete_user_live(&self, name: &str) -> Result<(), AdminError> {
        let mut users = self.users.write();
        if !users.contains_key(name) {
            return Err(AdminError::NoSuchUser(name.into()));
        }
        self.store.delete_user(name.as_bytes())?;
        users.remove(name);
        // Its topic permissions went with it.
        self.topic_changed();
        self.bump_permission_generation();
        Ok(())
    }

    /// Creates a vhost while running; true when it is new.
    pub fn add_vhost_live(&self, name: &str) -> Result<bool, AdminError> {
        check_name("vhost", name)?;
        if self.vhosts.read().contains_key(name) {
            return Ok(false);
        }
        self.store.put_vhost(name.as_bytes())?;
        self.add_vhost(name);
        Ok(true)
    }

    /// Deletes a vhost while running: its queues (consumers are cancelled), exchanges and
    /// bindings, its stored records, and every user's permission on it. Connections open on it
    /// are the caller's to close (the broker does not know sockets).
    pub fn delete_vhost_live(&self, name: &str) -> Result<(), AdminError> {
        let Some(vhost) = self.vhosts.write().remove(name) else {
            return Err(AdminError::NoSuchVhost(name.into()));
        };
        let queues: Vec<_> = vhost.topology().queues().cloned().collect();
        for q in &queues {
            vhost.remove_queue(q);
        }
        let mut users = self.users.write();
        for user in users.values_mut() {
            let had_access = user.vhosts.remove(name);
            if user.clear_topic_permissions(name) | had_access {
                self.store.put_user(&user.to_record())?;
            }
        }
        self.topic_changed();
        self.store.delete_vhost(name.as_bytes())?;
        drop(users);
        self.bump_permission_generation();
        Ok(())
    }

    /// Sets `user`'s configure, write and read expressions on `vhost` while running; true
    /// when the user had no permission there. Open channels apply it at their next operation.
    pub fn set_permissions_live(
        &self,
        user: &str,
        vhost: &str,
        permission: [&str; 3],
    ) -> Result<bool, AdminError> {
        let permission = compile_permission(permission)?;
        if !self.vhosts.read().contains_key(vhost) {
            return Err(AdminError::NoSuchVhost(vhost.into()));
        }
        let mut had = true;
        self.change_user(user, |u| {
            had = u.vhosts.contains(vhost);
            u.vhosts.set(vhost, permission)
        })?;
        Ok(!had)
    }

    /// The permission `user` has on `vhost` now, if any.
    pub fn permission(&self, user: &str, vhost: &str) -> Option<Permission> {
        self.users.read().get(user)?.vhosts.get(vhost).cloned()
    }

    /// A number that changes whenever any permission may have changed: a cache of permission
    /// decisions taken at one generation is stale at another. One atomic load.
    pub fn permission_generation(&self) -> u64 {
        self.permission_generation.load(Ordering::Acquire)
    }

    fn bump_permission_generation(&self) {
        self.permission_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Removes `user`'s access to `vhost` while running; true when it had some.
    pub fn clear_permissions_live(&self, user: &str, vhost: &str) -> Result<bool, AdminError> {
        self.change_user(user, |u| u.vhosts.remove(vhost))
    }

    pub(super) fn change_user(
        &self,
        name: &str,
        change: impl FnOnce(&mut User) -> bool,
    ) -> Result<bool, AdminError> {
        let mut users = self.users.write();
        let user = users
            .get_mut(name)
            .ok_or_else(|| AdminError::NoSuchUser(name.into()))?;
        let mut changed = user.clone();
        let did = change(&mut changed);
        if did {
            self.store.put_user(&changed.to_record())?;
            *user = changed;
            drop(users);
            // After the map holds the change: a channel that sees the new generation reads the
            // new permission.
            self.bump_permission_generation();
        }
        Ok(did)
    }

    /// Whether `name` may log in only from a loopback address.
    pub fn is_loopback_user(&self, name: &str) -> bool {
        self.loopback_users.read().contains(name)
    }
}

/// A hash in RabbitMQ's `rabbit_password_hashing_sha256` form (4-byte salt, then the 32-byte
/// SHA-256 digest; the base64 of this is what definitions and the API carry).
pub fn password_hash_from_rabbitmq(salt_and_digest: &[u8]) -> Option<PasswordHash> {
    PasswordHash::from_rabbitmq(HashAlgorithm::Sha256, salt_and_digest)
}

/// The user's hash in RabbitMQ's form (salt then digest), for exports; its algorithm is
/// `user.password.algorithm()`.
pub fn rabbitmq_password_hash(user: &User) -> Vec<u8> {
    user.password.to_rabbitmq()
}

#[cfg(test)]
mod tests {
    use crate::{Access, Broker, PasswordHash};

    #[test]
    fn permission_changes_move_the_generation_and_are_read_back() {
        let b = Broker::new();
        b.put_user_live("u", Some(PasswordHash::new("pw")), vec![])
            .unwrap();
        let g0 = b.permission_generation();
        assert!(b.set_permissions_live("u", "/", ["^q", "", "x"]).unwrap());
        let g1 = b.permission_generation();
        assert_ne!(g0, g1);
        let p = b.permission("u", "/").unwrap();
        assert!(p.permits(Access::Configure, b"queue"));
        assert!(!p.permits(Access::Write, b"queue"));
        // Setting the same permission again changes nothing: no new generation.
        assert!(!b.set_permissions_live("u", "/", ["^q", "", "x"]).unwrap());
        assert_eq!(b.permission_generation(), g1);
        assert!(b.set_permissions_live("u", "/", ["(", "", ""]).is_err());
        assert_eq!(b.permission_generation(), g1);
        assert!(b.clear_permissions_live("u", "/").unwrap());
        assert!(b.permission("u", "/").is_none());
        let g2 = b.permission_generation();
        assert_ne!(g2, g1);
        b.set_permissions_live("u", "/", [".*"; 3]).unwrap();
        b.delete_user_live("u").unwrap();
        assert_ne!(b.permission_generation(), g2);
        assert!(b.permission("u", "/").is_none());
    }
}
