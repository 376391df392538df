//! `warren ctl`: `rabbitmqctl`'s commands, names and output, run as an HTTP client of the
//! running broker's management API (as LavinMQ's `lavinmqctl` is built), or with `--offline`
//! (or an explicit `--data-dir`) on a stopped broker's data directory.
//!
//! This module owns the command line (commands and connection options), the error type and
//! the dispatch; `client` speaks HTTP, `output` prints rabbitmqctl's tables, `accounts`,
//! `objects` and `node` implement the commands online, `offline` on the data directory.

mod accounts;
mod client;
mod node;
mod objects;
mod offline;
mod output;

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use warren_broker::AdminError;
use warren_store::StoreError;

use crate::config::Config;
pub use client::{Client, Trust};
pub use output::Format;

/// How `warren ctl` reaches the broker and prints (flags before or after the command).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct CtlOptions {
    /// The management API's base URL (default `http://127.0.0.1:<management_port>`).
    #[arg(long, env = "WARREN_CTL_URL", global = true)]
    pub url: Option<String>,
    /// PEM file of the CA that signed an `https://` API's certificate (default: the system's
    /// CA certificates).
    #[arg(long, env = "WARREN_CTL_CACERT", global = true)]
    pub cacert: Option<std::path::PathBuf>,
    /// Do not verify an `https://` API's certificate at all (anyone on the path can then read
    /// the credentials).
    #[arg(long, env = "WARREN_CTL_INSECURE", global = true)]
    pub insecure: bool,
    /// The management API's host, when no URL is given.
    #[arg(long, env = "WARREN_CTL_HOST", global = true)]
    pub host: Option<String>,
    /// The management API's port, when no URL is given.
    #[arg(long = "port", id = "ctl_port", env = "WARREN_CTL_PORT", global = true)]
    pub port: Option<u16>,
    /// The user to log in to the API as (default: the configuration's `default_user`).
    #[arg(long = "user", id = "ctl_user", env = "WARREN_CTL_USER", global = true)]
    pub user: Option<String>,
    /// The user's password (default: the configuration's `default_pass`).
    #[arg(
        long = "password",
        id = "ctl_password",
        env = "WARREN_CTL_PASSWORD",
        global = true
    )]
    pub password: Option<String>,
    /// Drop the informational banner lines (`Listing users ...`).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Drop the banner and the table's header line.
    #[arg(short, long, global = true)]
    pub silent: bool,
    /// Output format of listings.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub formatter: Formatter,
    /// How long to wait for the broker, in seconds (`await_startup`, each HTTP request).
    #[arg(short = 't', long, default_value_t = 60, global = true)]
    pub timeout: u64,
    /// Work on the stopped broker's data directory instead of the running broker.
    #[arg(long, global = true)]
    pub offline: bool,
}

/// rabbitmqctl's `--formatter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Formatter {
    /// Tab-separated values with a header line.
    #[default]
    Table,
    /// A JSON array of objects, one per line.
    Json,
}

