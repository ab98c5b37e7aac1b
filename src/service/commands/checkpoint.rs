//! Signing a checkpoint of the audit log's Merkle tree — only if the stored tree still
//! extends every checkpoint signed before.
//!
//! The stored nodes are what an insider would rewrite together with the events, so before
//! signing, the root the stored nodes give at the latest stored checkpoint's size must equal
//! that checkpoint's root, and likewise at the size this process itself signed last (which
//! survives someone deleting checkpoint rows while it runs). Otherwise the command refuses:
//! signing would put the key's name under a forked history. Replicas signing the same tree
//! head are harmless: Ed25519 is deterministic, and the write fence orders them, so the
//! second finds the checkpoint already stored and signs nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    domain::Error,
    storage::{
        to_us,
        write::{CheckpointRow, Command, Draft, Keys, TreeKeys},
    },
    transparency::{Checkpoint, Hash, SigningKey},
};

/// Sign the tree as it stands, if it grew.
pub struct SignCheckpoint {
    /// The signing key.
    pub key: Arc<SigningKey>,
    /// The log's name.
    pub origin: String,
    /// The last tree head this process signed (or found signed), if any.
    pub last_known: Option<(u64, Hash)>,
}

/// What came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A new checkpoint of this size and root was stored.
    Signed {
        /// Leaves covered.
        size: u64,
        /// Its root.
        root: Hash,
    },
    /// The latest checkpoint already covers the whole tree.
    Unchanged {
        /// Leaves covered.
        size: u64,
        /// Its root.
        root: Hash,
    },
    /// The stored tree does not extend a signed checkpoint: nothing was signed.
    Refused {
        /// The checkpoint it does not extend: size and signed root.
        signed: (u64, Hash),
        /// What the stored tree gives at that size (`None`: the tree is now smaller).
        stored: Option<Hash>,
    },
}

impl Command for SignCheckpoint {
    type Answer = Outcome;

    fn announce(&self, keys: &mut Keys) {
        keys.tree = Some(TreeKeys {
            origin: self.origin.clone(),
            roots_at: self.last_known.iter().map(|(size, _)| *size).collect(),
        });
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<Outcome, Error> {
        let tree = draft.tree()?.clone();
        let latest = tree
            .latest
            .as_ref()
            .map(|c| (c.checkpoint.size, c.checkpoint.root));
        for (size, root) in latest.iter().chain(self.last_known.iter()) {
            let stored = tree.roots.get(size).copied();
            if stored != Some(*root) {
                return Ok(Outcome::Refused {
                    signed: (*size, *root),
                    stored,
                });
            }
        }
        let root = tree
            .roots
            .get(&tree.size)
            .copied()
            .ok_or_else(|| Error::Internal("the tree's own root was not loaded".into()))?;
        if latest.is_some_and(|(size, _)| size == tree.size) {
            return Ok(Outcome::Unchanged {
                size: tree.size,
                root,
            });
        }
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: tree.size,
            root,
        };
        let note = checkpoint.sign(&self.key);
        draft.put_checkpoint(CheckpointRow {
            checkpoint,
            note,
            sign_time_us: to_us(now),
        });
        Ok(Outcome::Signed {
            size: tree.size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        service::commands::fixture::t,
        storage::write::{Loaded, TreeState, View},
        transparency::{VerifierKey, merkle, note},
    };

    fn key() -> Arc<SigningKey> {
        Arc::new(SigningKey::generate().unwrap().1)
    }

    fn command(key: &Arc<SigningKey>, last_known: Option<(u64, Hash)>) -> SignCheckpoint {
        SignCheckpoint {
            key: key.clone(),
            origin: "test/log".into(),
            last_known,
        }
    }

    /// Runs `command` over a tree of `size` leaves whose stored roots are `roots`.
    fn run(
        command: &SignCheckpoint,
        size: u64,
        roots: &[(u64, Hash)],
        latest: Option<(u64, Hash)>,
    ) -> (Outcome, Vec<CheckpointRow>) {
        let mut keys = Keys::default();
        command.announce(&mut keys);
        let latest = latest.map(|(size, root)| CheckpointRow {
            checkpoint: Checkpoint {
                origin: "test/log".into(),
                size,
                root,
            },
            note: String::new(),
            sign_time_us: 0,
        });
        let loaded = Loaded {
            tree: Some(TreeState {
                size,
                latest,
                roots: roots.iter().copied().collect::<BTreeMap<_, _>>(),
            }),
            ..Loaded::default()
        };
        let view = View::new(&keys, loaded);
        let mut draft = Draft::new(&view);
        let outcome = command.apply(&mut draft, t(1)).unwrap();
        (outcome, draft.into_changes().checkpoints)
    }

    #[test]
    fn a_grown_tree_is_signed_and_the_note_verifies() {
        let key = key();
        let (outcome, stored) = run(
            &command(&key, None),
            5,
            &[(3, [3; 32]), (5, [5; 32])],
            Some((3, [3; 32])),
        );
        assert_eq!(
            outcome,
            Outcome::Signed {
                size: 5,
                root: [5; 32]
            }
        );
        let verifier = VerifierKey::new("test/log", key.public_key());
        let opened = note::open(&stored[0].note, &verifier).unwrap();
        assert_eq!((opened.size, opened.root), (5, [5; 32]));
    }

    #[test]
    fn an_unchanged_tree_signs_nothing() {
        let (outcome, stored) = run(
            &command(&key(), None),
            3,
            &[(3, [3; 32])],
            Some((3, [3; 32])),
        );
        assert!(matches!(outcome, Outcome::Unchanged { size: 3, .. }));
        assert!(stored.is_empty());
    }

    #[test]
    fn the_empty_tree_gets_a_first_checkpoint() {
        let (outcome, stored) = run(
            &command(&key(), None),
            0,
            &[(0, merkle::empty_root())],
            None,
        );
        assert!(matches!(outcome, Outcome::Signed { size: 0, .. }));
        assert_eq!(stored.len(), 1);
    }

    #[test]
    fn a_tree_that_no_longer_extends_the_stored_checkpoint_is_refused() {
        let (outcome, stored) = run(
            &command(&key(), None),
            5,
            &[(3, [9; 32]), (5, [5; 32])],
            Some((3, [3; 32])),
        );
        assert_eq!(
            outcome,
            Outcome::Refused {
                signed: (3, [3; 32]),
                stored: Some([9; 32])
            }
        );
        assert!(stored.is_empty());
    }

    /// Checkpoint rows deleted (or the tree cut) while the process runs: its own memory of
    /// what it signed still refuses.
    #[test]
    fn what_this_process_signed_is_checked_even_if_the_rows_are_gone() {
        let (outcome, stored) = run(
            &command(&key(), Some((4, [4; 32]))),
            2,
            &[(2, [2; 32])],
            None,
        );
        assert_eq!(
            outcome,
            Outcome::Refused {
                signed: (4, [4; 32]),
                stored: None
            }
        );
        assert!(stored.is_empty());
    }
}
