//! The open connections, as the management API lists and closes them.
//!
//! A connection registers once its handshake is done and is removed when its task ends (the
//! [`Registration`] guard). The map is touched twice per connection and on API requests, never
//! per frame. Closing posts a reason to the connection's own task, which sends
//! `connection.close` 320 like a shutdown does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use warren_mgmt::{ChannelStats, ConnectionInfo, Connections, Lifecycle};

/// The open channels of a connection: numbers in order, with their counters.
type ChannelList = Arc<Mutex<Vec<(u16, Arc<ChannelStats>)>>>;

/// Every open connection, by id.
#[derive(Debug, Default)]
pub struct ConnectionRegistry {
    open: Mutex<HashMap<u64, Entry>>,
    /// Opened and closed totals (RabbitMQ's `*_opened_total`, `*_closed_total`): added when a
    /// connection registers or unregisters and when its channel list changes, never per frame.
    connections_opened: AtomicU64,
    connections_closed: AtomicU64,
    channels_opened: AtomicU64,
    channels_closed: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    info: ConnectionInfo,
    close: mpsc::UnboundedSender<String>,
    /// The connection's open channels and their counters, written by the connection itself
    /// (its own lock, so opening a channel never takes the registry's).
    channels: ChannelList,
}

/// Keeps a connection listed while alive; dropping it unlists the connection.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<ConnectionRegistry>,
    id: u64,
    channels: ChannelList,
}

impl Registration {
    /// Records the connection's open channels (after a channel opens or closes).
    pub fn set_channels(&self, open: impl Iterator<Item = (u16, Arc<ChannelStats>)>) {
        let mut channels = self.channels.lock();
        // A channel is the same one while its counters are (a number reused by a new channel
        // gets new counters).
        let old: Vec<Arc<ChannelStats>> = channels.drain(..).map(|c| c.1).collect();
        channels.extend(open);
        channels.sort_unstable_by_key(|c| c.0);
        let kept = channels
            .iter()
            .filter(|c| old.iter().any(|o| Arc::ptr_eq(o, &c.1)))
            .count();
        let r = &self.registry;
        r.channels_opened
            .fetch_add((channels.len() - kept) as u64, Ordering::Relaxed);
        r.channels_closed
            .fetch_add((old.len() - kept) as u64, Ordering::Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let r = &self.registry;
        let channels = self.channels.lock().len() as u64;
        r.channels_closed.fetch_add(channels, Ordering::Relaxed);
        r.connections_closed.fetch_add(1, Ordering::Relaxed);
        r.open.lock().remove(&self.id);
    }
}

impl ConnectionRegistry {
    /// Lists a connection; the receiver yields the reason when the API asks it to close.
    pub fn register(
        self: &Arc<Self>,
        info: ConnectionInfo,
    ) -> (Registration, mpsc::UnboundedReceiver<String>) {
        let (close, requests) = mpsc::unbounded_channel();
        let id = info.id;
        let channels = Arc::new(Mutex::new(Vec::new()));
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(
            id,
            Entry {
                info,
                close,
                channels: channels.clone(),
            },
        );
        (
            Registration {
                registry: self.clone(),
                id,
                channels,
            },
            requests,
        )
    }
}

impl Connections for ConnectionRegistry {
    fn list(&self) -> Vec<ConnectionInfo> {
        self.open
            .lock()
            .values()
            .map(|e| {
                let channels = e.channels.lock();
                ConnectionInfo {
                    channels: channels.iter().map(|c| c.0).collect(),
                    channel_stats: channels.iter().map(|c| c.1.clone()).collect(),
                    ..e.info.clone()
                }
            })
            .collect()
    }

    fn close(&self, name: &str, reason: &str) -> bool {
        self.open
            .lock()
            .values()
            .find(|e| e.info.name == name)
            .is_some_and(|e| e.close.send(reason.to_string()).is_ok())
    }

    fn lifecycle(&self) -> Option<Lifecycle> {
        Some(Lifecycle {
            connections_opened: self.connections_opened.load(Ordering::Relaxed),
            connections_closed: self.connections_closed.load(Ordering::Relaxed),
            channels_opened: self.channels_opened.load(Ordering::Relaxed),
            channels_closed: self.channels_closed.load(Ordering::Relaxed),
        })
    }
}
