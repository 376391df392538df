//! Configuration: one struct with a default for every field, overridden by a TOML file, then by
//! `WARREN_...` environment variables, then by command-line flags, and validated at load.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tls::options::{CertLoginFrom, HttpsOptions, KNOWN_MECHANISMS, SanType, SslOptions};

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub bind: IpAddr,
    /// AMQP port; 0 picks a free one.
    pub port: u16,
    /// Where durable state is kept.
    pub data_dir: PathBuf,
    /// Log filter (`info`, `warren=debug`, ...); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Highest channel number a client may negotiate.
    pub channel_max: u16,
    /// Largest frame a client may negotiate, in bytes.
    pub frame_max: u32,
    /// Heartbeat interval the server proposes, in seconds (0 disables).
    pub heartbeat: u16,
    /// Time a client has to complete the handshake, in seconds.
    pub handshake_timeout: u64,
    /// Most connections open at once (RabbitMQ's `connection_max`); at the limit the listener
    /// stops accepting until one closes, as RabbitMQ's does. 0 means no limit (RabbitMQ's
    /// `infinity`, the default).
    pub connection_max: u64,
    /// Most connections that may be in the handshake (not yet past `connection.open`) at once;
    /// one more is closed at once without a word. Bounds what a flood of half-open handshakes
    /// holds (RabbitMQ has no such limit, only `handshake_timeout`); 0 means no limit.
    pub handshake_max: u64,
    /// Publishes a connection may have unconfirmed (confirm mode, waiting for a store sync)
    /// before Warren stops reading its socket until confirms go out: TCP back-pressure in place
    /// of RabbitMQ's credit flow. 0 means no limit.
    pub max_unconfirmed_publishes: u64,
    /// Publishers are blocked while resident memory exceeds this fraction of physical memory
    /// (RabbitMQ's `vm_memory_high_watermark.relative`, default 0.4).
    pub memory_high_watermark: f64,
    /// Publishers are blocked while the data directory's filesystem has less free space than
    /// this (RabbitMQ's `disk_free_limit.absolute`, default 50 MB, or `.relative`).
    pub disk_free_limit: DiskFreeLimitConfig,
    /// Largest message body accepted, in bytes (RabbitMQ's `max_message_size`).
    pub max_message_size: u64,
    /// Longest a delivery may wait for its acknowledgement, in milliseconds, before its channel is
    /// closed with 406 (RabbitMQ's `consumer_timeout`, default 30 minutes).
    pub consumer_timeout: u64,
    /// The user created, with vhost `/`, when the data directory is new (RabbitMQ's
    /// `default_user`: later starts keep the users the store holds, see `warren ctl`).
    pub default_user: String,
    /// That user's password, hashed into the store at first start.
    pub default_pass: String,
    /// The default user, and any user named `guest`, may log in only from loopback addresses
    /// (RabbitMQ's `loopback_users`).
    pub loopback_only_default_user: bool,
    /// sled's page cache, in MiB. It counts in the broker's resident memory; the store is
    /// read only at startup, so a small cache costs little (sled's own default is 1 GiB).
    pub store_cache_mib: u64,
    /// Whether a new data directory keeps persistent message bodies in the message log
    /// (append-only segment files in `<data_dir>/messages/`), sled holding only where each
    /// one is. A directory keeps the layout it was created with.
    pub store_message_log: bool,
    /// Packed message content each queue keeps in memory before it spills whole segments to
    /// `<data_dir>/spill/`, in MiB; 0 (the default) derives it: a quarter of the memory
    /// watermark shared evenly by the queues, between 1 and 32 MiB per queue.
    pub queue_memory_budget_mib: u64,
    /// Ready messages (at most; or 16 MiB of bodies) a durable queue keeps in memory of its
    /// stored backlog: after a restart, and once a running queue holds this many, the
    /// persistent messages after them stay in the store until consumers come near (default
    /// 16384; at least 2).
    pub queue_load_window: u64,
    /// At startup, before recovery, compact the store when its files are more than this many
    /// times what its live data needs (sled never shrinks its files by itself; a freshly
    /// compacted store is at about 1.7, see `warren_store::CompactPolicy`); 0 never compacts.
    pub compact_on_start_ratio: f64,
    /// ... and only when the files are at least this large, in MiB.
    pub compact_on_start_min_mib: u64,
    /// While the broker runs, compact the store in the background (a copy swapped in, see
    /// `warren_store::SledOptions::online_compaction`) when its files are more than this many
    /// times what its live data needs, checked every 5 s; 0 never compacts online.
    pub online_compaction_ratio: f64,
    /// ... and only when the files are at least this large, in MiB.
    pub online_compaction_min_mib: u64,
    /// Serve RabbitMQ's management HTTP API (`/api/...`).
    pub management_enabled: bool,
    /// The management API's port, on the same bind address as AMQP; 0 picks a free one.
    pub management_port: u16,
    /// Serve RabbitMQ's Prometheus endpoints (`/metrics`, `/metrics/per-object`,
    /// `/metrics/detailed`).
    pub prometheus_enabled: bool,
    /// Their port, on the same bind address as AMQP (RabbitMQ's 15692); 0 picks a free one.
    pub prometheus_port: u16,
    /// How often the statistics sampler turns counters into rates, in milliseconds
    /// (RabbitMQ's `collect_statistics_interval`).
    pub collect_statistics_interval: u64,
    /// A RabbitMQ definitions file imported at every start, after recovery (RabbitMQ's
    /// `load_definitions`; the import merges, so a repeated start changes nothing); empty for
    /// none.
    pub load_definitions: PathBuf,
    /// Serve AMQP over plain TCP on `port` (false is RabbitMQ's `listeners.tcp = none`).
    pub tcp_enabled: bool,
    /// Serve AMQP over TLS (`amqps`) on `ssl_port` (RabbitMQ's `listeners.ssl.default`).
    pub ssl_enabled: bool,
    /// The `amqps` port, on the bind address (RabbitMQ's 5671); 0 picks a free one.
    pub ssl_port: u16,
    /// The `amqps` listener's files and checks (RabbitMQ's `ssl_options.*`).
    pub ssl_options: SslOptions,
    /// Which part of a client certificate names the user of an EXTERNAL login
    /// (`distinguished_name`, `common_name`, `subject_alternative_name`).
    pub ssl_cert_login_from: CertLoginFrom,
    /// With `subject_alternative_name`: the kind of name (`dns`, `email`, `uri`).
    pub ssl_cert_login_san_type: SanType,
    /// With `subject_alternative_name`: which name of that kind, 0 for the first.
    pub ssl_cert_login_san_index: u32,
    /// The SASL mechanisms offered (RabbitMQ's `auth_mechanisms`); EXTERNAL is only offered on
    /// TLS connections.
    pub auth_mechanisms: Vec<String>,
    /// HTTPS for the management API (RabbitMQ's `management.ssl.*`, port 15671).
    pub management_ssl: HttpsOptions,
    /// HTTPS for Prometheus (RabbitMQ's `prometheus.ssl.*`, port 15691).
    pub prometheus_ssl: HttpsOptions,
    /// How often the TLS files are checked for changes, in milliseconds; 0 never (a Warren
    /// setting: `warren ctl reload_certificates` reloads on request).
    pub ssl_cert_reload_interval: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 5672,
            data_dir: PathBuf::from("warren-data"),
            log_level: "info".into(),
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
            handshake_timeout: 10,
            connection_max: 0,
            handshake_max: 1024,
            max_unconfirmed_publishes: 20_000,
            memory_high_watermark: 0.4,
            disk_free_limit: DiskFreeLimitConfig {
                absolute: Some(ByteSize::Bytes(crate::disk::DEFAULT_LIMIT)),
                relative: None,
            },
            max_message_size: 128 * 1024 * 1024,
            consumer_timeout: 1_800_000,
            default_user: "guest".into(),
            default_pass: "guest".into(),
            loopback_only_default_user: true,
            store_cache_mib: 64,
            store_message_log: true,
            queue_memory_budget_mib: 0,
            queue_load_window: 16384,
            compact_on_start_ratio: 4.0,
            compact_on_start_min_mib: 64,
            online_compaction_ratio: 2.0,
            online_compaction_min_mib: 64,
            management_enabled: true,
            management_port: 15672,
            prometheus_enabled: true,
            prometheus_port: 15692,
            collect_statistics_interval: 5000,
            load_definitions: PathBuf::new(),
            tcp_enabled: true,
            ssl_enabled: false,
            ssl_port: 5671,
            ssl_options: SslOptions::default(),
            ssl_cert_login_from: CertLoginFrom::default(),
            ssl_cert_login_san_type: SanType::default(),
            ssl_cert_login_san_index: 0,
            auth_mechanisms: vec!["PLAIN".into(), "AMQPLAIN".into()],
            management_ssl: HttpsOptions::on_port(15671),
            prometheus_ssl: HttpsOptions::on_port(15691),
            ssl_cert_reload_interval: 5000,
        }
    }
}

