//! The free disk space alarm: while the data directory's filesystem has less free space than
//! `disk_free_limit`, publishing connections are blocked (`connection.blocked`, "low on disk"),
//! as RabbitMQ's `rabbit_disk_monitor` does. Free space is what `df` calls available (blocks an
//! unprivileged process may still use).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use warren_mgmt::{DiskFree, DiskFreeLimit, DiskMonitor};

use crate::alarm::{self, AlarmSender};

/// RabbitMQ's default `disk_free_limit`: 50 MB.
pub const DEFAULT_LIMIT: u64 = 50_000_000;
/// The shortest wait between checks (RabbitMQ's default minimum).
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest wait between checks, and the wait while the alarm is set (RabbitMQ's).
const MAX_INTERVAL: Duration = Duration::from_secs(10);
/// The fastest the disk is assumed to fill, in bytes per millisecond (RabbitMQ's 250 MB/s):
/// the next check comes before free space could halve its margin over the limit at that rate.
const FAST_RATE: u64 = 250_000;
/// `free` before the first reading.
const UNKNOWN: u64 = u64::MAX;

/// The limit in bytes for a setting (`mem_relative` multiplies physical memory).
pub fn limit_bytes(setting: DiskFreeLimit) -> Result<u64, String> {
    match setting {
        DiskFreeLimit::Absolute(b) => Ok(b),
        DiskFreeLimit::MemRelative(f) if f.is_finite() && f >= 0.0 => {
            let total = crate::memory::total_bytes()
                .ok_or("physical memory is unknown here: give an absolute limit")?;
            Ok((total as f64 * f).round() as u64)
        }
        DiskFreeLimit::MemRelative(f) => {
            Err(format!("mem_relative {f} must be a non-negative number"))
        }
    }
}

/// Free space of `dir`'s filesystem, or of its nearest existing ancestor's while `dir` is not
/// created yet (a broker over an injected store never creates its data directory).
fn available_space(dir: &std::path::Path) -> std::io::Result<u64> {
    let existing = dir
        .ancestors()
        .find(|d| d.exists() && !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    fs2::available_space(existing)
}

/// How long to wait before the next check, as RabbitMQ's monitor: the longest while alarmed,
/// else twice the margin over the limit at [`FAST_RATE`], kept within the bounds.
fn next_check(free: u64, limit: u64, alarmed: bool) -> Duration {
    if alarmed {
        return MAX_INTERVAL;
    }
    let ms = free.saturating_sub(limit).saturating_mul(2) / FAST_RATE;
    Duration::from_millis(ms).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// The data directory's free space monitor: the limit as set, the limit in bytes (which wakes
/// the monitor when it changes) and the last reading.
///
/// Lock order: `setting`, then the watch's own lock inside `send_replace`; neither is held
/// across an `.await`.
#[derive(Debug)]
pub struct DiskThreshold {
    dir: PathBuf,
    setting: Mutex<DiskFreeLimit>,
    limit: watch::Sender<u64>,
    free: AtomicU64,
}

impl DiskThreshold {
    /// A monitor of `dir`'s filesystem with `setting` (refused when it has no limit in bytes).
    pub fn new(dir: PathBuf, setting: DiskFreeLimit) -> Result<Self, String> {
        let limit = limit_bytes(setting)?;
        Ok(DiskThreshold {
            dir,
            setting: Mutex::new(setting),
            limit: watch::Sender::new(limit),
            free: AtomicU64::new(UNKNOWN),
        })
    }

    /// Checks free space until `alarms` has no receivers, setting the disk alarm while it is
    /// below the limit. A changed limit is checked at once. A failed reading keeps the alarm
    /// as it was and is retried at the longest interval.
    pub async fn monitor(self: Arc<Self>, alarms: AlarmSender) {
        let mut limit_rx = self.limit.subscribe();
        let mut failing = false;
        loop {
            let dir = self.dir.clone();
            let reading = tokio::task::spawn_blocking(move || available_space(&dir)).await;
            let limit = *limit_rx.borrow_and_update();
            let wait = match reading {
                Ok(Ok(free)) => {
                    failing = false;
                    self.free.store(free, Ordering::Relaxed);
                    let low = free < limit;
                    if alarm::set(&alarms, |a| &mut a.disk, low) {
                        if low {
                            tracing::warn!(free, limit, "disk alarm set: blocking publishers");
                        } else {
                            tracing::info!(
                                free,
                                limit,
                                "disk alarm cleared: unblocking publishers"
                            );
                        }
                    }
                    next_check(free, limit, low)
                }
                Ok(Err(e)) => {
                    if !failing {
                        tracing::error!(dir = %self.dir.display(), error = %e, "cannot read free disk space");
                    }
                    failing = true;
                    MAX_INTERVAL
                }
                Err(_) => MAX_INTERVAL,
            };
            if alarms.is_closed() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = limit_rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

impl DiskMonitor for DiskThreshold {
    fn get(&self) -> DiskFree {
        let setting = self.setting.lock();
        let free = self.free.load(Ordering::Relaxed);
        DiskFree {
            setting: *setting,
            limit: *self.limit.borrow(),
            free: (free != UNKNOWN).then_some(free),
        }
    }

    fn set(&self, new: DiskFreeLimit) -> Result<u64, String> {
        let bytes = limit_bytes(new)?;
        let mut setting = self.setting.lock();
        *setting = new;
        self.limit.send_replace(bytes);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_come_sooner_as_free_space_nears_the_limit() {
        // 10 GB of margin: the longest wait; 10 MB: 80 ms, raised to the shortest.
        assert_eq!(
            next_check(10_050_000_000, DEFAULT_LIMIT, false),
            MAX_INTERVAL
        );
        assert_eq!(next_check(60_000_000, DEFAULT_LIMIT, false), MIN_INTERVAL);
        assert_eq!(
            next_check(DEFAULT_LIMIT + 250_000_000, DEFAULT_LIMIT, false),
            Duration::from_secs(2)
        );
        assert_eq!(next_check(0, DEFAULT_LIMIT, true), MAX_INTERVAL);
    }

    #[test]
    fn a_limit_is_bytes_or_a_multiple_of_memory() {
        assert_eq!(limit_bytes(DiskFreeLimit::Absolute(7)), Ok(7));
        assert!(limit_bytes(DiskFreeLimit::MemRelative(-1.0)).is_err());
        assert!(limit_bytes(DiskFreeLimit::MemRelative(f64::NAN)).is_err());
        if let Some(total) = crate::memory::total_bytes() {
            assert_eq!(limit_bytes(DiskFreeLimit::MemRelative(2.0)), Ok(total * 2));
        }
    }

    #[tokio::test]
    async fn the_alarm_follows_the_limit_against_a_real_filesystem() {
        let dir = std::env::temp_dir();
        let disk = Arc::new(
            DiskThreshold::new(dir, DiskFreeLimit::Absolute(0)).unwrap_or_else(|e| panic!("{e}")),
        );
        let tx: AlarmSender = Arc::new(watch::Sender::new(alarm::Alarms::default()));
        let mut rx = tx.subscribe();
        let task = tokio::spawn(disk.clone().monitor(tx));
        // Nothing is below a limit of 0; no filesystem has an exabyte free.
        while disk.get().free.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!rx.borrow().disk);
        assert_eq!(disk.set(DiskFreeLimit::Absolute(1 << 60)), Ok(1 << 60));
        let woke = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        assert!(woke.is_ok() && rx.borrow_and_update().disk);
        disk.set(DiskFreeLimit::Absolute(0))
            .unwrap_or_else(|e| panic!("{e}"));
        let woke = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        assert!(woke.is_ok() && !rx.borrow().disk);
        drop(rx);
        task.abort();
    }
}
