//! A vhost's policies and operator policies, and their application to its queues and
//! exchanges: at declaration, and to every existing one when a policy is set or cleared.
//!
//! Locking: `policy_change` serialises changes (set, then apply to everything), so two changes
//! cannot apply out of order. The policy set itself is read under `policies` by declarations
//! (which hold the topology write lock: topology, then policies) and by the application
//! (which copies the queue list under the topology read lock, drops it, then takes each queue's
//! lock). The policies lock is never held while another lock is taken. A queue declared during
//! a change either sees the new set or is in the list the change applies to afterwards.

use std::sync::Arc;

use warren_codec::FieldTable;
use warren_router::Router;

use super::VHost;
use crate::policy::{Applied, Policy, PolicyKind, PolicySet, Target, effective_queue_args};
use crate::queue::{Queue, QueueArgs};

impl VHost {
    /// A copy of the vhost's policies.
    pub fn policies(&self) -> PolicySet {
        self.policies.read().clone()
    }

    /// The policy and operator policy that apply to a queue or exchange of that name.
    pub fn applied_policy(&self, target: Target, name: &str) -> Applied {
        self.policies.read().applied(target, name)
    }

    /// The limits a queue of that name and declared arguments has under the current policies.
    pub(crate) fn queue_limits(
        &self,
        name: &str,
        declared: &QueueArgs,
        arguments: &FieldTable,
    ) -> QueueArgs {
        let policies = self.policies.read();
        if policies.is_empty() {
            return declared.clone();
        }
        let applied = policies.applied(Target::Queue, name);
        drop(policies);
        effective_queue_args(declared, arguments, &applied.definition())
    }

    /// Gives an exchange the alternate exchange its policy names (called with the topology
    /// locked for writing).
    pub(crate) fn apply_exchange_policy(&self, topology: &mut Router<Arc<Queue>>, name: &[u8]) {
        let policies = self.policies.read();
        let alternate = if policies.is_empty() {
            None
        } else {
            let applied = policies.applied(Target::Exchange, &String::from_utf8_lossy(name));
            applied.alternate_exchange().map(bytes::Bytes::from)
        };
        drop(policies);
        topology.set_policy_alternate(name, alternate);
    }

    /// Loads a policy without applying it (recovery, before queues and exchanges exist).
    pub(crate) fn load_policy(&self, kind: PolicyKind, policy: Policy) {
        self.policies.write().put(kind, policy);
    }

    /// Adds or replaces a policy and applies the change to every queue and exchange; true when
    /// it is new.
    pub(crate) fn put_policy(&self, kind: PolicyKind, policy: Policy) -> bool {
        let _change = self.policy_change.lock();
        let created = self.policies.write().put(kind, policy);
        self.apply_policies();
        created
    }

    /// Removes a policy and applies the change; true when it existed.
    pub(crate) fn remove_policy(&self, kind: PolicyKind, name: &str) -> bool {
        let _change = self.policy_change.lock();
        let existed = self.policies.write().remove(kind, name);
        if existed {
            self.apply_policies();
        }
        existed
    }

    /// Recomputes every queue's limits and every exchange's alternate exchange.
    fn apply_policies(&self) {
        let queues: Vec<Arc<Queue>> = {
            let mut topology = self.topology.write();
            let names: Vec<Vec<u8>> = topology
                .exchanges()
                .map(|x| x.name.as_bytes().to_vec())
                .collect();
            for name in names {
                self.apply_exchange_policy(&mut topology, &name);
            }
            topology.queues().cloned().collect()
        };
        for q in queues {
            let limits = self.queue_limits(&q.name.to_string(), &q.args, &q.options.arguments);
            q.set_limits(&limits);
        }
    }
}
