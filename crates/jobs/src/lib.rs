//! Durable background jobs on a supervised worker pool.
//!
//! A job kind is a serializable args type with a stable name ([`JobArgs`]); a [`Worker`]
//! runs it; a [`Client`] enqueues it; a [`Pool`] claims and runs jobs from a store
//! ([`MemoryStore`] here, SQLite in `jobs-sqlite`, PostgreSQL in `jobs-postgres`). The pool is
//! a supervision tree (crate `supervisor`): a lost database connection means delayed
//! restarts of the affected child, never a crash or a hot loop.
//!
//! The pool can also be a child of your own supervision tree, beside your HTTP server:
//! [`PoolBuilder::build`] gives a [`PoolSpec`] whose [`child_spec`](PoolSpec::child_spec) you
//! add to your tree, and whose [`PoolStarted`] hands you the pool once it runs; the tree's
//! order then decides the shutdown (the server stops first, then the pool).
//!
//! This crate root is the application's API. The storage seam, the [`Store`](store::Store)
//! trait with its params types, is in [`store`], for those who write or test a store.
//! [`testing`] helps test workers without a pool (direct runs, inline and manual modes,
//! assertions on enqueued jobs); [`telemetry`] names the metrics the engine records, and
//! [`Pool::subscribe`] streams job events.
//!
//! ```
//! use std::sync::Arc;
//! use jobs::{Client, JobArgs, JobContext, JobError, MemoryStore, Pool, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Import { rows: u64 }
//! impl JobArgs for Import { const KIND: &'static str = "import"; }
//!
//! struct Importer;
//! impl Worker for Importer {
//!     type Args = Import;
//!     async fn perform(&self, ctx: JobContext, args: Import) -> Result<(), JobError> {
//!         let mut row: u64 = ctx.checkpoint_state()?.unwrap_or(0); // resume after a deploy
//!         while row < args.rows {
//!             row += 1; // ... import one row ...
//!             ctx.checkpoint(&row).await?; // the safe point: saves, stops on shutdown
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new());
//! let pool = Pool::builder(store.clone()).register(Importer).queue("default", 10).start().await?;
//! let id = pool.client().enqueue(&Import { rows: 1_000 }).await?;
//! # while pool.client().job(id).await?.map(|j| j.state) != Some(jobs::JobState::Completed) {
//! #     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//! # }
//! let report = pool.shutdown().await; // stop fetching, grace period, release the rest
//! assert!(report.clean);
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! * **No job is lost.** Every enqueued job ends completed, dead, cancelled or still queued,
//!   across SIGTERM (running jobs get a grace period, then are released with their checkpoint
//!   and no attempt charged), SIGKILL (the lease expires and a rescuer returns the job within
//!   about one lease period), panics (a failed attempt like any other) and lost connections
//!   (children restart after a delay; claimed jobs stay heartbeated until their outcome is
//!   written).
//! * **At-least-once execution, never two live runs.** A job runs under a lease that a
//!   heartbeat renews; every write a run makes is fenced by its lease (token and owner), so a
//!   stale run (frozen, rescued, re-claimed elsewhere) cannot overwrite a newer one, and it
//!   is stopped as soon as its lease is gone: a heartbeat finds it taken over, or it runs
//!   out on the run's own clock (checked at every safe point, without waiting for the store).
//! * **Bad input never takes the pool down.** Invalid options, names and args nested
//!   deeper than a store can read back are typed errors at enqueue ([`EnqueueError`]; the
//!   one rule set is `jobs::store::NewJob::validate`); an unknown kind, undecodable args or
//!   a stored row that cannot be read (written by hand or by an older version) sends that one
//!   job to the dead set with the reason ([`BadInput`]), the rest of its batch runs, and the
//!   exhausted hook sees it.
//!
//! # Outcomes
//!
//! | `perform` returns | the job becomes | attempt charged | exhausted hook |
//! |---|---|---|---|
//! | `Ok(())` | `completed` | - | - |
//! | `Err(JobError::Failed)` / `?` / panic / worker timeout | `scheduled` after the worker's backoff, or `dead` on the last attempt | yes | when dead |
//! | `Err(JobError::Discard)` | `dead` | yes | yes |
//! | `Err(JobError::Snooze(d))` | `scheduled` in `d` | no | - |
//! | `Err(JobError::Interrupted)` (from `checkpoint` on shutdown), or aborted after the grace | `available` at once, checkpoint kept | no | - |
//! | `Err(JobError::LeaseLost)` (from `checkpoint` once the lease ran out or was taken over), or dropped at the lease's end | `available` at once if no other worker took it over (a fenced release), else untouched | no | - |
//!
//! Jobs whose lease expired too often (`PoolConfig::max_rescues`) and bad input also end
//! `dead`, with the hook called. See [`PoolConfig`] for every default and how to choose the
//! times against a platform's kill timeout, and `docs/ARCHITECTURE.md` for the state diagram.
//!
//! # Under faults
//!
//! * **Store outage** (the database down, restarting, refusing connections, out of
//!   connections). Every store call fails with a transient [`StoreError`]; the pool's child
//!   that made it (fetcher, completer, heartbeat, rescuer...) ends and its supervisor
//!   restarts it after a delay that doubles from 100 ms to at most 1 s
//!   ([`PoolConfig::restart_backoff`]), with jitter. Nothing is lost: claimed runs stay in
//!   the pool's books and their outcomes wait in the completer's batch. Work resumes within
//!   about a second of the store answering again, however long the outage lasted. Runs whose
//!   leases could not be renewed in the meantime stop at their lease's end (below).
//! * **Network partition** (traffic silently dropped, no RST). A store must bound every call
//!   (the PostgreSQL store gives up after its acquire timeout plus its `statement_timeout`
//!   plus a second, and checks that its listening connection answers after a few seconds of
//!   silence), so a cut-off call fails like an outage and the child restarts on a fresh
//!   connection. Meanwhile each run knows its own lease deadline on the process's monotonic
//!   clock: when its lease runs out without a renewal that held, the run is dropped at once,
//!   without waiting for the store, so a worker cut off from its store stops its jobs' side
//!   effects before another worker may take them over (after the lease ends and a rescuer
//!   sees it). When the network returns, the stopped jobs are handed back by releases fenced
//!   by their lease, which are no-ops for jobs another worker took over.
//! * **Blocked runtime** (a job calling blocking code in async code). On a multi-threaded
//!   runtime the heartbeat runs on a thread of its own, so leases are renewed even while
//!   every thread of the application's runtime is blocked: nothing is rescued or run twice,
//!   and a job blocking its thread for about a second is logged at `warn` with its `job_id`.
//!   Other jobs, claims and finishes wait until the thread is free. See the obligations of
//!   [`Worker`].
//! * **Spurious wake-ups** (a flood of notifications on the store's channel). After a claim
//!   that came back short, a wake-up claims again no sooner than 20 ms later: at most 50
//!   claims a second per queue, however many notifications arrive.
//! * **Retention**: finished jobs past [`PoolConfig::retention`] are deleted by the pool's
//!   pruner in batches of 5,000, batch after batch while there is work, so pruning keeps
//!   pace with any rate at which jobs finish.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

