//! The result of a run: one readable line, or a JSON object with the same figures.

use serde::Serialize;

use crate::stats::round3;

/// Everything a throughput run measured. Rates are messages per second over the measured window
/// (connection setup and shutdown excluded); `*_median` is the median of the 1-second samples.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The broker's `host:port`.
    pub broker: String,
    /// Producer connections.
    pub producers: usize,
    /// Consumer connections.
    pub consumers: usize,
    /// Queues.
    pub queues: usize,
    /// Body size in bytes.
    pub size: usize,
    /// Confirm window, if publishing with confirms.
    pub confirm: Option<u64>,
    /// Persistent messages to durable queues.
    pub persistent: bool,
    /// Manual acks (else auto-ack).
    pub manual_ack: bool,
    /// Prefetch count (manual ack only).
    pub prefetch: Option<u16>,
    /// Ack with multiple=true every this many messages (manual ack only).
    pub multi_ack: Option<u64>,
    /// Measured window in seconds.
    pub seconds: f64,
    /// Messages written to the socket in the window.
    pub published: u64,
    /// Messages received in the window.
    pub consumed: u64,
    /// Publishes acked by the broker in the window.
    pub confirmed: u64,
    /// Publishes nacked by the broker in the window.
    pub nacked: u64,
    /// `published / seconds`.
    pub publish_rate: f64,
    /// Median of the 1-second publish samples.
    pub publish_rate_median: f64,
    /// `consumed / seconds`.
    pub consume_rate: f64,
    /// Median of the 1-second consume samples.
    pub consume_rate_median: f64,
    /// The 1-second publish samples.
    pub publish_samples: Vec<f64>,
    /// The 1-second consume samples.
    pub consume_samples: Vec<f64>,
    /// Median end-to-end latency (sampled once per consumer read), milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile of the same samples, milliseconds.
    pub latency_p99_ms: Option<f64>,
    /// Broker CPU time per message, microseconds (CPU / max(published, consumed)).
    pub broker_cpu_us_per_msg: Option<f64>,
    /// Broker CPU use over the window, percent of one core.
    pub broker_cpu_percent: Option<f64>,
    /// Broker RSS at the start of the window, MiB.
    pub broker_rss_mib_start: Option<f64>,
    /// Broker RSS at the end of the window, MiB.
    pub broker_rss_mib_end: Option<f64>,
    /// Largest broker RSS seen in the 1-second samples, MiB.
    pub broker_rss_mib_max: Option<f64>,
    /// warren-perf's own CPU per message, microseconds.
    pub perf_cpu_us_per_msg: Option<f64>,
    /// warren-perf's CPU use, percent of one core.
    pub perf_cpu_percent: Option<f64>,
    /// Messages left in the queues when the run ended (from queue.delete-ok, or purge-ok).
    pub left_in_queues: Option<u64>,
    /// `connection.blocked` notifications received.
    pub blocked: u64,
    /// Longest wait between two confirm batches of one producer, milliseconds (with confirms).
    pub confirm_gap_max_ms: Option<f64>,
    /// Errors from producers and consumers (broker closes, timeouts).
    pub errors: Vec<String>,
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{}{unit}", round3(v)))
}

impl Report {
    /// The run in one line.
    pub fn line(&self) -> String {
        let mut mode = if self.manual_ack {
            format!(
                "manual-ack prefetch {} multi-ack {}",
                self.prefetch.unwrap_or(0),
                self.multi_ack.unwrap_or(1)
            )
        } else {
            "auto-ack".to_owned()
        };
        if let Some(w) = self.confirm {
            mode.push_str(&format!(" confirm {w}"));
        }
        if self.persistent {
            mode.push_str(" persistent");
        }
        let mut line = format!(
            "{} {}P/{}C/{}Q {} B {mode} {:.1} s: published {} msg/s (median {}), consumed {} msg/s (median {})",
            self.broker,
            self.producers,
            self.consumers,
            self.queues,
            self.size,
            self.seconds,
            round3(self.publish_rate),
            round3(self.publish_rate_median),
            round3(self.consume_rate),
            round3(self.consume_rate_median),
        );
        if self.confirm.is_some() {
            line.push_str(&format!(", confirmed {}", self.confirmed));
        }
        line.push_str(&format!(
            ", latency p50 {} p99 {}",
            opt(self.latency_p50_ms, " ms"),
            opt(self.latency_p99_ms, " ms")
        ));
        if self.broker_cpu_us_per_msg.is_some() {
            line.push_str(&format!(
                ", broker {}/msg CPU {} RSS {} (max {})",
                opt(self.broker_cpu_us_per_msg, " µs"),
                opt(self.broker_cpu_percent, "%"),
                opt(self.broker_rss_mib_end, " MiB"),
                opt(self.broker_rss_mib_max, " MiB"),
            ));
        }
        line.push_str(&format!(
            ", perf {}/msg CPU {}",
            opt(self.perf_cpu_us_per_msg, " µs"),
            opt(self.perf_cpu_percent, "%")
        ));
        if let Some(left) = self.left_in_queues {
            line.push_str(&format!(", left in queues {left}"));
        }
        if self.blocked > 0 {
            line.push_str(&format!(", blocked {} times", self.blocked));
        }
        if let Some(gap) = self.confirm_gap_max_ms {
            line.push_str(&format!(", longest confirm gap {} ms", round3(gap)));
        }
        if !self.errors.is_empty() {
            line.push_str(&format!(", {} errors", self.errors.len()));
        }
        line
    }
}