/// One `rabbitmqctl` command, named as `rabbitmqctl` names it.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum CtlCommand {
    /// Adds a user with no permissions.
    #[command(name = "add_user")]
    AddUser {
        /// The user's name.
        user: String,
        /// The user's password.
        password: String,
    },
    /// Deletes a user.
    #[command(name = "delete_user")]
    DeleteUser {
        /// The user's name.
        user: String,
    },
    /// Replaces a user's password.
    #[command(name = "change_password")]
    ChangePassword {
        /// The user's name.
        user: String,
        /// The new password.
        password: String,
    },
    /// Replaces a user's tags.
    #[command(name = "set_user_tags")]
    SetUserTags {
        /// The user's name.
        user: String,
        /// The tags (none clears them).
        tags: Vec<String>,
    },
    /// Lists users and their tags.
    #[command(name = "list_users")]
    ListUsers,
    /// Adds a virtual host.
    #[command(name = "add_vhost")]
    AddVhost {
        /// The vhost's name.
        vhost: String,
    },
    /// Deletes a virtual host with its exchanges, queues, messages and permissions.
    #[command(name = "delete_vhost")]
    DeleteVhost {
        /// The vhost's name.
        vhost: String,
    },
    /// Lists virtual hosts.
    #[command(name = "list_vhosts")]
    ListVhosts {
        /// Columns (default `name`).
        columns: Vec<String>,
    },
    /// Sets a user's configure, write and read expressions on a vhost (RabbitMQ's regexes).
    #[command(name = "set_permissions")]
    SetPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The user's name.
        user: String,
        /// Configure permission (a regular expression).
        configure: String,
        /// Write permission (a regular expression).
        write: String,
        /// Read permission (a regular expression).
        read: String,
    },
    /// Takes a vhost away from a user.
    #[command(name = "clear_permissions")]
    ClearPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The user's name.
        user: String,
    },
    /// Lists the users allowed on a vhost.
    #[command(name = "list_permissions")]
    ListPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// Sets a policy (`PUT /api/policies/{vhost}/{name}`).
    #[command(name = "set_policy")]
    SetPolicy {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The policy's priority.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i64,
        /// What it applies to: `queues`, `exchanges` or `all`.
        #[arg(long = "apply-to", default_value = "all")]
        apply_to: String,
        /// The policy's name.
        name: String,
        /// The regular expression of names it applies to.
        pattern: String,
        /// Its definition, a JSON object.
        definition: String,
    },
    /// Clears a policy.
    #[command(name = "clear_policy")]
    ClearPolicy {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The policy's name.
        name: String,
    },
    /// Lists a vhost's policies.
    #[command(name = "list_policies")]
    ListPolicies {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// Lists a vhost's queues.
    #[command(name = "list_queues")]
    ListQueues {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// Columns (default `name messages`).
        columns: Vec<String>,
    },
    /// Lists a vhost's exchanges.
    #[command(name = "list_exchanges")]
    ListExchanges {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// Columns (default `name type`).
        columns: Vec<String>,
    },
    /// Lists a vhost's bindings.
    #[command(name = "list_bindings")]
    ListBindings {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// Columns (default: all six).
        columns: Vec<String>,
    },
    /// Lists AMQP connections.
    #[command(name = "list_connections")]
    ListConnections {
        /// Columns (default `user peer_host peer_port state`).
        columns: Vec<String>,
    },
    /// Closes a connection, named as `list_connections name` shows it, with 320 and a reason.
    #[command(name = "close_connection")]
    CloseConnection {
        /// The connection's name.
        name: String,
        /// The reason given to the client.
        reason: String,
    },
    /// Removes a queue's ready messages.
    #[command(name = "purge_queue")]
    PurgeQueue {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The queue.
        queue: String,
    },
    /// Deletes a queue.
    #[command(name = "delete_queue")]
    DeleteQueue {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// Only if it has no messages.
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
        /// Only if it has no consumers.
        #[arg(short = 'u', long = "if-unused")]
        if_unused: bool,
        /// The queue.
        queue: String,
    },
    /// Imports a definitions file (`-` reads standard input).
    #[command(name = "import_definitions")]
    ImportDefinitions {
        /// The file.
        file: String,
    },
    /// Exports definitions to a file (`-` writes standard output).
    #[command(name = "export_definitions")]
    ExportDefinitions {
        /// The file.
        file: String,
    },
    /// Changes the memory alarm's threshold while running: a fraction of physical memory, or
    /// `absolute <bytes>` (units as RabbitMQ's: `512MiB`, `2GB`).
    #[command(name = "set_vm_memory_high_watermark")]
    SetVmMemoryHighWatermark {
        /// `<fraction>` or `absolute <value>`.
        #[arg(num_args = 1..=2, required = true)]
        value: Vec<String>,
    },
    /// Changes the free disk space limit while running: `<bytes>` (units as RabbitMQ's:
    /// `50MB`, `1GiB`) or `mem_relative <fraction>` of physical memory.
    #[command(name = "set_disk_free_limit")]
    SetDiskFreeLimit {
        /// `<disk_limit>` or `mem_relative <fraction>`.
        #[arg(num_args = 1..=2, required = true)]
        value: Vec<String>,
    },
    /// Reads the TLS certificate, key and CA files of every TLS listener again (a Warren
    /// command, through `POST /api/warren/tls/reload`): new connections use them, open ones keep
    /// theirs.
    #[command(name = "reload_certificates")]
    ReloadCertificates,
    /// The node's version, listeners, alarms and memory threshold.
    #[command(name = "status")]
    Status,
    /// Waits until the broker answers (up to `--timeout` seconds).
    #[command(name = "await_startup")]
    AwaitStartup,
}

