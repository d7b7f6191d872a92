//! `herald`: operate the Kafka topics of herald services.
//!
//! A minimal entry point for the `dlq` commands; the full CLI adds its own commands beside them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dlq;

/// Operate the Kafka topics of herald services.
#[derive(Parser)]
#[command(name = "herald", version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(clap::Args)]
pub struct Common {
    /// The Kafka brokers, host:port,... (default: KAFKA_BOOTSTRAP_SERVERS).
    #[arg(long, global = true)]
    pub bootstrap_servers: Option<String>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Dead-letter topics: list, count, show and replay dead letters.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dlq { command } => dlq::run(command, &cli.common).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
