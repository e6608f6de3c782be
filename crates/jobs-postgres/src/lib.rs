//! PostgreSQL store for the `jobs` crate: many worker processes on many machines share one
//! database.
//!
//! [`PostgresStore`] implements [`jobs::Store`] and passes the same conformance suite as the
//! memory and SQLite stores.
//!
//! # Setup
//!
//! ```no_run
//! use jobs_postgres::{migrate, PostgresOptions, PostgresStore, SchemaName};
//!
//! # async fn setup() -> Result<(), jobs_postgres::PostgresError> {
//! let options = PostgresOptions::new("postgres://app:secret@localhost:5432/app")?
//!     .schema(SchemaName::new("jobs")?) // the default; lives beside the application's tables
//!     .max_connections(10);
//! let pool = options.connect_pool().await?; // a wrong URL fails here, clearly
//! migrate(&pool, options.schema_name()).await?; // explicit, idempotent, safe from many processes
//! let store = PostgresStore::open(pool, options.schema_name().clone()).await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! [`PostgresStore::connect`] does the last step from options. Opening checks the schema: a
//! missing schema or an older version fails with "run migrate", a newer one with "upgrade
//! this binary", and missing privileges name the `GRANT` to run. Passwords never appear in
//! `Debug` output, logs or errors ([`PostgresOptions`] keeps the URL redacted).
//!
//! # How it works
//!
//! * **Schema** (`<schema>.jobs`, versioned in `<schema>.schema_version`): `timestamptz`
//!   times, `jsonb` args, checkpoint and errors. A partial index on
//!   `(queue, priority DESC, run_at, id) WHERE state = 'available'` serves the claim; others
//!   serve the scheduler, the rescuer and pruning.
//! * **Claims** lock up to `limit` jobs with `FOR UPDATE SKIP LOCKED` and take their lease in
//!   the same statement. Finishes and heartbeats are one statement per batch (`UNNEST` of
//!   arrays); every write to a running job is fenced by id, claim token and state.
//!   Heartbeats and rescues never wait for a row lock, so batches cannot deadlock.
//! * **Lease writes commit asynchronously** by default (claims, finishes, heartbeats,
//!   checkpoints, rescues and promotions run with `synchronous_commit = off` for their own
//!   transaction), inserts synchronously: an acknowledged enqueue is on disk, and a crash of
//!   the PostgreSQL server can only make recently claimed or finished jobs run again. See
//!   [`LeaseCommit`] for exactly what a crash can undo, and [`PostgresOptions::lease_commit`]
//!   to make every commit wait for its WAL flush.
//! * **Bulk inserts** use binary `COPY` (small batches one `INSERT … UNNEST`), so a batch is
//!   one atomic statement.
//! * **Rescue** is one statement with `SKIP LOCKED`: two rescuers never release the same job.
//! * **Vacuum**: claims leave dead entries where the next claim starts reading, so the table
//!   has eager autovacuum settings and the store vacuums it itself under sustained load
//!   ([`PostgresStore::vacuum`]); throughput does not decay between autovacuum runs, nor as
//!   finished jobs accumulate (they are in no index a claim reads).
//! * **Wake-ups**: inserts (a statement trigger), releases, retries, promotions and rescues
//!   `NOTIFY` the channel `<schema>.jobs` once per statement and queue, with the queue name
//!   as payload; [`jobs::Store::listen`] returns a listener on it. Polling remains the
//!   fallback.
//!
//! # Transactional enqueue
//!
//! [`PostgresStore::insert_in`] inserts jobs on the caller's connection or transaction, so
//! they exist if and only if it commits.
//!
//! # Enqueue from any language
//!
//! The migration creates `<schema>.enqueue(kind text, args jsonb, queue text DEFAULT
//! 'default', priority integer DEFAULT 0, max_attempts integer DEFAULT 25, run_at
//! timestamptz DEFAULT now()) RETURNS bigint`. It is `SECURITY DEFINER` with a fixed
//! `search_path`, and `EXECUTE` is revoked from `PUBLIC`, so an application role needs only:
//!
//! ```sql
//! GRANT USAGE ON SCHEMA jobs TO billing_app;
//! GRANT EXECUTE ON FUNCTION jobs.enqueue(text, jsonb, text, integer, integer, timestamptz) TO billing_app;
//! ```
//!
//! and no right on the job table itself. From `psql`:
//!
//! ```sql
//! SELECT jobs.enqueue('send_email', '{"to": "ada@example.com"}');
//! SELECT jobs.enqueue('send_email', '{"to": "ada@example.com"}', queue => 'mail', priority => 5);
//! SELECT jobs.enqueue('report', '{"month": 11}', run_at => now() + interval '1 hour');
//! ```
//!
//! From Python (psycopg 3):
//!
//! ```python
//! import json, psycopg
//! with psycopg.connect("postgresql://billing_app@db/app") as conn:
//!     job_id = conn.execute(
//!         "SELECT jobs.enqueue(%s, %s::jsonb, queue => %s)",
//!         ("send_email", json.dumps({"to": "ada@example.com"}), "mail"),
//!     ).fetchone()[0]
//! ```
//!
//! The job becomes visible, and its queue is notified, when the caller's transaction
//! commits. `args` must be what the Rust job kind's args type deserializes from.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

mod error;
mod finish;
mod insert;
mod inspect;
mod lease;
mod lease_commit;
mod listener;
mod maintenance;
mod migrations;
mod options;
mod pg_time;
mod row;
mod schema_name;
mod sql;
mod store;
mod vacuum;

pub use error::PostgresError;
pub use lease_commit::LeaseCommit;
pub use migrations::{migrate, MigrateReport, SCHEMA_VERSION};
pub use options::{
    PostgresOptions, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_APPLICATION_NAME, DEFAULT_MAX_CONNECTIONS,
};
pub use schema_name::{SchemaName, MAX_SCHEMA_NAME_LEN};
pub use store::PostgresStore;

/// The sqlx this crate is built on, for [`PostgresStore::insert_in`] and [`PostgresStore::pool`]
/// users who want the same version.
pub use sqlx;
