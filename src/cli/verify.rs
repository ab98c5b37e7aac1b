//! `accessgrant audit verify`: the hash chains, and with `--verifier-key` the Merkle tree
//! and every checkpoint, checked straight from the database.

use std::{path::PathBuf, process::ExitCode};

use super::verify_tree;
use crate::{
    config::Config,
    domain::ids::AccountId,
    storage::{Store, accounts, audit_log},
    transparency::VerifierKey,
};

/// What `audit verify` checks.
#[derive(Debug)]
pub(super) struct VerifyArgs {
    /// Only this account's chain (the tree always covers every account).
    pub account: Option<String>,
    /// Check the tree and checkpoints with this verifier key.
    pub verifier_key: Option<String>,
    /// Checkpoint files kept by customers, checked against the rebuilt tree.
    pub checkpoints: Vec<PathBuf>,
}

/// Verifies chains (all accounts, or one), then the tree and checkpoints if a verifier key
/// is given. Exit 0 intact, 1 broken, 2 unusable arguments or database.
pub(super) async fn verify(config: Config, args: VerifyArgs) -> ExitCode {
    let verifier = match args
        .verifier_key
        .as_deref()
        .map(VerifierKey::parse)
        .transpose()
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("accessgrant: --verifier-key: {e}");
            return ExitCode::from(2);
        }
    };
    if verifier.is_none() && !args.checkpoints.is_empty() {
        eprintln!("accessgrant: --checkpoint needs --verifier-key to check its signature");
        return ExitCode::from(2);
    }
    let store = match Store::connect_with(&config.database_url, &config.database).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("accessgrant: cannot open the database: {e}");
            return ExitCode::from(2);
        }
    };
    let chains = verify_chains(&store, args.account).await;
    let tree = match (&chains, verifier) {
        (Err(_), _) | (_, None) => Ok(true),
        (Ok(_), Some(verifier)) => verify_tree::verify(&store, &verifier, &args.checkpoints).await,
    };
    let _ = store.close().await;
    match (chains, tree) {
        (Err(code), _) | (_, Err(code)) => code,
        (Ok(true), Ok(true)) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Verifies the chains; `Ok(intact)`, or the exit code of a usage or database error.
async fn verify_chains(store: &Store, account: Option<String>) -> Result<bool, ExitCode> {
    let accounts = match account {
        Some(a) => vec![named_account(store, a).await?],
        None => match audit_log::chain_accounts(store.reader()).await {
            Ok(list) => list,
            Err(e) => {
                eprintln!("accessgrant: cannot list accounts: {e}");
                return Err(ExitCode::from(2));
            }
        },
    };
    let mut broken = false;
    for account in &accounts {
        match audit_log::has_chain(store.reader(), account).await {
            Ok(true) => {}
            Ok(false) => {
                // Listed, or named and provisioned: its whole log is gone.
                broken = true;
                println!("{account}: BROKEN: the account exists but has no audit events");
                continue;
            }
            Err(e) => {
                eprintln!("accessgrant: cannot read {account}: {e}");
                return Err(ExitCode::from(2));
            }
        }
        match audit_log::verify(store, account).await {
            Ok(v) if v.intact() => println!("{account}: intact ({} events)", v.events_checked),
            Ok(v) => {
                broken = true;
                println!(
                    "{account}: BROKEN at event {} (after checking {} events)",
                    v.first_broken_event_id.unwrap_or_default(),
                    v.events_checked
                );
            }
            Err(e) => {
                eprintln!("accessgrant: cannot verify {account}: {e}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(!broken)
}

/// The account named by `--account`, or exit status 2 for a usage error: an id that is not
/// an account id, or one with neither an account nor any audit event (a typo in a cron job
/// must not page as "chain broken"). A provisioned account without events passes through and
/// is then reported broken.
async fn named_account(store: &Store, account: String) -> Result<String, ExitCode> {
    let id = AccountId::parse(&account, "--account").map_err(|v| {
        eprintln!("accessgrant: --account {account:?}: {}", v.description);
        ExitCode::from(2)
    })?;
    let reader = store.reader();
    let known = async {
        Ok::<_, crate::domain::Error>(
            audit_log::has_chain(reader, id.as_str()).await?
                || accounts::find(reader, &id).await?.is_some(),
        )
    };
    match known.await {
        Ok(true) => Ok(account),
        Ok(false) => {
            eprintln!("accessgrant: {account}: no such account and no audit events");
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("accessgrant: cannot read {account}: {e}");
            Err(ExitCode::from(2))
        }
    }
}
