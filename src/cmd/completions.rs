//! `completions SHELL`: shell completion scripts generated from the clap definitions.

use clap::CommandFactory as _;

use super::Outcome;
use crate::cli::{Cli, CompletionsArgs};

/// Print the completion script to stdout.
pub fn run(args: &CompletionsArgs) -> Outcome {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "plcprobe", &mut std::io::stdout());
    Outcome::Ok
}
