//! Versioned schema migrations, applied by an explicit [`migrate`] call, and the version check
//! every store does when it opens.

use sqlx::{Executor, PgConnection, PgPool, Row};

use crate::error::{sqlstate, store_error, store_error_message, PostgresError};
use crate::schema_name::SchemaName;

/// One schema version: its number, what it does, and its SQL (with `{s}` for the quoted schema
/// and `{channel}` for the NOTIFY channel).
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "jobs table, claim/scheduler/lease/prune indexes, enqueue()",
        sql: include_str!("v1.sql"),
    },
    Migration {
        version: 2,
        description: "rows: enqueue() enforces the Rust enqueue rules (names, depth, default max_attempts 20)",
        sql: include_str!("v2_rows_enqueue_rules.sql"),
    },
    Migration {
        version: 3,
        description: "robust: suspect column and the quarantine claim index",
        sql: include_str!("v3_robust.sql"),
    },
    Migration {
        version: 4,
        description: "metadata column; enqueue() takes metadata as an optional trailing parameter",
        sql: include_str!("v4_metadata.sql"),
    },
];

/// The schema version this build of the crate works with.
pub const SCHEMA_VERSION: i32 = 4;

/// First key of the advisory lock migrations hold ("jobs" in ASCII); the second is
/// `hashtext(schema)`, so migrations of different schemas don't wait for each other.
const MIGRATE_LOCK_CLASS: i32 = 0x6a6f_6273;

/// What [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateReport {
    /// The version found (0: the schema had no job tables).
    pub from: i32,
    /// The version now.
    pub to: i32,
    /// The versions applied by this call (empty if it was up to date).
    pub applied: Vec<i32>,
}

/// Creates or upgrades the job schema to [`SCHEMA_VERSION`].
///
/// Idempotent, and safe to run from several processes at once: it runs in one transaction
/// under a transaction-level advisory lock per schema, so concurrent callers wait for each
/// other and the later ones find the schema up to date. Each applied version is recorded in
/// `<schema>.schema_version`. A schema that is already current is only read, so roles without
/// `CREATE` rights can call it too.
///
/// # Errors
///
/// [`PostgresError::SchemaTooNew`] if a newer binary migrated the schema,
/// [`PostgresError::PermissionDenied`] if the role may not create the schema or its objects,
/// [`PostgresError::Store`] for other database failures.
///
/// # Cancel safety
///
/// Cancel safe: the migration is one transaction under an advisory lock, so a dropped call
/// leaves the schema as it was or wholly migrated, never half; migrating again goes on.
pub async fn migrate(pool: &PgPool, schema: &SchemaName) -> Result<MigrateReport, PostgresError> {
    let mut tx = pool.begin().await.map_err(store_error)?;
    let report = match migrate_in(&mut tx, schema).await {
        Ok(report) => report,
        Err(failure) => {
            drop(tx);
            return Err(denied(failure, schema, current_role(pool).await));
        }
    };
    tx.commit().await.map_err(store_error)?;
    if !report.applied.is_empty() {
        tracing::info!(schema = %schema, from = report.from, to = report.to, "migrated jobs schema");
    }
    Ok(report)
}

async fn migrate_in(
    conn: &mut PgConnection,
    schema: &SchemaName,
) -> Result<MigrateReport, MigrateFailure> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(MIGRATE_LOCK_CLASS)
        .bind(schema.as_str())
        .execute(&mut *conn)
        .await?;
    let from = current_version(conn, schema).await?.unwrap_or(0);
    if from > SCHEMA_VERSION {
        return Err(MigrateFailure::TooNew(from));
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        if migration.version > from {
            apply(conn, schema, migration).await?;
            applied.push(migration.version);
        }
    }
    Ok(MigrateReport {
        from,
        to: from.max(SCHEMA_VERSION),
        applied,
    })
}

