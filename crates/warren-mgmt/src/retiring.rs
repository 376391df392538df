//! A node-wide total of one per-channel counter that does not go down when channels close:
//! the sampler records each live channel's value, and a channel gone since the last sample
//! (or reopened under the same number, its count lower) leaves its last value in `retired`.
//! As with the other totals, what a channel counted after the last sample before it closed
//! is lost. Used for `rabbitmq_global_messages_received_confirm_total`.

use std::collections::HashMap;

/// The running total of one channel counter, by (connection id, channel number).
#[derive(Debug, Default)]
pub struct RetiringSum {
    last: HashMap<(u64, u16), u64>,
    retired: u64,
}

impl RetiringSum {
    /// Takes a sample: the value of every live channel; channels not listed are retired.
    pub fn sample(&mut self, live: impl IntoIterator<Item = ((u64, u16), u64)>) {
        let mut now = HashMap::with_capacity(self.last.len());
        for (key, v) in live {
            if let Some(old) = self.last.remove(&key)
                && old > v
            {
                // Closed and opened again under the same number.
                self.retired += old;
            }
            now.insert(key, v);
        }
        self.retired += self.last.values().sum::<u64>();
        self.last = now;
    }

    /// Retired counts plus the live channels' values at the last sample.
    pub fn total(&self) -> u64 {
        self.retired + self.last.values().sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_keeps_closed_and_reopened_channels() {
        let mut s = RetiringSum::default();
        s.sample([((1, 1), 5), ((1, 2), 3)]);
        assert_eq!(s.total(), 8);
        // Channel 2 closed; channel 1 counted 2 more.
        s.sample([((1, 1), 7)]);
        assert_eq!(s.total(), 10);
        // Channel 1 reopened: its new count starts from 0.
        s.sample([((1, 1), 1)]);
        assert_eq!(s.total(), 11);
        s.sample([]);
        assert_eq!(s.total(), 11);
    }
}
