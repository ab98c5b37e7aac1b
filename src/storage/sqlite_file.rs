//! Notices when the SQLite file under a running server disappears or is replaced.
//!
//! Open connections keep writing to the inode they opened: if the file is deleted (or swapped
//! for another one) the server would go on acknowledging decisions into a file nobody will
//! ever read again. So the file's identity is taken at start and checked periodically; once
//! it no longer matches, the store refuses every write (fail closed) and health reports
//! NOT_SERVING — including the `liveness` name, because only a restart reopens the file.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::atomic::{AtomicBool, Ordering},
};

use sea_orm::sqlx::sqlite::SqliteConnectOptions;

/// The file behind a `sqlite:` URL and its identity (device, inode) when opened.
#[derive(Debug)]
pub struct SqliteFile {
    /// The database file.
    path: PathBuf,
    /// (device, inode) at open time.
    identity: (u64, u64),
    /// The WAL next to it (`<file>-wal`).
    wal_path: PathBuf,
    /// The WAL's (device, inode), once it was first seen.
    wal: std::sync::OnceLock<(u64, u64)>,
    /// Set once the file was found missing or replaced; never cleared (restart to recover).
    lost: AtomicBool,
    /// Woken when `lost` is set, so readiness turns NOT_SERVING at once rather than at its
    /// next periodic check.
    lost_notify: tokio::sync::Notify,
    /// The serve lock file this server holds and its (device, inode), once `serve` took it.
    serve_lock: std::sync::OnceLock<(PathBuf, (u64, u64))>,
}

/// The file path of a `sqlite:` URL, exactly as the connection pool opens it; `None` for
/// in-memory databases and other schemes.
///
/// The pool parses the URL with sqlx, which percent-decodes the file name
/// (`sqlite://a%20b.db` is the file `a b.db`). Taking the name from the same parser keeps
/// the write loop's connection ([`super::write::sqlite`]) and the file watch on the pool's
/// file rather than on a file named `a%20b.db`.
pub fn path_of(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = database.is_empty()
        || database.starts_with(":memory:")
        || database == "memory:"
        || params.split('&').any(|p| p == "mode=memory");
    if in_memory {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// Held by `accessgrant serve` for as long as it serves a SQLite file, so a second server on
/// the same file is refused at start instead of running beside the first. Two servers would
/// keep deciding correctly (SQLite serializes their writes), but each one's read cache
/// ([`super::grant_cache`]) would miss the other's changes: a `GetAccessGrant` could report a
/// grant the customer disabled through the other process.
///
/// The lock is an exclusive `flock` on a file of its own next to the database
/// (`<database>.serve-lock`), never on the database file: closing a descriptor of the database
/// file would release SQLite's own locks on it. The operating system drops the lock when the
/// process ends, even by `kill -9`, so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub struct ServeLock {
    file: std::fs::File,
    /// The lock file's path.
    path: PathBuf,
}

/// Why [`ServeLock::acquire`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeLockError {
    /// Another process holds it.
    #[error("another accessgrant server is serving this database (lock file {0})")]
    Held(PathBuf),
    /// The database file has other names (hard links), which a lock named after one path
    /// cannot cover.
    #[error(
        "the database file {0} has {1} hard links; one server per file cannot be enforced, so \
         it is not served (remove the other links)"
    )]
    HardLinked(PathBuf, u64),
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ServeLock {
    /// Locks the database at `database` for serving, without waiting. The lock file is named
    /// after the database's canonical path, so two spellings of one file (relative and
    /// absolute, or through a symlink) take the same lock.
    pub fn acquire(database: &Path) -> Result<Self, ServeLockError> {
        let mut name = canonical(database).into_os_string();
        name.push(".serve-lock");
        let path = PathBuf::from(name);
        let io = |source| ServeLockError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(ServeLockError::Held(path)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if let Ok(meta) = std::fs::metadata(database)
                && meta.nlink() > 1
            {
                return Err(ServeLockError::HardLinked(
                    database.to_path_buf(),
                    meta.nlink(),
                ));
            }
        }
        Ok(Self { file, path })
    }

    /// The lock file's path and the (device, inode) of the file this server holds locked.
    pub fn held(&self) -> Option<(PathBuf, (u64, u64))> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = self.file.metadata().ok()?;
            Some((self.path.clone(), (meta.dev(), meta.ino())))
        }
        #[cfg(not(unix))]
        {
            None
        }
    }
}

