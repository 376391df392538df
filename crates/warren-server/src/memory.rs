//! The memory alarm: when the process's resident memory passes the high watermark, publishing
//! connections are blocked (`connection.blocked`, and their sockets are no longer read) until it
//! falls back, as RabbitMQ's `vm_memory_high_watermark` does. Consumers keep going, so queues
//! can drain.

use std::time::Duration;

use tokio::sync::watch;

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

/// Samples memory until the sender's receivers are all gone, publishing `true` while above
/// the current `limit` in bytes (read at every sample, so it can change while running; `None`
/// never alarms).
pub async fn monitor(limit: watch::Receiver<Option<u64>>, alarm: watch::Sender<bool>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let Some(rss) = resident_bytes() else { return };
        let limit = *limit.borrow();
        let high = limit.is_some_and(|limit| rss > limit);
        if *alarm.borrow() != high {
            if high {
                tracing::warn!(rss, limit, "memory alarm set: blocking publishers");
            } else {
                tracing::info!(rss, limit, "memory alarm cleared: unblocking publishers");
            }
            if alarm.send(high).is_err() {
                return;
            }
        }
        if alarm.is_closed() {
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
    fn this_process_has_resident_memory() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().is_some_and(|b| b > 0));
            assert!(watermark(0.4).is_some_and(|b| b > 0));
        }
    }
}
