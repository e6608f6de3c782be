//! Which store `--database` names, and opening or migrating it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jobs::store::Store;
use jobs_postgres::{PostgresOptions, PostgresStore, SchemaName};
use jobs_sqlite::SqliteStore;
use serde::Serialize;

use crate::error::CliError;

/// How long to wait for a PostgreSQL connection before reporting the database unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The store named on the command line.
#[derive(Debug)]
pub(crate) enum Target {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database and the schema of its job tables.
    Postgres(Box<PostgresOptions>),
}

/// What `jobs migrate` did.
#[derive(Debug, Serialize)]
pub(crate) struct Migrated {
    /// `sqlite` or `postgres`.
    pub(crate) backend: &'static str,
    /// The schema version before (PostgreSQL; SQLite migrates on open and does not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<i32>,
    /// The schema version now.
    pub(crate) schema_version: i64,
    /// The versions applied (PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) applied: Option<Vec<i32>>,
}

impl Target {
    /// The store `database` names: a `postgres://` or `postgresql://` URL, a `sqlite:` URL
    /// or a plain path (SQLite). `schema` applies to PostgreSQL only.
    pub(crate) fn parse(database: Option<&str>, schema: Option<&str>) -> Result<Self, CliError> {
        let database = database
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                CliError::Usage(
                    "no database given: pass --database PATH_OR_URL or set JOBS_DATABASE_URL"
                        .into(),
                )
            })?;
        if database.starts_with("postgres://") || database.starts_with("postgresql://") {
            let mut options = PostgresOptions::new(database)?
                .acquire_timeout(CONNECT_TIMEOUT)
                .max_connections(2)
                .application_name("jobs-cli");
            if let Some(schema) = schema {
                options = options.schema(SchemaName::new(schema)?);
            }
            return Ok(Target::Postgres(Box::new(options)));
        }
        if schema.is_some() {
            return Err(CliError::Usage(
                "--schema applies to PostgreSQL only; this database is a SQLite file".into(),
            ));
        }
        Ok(Target::Sqlite(sqlite_path(database)?))
    }

    /// Opens the store, which must exist and be migrated.
    pub(crate) async fn open(&self) -> Result<Arc<dyn Store>, CliError> {
        match self {
            Target::Sqlite(path) => {
                if !path.exists() {
                    return Err(CliError::NoDatabaseFile(path.display().to_string()));
                }
                Ok(Arc::new(SqliteStore::open(path).await?))
            }
            Target::Postgres(options) => Ok(Arc::new(PostgresStore::connect(options).await?)),
        }
    }

    /// Creates or upgrades the job tables.
    pub(crate) async fn migrate(&self) -> Result<Migrated, CliError> {
        match self {
            Target::Sqlite(path) => {
                let store = SqliteStore::open(path).await?;
                store.close().await;
                Ok(Migrated {
                    backend: "sqlite",
                    from: None,
                    schema_version: jobs_sqlite::SCHEMA_VERSION,
                    applied: None,
                })
            }
            Target::Postgres(options) => {
                let pool = options.connect_pool().await?;
                let report = jobs_postgres::migrate(&pool, options.schema_name()).await?;
                pool.close().await;
                Ok(Migrated {
                    backend: "postgres",
                    from: Some(report.from),
                    schema_version: report.to.into(),
                    applied: Some(report.applied),
                })
            }
        }
    }

    /// Where the store is, for messages (a PostgreSQL URL without its password).
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("SQLite database {}", path.display()),
            Target::Postgres(options) => format!(
                "PostgreSQL {} schema {}",
                options.display_url(),
                options.schema_name()
            ),
        }
    }
}

/// The file of a `sqlite:` URL (`sqlite:PATH`, `sqlite://PATH`, query string dropped) or a
/// plain path.
fn sqlite_path(database: &str) -> Result<PathBuf, CliError> {
    let path = match database.strip_prefix("sqlite:") {
        Some(rest) => {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            rest.split('?').next().unwrap_or(rest)
        }
        None if database.contains("://") => {
            return Err(CliError::Usage(format!(
            "unsupported database URL {database:?}: use postgres://..., sqlite:PATH or a file path"
        )))
        }
        None => database,
    };
    if path.is_empty() || path == ":memory:" {
        return Err(CliError::Usage(format!(
            "{database:?} names no database file: give the path of a SQLite file"
        )));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(database: &str) -> PathBuf {
        match Target::parse(Some(database), None) {
            Ok(Target::Sqlite(path)) => path,
            other => panic!("{database}: {other:?}"),
        }
    }

    #[test]
    fn paths_and_sqlite_urls_name_a_sqlite_file() {
        assert_eq!(sqlite("jobs.db"), PathBuf::from("jobs.db"));
        assert_eq!(sqlite("sqlite:jobs.db"), PathBuf::from("jobs.db"));
        assert_eq!(
            sqlite("sqlite:///var/jobs.db?mode=rwc"),
            PathBuf::from("/var/jobs.db")
        );
    }

    #[test]
    fn postgres_urls_take_the_schema() {
        let target = Target::parse(Some("postgres://u:secret@db/app"), Some("bg")).unwrap();
        let Target::Postgres(options) = &target else {
            panic!("{target:?}")
        };
        assert_eq!(options.schema_name().as_str(), "bg");
        assert!(!target.describe().contains("secret"));
    }

    #[test]
    fn bad_targets_are_usage_errors() {
        for (database, schema) in [
            (None, None),
            (Some("mysql://db/app"), None),
            (Some("sqlite::memory:"), None),
            (Some("jobs.db"), Some("bg")),
            (Some("postgres://db/app"), Some("1bad")),
            (Some("postgres://db:notaport/app"), None),
        ] {
            let error = Target::parse(database, schema).unwrap_err();
            assert_eq!(error.exit_code(), crate::error::EXIT_USAGE, "{error}");
        }
    }
}
