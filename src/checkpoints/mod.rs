//! The checkpoint signer's life in a server: which key it signs with, and the round that
//! signs a checkpoint every `[audit] checkpoint_interval`.
//!
//! **The key.** `[audit] signing_key_file` when set. Otherwise, on the embedded SQLite
//! default, a key beside the database file (`<file>.audit-key.pem`), created on first start
//! and kept across restarts, its verifier key logged; on PostgreSQL, where replicas must all
//! sign with the same key, there is no "beside", so `serve` refuses to start without one.
//!
//! **The round.** Every replica runs it; the write fence orders them, and a tree head
//! already signed is not signed again. A refusal (the stored tree no longer extends a signed
//! checkpoint) is logged, counted (`accessgrant_checkpoint_refusals_total`, which pages) and
//! repeated every round until an operator acts (runbook: "Checkpoint refused"). What the
//! signer signed last is also kept in a file outside the database ([`memory`]), so losing the
//! database does not let it sign a new, shorter history under the same key.

mod memory;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

pub use memory::{Memory, MemoryError, write_atomically};

use crate::{
    metrics::{CHECKPOINT_FAILURES, CHECKPOINT_REFUSALS, CHECKPOINT_TREE_SIZE, CHECKPOINTS_SIGNED},
    service::{
        App,
        commands::checkpoint::Outcome,
        transparency::{AuditSettings, Signer},
    },
    transparency::{KeyError, SigningKey},
};

/// Why no signer could be set up.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The configured (or SQLite-default) key file is unusable.
    #[error("audit signing key: {0}")]
    Key(#[from] KeyError),
    /// The last-signed file is unusable.
    #[error("audit signed-checkpoint file: {0}")]
    Memory(#[from] MemoryError),
    /// PostgreSQL without `[audit] signing_key_file`.
    #[error(
        "audit signing key: a PostgreSQL deployment needs [audit] signing_key_file (replicas \
         share one key; create it with `accessgrant audit key generate --out FILE`)"
    )]
    KeyRequired,
}

/// The signer `settings` name for a server on `sqlite_file` (`None`: not SQLite).
pub fn signer(
    settings: &AuditSettings,
    sqlite_file: Option<PathBuf>,
) -> Result<Signer, SignerError> {
    let key = match (&settings.signing_key_file, sqlite_file) {
        (Some(path), _) => SigningKey::load(path)?,
        (None, None) => return Err(SignerError::KeyRequired),
        (None, Some(db)) => {
            let mut name = db.into_os_string();
            name.push(".audit-key.pem");
            let path = PathBuf::from(name);
            if path.exists() {
                SigningKey::load(&path)?
            } else {
                let key = SigningKey::create(&path)?;
                let signer = Signer::new(key, settings.origin.clone());
                tracing::warn!(
                    path = %path.display(),
                    verifier_key = %signer.verifier,
                    "created an audit signing key beside the database; back it up apart from \
                     the database and publish its verifier key"
                );
                return Ok(signer);
            }
        }
    };
    Ok(Signer::new(key, settings.origin.clone()))
}

/// What this signer remembers having signed: `[audit] signed_checkpoint_file`, or on SQLite
/// by default `<database file>.audit-signed` (see [`memory`]).
pub fn memory(
    settings: &AuditSettings,
    sqlite_file: Option<PathBuf>,
    signer: &Signer,
) -> Result<Memory, SignerError> {
    let path = settings.signed_checkpoint_file.clone().or_else(|| {
        sqlite_file.map(|db| {
            let mut name = db.into_os_string();
            name.push(".audit-signed");
            PathBuf::from(name)
        })
    });
    Ok(Memory::open(path, signer)?)
}

/// Signs rounds forever, one starting every `every` (real time: the cadence is operational,
/// and checkpoints carry no time), so a commit is covered within `every` plus one round.
pub async fn run(app: App, every: Duration, mut memory: Memory) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        round(&app, &mut memory).await;
    }
}

/// One signing round, checked against (and then updating) what `memory` holds.
pub async fn round(app: &App, memory: &mut Memory) {
    match app.sign_checkpoint(memory.last()).await {
        Ok(Outcome::Signed { size, root }) => {
            metrics::counter!(CHECKPOINTS_SIGNED).increment(1);
            metrics::gauge!(CHECKPOINT_TREE_SIZE).set(size as f64);
            tracing::debug!(size, "signed an audit checkpoint");
            memory.remember(size, root, app.signer());
        }
        Ok(Outcome::Unchanged { size, root }) => {
            metrics::gauge!(CHECKPOINT_TREE_SIZE).set(size as f64);
            memory.remember(size, root, app.signer());
        }
        Ok(Outcome::Refused { signed, stored }) => {
            metrics::counter!(CHECKPOINT_REFUSALS).increment(1);
            // Every round is counted (the alert needs it); the same refusal is logged once a
            // minute, not every round.
            if !memory.should_report_refusal((signed, stored), Instant::now()) {
                return;
            }
            tracing::error!(
                signed_size = signed.0,
                signed_root = %hex::encode(signed.1),
                stored_root = %stored.map(hex::encode).unwrap_or_else(|| "none: the tree is smaller".into()),
                "REFUSED to sign an audit checkpoint: the stored Merkle tree does not extend a \
                 checkpoint already signed (the audit log was rewritten, cut, or restored from \
                 a backup); see the runbook, \"Checkpoint refused\""
            );
        }
        Err(e) => {
            metrics::counter!(CHECKPOINT_FAILURES).increment(1);
            tracing::warn!(error = %e, "signing an audit checkpoint failed; retrying next round");
        }
    }
}
