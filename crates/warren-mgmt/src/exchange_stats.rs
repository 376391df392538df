//! Exchange `message_stats` (`publish_in`, `publish_out`) from the channels' per-exchange
//! counters, as RabbitMQ's management plugin aggregates them: `publish_in` counts every
//! publish into the exchange a client named, routed or not; `publish_out` counts one per queue
//! each of those publishes reached (RabbitMQ's `queue_exchange_stats` summed by exchange), so
//! a fanout to three queues counts 1 in and 3 out, and an exchange reached only through an
//! exchange-to-exchange binding counts nothing.
//!
//! Owned by the sampler ([`crate::stats::Statistics`]) under its lock. Counts of closed
//! channels and of the API's own publishes are kept per exchange ("retired"); when an
//! exchange is deleted its counts so far become a baseline, so a new exchange of the same name
//! starts from zero as in RabbitMQ. Memory: one entry per exchange that was published into
//! and per open channel's exchange; a deleted exchange's entries go once no open channel has
//! counts for it.

use std::collections::{HashMap, HashSet};

use crate::stats::Window;

/// `(vhost, exchange)`.
pub type Key = (String, String);

/// The last counts read from one channel: its vhost and `(exchange, [in, out])` pairs.
pub type ChannelCounts = (String, Vec<(String, [u64; 2])>);

/// The sampler's exchange windows and what it needs to keep them monotonic.
#[derive(Debug, Default)]
pub struct ExchangeWindows {
    /// Shown counts and rates by vhost, then exchange name: `[publish_in, publish_out]`.
    by_vhost: HashMap<String, HashMap<String, Window<2>>>,
    /// By (connection id, channel number).
    channels: HashMap<(u64, u16), ChannelCounts>,
    retired: HashMap<Key, [u64; 2]>,
    baseline: HashMap<Key, [u64; 2]>,
    /// `publish_out` of exchanges forgotten after their deletion.
    removed_out: u64,
    /// Every `publish_out` ever counted, deleted exchanges included.
    routed: u64,
}

fn add(dst: &mut [u64; 2], src: &[u64; 2]) {
    dst[0] += src[0];
    dst[1] += src[1];
}

/// True when `new` can be the same channel as `old` a sample later (nothing went down).
fn continues(old: &[(String, [u64; 2])], new: &[(String, [u64; 2])]) -> bool {
    old.iter().all(|(x, o)| {
        new.iter()
            .any(|(y, n)| x == y && n[0] >= o[0] && n[1] >= o[1])
    })
}

impl ExchangeWindows {
    /// The window of one exchange (`None`: nothing was ever published into it).
    pub fn get(&self, vhost: &str, exchange: &str) -> Option<&Window<2>> {
        self.by_vhost.get(vhost)?.get(exchange)
    }

    /// Every exchange's window, with its (vhost, name).
    pub fn all(&self) -> impl Iterator<Item = (Key, &Window<2>)> {
        self.by_vhost
            .iter()
            .flat_map(|(v, m)| m.iter().map(move |(x, w)| ((v.clone(), x.clone()), w)))
    }

    /// Messages routed to queues, one per queue, since the broker started (as of this sample):
    /// RabbitMQ's `rabbitmq_global_messages_routed_total`.
    pub fn routed_total(&self) -> u64 {
        self.routed
    }