/// Why a `warren ctl` command failed; [`CtlError::report`] is what is printed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The data directory could not be opened (in use, unknown format, I/O).
    #[error("cannot open the data directory {dir}: {source}")]
    Open {
        /// The directory.
        dir: String,
        /// Why.
        source: StoreError,
    },
    /// The command was refused or the store failed (offline).
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The command is refused as rabbitmqctl refuses it (`User "bob" already exists`).
    #[error("{0}")]
    Refused(String),
    /// The vhost does not exist (rabbitmqctl prints this one without `Error:`).
    #[error("Virtual host '{0}' does not exist")]
    NoSuchVhost(String),
    /// Bad arguments, caught before any request.
    #[error("{0}")]
    Validation(String),
    /// The API answered an error not mapped to a rabbitmqctl message.
    #[error("{reason}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// RabbitMQ's `reason`.
        reason: String,
    },
    /// The `https://` API's certificate did not verify.
    #[error(
        "the management API at {url} presented a certificate that does not verify ({reason}); pass --cacert FILE with the CA that signed it, or --insecure to skip the check"
    )]
    Untrusted {
        /// The base URL.
        url: String,
        /// What rustls found wrong.
        reason: String,
    },
    /// The API could not be reached.
    #[error("cannot reach the management API at {url}: {reason}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl CtlError {
    /// The text for standard error, shaped as rabbitmqctl's.
    pub fn report(&self) -> String {
        match self {
            CtlError::NoSuchVhost(_) => self.to_string(),
            CtlError::Validation(m) => format!("Error (argument validation): {m}"),
            CtlError::Open { .. }
            | CtlError::Admin(_)
            | CtlError::Unreachable { .. }
            | CtlError::Untrusted { .. } => {
                format!("Error: {self}")
            }
            _ => format!("Error:\n{self}"),
        }
    }
}

/// Whether the command runs offline: `--offline`, or `--data-dir` given on the command line.
pub fn is_offline(options: &CtlOptions, data_dir_on_command_line: bool) -> bool {
    options.offline || data_dir_on_command_line
}

/// The management API client `warren ctl` (and `warren healthcheck`) use: `--url`, or
/// `--host`/`--port`, else the configuration's bind address and `management_port`; `--user` and
/// `--password`, else the configuration's `default_user` and `default_pass`; `--cacert` and
/// `--insecure` for an `https://` URL.
pub fn client(config: &Config, options: &CtlOptions) -> Result<Client, CtlError> {
    let base = match &options.url {
        Some(url) => url.clone(),
        None => {
            let host = options.host.clone().unwrap_or_else(|| {
                if config.bind.is_unspecified() {
                    "127.0.0.1".into()
                } else {
                    config.bind.to_string()
                }
            });
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            format!(
                "http://{host}:{}",
                options.port.unwrap_or(config.management_port)
            )
        }
    };
    let user = options.user.as_deref().unwrap_or(&config.default_user);
    let password = options.password.as_deref().unwrap_or(&config.default_pass);
    let trust = Trust {
        cacert: options.cacert.clone(),
        insecure: options.insecure,
    };
    Client::new(
        &base,
        user,
        password,
        Duration::from_secs(options.timeout.max(1)),
        &trust,
    )
}

/// Runs `command` against the running broker, appending what it prints to `out` (banner lines
/// come first, as rabbitmqctl prints them even when the command then fails).
pub fn run_online(
    config: &Config,
    options: &CtlOptions,
    command: &CtlCommand,
    out: &mut String,
) -> Result<(), CtlError> {
    let client = client(config, options)?;
    let format = Format::new(options);
    if accounts::run(&client, &format, command, out)?
        || objects::run(&client, &format, command, out)?
    {
        return Ok(());
    }
    node::run(&client, &format, options, command, out)
}

/// Runs `command` on the data directory of `config` (the broker must be stopped).
pub fn run_offline(config: &Config, command: &CtlCommand) -> Result<String, CtlError> {
    offline::run(config, command)
}
