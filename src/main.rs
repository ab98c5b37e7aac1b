//! The `accessgrant` binary: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    accessgrant::cli::run(accessgrant::cli::Cli::parse())
}