/// The variable naming the configuration file (`--config`); not a configuration field.
pub const CONFIG_FILE_VAR: &str = "WARREN_CONFIG";

/// The process environment, leaving out variables that are not valid UTF-8 (which
/// `std::env::vars` would panic on).
fn process_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, environment or flags did not parse.
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `memory_high_watermark` must be a fraction of physical memory in (0, 1].
pub fn check_memory_high_watermark(fraction: f64) -> Result<(), ConfigError> {
    if fraction > 0.0 && fraction <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "memory_high_watermark {fraction} must be a fraction in (0, 1]"
        )))
    }
}

/// RabbitMQ's `disk_free_limit.absolute` and `disk_free_limit.relative` (a `[disk_free_limit]`
/// table); when both are given the relative one wins, as in RabbitMQ's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DiskFreeLimitConfig {
    /// Bytes: a number, or a number with RabbitMQ's units (`50MB`, `1GiB`, `500k`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absolute: Option<ByteSize>,
    /// A multiple of physical memory (`1.0`: as much free disk as there is RAM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative: Option<f64>,
}

/// An amount of bytes as a configuration file gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    /// A plain number of bytes.
    Bytes(u64),
    /// A number with a unit.
    Text(String),
}

/// RabbitMQ's information units: a whole number with an optional unit, `k`/`K`/`KiB`, `m`/`M`/
/// `MiB`, `g`/`G`/`GiB` binary and `kB`/`KB`, `MB`, `GB` decimal (with their case variants).
pub fn parse_information_unit(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" | "kiB" | "KiB" | "KIB" | "kib" => 1 << 10,
        "m" | "M" | "MiB" | "MIB" | "mib" => 1 << 20,
        "g" | "G" | "GiB" | "GIB" | "gib" => 1 << 30,
        "kB" | "KB" | "kb" | "Kb" => 1_000,
        "MB" | "mb" | "Mb" => 1_000_000,
        "GB" | "gb" | "Gb" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

impl DiskFreeLimitConfig {
    /// The limit this configuration sets.
    pub fn limit(&self) -> Result<warren_mgmt::DiskFreeLimit, ConfigError> {
        match (&self.relative, &self.absolute) {
            (Some(f), _) if f.is_finite() && *f >= 0.0 => {
                Ok(warren_mgmt::DiskFreeLimit::MemRelative(*f))
            }
            (Some(f), _) => Err(ConfigError::Invalid(format!(
                "disk_free_limit.relative {f} must be a non-negative number"
            ))),
            (None, Some(ByteSize::Bytes(b))) => Ok(warren_mgmt::DiskFreeLimit::Absolute(*b)),
            (None, Some(ByteSize::Text(t))) => parse_information_unit(t)
                .map(warren_mgmt::DiskFreeLimit::Absolute)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "disk_free_limit.absolute {t:?} is not a number of bytes with an optional unit (50MB, 1GiB)"
                    ))
                }),
            // As RabbitMQ's schema: a table with neither key.
            (None, None) => Err(ConfigError::Invalid("No disk limit defined".into())),
        }
    }
}

