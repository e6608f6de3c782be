//! PostgreSQL test support for the `jobs-postgres` tests and the workspace's end-to-end tests
//! (`tests/postgres_*.rs`): the database URL from the environment and a fresh store per
//! test, each in its own schema `jt_<test>_<pid>` (recreated at the start of the test;
//! schemas and roles left by processes that are gone are dropped by the next run).
//!
//! Set `JOBS_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`) to run the
//! PostgreSQL tests; `JOBS_TEST_REQUIRE_POSTGRES=1` makes a missing URL a failure. Every
//! function panics, failing the test, when a configured database misbehaves.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

use std::io::Write;

use jobs_postgres::{migrate, PostgresOptions, PostgresStore, SchemaName};
use sqlx::PgPool;

/// The database to test against, from `JOBS_TEST_DATABASE_URL`. Unset: prints a notice and
/// returns `None` (the test is skipped), unless `JOBS_TEST_REQUIRE_POSTGRES=1`, which makes
/// a missing URL a failure (CI sets both).
pub fn database_url() -> Option<String> {
    match std::env::var("JOBS_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("JOBS_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("JOBS_TEST_REQUIRE_POSTGRES=1 but JOBS_TEST_DATABASE_URL is not set")
        }
        _ => {
            // Written to stderr directly, past the test harness's capture, once per binary.
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL suite skipped: set JOBS_TEST_DATABASE_URL \
                     (e.g. postgres://postgres@127.0.0.1:5432/test)"
                );
            });
            None
        }
    }
}

/// The schema for one test of this process.
pub fn test_schema(test_name: &str) -> SchemaName {
    let pid = std::process::id();
    let name: String = test_name.chars().take(40).collect();
    SchemaName::new(&format!("jt_{name}_{pid}")).expect("test names are identifiers")
}

/// A pool on the test database.
pub async fn test_pool(url: &str) -> PgPool {
    let options = PostgresOptions::new(url)
        .expect("JOBS_TEST_DATABASE_URL is a valid URL")
        .max_connections(4);
    connect(options).await
}

/// A pool from `options`; a database that is configured but unreachable fails the test.
pub async fn connect(options: PostgresOptions) -> PgPool {
    match options.connect_pool().await {
        Ok(pool) => pool,
        Err(error) => panic!("JOBS_TEST_DATABASE_URL is set but unusable: {error}"),
    }
}

/// Drops `schema` if it exists.
pub async fn drop_schema(pool: &PgPool, schema: &SchemaName) {
    let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.quoted());
    sqlx::query(&sql)
        .execute(pool)
        .await
        .expect("dropping a test schema");
}

/// Whether a test object named `..._<pid>` belongs to a process that is gone (Linux only:
/// no `/proc/<pid>`).
fn orphaned(name: &str) -> bool {
    let pid = name.rsplit('_').next().and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|pid| {
        pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// Drops test schemas and roles left by processes that are gone.
async fn drop_stale_objects(pool: &PgPool) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let listed = |sql: &'static str| async move {
        sqlx::query_scalar::<_, String>(sql)
            .fetch_all(pool)
            .await
            .unwrap_or_default()
    };
    let schemas =
        listed("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'jt\\_%'").await;
    for name in schemas.iter().filter(|n| orphaned(n)) {
        // Another test may be dropping it at the same moment; either way it goes.
        let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
        let _ = sqlx::query(&sql).execute(pool).await;
    }
    let roles = listed("SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'jt\\_%'").await;
    for name in roles.iter().filter(|n| orphaned(n)) {
        let _ = sqlx::raw_sql(&format!("DROP OWNED BY \"{name}\"; DROP ROLE \"{name}\""))
            .execute(pool)
            .await;
    }
}

/// Recreates `schema`, migrated, after dropping what test processes that are gone left.
pub async fn fresh_schema(pool: &PgPool, schema: &SchemaName) {
    drop_stale_objects(pool).await;
    drop_schema(pool, schema).await;
    migrate(pool, schema)
        .await
        .expect("migrating a fresh schema");
}

/// A fresh, migrated store in the test's own schema, or `None` when PostgreSQL tests are
/// not configured.
pub async fn fresh_store(test_name: &str) -> Option<PostgresStore> {
    let url = database_url()?;
    let pool = test_pool(&url).await;
    let schema = test_schema(test_name);
    fresh_schema(&pool, &schema).await;
    let store = PostgresStore::open(pool, schema)
        .await
        .expect("opening a freshly migrated store");
    Some(store)
}