    /// Takes a sample `secs` after the last: `live` the open channels' counts, `api` what the
    /// API published since the last sample, `existing` every exchange that exists now.
    pub fn sample(
        &mut self,
        live: Vec<((u64, u16), ChannelCounts)>,
        api: HashMap<Key, [u64; 2]>,
        existing: &HashSet<Key>,
        secs: f64,
    ) {
        for (k, v) in api {
            add(self.retired.entry(k).or_default(), &v);
        }
        let mut old_channels = std::mem::take(&mut self.channels);
        let mut live_sum: HashMap<Key, [u64; 2]> = HashMap::new();
        for (ch, (vhost, counts)) in live {
            if let Some((ov, old)) = old_channels.remove(&ch)
                && !continues(&old, &counts)
            {
                // Closed and opened again under the same number since the last sample.
                self.retire(&ov, old);
            }
            for (x, v) in &counts {
                add(live_sum.entry((vhost.clone(), x.clone())).or_default(), v);
            }
            self.channels.insert(ch, (vhost, counts));
        }
        for (_, (vhost, old)) in old_channels {
            self.retire(&vhost, old);
        }
        let mut totals = live_sum.clone();
        for (k, v) in &self.retired {
            add(totals.entry(k.clone()).or_default(), v);
        }
        self.routed = self.removed_out + totals.values().map(|t| t[1]).sum::<u64>();
        let mut old_windows = std::mem::take(&mut self.by_vhost);
        for (key, total) in totals {
            if !existing.contains(&key) {
                if live_sum.contains_key(&key) {
                    self.baseline.insert(key, total);
                } else {
                    self.retired.remove(&key);
                    self.baseline.remove(&key);
                    self.removed_out += total[1];
                }
                continue;
            }
            let base = self.baseline.get(&key).copied().unwrap_or_default();
            let shown = [
                total[0].saturating_sub(base[0]),
                total[1].saturating_sub(base[1]),
            ];
            let (vhost, x) = key;
            let w = match old_windows.get_mut(&vhost).and_then(|m| m.remove(&x)) {
                Some(mut w) if w.last[0] <= shown[0] && w.last[1] <= shown[1] => {
                    w.update(shown, secs);
                    w
                }
                _ => Window::first(shown),
            };
            self.by_vhost.entry(vhost).or_default().insert(x, w);
        }
    }

    fn retire(&mut self, vhost: &str, counts: Vec<(String, [u64; 2])>) {
        for (x, v) in counts {
            add(self.retired.entry((vhost.to_string(), x)).or_default(), &v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(x: &str) -> Key {
        ("/".into(), x.into())
    }

    fn ch(n: u16, counts: &[(&str, [u64; 2])]) -> ((u64, u16), ChannelCounts) {
        (
            (1, n),
            (
                "/".into(),
                counts.iter().map(|(x, v)| (x.to_string(), *v)).collect(),
            ),
        )
    }

    fn shown(w: &ExchangeWindows, x: &str) -> Option<[u64; 2]> {
        w.get("/", x).map(|w| w.last)
    }

    #[test]
    fn counts_survive_channel_close_and_reset_on_exchange_deletion() {
        let mut w = ExchangeWindows::default();
        let exists: HashSet<Key> = [key("x")].into();
        w.sample(vec![ch(1, &[("x", [2, 6])])], HashMap::new(), &exists, 0.0);
        assert_eq!(shown(&w, "x"), Some([2, 6]));
        // More publishes, then an API publish: rates over the 2 s.
        w.sample(
            vec![ch(1, &[("x", [4, 12])])],
            [(key("x"), [1, 3])].into(),
            &exists,
            2.0,
        );
        assert_eq!(shown(&w, "x"), Some([5, 15]));
        assert_eq!(w.get("/", "x").map(|w| w.rate), Some([1.5, 4.5]));
        // The channel closed: its counts stay.
        w.sample(vec![], HashMap::new(), &exists, 1.0);
        assert_eq!(shown(&w, "x"), Some([5, 15]));
        // Reopened under the same number, counting from zero.
        w.sample(vec![ch(1, &[("x", [1, 1])])], HashMap::new(), &exists, 1.0);
        assert_eq!(shown(&w, "x"), Some([6, 16]));
        // Deleted while the channel still has counts, then declared again: starts at 0.
        w.sample(
            vec![ch(1, &[("x", [1, 1])])],
            HashMap::new(),
            &HashSet::new(),
            1.0,
        );
        assert_eq!(shown(&w, "x"), None);
        w.sample(vec![ch(1, &[("x", [2, 2])])], HashMap::new(), &exists, 1.0);
        assert_eq!(shown(&w, "x"), Some([1, 1]));
        // Deleted with no channel left counting it: everything about it goes.
        w.sample(vec![], HashMap::new(), &HashSet::new(), 1.0);
        w.sample(vec![], HashMap::new(), &HashSet::new(), 1.0);
        assert!(w.retired.is_empty() && w.baseline.is_empty() && w.by_vhost.is_empty());
        // The node's routed total never goes down.
        assert_eq!(w.routed_total(), 17);
    }
}
