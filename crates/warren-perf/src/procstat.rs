//! Reading a process's CPU time and resident memory from `/proc` (Linux only).
//!
//! Used for the broker (`--broker-pid`) and for warren-perf itself; nothing here needs `unsafe`.

use std::time::Duration;

use anyhow::{Context, bail};

/// Clock ticks per second for `/proc/PID/stat` times: `getconf CLK_TCK`, else 100.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// User plus system CPU time of `pid` ("self" for this process).
pub fn cpu_time(pid: &str, ticks_per_sec: u64) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_stat_cpu_ticks(&stat).with_context(|| format!("cannot parse {path}"))?;
    Ok(Duration::from_secs_f64(ticks as f64 / ticks_per_sec as f64))
}

/// utime + stime (fields 14 and 15) from a `/proc/PID/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let Some(close) = stat.rfind(')') else {
        bail!("no command name");
    };
    // After ")" come field 3 (state) onwards: utime is field 14, i.e. index 11 here.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
        bail!("too few fields");
    };
    Ok(utime.parse::<u64>()? + stime.parse::<u64>()?)
}

/// Resident set size of `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let Some(line) = status.lines().find(|l| l.starts_with("VmRSS:")) else {
        bail!("no VmRSS in {path}");
    };
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("bad VmRSS line {line}"))?;
    Ok(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() -> anyhow::Result<()> {
        let line = "1234 (beam.smp (x) y) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 30 0";
        assert_eq!(parse_stat_cpu_ticks(line)?, 325);
        assert!(parse_stat_cpu_ticks("1234 (x) S 1 2").is_err());
        Ok(())
    }
}
