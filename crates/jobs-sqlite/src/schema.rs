//! The schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! # Layout (version 3)
//!
//! One table, `jobs`, whose columns mirror [`jobs::JobRecord`]: timestamps are INTEGER
//! microseconds since the Unix epoch, `args`, `checkpoint` and `errors` are JSON text, `state`
//! is the [`jobs::JobState`] name, `metadata` a JSON object of strings or NULL for none
//! (version 3). `id` is `AUTOINCREMENT`, so an id is never reused after a
//! prune (a stale lease can never fence onto a newer job that got the same id).
//!
//! Every index is partial, over the rows of one stage of a job's life, so a job enters and
//! leaves each index once and the hot writes touch two small indexes: a claim moves a row
//! from `jobs_claim` to `jobs_rescue`, a completion from `jobs_rescue` to `jobs_finalized`.
//! (A full `(state, queue)` index halved the claim rate: every state change moved its entry.)
//!
//! | index | columns | serves |
//! |---|---|---|
//! | `jobs_claim` | `(queue, priority DESC, run_at, id, kind) WHERE state = 'available' AND suspect = 0` | claim order (the kind filter read from the index); available counts and oldest `run_at` per queue |
//! | `jobs_suspect` | `(queue, priority DESC, run_at, id) WHERE state = 'available' AND suspect > 0` | the quarantine claim of suspects; their available counts |
//! | `jobs_rescue` | `(lease_expires_at, queue) WHERE state = 'running'` | the rescuer's expired-lease scan; running counts |
//! | `jobs_promote` | `(run_at, queue) WHERE state = 'scheduled'` | the scheduler's due-job scan; scheduled counts |
//! | `jobs_finalized` | `(finalized_at, state, queue) WHERE finalized_at IS NOT NULL` | `job_prune`'s age scan; terminal counts |
//!
//! `queue_stats` reads the four indexes (each covering its part), never the table. Claiming,
//! rescuing and promoting cost the same with 20,000 or 20 million finished jobs in the table.
//!
//! `suspect` is 0 for a job that is not a suspect, and 1 + its strikes for a suspect
//! ([`jobs::JobRecord::suspect`]).
//!
//! Invariant: `finalized_at IS NOT NULL` exactly when the state is terminal (completed, dead,
//! cancelled); every write that changes the state keeps it. (`jobs_finalized` is keyed on it
//! rather than on `state IN (...)`: SQLite evaluates an `IN` list in a partial index's
//! `WHERE` on every write of the row, which cost as much as a whole extra index; the `CHECK`
//! on `state` is an `OR` chain for the same reason.)
//!
//! # Room to grow
//!
//! Each later feature is a new migration that adds, it does not reshape:
//!
//! * **unique jobs**: `ALTER TABLE jobs ADD COLUMN unique_key TEXT` and a partial
//!   `UNIQUE INDEX … (unique_key) WHERE unique_key IS NOT NULL AND state IN ('scheduled',
//!   'available', 'running')`; inserts use `ON CONFLICT DO NOTHING`.
//! * **dependencies / batches**: a `job_dependencies (job_id, depends_on)` table with an index on
//!   `depends_on`, and a `pending` state (waiting for parents) that the claim index ignores;
//!   finishing a parent promotes children whose parents all completed.
//! * **pausing queues, rate limits**: a `queues (name PRIMARY KEY, paused_at, …)` table; the
//!   claim adds `AND NOT EXISTS (SELECT 1 FROM queues WHERE name = ?queue AND paused_at IS NOT
//!   NULL)`, one primary-key probe.
//! * **moving / reprioritising**: plain `UPDATE`s of `queue` / `priority` on waiting jobs; the
//!   claim index follows.
//! * **periodic jobs**: a `periodic (name PRIMARY KEY, cron, next_run_at)` table.
//! * **tags**: a JSON column beside `metadata`.
//!
//! A database whose `user_version` is newer than [`SCHEMA_VERSION`] was written by a newer
//! version of this crate; opening it fails with [`jobs::StoreError::Schema`] rather than
//! guessing.

use jobs::StoreError;
use sqlx::{Connection, SqliteConnection};

use crate::error::during;

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: i64 = 3;

