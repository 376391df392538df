//! `warren`: the broker binary.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use warren_server::config::{Config, Overrides};
use warren_server::ctl::{CtlCommand, CtlOptions};
use warren_server::healthcheck::HealthcheckOptions;

// mimalloc: faster than glibc's malloc for the broker's many small, short-lived allocations, and
// it gives freed memory back to the OS (glibc kept a drained backlog's memory; see
// docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Warren, an AMQP 0-9-1 message broker that behaves like RabbitMQ.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
    // The flags that have `WARREN_*` twins leave those variables to `Config::load`, which treats
    // an empty one as unset (clap would refuse `WARREN_PORT=` and `WARREN_DATA_DIR=`, so an
    // image's default could not be handed back to the configuration file).
    /// AMQP port to listen on (or `WARREN_PORT`).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on (or `WARREN_BIND`).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Directory for durable state (or `WARREN_DATA_DIR`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (or `WARREN_CONFIG`; empty: none).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `warren_server=debug` (or `WARREN_LOG_LEVEL`).
    #[arg(long)]
    log_level: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

/// Commands other than serving.
#[derive(Debug, Subcommand)]
enum Command {
    /// Compact the store in the data directory (the broker must be stopped): copy its live
    /// records into a fresh database and swap it in, giving back the space sled keeps.
    Compact,
    /// Manage the running broker through its management API with `rabbitmqctl`'s commands:
    /// `warren ctl add_user bob secret`. With `--offline` (or `--data-dir`), the user, vhost and
    /// permission commands work on a stopped broker's data directory instead.
    Ctl {
        /// How to reach the broker and print.
        #[command(flatten)]
        options: Box<CtlOptions>,
        /// The command.
        #[command(subcommand)]
        command: CtlCommand,
    },
    /// Exit 0 if the broker of this configuration is serving: its AMQP port answers with
    /// `connection.start` and, when the management API is on, its
    /// `/api/health/checks/local-alarms` answers 200 (for a container's `HEALTHCHECK`).
    Healthcheck(HealthcheckOptions),
}

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    // `--data-dir` on the command line (not from the environment) selects `ctl --offline`.
    let data_dir_given = matches.value_source("data_dir") == Some(ValueSource::CommandLine)
        || matches
            .subcommand()
            .is_some_and(|(_, m)| m.value_source("data_dir") == Some(ValueSource::CommandLine));
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let overrides = Overrides {
        port: cli.port,
        bind: cli.bind,
        data_dir: cli.data_dir,
        log_level: cli.log_level,
    };
    let file = cli.config.or_else(|| {
        std::env::var_os(warren_server::config::CONFIG_FILE_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let config = match Config::load(file.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren: {e}");
            std::process::exit(2);
        }
    };
    for name in Config::ignored_environment() {
        eprintln!(
            "warren: warning: ignoring environment variable {name}: not a configuration field"
        );
    }
    if cli.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    match &cli.command {
        Some(Command::Compact) => return compact(&config),
        Some(Command::Ctl { options, command }) => {
            return ctl(&config, options, command, data_dir_given);
        }
        Some(Command::Healthcheck(options)) => {
            match warren_server::healthcheck::run(&config, options) {
                Ok(report) => print!("{report}"),
                Err(e) => {
                    eprintln!("warren: unhealthy: {e}");
                    std::process::exit(1);
                }
            }
            return Ok(());
        }
        None => {}
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .context("invalid log level")?;
    // Colour only on a terminal: a log redirected to a file stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = warren_server::Server::bind(config).await?;
        tracing::info!(addr = %server.local_addr(), "warren listening");
        if let Some(addr) = server.management_addr() {
            tracing::info!(%addr, "management API listening");
        }
        let shutdown = async {
            if let Err(e) = shutdown_signal().await {
                tracing::error!(error = %e, "cannot wait for shutdown signals; stopping");
            }
            tracing::info!("shutdown signal received");
        };
        server.run_until(shutdown).await?;
        anyhow::Ok(())
    })
}

/// `warren compact`: one line on stdout when done; exit status 1 with the reason otherwise.
fn compact(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    match warren_store::compact(dir, &config.sled_options()) {
        Ok(r) => {
            let mib = |b: u64| b as f64 / 1_048_576.0;
            println!(
                "compacted {}: {:.1} MiB -> {:.1} MiB ({} records, {:.1} MiB of live data) in {:.2} s",
                dir.display(),
                mib(r.disk_before),
                mib(r.disk_after),
                r.records,
                mib(r.live_bytes),
                r.elapsed.as_secs_f64()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("warren: cannot compact {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}

/// `warren ctl ...`: what the command prints on stdout; exit status 1 with rabbitmqctl's kind of
/// message on standard error otherwise.
fn ctl(
    config: &Config,
    options: &CtlOptions,
    command: &CtlCommand,
    data_dir_given: bool,
) -> anyhow::Result<()> {
    let mut out = String::new();
    let result = if warren_server::ctl::is_offline(options, data_dir_given) {
        warren_server::ctl::run_offline(config, command).map(|text| out = text)
    } else {
        warren_server::ctl::run_online(config, options, command, &mut out)
    };
    print!("{out}");
    if let Err(e) = result {
        eprintln!("{}", e.report());
        std::process::exit(1);
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}
