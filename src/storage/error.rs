//! The one database error classifier, for both drivers (sqlx through sea-orm, and rusqlite on
//! the SQLite writer thread). Whichever driver raised it, a failure is one of three things,
//! with one code, one log line and one metric label each:
//!
//! | class | meaning | error | retry helps |
//! |---|---|---|---|
//! | `unavailable` | the database did not answer or could not write (down, disk full, I/O) | `Error::Storage` → `UNAVAILABLE STORAGE_UNAVAILABLE` | yes |
//! | `conflict` | the database answered "not now" (lock timeout, serialization failure, busy) | `Error::Storage` → `UNAVAILABLE STORAGE_UNAVAILABLE` | yes |
//! | `damaged` | what is stored is wrong: a value that does not decode, a unique key that collides with a stored row (every key written derives from rows read in the same serialized transaction, so a collision means damaged state, e.g. a deleted chain head) | `Error::Internal` → `INTERNAL` | no |
//!
//! Any other refusal of a write (a foreign key, a trigger, a check) is `unavailable`: it is
//! not evidence about the rows this service wrote, and the database may accept it later.
//!
//! The cause is logged here, once, and never reaches the client.

use sea_orm::DbErr;

use crate::domain::Error;

/// What a database failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The database did not answer or could not write.
    Unavailable,
    /// The database refused for now (contention).
    Conflict,
    /// What is stored is wrong; the same on every retry.
    Damaged,
}

impl Class {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Unavailable => "unavailable",
            Class::Conflict => "conflict",
            Class::Damaged => "damaged",
        }
    }
}

/// Logs and counts a classified failure and turns it into the service's error.
pub fn classified(class: Class, cause: &dyn std::fmt::Display) -> Error {
    metrics::counter!(crate::metrics::DB_ERRORS, "kind" => class.as_str()).increment(1);
    match class {
        Class::Unavailable => {
            tracing::error!(error = %cause, class = class.as_str(), "database unavailable");
            Error::Storage(cause.to_string())
        }
        Class::Conflict => {
            tracing::warn!(error = %cause, class = class.as_str(), "database conflict");
            Error::Storage(cause.to_string())
        }
        Class::Damaged => {
            tracing::error!(error = %cause, class = class.as_str(), "damaged stored state");
            Error::Internal(format!("damaged stored state: {cause}"))
        }
    }
}

/// SQLSTATEs that mean contention, not an outage: serialization failure, deadlock, lock not
/// available (`lock_timeout`), query cancelled (`statement_timeout`).
const PG_CONFLICT: [&str; 4] = ["40001", "40P01", "55P03", "57014"];

/// Classifies a sea-orm (sqlx) error.
pub fn classify_db(e: &DbErr) -> Class {
    if is_undecodable(e) {
        return Class::Damaged;
    }
    if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
        return Class::Damaged;
    }
    let code = match e {
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) => match &**e {
            sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    };
    match code.as_deref() {
        Some(c) if PG_CONFLICT.contains(&c) => Class::Conflict,
        // SQLite through sqlx: SQLITE_BUSY (5), SQLITE_LOCKED (6).
        Some("5" | "6") => Class::Conflict,
        _ => Class::Unavailable,
    }
}

/// Classifies a rusqlite error.
pub fn classify_sqlite(e: &rusqlite::Error) -> Class {
    use rusqlite::{Error as E, ErrorCode};
    match e {
        E::SqliteFailure(f, _) => match f.code {
            ErrorCode::ConstraintViolation
                if matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                Class::Damaged
            }
            ErrorCode::TypeMismatch => Class::Damaged,
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Class::Conflict,
            _ => Class::Unavailable,
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::Utf8Error(..)
        | E::InvalidColumnType(..) => Class::Damaged,
        _ => Class::Unavailable,
    }
}

/// Whether `e` reports a stored value that cannot be decoded into its type (say, text that is
/// not UTF-8), as opposed to a database that failed to answer.
pub(crate) fn is_undecodable(e: &DbErr) -> bool {
    match e {
        DbErr::TryIntoErr { .. } | DbErr::Type(_) | DbErr::Json(_) => true,
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) => matches!(
            **e,
            sea_orm::sqlx::Error::ColumnDecode { .. } | sea_orm::sqlx::Error::Decode(_)
        ),
        _ => false,
    }
}

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        classified(classify_db(&e), &e)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        classified(classify_sqlite(&e), &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same failure gets the same class from either driver.
    #[test]
    fn both_drivers_classify_a_key_collision_as_damage() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .unwrap();
        let e = conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert_eq!(classify_sqlite(&e), Class::Damaged);
        assert!(matches!(Error::from(e), Error::Internal(_)));
    }

    /// A database that cannot be opened is an outage, not damage.
    #[test]
    fn an_unopenable_database_is_unavailable() {
        let e = rusqlite::Connection::open_with_flags(
            "/nonexistent/dir/x.db",
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )
        .unwrap_err();
        assert_eq!(classify_sqlite(&e), Class::Unavailable);
        assert!(matches!(Error::from(e), Error::Storage(_)));
    }
}