/// Migration `n` (1-based) takes a database from version `n - 1` to `n`.
const MIGRATIONS: [&str; 3] = [
    r#"
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state = 'scheduled' OR state = 'available'
                         OR state = 'running' OR state = 'completed' OR state = 'dead'
                         OR state = 'cancelled'),
    priority         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    rescues          INTEGER NOT NULL DEFAULT 0,
    claims           INTEGER NOT NULL DEFAULT 0,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    attempted_at     INTEGER,
    finalized_at     INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    checkpoint       TEXT,
    errors           TEXT    NOT NULL DEFAULT '[]'
) STRICT;
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id) WHERE state = 'available';
CREATE INDEX jobs_rescue ON jobs (lease_expires_at, queue) WHERE state = 'running';
CREATE INDEX jobs_promote ON jobs (run_at, queue) WHERE state = 'scheduled';
CREATE INDEX jobs_finalized ON jobs (finalized_at, state, queue) WHERE finalized_at IS NOT NULL;
"#,
    // Migration 2 (helper robust: suspects and kind-filtered claims, issue 9 items 6 and 8).
    r#"
ALTER TABLE jobs ADD COLUMN suspect INTEGER NOT NULL DEFAULT 0 CHECK (suspect >= 0);
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id, kind)
    WHERE state = 'available' AND suspect = 0;
CREATE INDEX jobs_suspect ON jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available' AND suspect > 0;
"#,
    // Migration 3 (issue 8: job metadata, the trace context of the enqueue among it). NULL
    // for no metadata, so a job without any stores nothing more.
    r#"
ALTER TABLE jobs ADD COLUMN metadata TEXT;
"#,
];

/// Creates or migrates the schema in one `BEGIN IMMEDIATE` transaction, so two processes
/// opening a new file at once do not race.
pub(crate) async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(during("open (begin migration)"))?;
    let found: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(during("open (read user_version)"))?;
    check_version(found)?;
    for (done, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::info!(from = done, to = done + 1, "migrating jobs schema");
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|err| migration_error(done + 1, err))?;
    }
    if found < SCHEMA_VERSION {
        sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .execute(&mut *tx)
            .await
            .map_err(during("open (write user_version)"))?;
    }
    tx.commit().await.map_err(during("open (commit migration)"))
}

fn check_version(found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::schema(format!(
            "the database has jobs schema version {found}, newer than version \
             {SCHEMA_VERSION} that this jobs-sqlite understands; upgrade jobs-sqlite"
        )));
    }
    if found < 0 {
        return Err(StoreError::schema(format!(
            "the database has user_version {found}, which no jobs-sqlite writes; \
             is it another application's database?"
        )));
    }
    Ok(())
}

fn migration_error(to: usize, err: sqlx::Error) -> StoreError {
    match crate::error::store_error("open (migrate)", err) {
        StoreError::Other { message, source } => StoreError::Schema {
            message: format!(
                "migrating the jobs schema to version {to} failed: {message}; does the file \
                 hold another application's `jobs` table?"
            ),
            source,
        },
        transient => transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_and_negative_versions_are_schema_errors() {
        assert!(check_version(0).is_ok());
        assert!(check_version(SCHEMA_VERSION).is_ok());
        let newer = check_version(SCHEMA_VERSION + 1).unwrap_err();
        assert!(matches!(newer, StoreError::Schema { .. }));
        assert!(newer.to_string().contains("upgrade jobs-sqlite"), "{newer}");
        assert!(matches!(check_version(-1), Err(StoreError::Schema { .. })));
    }

    /// A database of version 2 with a job in it migrates to version 3: the job reads back
    /// with no metadata, and a new one keeps its metadata.
    #[tokio::test]
    async fn a_version_2_database_migrates_and_keeps_its_jobs() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for sql in &MIGRATIONS[..2] {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        sqlx::raw_sql(
            "PRAGMA user_version = 2; \
             INSERT INTO jobs (kind, queue, args, state, priority, max_attempts, run_at, created_at) \
             VALUES ('k', 'q', '{}', 'available', 0, 3, 1, 1);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        migrate(&mut conn).await.unwrap();
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let sql = format!("SELECT {} FROM jobs", crate::row::RECORD);
        let old: String = sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap();
        let old = crate::row::decode(&old).unwrap();
        assert_eq!((old.kind.as_str(), old.metadata.is_empty()), ("k", true));
        sqlx::query("UPDATE jobs SET metadata = '{\"a\":\"b\"}'")
            .execute(&mut conn)
            .await
            .unwrap();
        let new: String = sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap();
        assert_eq!(
            crate::row::decode(&new).unwrap().metadata.get("a"),
            Some("b")
        );
    }

    #[test]
    fn there_is_one_migration_per_version() {
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
    }
}
