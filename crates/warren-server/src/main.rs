//! `warren`: the broker binary.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use warren_server::config::{Config, Overrides};
use warren_server::ctl::CtlCommand;

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
    /// AMQP port to listen on.
    #[arg(long, env = "WARREN_PORT")]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long, env = "WARREN_BIND")]
    bind: Option<IpAddr>,
    /// Directory for durable state.
    #[arg(long, env = "WARREN_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "WARREN_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `warren_server=debug`.
    #[arg(long, env = "WARREN_LOG_LEVEL")]
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
    /// Manage users, vhosts and permissions in the data directory (the broker must be stopped),
    /// with `rabbitmqctl`'s command names: `warren ctl add_user bob secret`.
    Ctl {
        /// The command.
        #[command(subcommand)]
        command: CtlCommand,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let overrides = Overrides {
        port: cli.port,
        bind: cli.bind,
        data_dir: cli.data_dir,
        log_level: cli.log_level,
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
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
        Some(Command::Ctl { command }) => return ctl(&config, command),
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

/// `warren ctl ...`: what the command prints on stdout; exit status 1 with the reason otherwise.
fn ctl(config: &Config, command: &CtlCommand) -> anyhow::Result<()> {
    match warren_server::ctl::run(config, command) {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    }
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
