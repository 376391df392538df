//! The resource alarms in effect (memory, free disk space), as one value every connection
//! watches: while any is set, publishing connections are blocked, as RabbitMQ's `rabbit_alarm`
//! does. The monitors that set them are `memory` and `disk`.

use std::sync::Arc;

use tokio::sync::watch;

/// Which resource alarms are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alarms {
    /// Resident memory is above the high watermark.
    pub memory: bool,
    /// Free disk space is below `disk_free_limit`.
    pub disk: bool,
}

impl Alarms {
    /// Whether any alarm is set (publishers are blocked).
    pub fn any(self) -> bool {
        self.memory || self.disk
    }

    /// The reason `connection.blocked` gives, as RabbitMQ's reader words it: `low on ` and the
    /// resources joined by ` & `, disk first (checked against RabbitMQ 3.10.8 by
    /// `conformance/alarms_check.py`).
    pub fn blocked_reason(self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on disk & memory",
            (false, true) => "low on disk",
            _ => "low on memory",
        }
    }
}

/// The sending side the monitors share; each changes only its own field.
pub type AlarmSender = Arc<watch::Sender<Alarms>>;

/// Sets or clears one alarm through `field`; answers whether it changed. Receivers wake only on
/// a change.
pub fn set(alarms: &AlarmSender, field: fn(&mut Alarms) -> &mut bool, on: bool) -> bool {
    alarms.send_if_modified(|a| {
        let slot = field(a);
        let changed = *slot != on;
        *slot = on;
        changed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_every_alarm_set() {
        let memory = Alarms {
            memory: true,
            disk: false,
        };
        let disk = Alarms {
            memory: false,
            disk: true,
        };
        assert_eq!(memory.blocked_reason(), "low on memory");
        assert_eq!(disk.blocked_reason(), "low on disk");
        assert!(!Alarms::default().any() && memory.any() && disk.any());
    }

    #[test]
    fn each_monitor_changes_only_its_own_alarm() {
        let tx: AlarmSender = Arc::new(watch::Sender::new(Alarms::default()));
        let mut rx = tx.subscribe();
        assert!(set(&tx, |a| &mut a.disk, true));
        assert!(rx.has_changed().unwrap_or(false));
        rx.borrow_and_update();
        assert!(!set(&tx, |a| &mut a.disk, true));
        assert!(!rx.has_changed().unwrap_or(true));
        assert!(set(&tx, |a| &mut a.memory, true));
        assert_eq!(
            *rx.borrow(),
            Alarms {
                memory: true,
                disk: true
            }
        );
        assert!(set(&tx, |a| &mut a.memory, false));
        assert!(rx.borrow().disk && !rx.borrow().memory);
    }
}
