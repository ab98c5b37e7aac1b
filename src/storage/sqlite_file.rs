//! Notices when the SQLite file under a running server disappears or is replaced.
//!
//! Open connections keep writing to the inode they opened: if the file is deleted (or swapped
//! for another one) the server would go on acknowledging decisions into a file nobody will
//! ever read again. So the file's identity is taken at start and checked periodically; once
//! it no longer matches, the store refuses every write (fail closed) and health reports
//! NOT_SERVING — including the `liveness` name, because only a restart reopens the file.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

/// The file behind a `sqlite:` URL and its identity (device, inode) when opened.
#[derive(Debug)]
pub struct SqliteFile {
    /// The database file.
    path: PathBuf,
    /// (device, inode) at open time.
    identity: (u64, u64),
    /// Set once the file was found missing or replaced; never cleared (restart to recover).
    lost: AtomicBool,
}

/// The file path of a `sqlite:` URL; `None` for in-memory databases and other schemes.
pub fn path_of(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") || path == "memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }
}

impl SqliteFile {
    /// Records the identity of the file of `url`, if it is a file.
    pub fn open(url: &str) -> Option<Self> {
        let path = path_of(url)?;
        let identity = identity(&path)?;
        Some(Self {
            path,
            identity,
            lost: AtomicBool::new(false),
        })
    }

    /// Re-checks the file; returns false (and stays false) once it is missing or replaced.
    pub fn check(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return false;
        }
        if identity(&self.path) == Some(self.identity) {
            true
        } else {
            tracing::error!(path = %self.path.display(), "the database file is missing or was replaced: refusing writes until restart");
            self.lost.store(true, Ordering::Release);
            false
        }
    }

    /// True once the file was lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn paths() {
        assert_eq!(
            path_of("sqlite://a/b.db?mode=rwc").unwrap().to_str(),
            Some("a/b.db")
        );
        assert_eq!(
            path_of("sqlite:///tmp/x.db").unwrap().to_str(),
            Some("/tmp/x.db")
        );
        assert_eq!(path_of("sqlite:x.db").unwrap().to_str(), Some("x.db"));
        assert!(path_of("sqlite::memory:").is_none());
        assert!(path_of("postgres://u@h/db").is_none());
    }
}
