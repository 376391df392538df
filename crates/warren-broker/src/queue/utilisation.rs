//! Consumer utilisation (RabbitMQ's `consumer_utilisation`, also shown as `consumer_capacity`):
//! the share of time a queue could hand a message to a consumer at once, as a moving average
//! with a one-second half-life.
//!
//! The queue is *active* from the moment a consumer attaches or some consumer has credit again,
//! and *inactive* from the moment a delivery attempt finds no consumer with credit (prefetch
//! full, channel flow off, connection saturated, or no consumer at all). Only those transitions
//! read the clock, never a delivered message; an idle queue whose consumers have credit stays
//! active, as in RabbitMQ (`rabbit_queue_consumers:update_use/2`).

use std::sync::OnceLock;
use std::time::Instant;

/// Half-life of the moving average, in microseconds (RabbitMQ's `USE_AVG_HALF_LIFE`).
const HALF_LIFE_US: f64 = 1_000_000.0;

/// Microseconds on a monotonic clock (since the first call in this process).
pub(crate) fn monotonic_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Whether the queue can deliver at once, since when, and the average up to then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Utilisation {
    /// Some consumer could take a message since `since` (µs); `avg` is the average before.
    Active {
        /// When it became active.
        since: u64,
        /// The moving average up to `since`.
        avg: f64,
    },
    /// No consumer could take a message since `since`, after `active` µs of activity.
    Inactive {
        /// When it became inactive.
        since: u64,
        /// Length of the active period that ended at `since`.
        active: u64,
        /// The moving average before that active period.
        avg: f64,
    },
}

impl Default for Utilisation {
    /// A new queue counts as fully used, as RabbitMQ's does.
    fn default() -> Self {
        Utilisation::Active {
            since: monotonic_us(),
            avg: 1.0,
        }
    }
}

impl Utilisation {
    /// True while no consumer can take a message.
    pub(crate) fn is_inactive(&self) -> bool {
        matches!(self, Utilisation::Inactive { .. })
    }

    /// A consumer attached or got credit back at `now` (µs).
    pub(crate) fn activate(&mut self, now: u64) {
        if let Utilisation::Inactive { since, active, avg } = *self {
            let inactive = now.saturating_sub(since);
            *self = Utilisation::Active {
                since: now,
                avg: average(active, inactive, avg),
            };
        }
    }

    /// A delivery attempt found no consumer with credit at `now` (µs).
    pub(crate) fn deactivate(&mut self, now: u64) {
        if let Utilisation::Active { since, avg } = *self {
            *self = Utilisation::Inactive {
                since: now,
                active: now.saturating_sub(since),
                avg,
            };
        }
    }

    /// The utilisation at `now` (µs), between 0 and 1.
    pub(crate) fn at(&self, now: u64) -> f64 {
        match *self {
            Utilisation::Active { since, avg } => average(now.saturating_sub(since), 0, avg),
            Utilisation::Inactive { since, active, avg } => {
                average(active, now.saturating_sub(since), avg)
            }
        }
    }
}

/// The average after a period of `active` then `inactive` µs: the period's active share,
/// weighted against the old average by how long the period lasted.
fn average(active: u64, inactive: u64, avg: f64) -> f64 {
    let time = active.saturating_add(inactive);
    if time == 0 {
        return avg;
    }
    let share = active as f64 / time as f64;
    let weight = (time as f64 * 0.5f64.ln() / HALF_LIFE_US).exp();
    share * (1.0 - weight) + avg * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn active_at(t: u64) -> Utilisation {
        Utilisation::Active { since: t, avg: 1.0 }
    }

    #[test]
    fn a_queue_that_is_always_active_stays_at_one() {
        let u = active_at(0);
        assert_eq!(u.at(0), 1.0);
        assert!((u.at(60 * S) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn one_half_life_inactive_halves_the_average() {
        let mut u = active_at(0);
        u.deactivate(0);
        assert!(u.is_inactive());
        assert!((u.at(S) - 0.5).abs() < 1e-9, "{}", u.at(S));
        assert!((u.at(2 * S) - 0.25).abs() < 1e-9, "{}", u.at(2 * S));
        // A consumer that never gets credit back drives it towards 0.
        assert!(u.at(20 * S) < 1e-5);
    }

    #[test]
    fn reactivating_keeps_the_inactive_period_in_the_average() {
        let mut u = active_at(0);
        u.deactivate(0);
        u.activate(S);
        assert!(!u.is_inactive());
        assert!((u.at(S) - 0.5).abs() < 1e-9);
        // Active again: it climbs back towards 1 at the same half-life.
        assert!((u.at(2 * S) - 0.75).abs() < 1e-9, "{}", u.at(2 * S));
    }

    #[test]
    fn repeated_transitions_are_idempotent() {
        let mut u = active_at(0);
        u.activate(5);
        assert_eq!(u, active_at(0));
        u.deactivate(10);
        let once = u;
        u.deactivate(500);
        assert_eq!(u, once);
    }

    #[test]
    fn half_active_cycles_converge_to_one_half() {
        // Active 10 ms, blocked 10 ms, for 10 s: the average settles near 0.5.
        let mut u = active_at(0);
        let ms = 1_000;
        let mut t = 0;
        for _ in 0..500 {
            t += 10 * ms;
            u.deactivate(t);
            t += 10 * ms;
            u.activate(t);
        }
        let v = u.at(t);
        assert!((v - 0.5).abs() < 0.01, "{v}");
    }

    #[test]
    fn a_clock_that_did_not_move_changes_nothing() {
        let mut u = Utilisation::Inactive {
            since: 10,
            active: 0,
            avg: 0.3,
        };
        assert_eq!(u.at(10), 0.3);
        u.activate(10);
        assert_eq!(u.at(10), 0.3);
    }
}
