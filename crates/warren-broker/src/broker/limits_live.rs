//! Vhost limits, user limits and topic permissions changed while the broker runs, and the checks
//! connections make against them (connection and channel counts, topic access).
//!
//! As in `live.rs`, the store is written first and memory changed only once the store has it,
//! under the users write lock (user limits, topic permissions) or the vhost's limits lock.
//! Limits apply to the next connection, channel or queue: nothing open is closed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Broker;
use crate::accounts::AdminError;
use crate::limits::{UserLimits, VhostLimits};
use crate::topic_permissions::{self, TopicAccess, TopicPermission};
use crate::tracking::{ConnectionLimits, ConnectionTicket};
use crate::{BrokerError, VHost};

impl Broker {
    fn vhost_or_err(&self, vhost: &str) -> Result<Arc<VHost>, AdminError> {
        self.vhost(vhost)
            .ok_or_else(|| AdminError::NoSuchVhost(vhost.into()))
    }

    /// Replaces a vhost's limits parameter (`None` removes it, as a definitions import or a
    /// vhost deletion may).
    pub fn set_vhost_limits_live(
        &self,
        vhost: &str,
        limits: Option<VhostLimits>,
    ) -> Result<(), AdminError> {
        let vh = self.vhost_or_err(vhost)?;
        match &limits {
            Some(l) => self
                .store
                .put_vhost_limits(vhost.as_bytes(), l.encode().as_bytes())?,
            None => self.store.delete_vhost_limits(vhost.as_bytes())?,
        }
        vh.set_limits(limits);
        Ok(())
    }

    /// Sets one vhost limit (RabbitMQ's `update_limit`: the parameter's other limits stay).
    pub fn set_vhost_limit_live(
        &self,
        vhost: &str,
        name: &str,
        value: i64,
    ) -> Result<(), AdminError> {
        let vh = self.vhost_or_err(vhost)?;
        let mut limits = vh.limits().unwrap_or_default();
        limits.set(name, value)?;
        self.set_vhost_limits_live(vhost, Some(limits))
    }

    /// Clears one vhost limit; the parameter stays, possibly empty, as RabbitMQ's `clear_limit`
    /// leaves it.
    pub fn clear_vhost_limit_live(&self, vhost: &str, name: &str) -> Result<(), AdminError> {
        let vh = self.vhost_or_err(vhost)?;
        let mut limits = vh.limits().unwrap_or_default();
        limits.clear(name);
        self.set_vhost_limits_live(vhost, Some(limits))
    }

    /// Replaces a user's limits.
    pub fn set_user_limits_live(&self, user: &str, limits: UserLimits) -> Result<(), AdminError> {
        self.change_user(user, |u| {
            let changed = u.limits != limits;
            u.limits = limits;
            changed
        })
        .map(drop)
    }

    /// Sets one user limit.
    pub fn set_user_limit_live(
        &self,
        user: &str,
        name: &str,
        value: i64,
    ) -> Result<(), AdminError> {
        let mut limits = self
            .user(user)
            .ok_or_else(|| AdminError::NoSuchUser(user.into()))?
            .limits;
        limits.set(name, value)?;
        self.set_user_limits_live(user, limits)
    }

    /// Clears one user limit.
    pub fn clear_user_limit_live(&self, user: &str, name: &str) -> Result<(), AdminError> {
        self.change_user(user, |u| u.limits.clear(name)).map(drop)
    }

    /// Sets `user`'s topic permission for `p.vhost` and `p.exchange`; true when the user had no
    /// topic permission in that vhost before (the API answers 201 then, 204 otherwise).
    pub fn set_topic_permission_live(
        &self,
        user: &str,
        p: TopicPermission,
    ) -> Result<bool, AdminError> {
        topic_permissions::validate(&p.write).map_err(AdminError::InvalidRegex)?;
        topic_permissions::validate(&p.read).map_err(AdminError::InvalidRegex)?;
        self.vhost_or_err(&p.vhost)?;
        let vhost = p.vhost.clone();
        let mut first = false;
        self.change_user(user, |u| {
            first = !u.topic_permissions.iter().any(|t| t.vhost == vhost);
            u.set_topic_permission(p);
            true
        })?;
        self.topic_changed();
        Ok(first)
    }

    /// Removes every topic permission of `user` in `vhost`; true when there was one.
    pub fn clear_topic_permissions_live(
        &self,
        user: &str,
        vhost: &str,
    ) -> Result<bool, AdminError> {
        let did = self.change_user(user, |u| u.clear_topic_permissions(vhost))?;
        self.topic_changed();
        Ok(did)
    }

    pub(super) fn topic_changed(&self) {
        self.topic_generation.fetch_add(1, Ordering::Release);
    }

    /// A number that changes whenever a topic permission may have: compare it to the one read
    /// with the last [`Broker::topic_access`] to know whether to ask again.
    pub fn topic_generation(&self) -> u64 {
        self.topic_generation.load(Ordering::Acquire)
    }

    /// `user`'s topic permissions in `vhost`, compiled (none for a user deleted meanwhile).
    pub fn topic_access(&self, user: &str, vhost: &str) -> Arc<TopicAccess> {
        let users = self.users.read();
        let perms = users.get(user).map(|u| u.topic_permissions.as_slice());
        Arc::new(TopicAccess::compile(user, vhost, perms.unwrap_or_default()))
    }

    /// Counts a connection of `user` to `vhost` at `connection.open`, or refuses it with
    /// RabbitMQ's 530 when the vhost's or the user's `max-connections` is reached.
    pub fn open_connection(
        &self,
        user: &str,
        vhost: &VHost,
    ) -> Result<ConnectionTicket, BrokerError> {
        let vhost_max = vhost.limits().and_then(|l| l.max_connections());
        let users = self.users.read();
        let user_max = users.get(user).and_then(|u| u.limits.max_connections());
        self.tracking.open_connection(
            user,
            &vhost.name,
            ConnectionLimits {
                vhost_max,
                user_max,
            },
        )
    }

    /// Counts a channel at `channel.open`, or refuses it with RabbitMQ's 530 when the user's
    /// `max-channels` is reached.
    pub fn open_channel(&self, ticket: &mut ConnectionTicket) -> Result<(), BrokerError> {
        let users = self.users.read();
        let max = users
            .get(ticket.user())
            .and_then(|u| u.limits.max_channels());
        ticket.open_channel_within(max)
    }

    /// Connections open on `vhost`.
    pub fn vhost_connection_count(&self, vhost: &str) -> u64 {
        self.tracking.vhost_connections(vhost)
    }

    /// Connections and channels `user` has open.
    pub fn user_connection_counts(&self, user: &str) -> (u64, u64) {
        self.tracking.user_counts(user)
    }
}
