//! `warren-perf`: a load generator for any AMQP 0-9-1 broker, in the spirit of RabbitMQ PerfTest
//! and lavinmqperf.
//!
//! Its AMQP client is written directly on `warren-codec` and tokio (rustls for `amqps://`, see
//! `tls`) so that the generator is not the bottleneck: publishes are encoded into one buffer per batch and written at once, reads are big
//! and every frame in them is decoded before the next read, acks use `multiple`. Scenarios are
//! subcommands: `throughput` loads a broker; `latency`, `fanout`, `backlog` and `connections`
//! measure one aspect each; `sink` is a fake broker that discards everything, to measure the
//! generator itself.

mod backlog;
mod client;
mod common;
mod confirms;
mod connections;
mod consumer;
mod fanout;
mod latency;
mod procstat;
mod publisher;
mod report;
mod sink;
mod stats;
mod throughput;
mod tls;
mod uri;

use clap::{Parser, Subcommand};

/// Load generator for AMQP 0-9-1 brokers.
#[derive(Debug, Parser)]
#[command(name = "warren-perf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// P producers and C consumers over Q queues for a fixed time; report msg/s, broker CPU and RSS.
    Throughput(throughput::ThroughputArgs),
    /// One producer at a fixed rate, one consumer: latency percentiles of every message.
    Latency(latency::LatencyArgs),
    /// One producer into a fanout exchange bound to K queues, one consumer per queue.
    Fanout(fanout::FanoutArgs),
    /// Fill a queue with no consumer (RSS per message), then drain it.
    Backlog(backlog::BacklogArgs),
    /// Open N idle connections (one channel and queue each): RSS per connection.
    Connections(connections::ConnectionsArgs),
    /// A fake broker that acks and discards every publish, to measure warren-perf itself.
    Sink(sink::SinkArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Throughput(args) => {
                let report = throughput::run(&args).await?;
                if args.json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    println!("{}", report.line());
                }
                for e in &report.errors {
                    eprintln!("warren-perf: {e}");
                }
                if !report.errors.is_empty() {
                    std::process::exit(1);
                }
                Ok(())
            }
            Command::Latency(args) => common::emit(&latency::run(&args).await?, args.common.json),
            Command::Fanout(args) => common::emit(&fanout::run(&args).await?, args.common.json),
            Command::Backlog(args) => common::emit(&backlog::run(&args).await?, args.common.json),
            Command::Connections(args) => {
                common::emit(&connections::run(&args).await?, args.common.json)
            }
            Command::Sink(args) => sink::run(&args).await,
        }
    })
}
