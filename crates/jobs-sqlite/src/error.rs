//! Mapping of SQLite and sqlx failures to [`StoreError`]s.

use jobs::StoreError;

// Primary SQLite result codes (the low byte of an extended code).
const SQLITE_NOMEM: i64 = 7;
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_PROTOCOL: i64 = 15;
const SQLITE_NOTADB: i64 = 26;

/// Maps a sqlx error raised by operation `op` to a [`StoreError`] with context and a hint,
/// keeping the sqlx error (and so SQLite's result code) as its `source()`.
pub(crate) fn store_error(op: &'static str, err: sqlx::Error) -> StoreError {
    classify(op, &err).with_source(err)
}

/// `error` of opening the database file at `path`, its message naming the file (every
/// variant but those without a message is kept as it is).
pub(crate) fn opening(path: &std::path::Path, error: StoreError) -> StoreError {
    let mut error = error;
    match &mut error {
        StoreError::Unavailable { message, .. }
        | StoreError::Busy { message, .. }
        | StoreError::Schema { message, .. }
        | StoreError::Other { message, .. } => {
            *message = format!("opening {}: {message}", path.display());
        }
        _ => {}
    }
    error
}

/// A closure mapping sqlx errors of operation `op`, for `map_err`.
pub(crate) fn during(op: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |err| store_error(op, err)
}

/// The kind of failure `err` is, with context and a hint, without its source.
fn classify(op: &'static str, err: &sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => database_error(op, db.code().as_deref(), db.message()),
        sqlx::Error::Io(io) => StoreError::unavailable(format!(
            "sqlite {op}: I/O error: {io}; check the database file's disk and permissions"
        )),
        sqlx::Error::PoolClosed => StoreError::Closed,
        sqlx::Error::PoolTimedOut => StoreError::busy(format!(
            "sqlite {op}: no read connection became free in time; raise `readers` or retry later"
        )),
        sqlx::Error::WorkerCrashed => StoreError::unavailable(format!(
            "sqlite {op}: the connection's worker thread stopped; reopen the store"
        )),
        other => StoreError::other(format!("sqlite {op}: {other}")),
    }
}

fn database_error(op: &'static str, code: Option<&str>, message: &str) -> StoreError {
    let code = code.and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
    match code & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => StoreError::busy(format!(
            "sqlite {op}: {message} (code {code}); another connection held the lock past the \
             busy timeout; retry, or raise `busy_timeout`"
        )),
        SQLITE_FULL => StoreError::unavailable(format!(
            "sqlite {op}: {message} (code {code}); free disk space on the database's volume"
        )),
        SQLITE_IOERR | SQLITE_CANTOPEN | SQLITE_PROTOCOL | SQLITE_NOMEM | SQLITE_READONLY => {
            StoreError::unavailable(format!(
                "sqlite {op}: {message} (code {code}); check the file, its directory's \
                 permissions and the disk"
            ))
        }
        SQLITE_CORRUPT | SQLITE_NOTADB => StoreError::other(format!(
            "sqlite {op}: {message} (code {code}); the file is damaged or not a SQLite \
             database; restore it from a backup"
        )),
        _ => StoreError::other(format!("sqlite {op}: {message} (code {code})")),
    }
}

/// A row of job `id` that cannot be decoded.
pub(crate) fn corrupt(id: i64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id,
        reason: reason.into(),
    }
}

/// An out-of-range request parameter.
pub(crate) fn invalid(op: &'static str, what: impl std::fmt::Display) -> StoreError {
    StoreError::invalid(format!("sqlite {op}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_locked_are_busy_including_extended_codes() {
        // SQLITE_BUSY_SNAPSHOT = 517, SQLITE_LOCKED_SHAREDCACHE = 262.
        for code in ["5", "517", "6", "262"] {
            let err = database_error("job_claim", Some(code), "database is locked");
            assert!(matches!(err, StoreError::Busy { .. }), "{code}: {err}");
            assert!(err.is_transient());
        }
    }

    #[test]
    fn disk_full_and_io_are_unavailable() {
        // SQLITE_IOERR_WRITE = 778.
        for code in ["13", "10", "778", "14"] {
            let err = database_error("job_insert_many", Some(code), "boom");
            assert!(
                matches!(err, StoreError::Unavailable { .. }),
                "{code}: {err}"
            );
        }
        let full = database_error("job_insert_many", Some("13"), "database or disk is full");
        assert!(full.to_string().contains("free disk space"), "{full}");
    }

    #[test]
    fn closed_pool_is_closed_and_others_are_other() {
        assert!(matches!(
            store_error("job_get", sqlx::Error::PoolClosed),
            StoreError::Closed
        ));
        let err = database_error("job_get", Some("1"), "no such table: jobs");
        assert!(matches!(err, StoreError::Other { .. }));
        assert!(!err.is_transient());
    }
}