mod args;
mod client;
mod context;
mod error;
mod fast_map;
mod job;
mod lease_clock;
mod memory;
mod metadata;
mod outcome;
mod pool;
mod stats;
pub mod store;
pub mod telemetry;
pub mod testing;
mod time;
mod trace_context;
mod worker;

pub use args::{
    validate_queue_name, EnqueueOptions, JobArgs, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE,
    MAX_QUEUE_NAME_LEN,
};
pub use client::{Batch, Client, WaitError};
pub use context::JobContext;
pub use error::{BoxError, EnqueueError, StoreError};
pub use job::{AttemptError, JobId, JobRecord, JobState, UnknownState};
pub use memory::MemoryStore;
pub use metadata::{Metadata, MetadataError, MAX_METADATA_BYTES, MAX_METADATA_ENTRIES};
pub use outcome::Outcome;
pub use pool::{
    ConfigError, JobEvent, Pool, PoolBuilder, PoolConfig, PoolError, PoolSpec, PoolStarted,
    ShutdownReport, DEFAULT_CONCURRENCY, POOL_SUPERVISOR,
};
pub use stats::QueueStats;
pub use time::{Clock, Timestamp};
pub use worker::{default_retry_backoff, BadInput, JobError, Worker};

/// Types of the `supervisor` crate that this crate's API uses, so tuning a pool needs no
/// direct dependency on it.
pub use supervisor::{Backoff, Intensity, SupervisorHandle};
