//! The broker: virtual hosts, users, the store under them, and recovery at startup.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::RwLock;
use warren_codec::ShortStr;
use warren_router::{ExchangeDef, ExchangeKind};
use warren_store::{MemoryStore, MessageId, StoreError};

use crate::VHost;
use crate::accounts::{Admin, FirstBoot, User};
use crate::persist::{self, SharedStore};
use crate::timers::Timers;

mod limits_live;
mod live;
mod loading;
mod parameters;

pub use live::{password_hash_from_rabbitmq, rabbitmq_password_hash};
pub use loading::Loader;
pub use parameters::{ParameterError, policy_kind};

/// What recovery found, for the startup log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Durable exchanges rebuilt.
    pub exchanges: usize,
    /// Durable queues rebuilt.
    pub queues: usize,
    /// Durable bindings rebuilt.
    pub bindings: usize,
    /// Persistent messages in the durable queues (loaded, or still loading).
    pub messages: usize,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.timers.stop();
    }
}

/// All virtual hosts and users of one broker.
pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    users: RwLock<HashMap<String, User>>,
    loopback_users: RwLock<HashSet<String>>,
    store: SharedStore,
    next_message_id: Arc<AtomicU64>,
    timers: Arc<Timers>,
    /// Where queues spill packed backlogs past their memory budget; none: they never spill.
    spill: Option<Arc<crate::spill::SpillArea>>,
    /// Where durable queues ask the loader for their stored messages (after a restart, or once
    /// a deep backlog was left in the store), and the window of them each keeps in memory.
    load_requests: Arc<crate::queue::LoadRequests>,
    load_window: crate::queue::Window,
    /// False once the broker is stopping: queues keep their messages rather than hand them to
    /// consumers whose connections are closing (see [`Broker::stop_delivering`]).
    delivering: Arc<AtomicBool>,
    /// Connections per vhost and user, channels per user, for the limits.
    tracking: Arc<crate::tracking::Tracking>,
    /// Bumped whenever a topic permission may have changed: connections compare it once per
    /// batch of input and recompile their [`crate::TopicAccess`] only when it moved.
    topic_generation: AtomicU64,
    /// Bumped after every change of any user's permissions (set, clear, user or vhost
    /// deleted): channels cache their decisions and re-read permissions when it moves.
    permission_generation: AtomicU64,
    /// Global runtime parameters (RabbitMQ's `/api/global-parameters`), by name.
    globals: RwLock<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Queues declared, created and deleted, in every vhost.
    queue_totals: Arc<crate::QueueTotals>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// A broker that keeps nothing across restarts (an in-memory store), with vhost `/` and
    /// user `guest`/`guest` (loopback only) allowed on it, as RabbitMQ starts.
    pub fn new() -> Self {
        let broker = Self::with_store(Arc::new(MemoryStore::new()));
        let first = FirstBoot::default();
        broker.add_vhost(&first.vhost);
        let mut guest = User::new(&first.user, &first.password, vec!["administrator".into()]);
        guest.vhosts.set(&first.vhost, crate::Permission::full());
        broker.add_user(guest);
        broker.set_loopback_users([first.user]);
        broker
    }

    /// A broker over `store`, with no vhost and no user until [`Broker::recover`] loads them.
    pub fn with_store(store: SharedStore) -> Self {
        Broker {
            vhosts: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            loopback_users: RwLock::new(HashSet::new()),
            next_message_id: Arc::new(AtomicU64::new(store.next_message_id().unwrap_or(1))),
            timers: Arc::new(Timers::new()),
            spill: None,
            load_requests: Arc::default(),
            load_window: crate::queue::Window::default(),
            delivering: Arc::new(AtomicBool::new(true)),
            tracking: Arc::default(),
            topic_generation: AtomicU64::new(0),
            permission_generation: AtomicU64::new(0),
            globals: RwLock::default(),
            queue_totals: Arc::default(),
            store,
        }
    }

    /// Stops every queue from handing messages to consumers, for a clean shutdown: the
    /// connections close next, and what their channels requeue must stay in its queue (and in
    /// the store) rather than go to a no-ack consumer whose connection is closing too, which
    /// would never receive it. Found by the client-level model test (issue 11).
    pub fn stop_delivering(&self) {
        self.delivering.store(false, Ordering::Release);
    }

    /// Queues declared, created and deleted since the broker started.
    pub fn queue_totals(&self) -> crate::QueueTotalsSnapshot {
        self.queue_totals.get()
    }

    /// The store under the broker.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// A fresh id for a message about to be stored.
    pub fn next_message_id(&self) -> MessageId {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Lets queues spill to `area` (set before vhosts are added: each vhost takes it then).
    pub fn set_spill(&mut self, area: Arc<crate::spill::SpillArea>) {
        self.spill = Some(area);
    }

    /// Sets the window of stored messages a durable queue keeps in memory, after a restart and
    /// once its backlog is deep (set before vhosts are added; tests use small ones).
    pub fn set_load_window(&mut self, window: crate::queue::Window) {
        self.load_window = window;
    }

    /// The spill area, if queues spill (tests slow its writer through it).
    pub fn spill_area(&self) -> Option<&Arc<crate::spill::SpillArea>> {
        self.spill.as_ref()
    }

    /// Messages lost because their spilled segment could not be written or read back, since
    /// the broker started.
    pub fn spill_lost_messages(&self) -> u64 {
        crate::queue::segments::LOST_MESSAGES.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds a vhost (no-op if it exists) and returns it.
    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                VHost::new(
                    name,
                    self.store.clone(),
                    self.next_message_id.clone(),
                    self.timers.clone(),
                    self.delivering.clone(),
                    self.queue_totals.clone(),
                )
                .with_spill(self.spill.clone())
                .with_store_backlog(self.load_requests.clone(), self.load_window)
            })
            .clone()
    }

    /// The vhost of that name.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Adds or replaces a user (in memory: [`crate::Admin`] changes the store).
    pub fn add_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), user);
    }

    /// The users who may log in only from a loopback address (RabbitMQ's `loopback_users`).
    pub fn set_loopback_users(&self, names: impl IntoIterator<Item = String>) {
        *self.loopback_users.write() = names.into_iter().collect();
    }

    /// Checks a login; `loopback` says whether the peer is on a loopback address.
    pub fn authenticate(&self, name: &str, password: &str, loopback: bool) -> Option<User> {
        let users = self.users.read();
        let user = users.get(name)?;
        let allowed = loopback || !self.loopback_users.read().contains(name);
        (allowed && user.password.verify(password)).then(|| user.clone())
    }

    /// A login without a password, for a user named by means outside AMQP (SASL EXTERNAL: the
    /// TLS client certificate); `None` when there is no such user or it may log in only from
    /// loopback and `loopback` is false.
    pub fn user_for_external_login(&self, name: &str, loopback: bool) -> Option<User> {
        let users = self.users.read();
        let user = users.get(name)?;
        (loopback || !self.loopback_users.read().contains(name)).then(|| user.clone())
    }

    /// [`Broker::recover_with`] RabbitMQ's first-boot defaults (`/`, `guest`/`guest`).
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        self.recover_with(&FirstBoot::default())
    }

    /// Recovers everything as [`Broker::recover_definitions`] does, then loads every stored
    /// message before returning (tests, and tools that want a loaded broker).
    pub fn recover_with(&self, first_boot: &FirstBoot) -> Result<Recovered, StoreError> {
        let (found, loader) = self.recover_definitions(first_boot)?;
        loader.run()?;
        Ok(found)
    }

    /// Loads vhosts and users (seeding `first_boot` into a store that has neither), rebuilds
    /// durable exchanges, queues and bindings, and leaves each durable queue *loading*: it
    /// counts its stored messages and takes them, in order, from the returned [`Loader`]
    /// (messages delivered before the restart come back redelivered). The broker can serve
    /// clients at once; see `queue::loading` for how a loading queue answers.
    pub fn recover_definitions(
        &self,
        first_boot: &FirstBoot,
    ) -> Result<(Recovered, Loader), StoreError> {
        let started = Instant::now();
        let defs = self.store.load_definitions()?;
        let mut found = Recovered::default();
        let text = |b: &bytes::Bytes| String::from_utf8_lossy(b).into_owned();
        let mut queues = Vec::new();
        let accounts = Admin::with_definitions(self.store.as_ref(), &defs, first_boot);
        let accounts = accounts.map_err(|e| match e {
            crate::AdminError::Store(e) => e,
            other => StoreError::Corrupt(format!("users and vhosts: {other}")),
        })?;
        for vhost in accounts.vhosts() {
            self.add_vhost(vhost);
        }
        for user in accounts.users() {
            self.add_user(user.clone());
        }
        for (vhost, limits) in &defs.vhost_limits {
            let limits = crate::VhostLimits::decode(&text(limits)).ok_or_else(|| {
                StoreError::Corrupt(format!("limits of vhost {}: damaged", text(vhost)))
            })?;
            if let Some(vh) = self.vhost(&text(vhost)) {
                vh.set_limits(Some(limits));
            }
        }
        self.recover_parameters(&defs)?;
        let corrupt =
            |what: &str, e: crate::BrokerError| StoreError::Corrupt(format!("{what}: {e}"));
        for (vhost, x) in &defs.exchanges {
            let vh = self.add_vhost(&text(vhost));
            let kind =
                ExchangeKind::parse(&x.kind).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let def = ExchangeDef {
                name: ShortStr::from(x.name.clone()),
                kind,
                durable: true,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: persist::decode_table(&x.arguments)?,
            };
            vh.recover_exchange(def)
                .map_err(|e| corrupt("exchange", e))?;
            found.exchanges += 1;
        }
        for (vhost, q) in &defs.queues {
            let vh = self.add_vhost(&text(vhost));
            let arguments = persist::decode_table(&q.arguments)?;
            let queue = vh
                .recover_queue(ShortStr::from(q.name.clone()), q.auto_delete, arguments)
                .map_err(|e| corrupt("queue", e))?;
            // Counted now (from the store's open scan), loaded later by the `Loader`.
            let extent = self.store.queue_extent(vhost, &q.name)?;
            queue.begin_loading(extent);
            found.messages += extent.count as usize;
            queues.push(queue);
            found.queues += 1;
        }
        for (vhost, b) in &defs.bindings {
            let vh = self.add_vhost(&text(vhost));
            vh.recover_binding(b).map_err(|e| corrupt("binding", e))?;
            found.bindings += 1;
        }
        tracing::info!(
            exchanges = found.exchanges,
            queues = found.queues,
            bindings = found.bindings,
            messages = found.messages,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recovered definitions; messages load in the background"
        );
        // Bindings are back, so the dead letters of messages that expired while the broker
        // was down can be routed as the loader finds them.
        Ok((
            found,
            Loader::new(queues, self.load_requests.clone(), self.load_window),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_check_the_hash_loopback_users_and_vhost_access() {
        let broker = Broker::new();
        let mut bob = User::new("bob", "pw", Vec::new());
        bob.vhosts.set("/", crate::Permission::full());
        broker.add_user(bob);
        assert!(broker.authenticate("guest", "guest", true).is_some());
        // guest is a loopback user, bob is not.
        assert!(broker.authenticate("guest", "guest", false).is_none());
        assert!(broker.authenticate("bob", "pw", false).is_some());
        assert!(broker.authenticate("bob", "wrong", true).is_none());
        assert!(broker.authenticate("nobody", "pw", true).is_none());
        let bob = broker
            .authenticate("bob", "pw", true)
            .unwrap_or_else(|| panic!("bob"));
        assert!(bob.vhosts.contains("/"));
        assert!(!bob.vhosts.contains("other"));
    }

    #[test]
    fn recovery_seeds_a_new_store_once_and_loads_its_users_after() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let first = FirstBoot {
            vhost: "/".into(),
            user: "admin".into(),
            password: "s3cret".into(),
        };
        let broker = Broker::with_store(store.clone());
        broker
            .recover_with(&first)
            .unwrap_or_else(|e| panic!("{e}"));
        let admin = broker.authenticate("admin", "s3cret", true);
        assert!(admin.is_some_and(|u| u.vhosts.contains("/")));
        assert!(broker.authenticate("guest", "guest", true).is_none());
        // A later start with other defaults keeps what the store holds.
        let again = Broker::with_store(store);
        again
            .recover_with(&FirstBoot::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.authenticate("admin", "s3cret", true).is_some());
        assert!(again.authenticate("guest", "guest", true).is_none());
        assert!(again.vhost("/").is_some());
    }
}
