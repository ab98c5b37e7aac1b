//! What this signer signed last, kept outside the database, so the promise "never sign a
//! checkpoint inconsistent with one signed before" survives the database itself being lost
//! or replaced while the key survives (a deleted SQLite file recreated empty, a restore): the
//! stored tree must still give the remembered root at the remembered size, or the server
//! refuses to sign.
//!
//! The file holds the last signed note, exactly as served; it is read back only if it
//! verifies with this signer's key (a file from another key or origin stops the start).

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    service::transparency::Signer,
    transparency::{Checkpoint, Hash, note},
};

/// Why the memory file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Unreadable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// Not a checkpoint this key signed for this origin.
    #[error(
        "{path}: not a checkpoint signed by this key for this origin ({why}); if the key or \
         origin was changed on purpose, move the file away (see the runbook)"
    )]
    Foreign {
        /// The file.
        path: String,
        /// What did not verify.
        why: String,
    },
}

/// The last tree head this signer signed (or found signed), and where it is kept.
#[derive(Debug)]
pub struct Memory {
    /// The file (`None`: memory only, for this process's life).
    path: Option<PathBuf>,
    /// Size and root.
    last: Option<(u64, Hash)>,
    /// The last refusal logged, and when.
    reported: Option<(Refusal, Instant)>,
}

/// A refusal: the signed head (size, root) and what the stored tree gives at that size.
pub type Refusal = ((u64, Hash), Option<Hash>);

/// How often the same refusal is logged again.
const REPORT_AGAIN: Duration = Duration::from_secs(60);

impl Memory {
    /// Reads the file at `path`, if any.
    pub fn open(path: Option<PathBuf>, signer: &Signer) -> Result<Self, MemoryError> {
        let Some(file) = &path else {
            return Ok(Self {
                path,
                last: None,
                reported: None,
            });
        };
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path,
                    last: None,
                    reported: None,
                });
            }
            Err(source) => {
                return Err(MemoryError::Io {
                    path: file.display().to_string(),
                    source,
                });
            }
        };
        let checkpoint = note::open(&text, &signer.verifier).map_err(|e| MemoryError::Foreign {
            path: file.display().to_string(),
            why: e.to_string(),
        })?;
        Ok(Self {
            last: Some((checkpoint.size, checkpoint.root)),
            path,
            reported: None,
        })
    }

    /// True when `refusal` should be logged now: a new one, or the same one a minute later.
    pub fn should_report_refusal(&mut self, refusal: Refusal, now: Instant) -> bool {
        let report = match &self.reported {
            Some((last, at)) => *last != refusal || now.duration_since(*at) >= REPORT_AGAIN,
            None => true,
        };
        if report {
            self.reported = Some((refusal, now));
        }
        report
    }

    /// The remembered size and root.
    pub fn last(&self) -> Option<(u64, Hash)> {
        self.last
    }

    /// Remembers a tree head the signer signed or found signed (written durably before the
    /// next round; a failure to write is logged, and the head is still kept in memory).
    pub fn remember(&mut self, size: u64, root: Hash, signer: &Signer) {
        if self.last == Some((size, root)) {
            return;
        }
        self.last = Some((size, root));
        let Some(path) = &self.path else {
            return;
        };
        let text = Checkpoint {
            origin: signer.origin.clone(),
            size,
            root,
        }
        .sign(&signer.key);
        if let Err(e) = write_atomically(path, text.as_bytes()) {
            tracing::error!(path = %path.display(), error = %e,
                "cannot record the last signed checkpoint outside the database");
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`:
/// a crash leaves the old file or the new one, never half of either.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transparency::SigningKey;

    fn signer() -> Signer {
        Signer::new(SigningKey::generate().unwrap().1, "test/log".into())
    }

    #[test]
    fn a_remembered_head_is_read_back_and_a_foreign_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signed");
        let s = signer();
        let mut memory = Memory::open(Some(path.clone()), &s).unwrap();
        assert_eq!(memory.last(), None);
        memory.remember(7, [7; 32], &s);
        assert_eq!(
            Memory::open(Some(path.clone()), &s).unwrap().last(),
            Some((7, [7; 32]))
        );
        let other = signer();
        assert!(matches!(
            Memory::open(Some(path), &other),
            Err(MemoryError::Foreign { .. })
        ));
        let refusal = ((7, [7; 32]), None);
        let t = Instant::now();
        assert!(memory.should_report_refusal(refusal, t));
        assert!(!memory.should_report_refusal(refusal, t + Duration::from_secs(59)));
        assert!(memory.should_report_refusal(((8, [8; 32]), None), t + Duration::from_secs(59)));
        assert!(memory.should_report_refusal(((8, [8; 32]), None), t + Duration::from_secs(120)));
        let mut in_memory = Memory::open(None, &s).unwrap();
        in_memory.remember(1, [1; 32], &s);
        assert_eq!(in_memory.last(), Some((1, [1; 32])));
    }
}
