//! `accessgrant audit key generate|show`.

use std::process::ExitCode;

use super::KeyCommand;
use crate::transparency::{SigningKey, VerifierKey};

/// Runs a key subcommand: prints the verifier key on stdout.
pub(super) fn run(command: KeyCommand) -> ExitCode {
    let (result, origin) = match command {
        KeyCommand::Generate { out, origin } => (SigningKey::create(&out), origin),
        KeyCommand::Show { key, origin } => (SigningKey::load(&key), origin),
    };
    match result {
        Ok(key) => {
            println!("{}", VerifierKey::new(&origin, key.public_key()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("accessgrant: {e}");
            ExitCode::FAILURE
        }
    }
}
