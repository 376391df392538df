//! Counting connections per vhost and per user, and channels per user, so `max-connections`
//! and `max-channels` can refuse the next one (RabbitMQ's connection and channel tracking).
//!
//! A connection holds a [`ConnectionTicket`] from `connection.open` to its end; the ticket
//! counts the connection's channels too, and dropping it uncounts everything. One mutex guards
//! the counts; it is taken on connection open and close and on channel open and close, never
//! per frame. Lock order: the broker's users lock (read, for the limits), then this mutex.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::BrokerError;
use crate::limits::over;

#[derive(Debug, Default)]
struct Counts {
    vhost_connections: HashMap<String, u64>,
    user_connections: HashMap<String, u64>,
    user_channels: HashMap<String, u64>,
}

fn dec(map: &mut HashMap<String, u64>, key: &str, n: u64) {
    if let Some(c) = map.get_mut(key) {
        *c = c.saturating_sub(n);
        if *c == 0 {
            map.remove(key);
        }
    }
}

/// The counts of one broker.
#[derive(Debug, Default)]
pub(crate) struct Tracking {
    counts: Mutex<Counts>,
}

/// Limits read at the moment of a check.
pub(crate) struct ConnectionLimits {
    pub vhost_max: Option<u64>,
    pub user_max: Option<u64>,
}

impl Tracking {
    /// Counts a new connection of `user` to `vhost`, or refuses it with RabbitMQ's 530 (the
    /// vhost's limit is checked first, as `rabbit_reader` does).
    pub(crate) fn open_connection(
        self: &Arc<Self>,
        user: &str,
        vhost: &str,
        limits: ConnectionLimits,
    ) -> Result<ConnectionTicket, BrokerError> {
        let mut counts = self.counts.lock();
        let in_vhost = counts.vhost_connections.get(vhost).copied().unwrap_or(0);
        if over(limits.vhost_max, in_vhost) {
            return Err(BrokerError::not_allowed(format!(
                "access to vhost '{vhost}' refused for user '{user}': connection limit ({}) is reached",
                limits.vhost_max.unwrap_or(0)
            )));
        }
        let of_user = counts.user_connections.get(user).copied().unwrap_or(0);
        if over(limits.user_max, of_user) {
            return Err(BrokerError::not_allowed(format!(
                "connection refused for user '{user}': user connection limit ({}) is reached",
                limits.user_max.unwrap_or(0)
            )));
        }
        *counts
            .vhost_connections
            .entry(vhost.to_string())
            .or_default() += 1;
        *counts.user_connections.entry(user.to_string()).or_default() += 1;
        Ok(ConnectionTicket {
            tracking: self.clone(),
            user: user.to_string(),
            vhost: vhost.to_string(),
            channels: 0,
        })
    }

    /// Connections counted on `vhost`.
    pub(crate) fn vhost_connections(&self, vhost: &str) -> u64 {
        let counts = self.counts.lock();
        counts.vhost_connections.get(vhost).copied().unwrap_or(0)
    }

    /// Connections and channels counted for `user`.
    pub(crate) fn user_counts(&self, user: &str) -> (u64, u64) {
        let counts = self.counts.lock();
        (
            counts.user_connections.get(user).copied().unwrap_or(0),
            counts.user_channels.get(user).copied().unwrap_or(0),
        )
    }
}

/// A counted connection (from `Broker::open_connection`); dropping it uncounts the connection
/// and its channels.
#[derive(Debug)]
pub struct ConnectionTicket {
    tracking: Arc<Tracking>,
    user: String,
    vhost: String,
    channels: u64,
}

impl ConnectionTicket {
    /// The user the connection authenticated as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Counts one more channel of the user, or refuses it with RabbitMQ's 530 text when the
    /// user's `max-channels` (passed in, read by the broker) is reached.
    pub(crate) fn open_channel_within(&mut self, max: Option<u64>) -> Result<(), BrokerError> {
        let mut counts = self.tracking.counts.lock();
        let of_user = counts.user_channels.get(&self.user).copied().unwrap_or(0);
        if over(max, of_user) {
            return Err(BrokerError::not_allowed(format!(
                "number of channels opened for user '{}' has reached the maximum allowed user limit of ({})",
                self.user,
                max.unwrap_or(0)
            )));
        }
        *counts.user_channels.entry(self.user.clone()).or_default() += 1;
        self.channels += 1;
        Ok(())
    }

    /// After channels closed: `open` of the channels counted through this ticket remain (a
    /// connection calls it wherever it drops channels, as it updates its listing).
    pub fn channels_closed(&mut self, open: usize) {
        let open = open as u64;
        if open < self.channels {
            let mut counts = self.tracking.counts.lock();
            dec(&mut counts.user_channels, &self.user, self.channels - open);
            self.channels = open;
        }
    }
}

impl Drop for ConnectionTicket {
    fn drop(&mut self) {
        let mut counts = self.tracking.counts.lock();
        dec(&mut counts.vhost_connections, &self.vhost, 1);
        dec(&mut counts.user_connections, &self.user, 1);
        dec(&mut counts.user_channels, &self.user, self.channels);
    }
}
