//! `herald`: the command-line tool of the herald SDK.
//!
//! - `herald broker`: a local Kafka (librdkafka's mock cluster) with one command and no Docker.
//! - `herald topics`: partitions, watermarks, committed offsets and lag.
//! - `herald dlq`: dead-letter topics.
//! - `herald groups`: consumer groups, their members, and moving their offsets (replay).
//! - `herald tail`: the records of a topic, decoded.
//! - `herald trace`: the events of one flow across topics.
//!
//! See `docs/cli.md`.

#![warn(missing_docs)]

mod broker;
mod common;
mod dlq;
mod groups;
mod tail;
mod topics;
mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use common::Common;

/// herald's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a local Kafka broker (librdkafka's mock cluster) in this process, until Ctrl-C,
    /// SIGTERM or `quit` on stdin.
    Broker(broker::BrokerArgs),
    /// Shows topics: partitions, low/high watermarks, and per consumer group the committed offset
    /// and lag of each partition.
    Topics(topics::TopicsArgs),
    /// Inspects and replays dead-letter topics.
    Dlq {
        /// What to do with the dead letters.
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Lists and describes consumer groups and moves their offsets: replay a topic from a time or
    /// an offset into a group, or skip it to the end.
    Groups {
        /// What to do with the groups.
        #[command(subcommand)]
        command: groups::GroupsCommand,
    },
    /// Shows the records of a topic, decoded as CloudEvents: the last 10 by default, or from the
    /// beginning, a time or an offset; --follow keeps reading until Ctrl-C.
    Tail(tail::TailArgs),
    /// Shows every event of one flow (a correlation id) across topics, in time order, each under
    /// the event that caused it.
    Trace(trace::TraceArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Broker(args) => broker::run(args).await,
        Command::Topics(args) => topics::run(args, &cli.common).await,
        Command::Dlq { command } => dlq::run(command, &cli.common).await,
        Command::Groups { command } => groups::run(command, &cli.common).await,
        Command::Tail(args) => tail::run(args, &cli.common).await,
        Command::Trace(args) => trace::run(args, &cli.common).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
