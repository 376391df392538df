//! The memory alarm: when the process's resident memory passes the high watermark, publishing
//! connections are blocked (`connection.blocked`, and their sockets are no longer read) until it
//! falls back, as RabbitMQ's `vm_memory_high_watermark` does. Consumers keep going, so queues
//! can drain.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use warren_mgmt::{MemoryWatermark, Watermark};

use crate::alarm::{self, AlarmSender};
use crate::config::check_memory_high_watermark;

/// How often resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Resident memory of this process in bytes, from `/proc/self/status` (`None` off Linux).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmRSS:")
}

/// Physical memory of the machine in bytes, from `/proc/meminfo`.
pub fn total_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&info, "MemTotal:")
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The watermark in bytes for a fraction of physical memory (RabbitMQ's relative form).
pub fn watermark(fraction: f64) -> Option<u64> {
    let total = total_bytes()? as f64;
    Some((total * fraction) as u64)
}

/// The high watermark as set (relative or absolute) and the limit in bytes the monitor reads.
/// Changed at run time by `ServerHandle::set_memory_high_watermark` and the management API's
/// `/api/warren/vm-memory-high-watermark`.
///
/// Lock order: `setting`, then the watch's own lock inside `send_replace`; neither is held
/// across an `.await`.
#[derive(Debug)]
pub struct Threshold {
    setting: Mutex<Watermark>,
    limit: Arc<watch::Sender<Option<u64>>>,
}

impl Threshold {
    /// A threshold at `fraction` of physical memory (checked by the configuration's load).
    pub fn relative(fraction: f64) -> Self {
        Threshold {
            setting: Mutex::new(Watermark::Relative(fraction)),
            limit: Arc::new(watch::Sender::new(watermark(fraction))),
        }
    }

    /// A receiver of the limit in bytes, for [`monitor`].
    pub fn subscribe(&self) -> watch::Receiver<Option<u64>> {
        self.limit.subscribe()
    }
}

impl MemoryWatermark for Threshold {
    fn get(&self) -> (Watermark, Option<u64>) {
        let setting = self.setting.lock();
        (*setting, *self.limit.borrow())
    }

    fn set(&self, new: Watermark) -> Result<Option<u64>, String> {
        let bytes = match new {
            Watermark::Relative(f) => {
                check_memory_high_watermark(f).map_err(|e| e.to_string())?;
                watermark(f)
            }
            Watermark::Absolute(0) => return Err("absolute must be above 0 bytes".into()),
            Watermark::Absolute(b) => Some(b),
        };
        let mut setting = self.setting.lock();
        *setting = new;
        self.limit.send_replace(bytes);
        Ok(bytes)
    }
}

/// Samples memory until every receiver of `alarms` is gone, setting the memory alarm while
/// above the current `limit` in bytes (read at every sample, so it can change while running;
/// `None` never alarms).
pub async fn monitor(limit: watch::Receiver<Option<u64>>, alarms: AlarmSender) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let Some(rss) = resident_bytes() else { return };
        let limit = *limit.borrow();
        let high = limit.is_some_and(|limit| rss > limit);
        if alarm::set(&alarms, |a| &mut a.memory, high) {
            if high {
                tracing::warn!(rss, limit, "memory alarm set: blocking publishers");
            } else {
                tracing::info!(rss, limit, "memory alarm cleared: unblocking publishers");
            }
        }
        if alarms.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        assert_eq!(
            kib_field("VmRSS:\t   1024 kB\n", "VmRSS:"),
            Some(1024 * 1024)
        );
        assert_eq!(
            kib_field("MemTotal:       24000 kB\n", "MemTotal:"),
            Some(24000 * 1024)
        );
        assert_eq!(kib_field("nothing", "VmRSS:"), None);
    }

    #[test]
    fn a_threshold_changes_and_refuses_what_the_configuration_refuses() {
        let t = Threshold::relative(0.4);
        let rx = t.subscribe();
        assert_eq!(t.set(Watermark::Absolute(1 << 30)), Ok(Some(1 << 30)));
        assert_eq!(*rx.borrow(), Some(1 << 30));
        assert_eq!(t.get(), (Watermark::Absolute(1 << 30), Some(1 << 30)));
        assert!(t.set(Watermark::Relative(1.5)).is_err());
        assert!(t.set(Watermark::Relative(0.0)).is_err());
        assert!(t.set(Watermark::Absolute(0)).is_err());
        // A refusal leaves the setting as it was.
        assert_eq!(t.get().0, Watermark::Absolute(1 << 30));
        if cfg!(target_os = "linux") {
            assert_eq!(t.set(Watermark::Relative(0.5)), Ok(watermark(0.5)));
            assert_eq!(t.get().0, Watermark::Relative(0.5));
        }
    }

    #[test]
    fn this_process_has_resident_memory() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().is_some_and(|b| b > 0));
            assert!(watermark(0.4).is_some_and(|b| b > 0));
        }
    }
}