/// Command-line overrides; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--port`.
    pub port: Option<u16>,
    /// `--bind`.
    pub bind: Option<IpAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--log-level`.
    pub log_level: Option<String>,
}

impl Config {
    /// Loads defaults, then `file` (if any), then `WARREN_*` variables, then `overrides`.
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let defaults = config::Config::try_from(&Config::default())?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let (env, _) = Self::environment(process_vars());
        builder = builder.add_source(
            // `__` separates a table from its key: `WARREN_SSL_OPTIONS__CERTFILE`.
            config::Environment::with_prefix("WARREN")
                // Without this the prefix would take the separator too (`WARREN__PORT`).
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("auth_mechanisms")
                .with_list_parse_key("ssl_options.versions")
                .ignore_empty(true)
                .source(Some(env)),
        );
        let set = |b: config::ConfigBuilder<config::builder::DefaultState>,
                   key: &str,
                   v: Option<String>| match v {
            Some(v) => b.set_override(key, v),
            None => Ok(b),
        };
        builder = set(builder, "port", overrides.port.map(|p| p.to_string()))?;
        builder = set(builder, "bind", overrides.bind.map(|b| b.to_string()))?;
        builder = set(
            builder,
            "data_dir",
            overrides.data_dir.as_ref().map(|d| d.display().to_string()),
        )?;
        builder = set(builder, "log_level", overrides.log_level.clone())?;
        let cfg: Config = builder.build()?.try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Splits `WARREN_*` variables into those naming a configuration field (returned as the
    /// environment source) and the names of all others (`WARREN_SKIP_RABBITMQ` of a test script,
    /// a typo...), which are ignored: an unrelated variable must not stop the broker.
    /// `WARREN_CONFIG` (the file to read) belongs to the command line and is in neither list.
    pub fn environment(
        vars: impl Iterator<Item = (String, String)>,
    ) -> (config::Map<String, String>, Vec<String>) {
        // Top-level fields, and `table__key` for the keys of tables (`ssl_options`).
        let fields: Vec<String> = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t
                .iter()
                .flat_map(|(k, v)| match v {
                    toml::Value::Table(inner) => inner
                        .keys()
                        .map(|i| format!("{k}__{i}"))
                        .collect::<Vec<_>>(),
                    _ => vec![k.clone()],
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut known = config::Map::new();
        let mut unknown = Vec::new();
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("WARREN_") else {
                continue;
            };
            // `WARREN_CTL_*` configure `warren ctl`'s client, not the broker.
            if name == CONFIG_FILE_VAR || name.starts_with("WARREN_CTL_") {
                continue;
            }
            if fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                known.insert(name, value);
            } else {
                unknown.push(name);
            }
        }
        unknown.sort();
        (known, unknown)
    }

    /// The `WARREN_*` variables of this process that [`Config::load`] ignores, for a warning.
    pub fn ignored_environment() -> Vec<String> {
        Self::environment(process_vars()).1
    }

    /// Checks ranges the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.frame_max != 0 && self.frame_max < warren_codec::FRAME_MIN_SIZE {
            return Err(ConfigError::Invalid(format!(
                "frame_max {} is below the AMQP minimum of {}",
                self.frame_max,
                warren_codec::FRAME_MIN_SIZE
            )));
        }
        if self.max_message_size > 512 * 1024 * 1024 {
            return Err(ConfigError::Invalid(format!(
                "max_message_size {} exceeds the 512 MiB ceiling",
                self.max_message_size
            )));
        }
        check_memory_high_watermark(self.memory_high_watermark)?;
        if self.queue_load_window < 2 {
            return Err(ConfigError::Invalid(format!(
                "queue_load_window {} must be at least 2",
                self.queue_load_window
            )));
        }
        self.disk_free_limit.limit()?;
        // As RabbitMQ's schema: a positive number of milliseconds.
        if self.consumer_timeout == 0 {
            return Err(ConfigError::Invalid(
                "consumer_timeout must be at least 1 millisecond".into(),
            ));
        }
        if self.store_cache_mib == 0 || self.store_cache_mib > 1 << 20 {
            return Err(ConfigError::Invalid(format!(
                "store_cache_mib {} must be between 1 and 1048576",
                self.store_cache_mib
            )));
        }
        // Below 1 every start would compact: even a fresh copy is larger than its data.
        if !(self.compact_on_start_ratio == 0.0
            || (self.compact_on_start_ratio >= 1.0 && self.compact_on_start_ratio.is_finite()))
        {
            return Err(ConfigError::Invalid(format!(
                "compact_on_start_ratio {} must be 0 (never) or at least 1",
                self.compact_on_start_ratio
            )));
        }
        // Below 1 the compactor would copy the store again and again (see above).
        if !(self.online_compaction_ratio == 0.0
            || (self.online_compaction_ratio >= 1.0 && self.online_compaction_ratio.is_finite()))
        {
            return Err(ConfigError::Invalid(format!(
                "online_compaction_ratio {} must be 0 (never) or at least 1",
                self.online_compaction_ratio
            )));
        }
        self.validate_tls()?;
        if self.handshake_timeout == 0 {
            return Err(ConfigError::Invalid(
                "handshake_timeout must be at least 1 second".into(),
            ));
        }
        Ok(())
    }

    /// The TLS listeners' files are named, and the SASL mechanisms are ones Warren has.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        if self.ssl_enabled {
            crate::tls::options::check("ssl_options", &self.ssl_options)
                .map_err(ConfigError::Invalid)?;
        }
        for (what, o) in [
            ("management_ssl", &self.management_ssl),
            ("prometheus_ssl", &self.prometheus_ssl),
        ] {
            if o.enabled {
                crate::tls::options::check(what, &o.as_ssl_options())
                    .map_err(ConfigError::Invalid)?;
            }
        }
        if let Some(m) = self
            .auth_mechanisms
            .iter()
            .find(|m| !KNOWN_MECHANISMS.contains(&m.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "auth_mechanisms: unknown mechanism '{m}' (Warren has {})",
                KNOWN_MECHANISMS.join(", ")
            )));
        }
        if !self.tcp_enabled && !self.ssl_enabled {
            return Err(ConfigError::Invalid(
                "tcp_enabled = false needs ssl_enabled = true: no AMQP listener would be left"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The window of stored messages a durable queue keeps in memory (`queue_load_window`).
    pub fn load_window(&self) -> warren_broker::LoadWindow {
        let high = usize::try_from(self.queue_load_window).unwrap_or(usize::MAX);
        warren_broker::LoadWindow {
            high,
            high_bytes: 16 << 20,
            low: high / 2,
        }
    }

    /// Opens the spill area in `<data_dir>/spill/` (emptied: it only ever holds a running
    /// broker's transient copies) with the queues' memory budget.
    pub fn open_spill(&self) -> std::io::Result<std::sync::Arc<warren_broker::spill::SpillArea>> {
        let per_queue = self.queue_memory_budget_mib.saturating_mul(1 << 20);
        let total = crate::memory::watermark(self.memory_high_watermark).unwrap_or(4 << 30) / 4;
        warren_broker::spill::SpillArea::open(&self.data_dir.join("spill"), per_queue, total)
    }

    /// How the store is opened: sled's cache from `store_cache_mib`, online compaction from
    /// `online_compaction_ratio` and `online_compaction_min_mib`.
    pub fn sled_options(&self) -> warren_store::SledOptions {
        let online = (self.online_compaction_ratio != 0.0).then(|| warren_store::CompactPolicy {
            ratio: self.online_compaction_ratio,
            min_disk_bytes: self.online_compaction_min_mib.saturating_mul(1024 * 1024),
        });
        warren_store::SledOptions {
            cache_capacity: self.store_cache_mib.saturating_mul(1024 * 1024),
            online_compaction: online,
            log_messages: self.store_message_log,
            ..Default::default()
        }
    }

    /// What a new data directory is seeded with: vhost `/` and the default user.
    pub fn first_boot(&self) -> warren_broker::FirstBoot {
        warren_broker::FirstBoot {
            vhost: "/".into(),
            user: self.default_user.clone(),
            password: self.default_pass.clone(),
        }
    }

    /// When the store is compacted at startup.
    pub fn compact_policy(&self) -> warren_store::CompactPolicy {
        warren_store::CompactPolicy {
            ratio: self.compact_on_start_ratio,
            min_disk_bytes: self.compact_on_start_min_mib.saturating_mul(1024 * 1024),
        }
    }

    /// The configuration as TOML, for `--print-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_rabbitmq() {
        let c = Config::default();
        assert_eq!(
            (c.port, c.channel_max, c.frame_max, c.heartbeat),
            (5672, 2047, 131_072, 60)
        );
        assert_eq!(c.max_message_size, 134_217_728);
        assert_eq!(c.consumer_timeout, 1_800_000);
    }

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = std::env::temp_dir().join(format!("warren-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("w.toml");
        std::fs::write(&file, "port = 6000\nheartbeat = 5\n").unwrap();
        let c = Config::load(
            Some(&file),
            &Overrides {
                port: Some(7000),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((c.port, c.heartbeat), (7000, 5));
    }

    #[test]
    fn invalid_values_are_refused() {
        let dir = std::env::temp_dir().join(format!("warren-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("w.toml");
        std::fs::write(&file, "frame_max = 100\n").unwrap();
        assert!(Config::load(Some(&file), &Overrides::default()).is_err());
        std::fs::write(&file, "no_such_setting = 1\n").unwrap();
        assert!(Config::load(Some(&file), &Overrides::default()).is_err());
        std::fs::write(&file, "consumer_timeout = 0\n").unwrap();
        assert!(Config::load(Some(&file), &Overrides::default()).is_err());
        for bad in [
            "compact_on_start_ratio = 0.5\n",
            "compact_on_start_ratio = -1.0\n",
            "online_compaction_ratio = 0.5\n",
            "online_compaction_ratio = inf\n",
            "store_cache_mib = 0\n",
            "queue_load_window = 1\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            assert!(
                Config::load(Some(&file), &Overrides::default()).is_err(),
                "{bad}"
            );
        }
        std::fs::write(&file, "compact_on_start_ratio = 0.0\nstore_cache_mib = 8\n").unwrap();
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(c.sled_options().cache_capacity, 8 << 20);
        assert!(!c.compact_policy().wants(u64::MAX, 0, 0));
        // Online compaction: on by default (ratio 2, 64 MiB), configurable, 0 turns it off.
        let default = Config::default().sled_options().online_compaction;
        assert_eq!(
            default,
            warren_store::SledOptions::default().online_compaction
        );
        std::fs::write(
            &file,
            "online_compaction_ratio = 3.0\nonline_compaction_min_mib = 10\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        let policy = c.sled_options().online_compaction.unwrap();
        assert_eq!((policy.ratio, policy.min_disk_bytes), (3.0, 10 << 20));
        std::fs::write(&file, "online_compaction_ratio = 0.0\n").unwrap();
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(c.sled_options().online_compaction, None);
    }

    #[test]
    fn unrelated_warren_variables_are_ignored_not_refused() {
        let vars = [
            ("WARREN_PORT", "5999"),
            ("WARREN_CONFIG", "warren.toml"),
            ("WARREN_SKIP_RABBITMQ", "1"),
            ("PATH", "/bin"),
            ("WARREN_CHANNEL_MAX", "7"),
            // warren ctl's own variables: no warning, no configuration.
            ("WARREN_CTL_PORT", "15673"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let (known, unknown) = Config::environment(vars);
        assert_eq!(unknown, vec!["WARREN_SKIP_RABBITMQ".to_string()]);
        assert_eq!(known.len(), 2);
        assert_eq!(known.get("WARREN_PORT").map(String::as_str), Some("5999"));
        assert!(known.contains_key("WARREN_CHANNEL_MAX"));
    }

    #[test]
    fn disk_free_limit_takes_rabbitmqs_forms() {
        use warren_mgmt::DiskFreeLimit;
        assert_eq!(
            Config::default().disk_free_limit.limit().ok(),
            Some(DiskFreeLimit::Absolute(50_000_000))
        );
        let dir = std::env::temp_dir().join(format!("warren-cfg-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("w.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(Some(&file), &Overrides::default()).map(|c| c.disk_free_limit.limit())
        };
        for (text, want) in [
            (
                "[disk_free_limit]\nabsolute = 1000\n",
                DiskFreeLimit::Absolute(1000),
            ),
            (
                "[disk_free_limit]\nabsolute = \"2GB\"\n",
                DiskFreeLimit::Absolute(2_000_000_000),
            ),
            (
                "disk_free_limit.absolute = \"1GiB\"\n",
                DiskFreeLimit::Absolute(1 << 30),
            ),
            (
                "[disk_free_limit]\nrelative = 1.5\n",
                DiskFreeLimit::MemRelative(1.5),
            ),
            // Both given: the relative one wins, as in RabbitMQ's schema.
            (
                "[disk_free_limit]\nabsolute = 5\nrelative = 2.0\n",
                DiskFreeLimit::MemRelative(2.0),
            ),
        ] {
            assert_eq!(load(text).ok().and_then(Result::ok), Some(want), "{text}");
        }
        for bad in [
            "[disk_free_limit]\nabsolute = \"50 MB\"\n",
            "[disk_free_limit]\nabsolute = \"50TB\"\n",
            "[disk_free_limit]\nrelative = -1.0\n",
            "[disk_free_limit]\nnothing = 1\n",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_information_unit("500k"), Some(512_000));
        assert_eq!(parse_information_unit("3Mb"), Some(3_000_000));
        assert_eq!(parse_information_unit("0"), Some(0));
        assert_eq!(parse_information_unit("MB"), None);
        assert_eq!(parse_information_unit("1mB"), None);
    }

    #[test]
    fn tls_settings_read_as_rabbitmq_names_them() {
        let dir = std::env::temp_dir().join(format!("warren-cfg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("w.toml");
        std::fs::write(
            &file,
            "ssl_enabled = true\nssl_port = 5999\nssl_cert_login_from = \"common_name\"\n\
             auth_mechanisms = [\"EXTERNAL\", \"PLAIN\"]\n\
             [ssl_options]\ncertfile = \"s.pem\"\nkeyfile = \"s.key\"\ncacertfile = \"ca.pem\"\n\
             verify = \"verify_peer\"\nfail_if_no_peer_cert = true\nversions = [\"tlsv1.3\"]\n\
             [management_ssl]\nenabled = true\ncertfile = \"s.pem\"\nkeyfile = \"s.key\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(c.ssl_port, 5999);
        assert_eq!(
            c.ssl_options.verify,
            crate::tls::options::Verify::VerifyPeer
        );
        assert!(c.ssl_options.fail_if_no_peer_cert);
        assert_eq!(
            c.ssl_options.versions,
            vec![crate::tls::options::TlsVersion::Tls13]
        );
        assert_eq!(c.ssl_cert_login_from, CertLoginFrom::CommonName);
        // The management table keeps its own default port for keys the file leaves out.
        assert_eq!(
            (c.management_ssl.enabled, c.management_ssl.port),
            (true, 15671)
        );
        assert_eq!(c.prometheus_ssl.port, 15691);
        for (bad, says) in [
            ("ssl_enabled = true\n", "ssl_options.certfile"),
            (
                "ssl_enabled = true\n[ssl_options]\ncertfile = \"a\"\nkeyfile = \"b\"\nverify = \"verify_peer\"\n",
                "ssl_options.cacertfile",
            ),
            (
                "auth_mechanisms = [\"GSSAPI\"]\n",
                "unknown mechanism 'GSSAPI'",
            ),
            ("tcp_enabled = false\n", "no AMQP listener"),
            ("[ssl_options]\nverify = \"verify_maybe\"\n", "verify_maybe"),
        ] {
            std::fs::write(&file, bad).unwrap();
            let e = Config::load(Some(&file), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // Variables reach a table's keys with `__`.
        let vars = [
            ("WARREN_SSL_OPTIONS__CERTFILE", "/x.pem"),
            ("WARREN_MANAGEMENT_SSL__PORT", "1"),
            ("WARREN_SSL_OPTIONS__NOPE", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let (known, unknown) = Config::environment(vars);
        assert_eq!(known.len(), 2);
        assert_eq!(unknown, vec!["WARREN_SSL_OPTIONS__NOPE".to_string()]);
    }

    #[test]
    fn printed_config_loads_back() {
        let text = Config::default().to_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, Config::default());
    }
}
