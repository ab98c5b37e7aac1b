//! `accessgrant audit key generate|show`.

use std::process::ExitCode;

use super::KeyCommand;
use crate::transparency::{SigningKey, VerifierKey, note::valid_key_name};

/// Runs a key subcommand: prints the verifier key on stdout.
pub(super) fn run(command: KeyCommand) -> ExitCode {
    let origin = match &command {
        KeyCommand::Generate { origin, .. } | KeyCommand::Show { origin, .. } => origin,
    };
    if !valid_key_name(origin) {
        eprintln!(
            "accessgrant: --origin {origin:?}: must be 1-255 characters without '+', spaces or \
             control characters"
        );
        return ExitCode::from(2);
    }
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