/// `path` with symlinks and `..` resolved: the file's own if it exists, else its directory's
/// (a new database is created on first start); unchanged if neither resolves.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(resolved) = std::fs::canonicalize(path) {
        return resolved;
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
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
    /// Records the identity of the file of `url`, if it is a file, and of its WAL.
    pub fn open(url: &str) -> Option<Self> {
        let path = path_of(url)?;
        let file_identity = identity(&path)?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        let wal = std::sync::OnceLock::new();
        if let Some(id) = identity(&wal_path) {
            let _ = wal.set(id);
        }
        Some(Self {
            path,
            identity: file_identity,
            wal_path,
            wal,
            lost: AtomicBool::new(false),
            lost_notify: tokio::sync::Notify::new(),
            serve_lock: std::sync::OnceLock::new(),
        })
    }

    /// Re-checks the file and its WAL; returns false (and stays false) once either is missing
    /// or replaced. The WAL matters as much as the file: a commit is durable once it is in the
    /// WAL, and a WAL deleted under the open connections takes every commit since the last
    /// checkpoint with it. While this server's connections are open, SQLite never deletes or
    /// replaces the WAL (it resets it in place), so a change of identity is never SQLite's.
    pub fn check(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return false;
        }
        let file_ok = identity(&self.path) == Some(self.identity);
        let wal_ok = match (self.wal.get(), identity(&self.wal_path)) {
            (Some(known), now) => now == Some(*known),
            // Not there yet at start (no connection had opened it): the first one seen is it.
            (None, Some(now)) => {
                let _ = self.wal.set(now);
                true
            }
            (None, None) => true,
        };
        // A deleted or replaced serve lock file lets a second server start on this file;
        // this server's read cache would then miss that server's changes. Stop serving.
        let lock_ok = self
            .serve_lock
            .get()
            .is_none_or(|(path, held)| identity(path) == Some(*held));
        if file_ok && wal_ok && lock_ok {
            true
        } else {
            tracing::error!(path = %self.path.display(), wal_ok, lock_ok, "the database file, its WAL or the serve lock file is missing or was replaced: refusing writes until restart");
            self.lost.store(true, Ordering::Release);
            self.lost_notify.notify_one();
            false
        }
    }

    /// Watches the serve lock file this server holds (see [`ServeLock::held`]) along with
    /// the database file.
    pub fn watch_serve_lock(&self, lock: (PathBuf, (u64, u64))) {
        let _ = self.serve_lock.set(lock);
    }

    /// Returns once the file was found lost (at once if it already was).
    pub async fn lost(&self) {
        if !self.is_lost() {
            self.lost_notify.notified().await;
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
        assert!(path_of("sqlite://?mode=memory").is_none());
        assert!(path_of("sqlite://x.db?cache=shared&mode=memory").is_none());
        assert!(path_of("postgres://u@h/db").is_none());
    }

    /// The pool (sqlx) percent-decodes the file name; so must every other opener.
    #[test]
    fn percent_encoded_paths_are_decoded_like_the_pool_does() {
        assert_eq!(
            path_of("sqlite:///tmp/a%20b/x%25y.db?mode=rwc")
                .unwrap()
                .to_str(),
            Some("/tmp/a b/x%y.db")
        );
        assert_eq!(
            path_of("sqlite://q%3Fr.db").unwrap().to_str(),
            Some("q?r.db")
        );
    }
}
