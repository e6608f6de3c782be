//! Errors: [`PostgresError`] for setting up (connect, migrate, open), and the mapping of
//! database errors to the engine's [`StoreError`].

use jobs::StoreError;
use sqlx::error::DatabaseError;

/// A failure to connect, migrate or open the PostgreSQL store.
///
/// Messages never contain a password: connection targets are shown redacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection URL could not be parsed.
    #[error("invalid PostgreSQL URL {url}: {reason} (expected postgres://user:password@host:port/database)")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configured schema name is not a plain identifier.
    #[error("invalid schema name {name:?}: {reason} (use 1 to 58 ASCII letters, digits and '_', not starting with a digit)")]
    InvalidSchemaName {
        /// The rejected name (at most 80 characters of it).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Nothing answered at the target, or the connection broke while connecting.
    #[error("cannot reach PostgreSQL at {target}: {reason} (is the server running and is the host/port in the URL right?)")]
    Unreachable {
        /// Where we tried to connect, password redacted.
        target: String,
        /// The underlying failure, secrets redacted.
        reason: String,
        /// The underlying error (the OS's or the driver's; it never holds the password).
        #[source]
        source: sqlx::Error,
    },
    /// The server rejected the user name or password.
    #[error("PostgreSQL at {target} rejected the login: {reason} (check the user and password in the URL, and pg_hba.conf)")]
    AuthenticationFailed {
        /// Where we tried to connect, password redacted.
        target: String,
        /// The server's message, secrets redacted.
        reason: String,
        /// The server's error, with its SQLSTATE.
        #[source]
        source: sqlx::Error,
    },
    /// The database named in the URL does not exist.
    #[error("PostgreSQL at {target}: {reason} (create the database or fix its name in the URL)")]
    DatabaseMissing {
        /// Where we tried to connect, password redacted.
        target: String,
        /// The server's message, secrets redacted.
        reason: String,
        /// The server's error, with its SQLSTATE.
        #[source]
        source: sqlx::Error,
    },
    /// The job schema (or its version table) does not exist in this database.
    #[error("the jobs schema {schema:?} does not exist in this database: run migrate (jobs_postgres::migrate) first")]
    SchemaMissing {
        /// The schema looked for.
        schema: String,
    },
    /// The schema is at an older version than this binary needs.
    #[error("the jobs schema {schema:?} is at version {found} but this binary needs version {expected}: run migrate (jobs_postgres::migrate)")]
    SchemaTooOld {
        /// The schema.
        schema: String,
        /// Its version.
        found: i32,
        /// The version this binary needs.
        expected: i32,
    },
    /// The schema was migrated by a newer version of this crate.
    #[error("the jobs schema {schema:?} is at version {found}, newer than this binary knows ({supported}): upgrade this binary (jobs-postgres) to the version that migrated it")]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// Its version.
        found: i32,
        /// The newest version this binary knows.
        supported: i32,
    },
    /// The database role lacks a privilege the store needs.
    #[error("permission denied for role {role:?}: {detail} ({hint})")]
    PermissionDenied {
        /// The role connected as.
        role: String,
        /// What was refused.
        detail: String,
        /// How to fix it.
        hint: String,
        /// The server's error, with its SQLSTATE, when a statement was refused.
        #[source]
        source: Option<sqlx::Error>,
    },
    /// Any other database failure while setting up.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Maps a database error to the engine's error, classifying what is transient and keeping
/// the sqlx error (and so its SQLSTATE) as the `source()`.
pub(crate) fn store_error(err: sqlx::Error) -> StoreError {
    classify(&err).with_source(err)
}

/// The message [`store_error`] gives `err`, for a caller that keeps `err` itself.
pub(crate) fn store_error_message(err: &sqlx::Error) -> String {
    classify(err).to_string()
}

/// The kind of failure `err` is, with a hint at the fix, without its source.
fn classify(err: &sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolClosed => StoreError::Closed,
        sqlx::Error::PoolTimedOut => StoreError::unavailable(
            "timed out waiting for a PostgreSQL connection from the pool (is the database up? is the pool large enough?)",
        ),
        sqlx::Error::Io(e) => StoreError::unavailable(format!("PostgreSQL connection failed: {e}")),
        sqlx::Error::Tls(e) => StoreError::unavailable(format!("PostgreSQL TLS failure: {e}")),
        sqlx::Error::Protocol(e) => {
            StoreError::unavailable(format!("PostgreSQL connection broke: {e}"))
        }
        sqlx::Error::WorkerCrashed => {
            StoreError::unavailable("PostgreSQL connection worker crashed")
        }
        sqlx::Error::Database(db) => database_error(&**db),
        other => StoreError::other(format!("PostgreSQL: {other}")),
    }
}

fn database_error(db: &dyn DatabaseError) -> StoreError {
    let code = db.code().unwrap_or_default();
    let msg = format!("{} (SQLSTATE {code})", db.message());
    match &*code {
        c if c.starts_with("08") => StoreError::unavailable(msg),
        "57P01" | "57P02" | "57P03" | "53300" => StoreError::unavailable(msg),
        "40001" | "40P01" | "55P03" | "55006" | "57014" => StoreError::busy(msg),
        c if c.starts_with("53") => StoreError::busy(msg),
        "3F000" | "42P01" | "42883" | "42703" => {
            StoreError::schema(format!("{msg}: the jobs schema is missing or outdated, run migrate"))
        }
        "42501" => StoreError::other(format!(
            "{msg}: grant the role USAGE on the jobs schema and SELECT, INSERT, UPDATE, DELETE on its tables"
        )),
        c if c.starts_with("22") || c.starts_with("23") => StoreError::invalid(msg),
        _ => StoreError::other(msg),
    }
}

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_errors_are_classified() {
        assert!(matches!(
            store_error(sqlx::Error::PoolClosed),
            StoreError::Closed
        ));
        assert!(store_error(sqlx::Error::PoolTimedOut).is_transient());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(store_error(sqlx::Error::Io(io)).is_transient());
        assert!(!store_error(sqlx::Error::RowNotFound).is_transient());
    }

    #[test]
    fn messages_name_the_fix() {
        let err = PostgresError::SchemaTooOld {
            schema: "jobs".into(),
            found: 1,
            expected: 2,
        };
        assert!(err.to_string().contains("run migrate"));
        let err = PostgresError::SchemaTooNew {
            schema: "jobs".into(),
            found: 3,
            supported: 2,
        };
        assert!(err.to_string().contains("upgrade this binary"));
    }
}
