//! `herald dlq`: placeholder until the dead-letter commands land.

use std::process::ExitCode;

use clap::Subcommand;

use crate::Common;

/// The `herald dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Counts the dead letters of a topic.
    Count {
        /// The dead-letter topic.
        topic: String,
    },
}

/// Runs a `herald dlq` subcommand.
///
/// # Errors
/// None yet.
pub async fn run(command: DlqCommand, _common: &Common) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::Count { topic } => {
            println!("herald dlq count {topic}: not implemented yet");
            Ok(ExitCode::SUCCESS)
        }
    }
}
