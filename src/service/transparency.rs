//! The audit log's transparency reads — the latest signed checkpoint, inclusion and
//! consistency proofs — and the signing round the server runs every `checkpoint_interval`.
//! Proofs are only given for sizes a signed checkpoint covers, so a client can always check
//! them against a signature it holds.

use std::sync::Arc;

use super::{
    App, Caller,
    commands::checkpoint::{Outcome, SignCheckpoint},
};
use crate::{
    domain::{Error, permission::Permission},
    storage::{tree, write::CheckpointRow},
    transparency::{Hash, SigningKey, VerifierKey, merkle},
};

/// The log's signing identity: its name (origin) and key.
#[derive(Debug)]
pub struct Signer {
    /// The key (read from its file at start; never stored in the database).
    pub key: Arc<SigningKey>,
    /// The log's name: first line of every checkpoint, and the key's name.
    pub origin: String,
    /// The verifier key clients check checkpoints with.
    pub verifier: VerifierKey,
}

impl Signer {
    /// The identity of `key` under `origin`.
    pub fn new(key: SigningKey, origin: String) -> Self {
        let verifier = VerifierKey::new(&origin, key.public_key());
        Self {
            key: Arc::new(key),
            origin,
            verifier,
        }
    }
}

/// An inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The event's leaf.
    pub leaf_index: u64,
    /// The tree size proven against.
    pub tree_size: u64,
    /// The audit path.
    pub hashes: Vec<Hash>,
}

impl App {
    /// One signing round: signs the tree if it grew and still extends what was signed
    /// before. `last_known` is the tree head this process signed or saw last.
    pub async fn sign_checkpoint(&self, last_known: Option<(u64, Hash)>) -> Result<Outcome, Error> {
        let command = SignCheckpoint {
            key: self.signer.key.clone(),
            origin: self.signer.origin.clone(),
            last_known,
        };
        self.write(command, None).await
    }

    /// The log's signing identity.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The latest signed checkpoint's note and the verifier key that checks it.
    pub async fn audit_checkpoint(&self, caller: &Caller) -> Result<(String, String), Error> {
        caller.require(Permission::AuditRead)?;
        let latest = self.latest_checkpoint().await?;
        Ok((latest.note, self.signer.verifier.to_string()))
    }

    /// Proves `event_id`'s leaf is in the tree of `tree_size` leaves (0: the latest signed).
    pub async fn inclusion_proof(
        &self,
        event_id: &str,
        tree_size: u64,
        caller: &Caller,
    ) -> Result<InclusionProof, Error> {
        caller.require(Permission::AuditRead)?;
        let latest = self.latest_checkpoint().await?.checkpoint.size;
        let size = signed_size("tree_size", tree_size, latest)?;
        let reader = self.store.reader();
        let leaf = tree::event_leaf(reader, event_id)
            .await?
            .ok_or(Error::EventNotFound)?;
        if leaf >= size {
            return Err(Error::TreeSizeOutOfRange {
                field: "tree_size",
                requested: leaf + 1,
                latest: size,
            });
        }
        let hashes =
            tree::compute(reader, |read| merkle::inclusion_proof(leaf, size, read)).await?;
        Ok(InclusionProof {
            leaf_index: leaf,
            tree_size: size,
            hashes,
        })
    }

    /// Proves the tree of `first` leaves is a prefix of the tree of `second` (0: the latest
    /// signed); answers the second size and the proof.
    pub async fn consistency_proof(
        &self,
        first: u64,
        second: u64,
        caller: &Caller,
    ) -> Result<(u64, Vec<Hash>), Error> {
        caller.require(Permission::AuditRead)?;
        let latest = self.latest_checkpoint().await?.checkpoint.size;
        let second = signed_size("second_tree_size", second, latest)?;
        if first > latest {
            return Err(Error::TreeSizeOutOfRange {
                field: "first_tree_size",
                requested: first,
                latest,
            });
        }
        if first > second {
            return Err(Error::invalid(
                "first_tree_size",
                "must not be above second_tree_size",
            ));
        }
        let reader = self.store.reader();
        let hashes = tree::compute(reader, |read| {
            merkle::consistency_proof(first, second, read)
        })
        .await?;
        Ok((second, hashes))
    }

    async fn latest_checkpoint(&self) -> Result<CheckpointRow, Error> {
        tree::latest_checkpoint(self.store.reader(), &self.signer.origin)
            .await?
            .ok_or(Error::NoCheckpointYet)
    }
}

/// `asked` (0: `latest`), refused above `latest`.
fn signed_size(field: &'static str, asked: u64, latest: u64) -> Result<u64, Error> {
    match asked {
        0 => Ok(latest),
        n if n > latest => Err(Error::TreeSizeOutOfRange {
            field,
            requested: n,
            latest,
        }),
        n => Ok(n),
    }
}

/// `[audit]`: where the signing key is and what the log is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The Ed25519 PKCS#8 PEM key; `None`: on SQLite, a key beside the database file
    /// (created on first start), on PostgreSQL a refusal to start.
    pub signing_key_file: Option<std::path::PathBuf>,
    /// The log's name (first line of every checkpoint, and the key's name).
    pub origin: String,
    /// How soon after a commit a checkpoint covering it is signed.
    pub checkpoint_interval: std::time::Duration,
    /// Where the last signed checkpoint is kept outside the database; `None`: on SQLite
    /// `<database file>.audit-signed`, on PostgreSQL memory only.
    pub signed_checkpoint_file: Option<std::path::PathBuf>,
}

/// The defaults of `[audit]` (docs/configuration.md).
impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            signing_key_file: None,
            origin: "accessgrant/audit".into(),
            checkpoint_interval: std::time::Duration::from_secs(1),
            signed_checkpoint_file: None,
        }
    }
}
