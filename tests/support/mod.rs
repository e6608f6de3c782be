//! Shared by the end-to-end PostgreSQL tests: the database from the environment, and a fresh
//! schema per test named `mp_<test>_<pid>` (schemas of test processes that are gone are
//! dropped by the next run).

use std::io::Write;

use jobs_postgres::{migrate, PostgresOptions, SchemaName};
use sqlx::PgPool;

/// `JOBS_TEST_DATABASE_URL`; `None` (skip, with a notice) when unset, unless
/// `JOBS_TEST_REQUIRE_POSTGRES=1`, which makes a missing URL a failure (CI sets both).
pub fn database_url() -> Option<String> {
    match std::env::var("JOBS_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("JOBS_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("JOBS_TEST_REQUIRE_POSTGRES=1 but JOBS_TEST_DATABASE_URL is not set")
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL suite skipped: set JOBS_TEST_DATABASE_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// The schema `mp_<test>_<pid>` of one test of this process.
pub fn test_schema(test: &str) -> SchemaName {
    SchemaName::new(&format!("mp_{test}_{}", std::process::id()))
        .expect("test names are identifiers")
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

/// Recreates `schema`, migrated, after dropping the schemas of test processes that are gone.
pub async fn fresh_schema(pool: &PgPool, schema: &SchemaName) {
    drop_stale_schemas(pool).await;
    drop_schema(pool, schema).await;
    migrate(pool, schema)
        .await
        .expect("migrating a fresh schema");
}

/// Drops `mp_*` schemas left by test processes that are gone (Linux: no `/proc/<pid>`).
async fn drop_stale_schemas(pool: &PgPool) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'mp\\_%'")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.rsplit('_').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            // Another test may be dropping it at the same moment; either way it goes.
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .execute(pool)
                .await;
        }
    }
}
