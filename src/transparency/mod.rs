//! Tamper evidence that holds against whoever runs the database: one append-only Merkle tree
//! over every audit event (RFC 9162 hashing), whose roots are signed as C2SP checkpoints with
//! a key the database never holds. A customer who keeps one signed checkpoint can later prove
//! any rewrite of what it covered.
//!
//! Nothing here does I/O except reading and writing the key file: the tree's storage is in
//! `storage`, its appends in the write loop, the signing cadence in `service::checkpoints`.

pub mod key;
pub mod merkle;
pub mod note;
pub mod proof;

pub use key::{KeyError, SigningKey};
pub use merkle::{Hash, NodeKey};
pub use note::{Checkpoint, NoteError, VerifierKey};
