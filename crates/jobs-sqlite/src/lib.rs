//! Embedded durable SQLite store for the `jobs` crate.
//!
//! [`SqliteStore`] implements [`jobs::store::Store`] on a single database file (or a private
//! in-memory database), so a service gets durable background jobs with no server to run.
//!
//! ```
//! use std::time::Duration;
//!
//! use jobs::Timestamp;
//! use jobs::store::{JobClaimParams, JobInsertParams, NewJob, Store};
//! use jobs_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::open_in_memory().await?; // or SqliteStore::open("jobs.db")
//! let now = Timestamp::now();
//! let job = NewJob {
//!     kind: "send_email".into(),
//!     args: serde_json::json!({ "to": "ada@example.com" }),
//!     queue: "default".into(),
//!     priority: 0,
//!     max_attempts: 5,
//!     run_at: None,
//!     metadata: Default::default(),
//! };
//! let ids = store.job_insert_many(JobInsertParams { jobs: vec![job], now }).await?;
//!
//! let claimed = store
//!     .job_claim(JobClaimParams {
//!         queue: "default".into(),
//!         owner: "worker-1".into(),
//!         limit: 10,
//!         lease_ttl: Duration::from_secs(30),
//!         now,
//!         kinds: None,
//!         suspects: false,
//!     })
//!     .await?;
//! assert_eq!(claimed[0].lease.job, ids[0]);
//! store.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Durability and speed
//!
//! The [defaults](SqliteStoreOptions) are the fast durable settings: WAL journal,
//! `synchronous = NORMAL` (a committed job survives a crash of the process, SIGKILL included;
//! only a crash of the machine may lose the last commits), one writer connection per store
//! plus read-only reader connections.
//!
//! Every operation is one SQL statement, or one `BEGIN IMMEDIATE` transaction, for its whole
//! batch; a batch travels as one JSON parameter read with `json_each`, never as one
//! statement per job:
//!
//! * a claim is one script in one `BEGIN IMMEDIATE` transaction: a `SELECT` renders the jobs
//!   it takes (`ORDER BY priority DESC, run_at, id LIMIT n`) as a single JSON row, then an
//!   `UPDATE` leases them;
//! * completions are one `UPDATE … FROM json_each(?)` that applies only if every lease holds
//!   (the common case, with no `RETURNING`), else a second statement applies and names those
//!   that do; other outcomes share one general statement;
//! * a bulk insert is one `INSERT … SELECT … FROM json_each(?)` per run of alike jobs (one for
//!   a typical batch), slicing each job's args out of one BLOB parameter.
//!
//! Every index is partial (available, running, scheduled, finished rows), so the claim, the
//! rescuer and the scheduler cost the same however many finished jobs the table holds.
//!
//! # Cancel safety
//!
//! A cancelled call may or may not have been applied, but never half: each operation is
//! atomic. A claim cancelled after SQLite ran it leaves its jobs leased to no one until the
//! rescuer returns them, one lease period later.
//!
//! # Transactional enqueue
//!
//! An application that keeps its own tables in the same file opens its sqlx pool with
//! [`SqliteStoreOptions::connect_options`] (the store's pragmas), the store on it with
//! [`SqliteStore::from_pool`], and enqueues inside its own transactions with
//! [`SqliteStore::enqueue_in`]: the job exists if and only if the transaction commits. After
//! the commit, [`SqliteStore::wake`] wakes this process's pool at once (SQLite has no
//! notifications between connections; without it the pool finds the job at its next poll).
//!
//! # Several processes
//!
//! Any number of processes may open the same file. Each write statement takes SQLite's write
//! lock for its whole run, so two claimers never take the same job; a writer that finds the
//! lock held waits up to the [busy timeout](SqliteStoreOptions::busy_timeout) and then fails
//! with the transient [`jobs::StoreError::Busy`]. Wake-ups from [`jobs::store::Store::listen`]
//! reach across processes: besides this store's own writes, a listener polls
//! `PRAGMA data_version` on the writer connection every
//! [few milliseconds](SqliteStoreOptions::wake_poll_interval) (no I/O), which changes only
//! when another connection commits, and wakes every queue when it changed and some job is
//! available; a job enqueued or released by another process is picked up within
//! milliseconds instead of at the next poll.
//!
//! # Errors
//!
//! `SQLITE_BUSY` / `SQLITE_LOCKED` map to [`StoreError::Busy`](jobs::StoreError::Busy); I/O
//! errors, a full disk or a file that cannot be opened to
//! [`Unavailable`](jobs::StoreError::Unavailable); a row that does not decode to
//! [`Corrupt`](jobs::StoreError::Corrupt) naming the job; a closed store to
//! [`Closed`](jobs::StoreError::Closed); a schema newer than this crate to
//! [`Schema`](jobs::StoreError::Schema).
//!
//! # Schema
//!
//! Created or migrated on open and versioned with `PRAGMA user_version`
//! ([`SCHEMA_VERSION`]); the table and index design, and how later features (unique keys,
//! dependencies, paused queues) extend it, are described in the `schema` module's source.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

mod claim;
mod connections;
mod data_version;
mod error;
mod finish;
mod insert;
mod inspect;
mod lease;
mod listener;
mod maintenance;
mod options;
mod rescue;
mod row;
mod schema;
mod store;
mod unknown_kinds;

pub use options::{SqliteStoreOptions, Synchronous};
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;

/// The sqlx this crate is built on, for [`SqliteStore::from_pool`] and
/// [`SqliteStore::enqueue_in`] users who want the same version.
pub use sqlx;