async fn apply(
    conn: &mut PgConnection,
    schema: &SchemaName,
    migration: &Migration,
) -> Result<(), sqlx::Error> {
    let q = schema.quoted();
    let setup = format!(
        "CREATE SCHEMA IF NOT EXISTS {q};
         CREATE TABLE IF NOT EXISTS {q}.schema_version (
             version     integer     PRIMARY KEY,
             description text        NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );"
    );
    conn.execute(setup.as_str()).await?;
    let sql = migration
        .sql
        .replace("{s}", &q)
        .replace("{channel}", &schema.channel());
    conn.execute(sql.as_str()).await?;
    sqlx::query(&format!(
        "INSERT INTO {q}.schema_version (version, description) VALUES ($1, $2)"
    ))
    .bind(migration.version)
    .bind(migration.description)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The schema's version, or `None` if it has no version table (or does not exist).
async fn current_version(
    conn: &mut PgConnection,
    schema: &SchemaName,
) -> Result<Option<i32>, sqlx::Error> {
    let table = format!("{}.schema_version", schema.quoted());
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar(&format!("SELECT max(version) FROM {table}"))
        .fetch_one(&mut *conn)
        .await
}

enum MigrateFailure {
    TooNew(i32),
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for MigrateFailure {
    fn from(e: sqlx::Error) -> Self {
        MigrateFailure::Sql(e)
    }
}

/// The role connected as, for error messages.
async fn current_role(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(pool)
        .await
        .unwrap_or_else(|_| "<unknown>".to_owned())
}

fn denied(failure: MigrateFailure, schema: &SchemaName, role: String) -> PostgresError {
    match failure {
        MigrateFailure::TooNew(found) => PostgresError::SchemaTooNew {
            schema: schema.to_string(),
            found,
            supported: SCHEMA_VERSION,
        },
        MigrateFailure::Sql(e) if sqlstate(&e).as_deref() == Some("42501") => {
            PostgresError::PermissionDenied {
                role,
                detail: format!("migrating schema {schema:?}: {}", store_error_message(&e)),
                hint: "run migrate as a role with CREATE on the database, or as the schema's owner"
                    .to_owned(),
                source: Some(e),
            }
        }
        MigrateFailure::Sql(e) => PostgresError::Store(store_error(e)),
    }
}

/// Checks that `schema` is at [`SCHEMA_VERSION`] and that the connected role may use it.
pub(crate) async fn check_schema(pool: &PgPool, schema: &SchemaName) -> Result<(), PostgresError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    let row = sqlx::query(
        "SELECT current_user::text AS role,
                EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema_exists,
                has_schema_privilege(current_user, (SELECT oid FROM pg_namespace WHERE nspname = $1), 'USAGE') AS usage",
    )
    .bind(schema.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(store_error)?;
    let role: String = row.try_get("role").map_err(store_error)?;
    if !row
        .try_get::<bool, _>("schema_exists")
        .map_err(store_error)?
    {
        return Err(PostgresError::SchemaMissing {
            schema: schema.to_string(),
        });
    }
    if !row
        .try_get::<Option<bool>, _>("usage")
        .map_err(store_error)?
        .unwrap_or(false)
    {
        return Err(PostgresError::PermissionDenied {
            role,
            detail: format!("no USAGE on schema {schema:?}"),
            hint: format!("GRANT USAGE ON SCHEMA {} TO <role>", schema.quoted()),
            source: None,
        });
    }
    check_rights(&mut conn, schema, role).await?;
    check_version(&mut conn, schema).await
}

async fn check_version(conn: &mut PgConnection, schema: &SchemaName) -> Result<(), PostgresError> {
    let found = current_version(conn, schema).await.map_err(store_error)?;
    match found {
        None => Err(PostgresError::SchemaMissing {
            schema: schema.to_string(),
        }),
        Some(v) if v < SCHEMA_VERSION => Err(PostgresError::SchemaTooOld {
            schema: schema.to_string(),
            found: v,
            expected: SCHEMA_VERSION,
        }),
        Some(v) if v > SCHEMA_VERSION => Err(PostgresError::SchemaTooNew {
            schema: schema.to_string(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Some(_) => Ok(()),
    }
}

/// Checks the rights the store needs on the version table, the job table and its sequence
/// (those that exist; a missing table is reported by the version check).
async fn check_rights(
    conn: &mut PgConnection,
    schema: &SchemaName,
    role: String,
) -> Result<(), PostgresError> {
    let q = schema.quoted();
    let missing: Vec<String> = sqlx::query_scalar(
        "WITH wanted(object, kind, privilege) AS (VALUES
             ($1, 'table', 'SELECT'),
             ($2, 'table', 'SELECT'), ($2, 'table', 'INSERT'), ($2, 'table', 'UPDATE'), ($2, 'table', 'DELETE'),
             ($3, 'sequence', 'USAGE'))
         SELECT privilege || ' on ' || object FROM wanted
          WHERE CASE WHEN to_regclass(object) IS NULL THEN false
                     WHEN kind = 'table' THEN NOT has_table_privilege(object, privilege)
                     ELSE NOT has_sequence_privilege(object, privilege) END",
    )
    .bind(format!("{q}.schema_version"))
    .bind(format!("{q}.jobs"))
    .bind(format!("{q}.jobs_id_seq"))
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(PostgresError::PermissionDenied {
        role,
        detail: format!("missing {}", missing.join(", ")),
        hint: format!(
            "GRANT SELECT ON {q}.schema_version TO <role>; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON {q}.jobs TO <role>; \
             GRANT USAGE ON SEQUENCE {q}.jobs_id_seq TO <role>"
        ),
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migrating a schema of version 3 to 4 replaces `enqueue()` (a new parameter makes a new
    /// function): a role granted the old one can call the new one, with and without
    /// metadata, and PUBLIC still cannot.
    #[tokio::test]
    async fn migrating_to_4_keeps_the_enqueue_grants() {
        let Some(url) = jobs_postgres_testkit::database_url() else {
            return;
        };
        let pool = jobs_postgres_testkit::test_pool(&url).await;
        let pid = std::process::id();
        let schema = SchemaName::new(&format!("jt_grants_v4_{pid}")).expect("an identifier");
        let (q, role) = (schema.quoted(), format!("jt_enqueuer_v4_{pid}"));
        let run = |sql: String| {
            let pool = pool.clone();
            async move { pool.execute(sql.as_str()).await.expect("setup SQL") }
        };
        run(format!("DROP SCHEMA IF EXISTS {q} CASCADE")).await;
        run(format!(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
             DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\"; END IF; END $$"
        ))
        .await;
        let mut tx = pool.begin().await.expect("begin");
        for migration in MIGRATIONS.iter().filter(|m| m.version <= 3) {
            apply(&mut tx, &schema, migration)
                .await
                .expect("migrate to 3");
        }
        tx.commit().await.expect("commit");
        run(format!(
            "CREATE ROLE \"{role}\"; GRANT USAGE ON SCHEMA {q} TO \"{role}\"; \
             GRANT EXECUTE ON FUNCTION {q}.enqueue(text, jsonb, text, integer, integer, timestamptz) TO \"{role}\""
        ))
        .await;

        let report = migrate(&pool, &schema).await.expect("migrate to 4");
        assert_eq!(report.applied, vec![4]);
        let mut conn = pool.acquire().await.expect("a connection");
        conn.execute(format!("SET ROLE \"{role}\"").as_str())
            .await
            .expect("set role");
        for call in ["'k', '{}'", "'k', '{}', metadata => '{\"a\": \"b\"}'"] {
            let enqueued = sqlx::query(&format!("SELECT {q}.enqueue({call})"))
                .execute(&mut *conn)
                .await;
            assert!(enqueued.is_ok(), "{call}: {enqueued:?}");
        }
        conn.execute("RESET ROLE").await.expect("reset role");
        let public: bool = sqlx::query_scalar(&format!(
            "SELECT has_function_privilege('public', '{q}.enqueue(text, jsonb, text, integer, integer, timestamptz, jsonb)', 'EXECUTE')"
        ))
        .fetch_one(&mut *conn)
        .await
        .expect("privilege of PUBLIC");
        assert!(!public, "PUBLIC cannot execute it");
        drop(conn);
        run(format!("DROP SCHEMA {q} CASCADE")).await;
        run(format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\"")).await;
    }

    #[test]
    fn futures_are_spawnable() {
        // Checked at compile time: migrate and open can run on a multi-threaded runtime.
        if false {
            let pool = sqlx::PgPool::connect_lazy("postgres://localhost/x").expect("a valid URL");
            let schema = SchemaName::default();
            drop(tokio::spawn(async move {
                let _ = migrate(&pool, &schema).await;
                let _ = check_schema(&pool, &schema).await;
            }));
        }
    }
}
