//! PostgreSQL store for the `jobs` crate: many worker processes on many machines share one
//! database.
//!
//! [`PostgresStore`] implements [`jobs::store::Store`] and passes the same conformance suite
//! (crate `jobs-conformance`) as the memory and SQLite stores.
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
//! * **Lease writes commit asynchronously** by default, inserts synchronously; see
//!   [Durability](#durability).
//! * **Bulk inserts** use binary `COPY` (small batches one `INSERT … UNNEST`), in one
//!   transaction (a savepoint inside the caller's), so a batch lands whole or not at all.
//! * **Rescue** is one statement with `SKIP LOCKED`: two rescuers never release the same job.
//! * **Vacuum**: claims leave dead entries where the next claim starts reading, so the table
//!   has eager autovacuum settings and the store vacuums it itself under sustained load
//!   ([`PostgresStore::vacuum`]); throughput does not decay between autovacuum runs, nor as
//!   finished jobs accumulate (they are in no index a claim reads).
//! * **Wake-ups**: inserts (the Rust API and `enqueue()`), releases, retries, promotions and
//!   rescues `NOTIFY` the channel `<schema>.jobs` once per statement and queue, with the
//!   queue name as payload; [`jobs::store::Store::listen`] returns a listener on it. Polling remains
//!   the fallback.
//!
//! # Durability
//!
//! A commit that waits for its WAL flush costs milliseconds on ordinary disks, and every
//! claim and finish batch would pay it. So by default ([`LeaseCommit::Asynchronous`]) the
//! lease writes (claims, finishes, heartbeats, checkpoints, rescues, promotions) set
//! `synchronous_commit = off` for their own transaction, while inserts (`job_insert_many`,
//! [`PostgresStore::insert_in`], `enqueue()`) and administrative calls (retry, cancel, prune)
//! keep the session's setting, normally `on`:
//!
//! * an acknowledged enqueue is on disk: **no job is ever lost**;
//! * a clean shutdown or restart of PostgreSQL, lost connections and terminated backends
//!   lose nothing at all;
//! * a **crash** of the PostgreSQL server (power loss, OS crash, `kill -9`, `pg_ctl stop -m
//!   immediate`) can roll back the lease writes of roughly the last `3 × wal_writer_delay`
//!   (600 ms by default), in commit order. A rolled-back claim makes the job available again
//!   while the worker that claimed it may still be running it (it then runs twice; the new
//!   claim may repeat the token, but fenced writes name their owner too, so the first
//!   worker's writes are rejected and it stops); a rolled-back finish leaves the job running
//!   under a lease that expires, so it is rescued and runs again. Delivery stays
//!   at-least-once.
//!
//! [`LeaseCommit`] details every case. [`PostgresOptions::lease_commit`] or
//! [`PostgresStore::set_lease_commit`] with [`LeaseCommit::Synchronous`] makes every commit
//! wait for its flush instead.
//!
//! # Transactional enqueue
//!
//! [`PostgresStore::insert_in`] inserts jobs on the caller's connection or transaction, so
//! they exist if and only if it commits.
//!
//! # Enqueue from any language
//!
//! The migration creates `<schema>.enqueue(kind text, args jsonb, queue text DEFAULT
//! 'default', priority integer DEFAULT 0, max_attempts integer DEFAULT 20, run_at
//! timestamptz DEFAULT now(), metadata jsonb DEFAULT NULL) RETURNS bigint` (`metadata` since
//! schema version 4: calls without it work as before). It enforces the rules of the Rust enqueue
//! ([`NewJob::validate`](jobs::store::NewJob::validate)) with the same constants: kind and
//! queue of 1 to 128 characters of `[A-Za-z0-9_.:-]`, a priority that fits `smallint`,
//! `max_attempts` at least 1 (default 20, as
//! [`DEFAULT_MAX_ATTEMPTS`](jobs::DEFAULT_MAX_ATTEMPTS)), args nested at most 100 levels
//! ([`MAX_JSON_DEPTH`](jobs::store::MAX_JSON_DEPTH)), metadata a JSON object of strings
//! within the limits of [`Metadata::validate`](jobs::Metadata::validate); it raises SQLSTATE
//! `22023` naming the
//! rule otherwise. It is `SECURITY DEFINER` with a fixed
//! `search_path`, and `EXECUTE` is revoked from `PUBLIC`, so an application role needs only:
//!
//! ```sql
//! GRANT USAGE ON SCHEMA jobs TO billing_app;
//! GRANT EXECUTE ON FUNCTION jobs.enqueue(text, jsonb, text, integer, integer, timestamptz, jsonb) TO billing_app;
//! ```
//!
//! and no right on the job table itself. From `psql`:
//!
//! ```sql
//! SELECT jobs.enqueue('send_email', '{"to": "ada@example.com"}');
//! SELECT jobs.enqueue('send_email', '{"to": "ada@example.com"}', queue => 'mail', priority => 5);
//! SELECT jobs.enqueue('report', '{"month": 11}', run_at => now() + interval '1 hour');
//! SELECT jobs.enqueue('report', '{"month": 12}', metadata => '{"request_id": "req-42"}');
//! ```
//!
//! (Migrating to version 4 replaces the function: the roles granted `EXECUTE` on the old one
//! are granted the new one.)
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
//!
//! # Timeouts, partitions and outages
//!
//! * **Its own `statement_timeout`.** Pools made by [`PostgresOptions::connect_pool`] (and
//!   [`PostgresStore::connect`]) send `statement_timeout` (default 30 s,
//!   [`PostgresOptions::statement_timeout`]) when they connect, which overrides a default
//!   set on the role or the database: a role with `statement_timeout = '20ms'` cannot cancel
//!   the store's claims or its vacuum. They also turn on server-side TCP keepalives, so the
//!   server ends the session of a client that vanished (about 25 s), releasing its locks and
//!   its connection slot.
//! * **Every call is bounded on the client side**: after the acquire timeout plus the
//!   statement timeout plus one second without an answer (41 s by default), the call is
//!   abandoned and fails as [`StoreError::Unavailable`](jobs::StoreError::Unavailable), so a
//!   network that drops traffic without a word cannot hang a worker: the engine's child
//!   restarts on a fresh connection. For a while after a call was abandoned, connections
//!   coming back to the pool are pinged within 2 s before reuse and closed if they do not
//!   answer (sqlx's own check has no bound). A listener checks that its connection answers
//!   after 5 s without a notification. The client cannot turn on TCP keepalives itself
//!   (sqlx does not expose its sockets); these bounds do that job.
//! * **Outages** (the server restarting, refusing connections) fail calls as transient
//!   errors; the engine retries within a second of the server answering again (see the
//!   `jobs` crate's "Under faults").
//!
//! # Sizing pools against `max_connections`
//!
//! One process's store holds at most [`PostgresOptions::max_connections`] (default 10)
//! connections for its calls, [`HEARTBEAT_CONNECTIONS`] (2) for lease renewals, and one per
//! open listener (a pool opens one): 13 by default. Make the sum over every process that
//! runs a pool or enqueues, plus the application's other clients, fit in the server's
//! `max_connections` minus `superuser_reserved_connections` (for example 8 worker processes
//! × 13 = 104 needs `max_connections` ≥ 110); put PgBouncer (transaction mode) in front when
//! it cannot, keeping the listener's connection direct (LISTEN needs a session). A pool
//! rarely needs more than its queues' fetchers, its completer and a few maintenance calls
//! at once: 10 serves hundreds of concurrent jobs.
//!
//! When connections run out anyway, a call waits up to the acquire timeout (default 10 s)
//! for one, or the server refuses a new one (`too many clients`, SQLSTATE `53300`): both are
//! transient errors, after which the engine's child is restarted after a jittered delay of
//! at most a second, and tries again. Processes that already hold connections keep them
//! while they are busy (sqlx closes idle ones after 10 minutes), so an oversubscribed server
//! serves first the processes that connected first: size the pools so that it is not.
//!
//! # Who can listen to or wake the queues
//!
//! PostgreSQL has no privileges on notification channels: any role that can connect to the
//! database can `LISTEN` to the channel `<schema>.jobs` and see the names of the queues
//! that receive jobs (never their ids, kinds or args), and can `NOTIFY` it to wake the
//! pools' fetchers. A wake-up only makes a fetcher claim early: after a claim that came back
//! short, it claims no sooner than 20 ms later, so a flood of spurious notifications costs
//! at most 50 empty claims a second per queue and process. Schema names are in the catalog
//! for every role, so an unusual schema name does not hide the channel. Where the queue
//! names must stay private, keep the job schema in a database that only roles trusted with
//! them may connect to (`REVOKE CONNECT ON DATABASE jobs_db FROM PUBLIC`, then `GRANT
//! CONNECT` to those roles; notifications never cross databases).
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

mod bound;
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
    DEFAULT_STATEMENT_TIMEOUT,
};
pub use schema_name::{SchemaName, MAX_SCHEMA_NAME_LEN};
pub use store::{PostgresStore, HEARTBEAT_CONNECTIONS};

/// The sqlx this crate is built on, for [`PostgresStore::insert_in`] and [`PostgresStore::pool`]
/// users who want the same version.
pub use sqlx;
