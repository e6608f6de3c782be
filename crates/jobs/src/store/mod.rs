//! The store SPI: the [`Store`] trait, the one seam between the engine and storage, with its
//! params and results. Applications use the crate root ([`Client`](crate::Client),
//! [`Pool`](crate::Pool)); this module is for those who write or test a store.
//!
//! Every operation is a Noun+Verb method taking one params struct, and every time-dependent
//! operation takes `now` from the engine's [`Clock`](crate::Clock), so tests control time
//! inside the store as well. Operations on running jobs are *fenced*: they name a [`Lease`]
//! (job id + claim token) and the owner that claimed it, and apply only while that exact
//! claim still holds, so a stale worker (rescued while frozen, or partitioned away) can never
//! overwrite a newer run.
//!
//! # The facade
//!
//! The engine never calls a [`Store`] directly: the [`Client`](crate::Client) and the pool go
//! through one [`StoreFacade`], which validates each request (the `validate` method of its
//! params type, written once here), times it, traces it and records a failure once. A store's
//! own entry points that bypass the engine (a transactional enqueue on the caller's
//! connection) call the same `validate` methods.
//!
//! # Obligations of an implementation
//!
//! * A store receives only requests that pass their params type's `validate` (valid kind and
//!   queue names, `max_attempts` in range, args and checkpoints nested at most
//!   [`MAX_JSON_DEPTH`] deep, positive limits, terminal prune states, and no empty insert
//!   batch): it need not check them again.
//! * Every batch operation is atomic per job and costs one round trip / one transaction for
//!   the whole batch, not one per job.
//! * `job_claim` never hands the same job to two claimers while a lease holds (SKIP
//!   LOCKED-style), orders by priority (high first), then `run_at`, then id.
//! * One stored row that cannot be read (written by an older version or by hand) never fails
//!   a claim, a rescue or the finish that buries it: `job_claim` leases it like the others
//!   and returns it with [`ClaimedJob::unreadable`] set (what could be read in its record),
//!   and the engine moves it to the dead set with that reason. A read (`job_get`,
//!   `job_list`) returns it too, with what could be read and
//!   [`JobRecord::unreadable`](crate::JobRecord::unreadable) set (the one wording:
//!   [`JobRecord::mark_unreadable`](crate::JobRecord::mark_unreadable)), so one bad row never
//!   fails a listing and an operator can see it, retry or prune it.
//! * Fenced operations (`job_finish_many`, `job_heartbeat_many`, `job_checkpoint`) match on
//!   `id`, `claims == lease.token`, `lease_owner == owner` and `state == running`, and report
//!   per job whether they applied; a mismatch is not an error. A finish batch naming one
//!   lease twice applies its first entry only
//!   ([`JobFinishParams::first_of_each_lease`]). (The owner matters where a
//!   store can lose an acknowledged claim, as PostgreSQL's asynchronous commits can in a
//!   server crash: the token could then be issued again, to another worker.)
//! * `job_rescue_expired` is atomic: two rescuers racing never both return the same job.
//! * Errors are [`StoreError`]s; transient ones (connection lost, database busy) say so
//!   with [`StoreError::is_transient`], and no failed call leaves a job half-written.
//!
//! The conformance suite (crate `jobs-conformance`) checks all of this, and every store runs
//! it; a new operation comes with its cases there and a method on the [`StoreFacade`].

use std::fmt;

use futures::future::BoxFuture;

use crate::job::{JobId, JobRecord};

mod facade;
mod params;
mod validate;

#[doc(no_inline)]
pub use crate::error::StoreError;
#[doc(no_inline)]
pub use crate::stats::QueueStats;
pub use facade::{FacadeListener, StoreFacade, STORE_CALL_FAILURES, STORE_CALL_SECONDS};
pub use params::{poison_pill_message, POISON_PILL_MESSAGE};
pub use params::{
    ClaimedJob, FinishOutcome, JobCancelParams, JobCheckpointParams, JobClaimParams,
    JobExpireUnknownKindsParams, JobFinish, JobFinishParams, JobHeartbeatParams, JobInsertParams,
    JobListParams, JobPromoteParams, JobPruneParams, JobRescueParams, JobRetryParams, Lease,
    NewJob, RescueOutcome, RescuedJob, UnknownKinds,
};
pub(crate) use validate::{checkpoint_problem, is_valid_name};
pub use validate::{json_depth, JobRuleError, MAX_ATTEMPTS_LIMIT, MAX_JSON_DEPTH, MAX_NAME_LEN};

/// The name a [`JobListener`] returns when jobs may have become available in any queue (the
/// store saw another process write, but not which queues): the engine wakes every queue.
/// Never a valid queue name.
pub const ANY_QUEUE: &str = "*";

/// A source of "jobs were inserted in queue Q" wake-ups (PostgreSQL LISTEN/NOTIFY, an
/// in-process channel, SQLite's `data_version`), so idle fetchers wake at once instead of
/// polling tightly.
pub trait JobListener: Send + fmt::Debug {
    /// The next queue that received jobs, or [`ANY_QUEUE`]. An error ends the listener; the
    /// engine's supervisor opens a new one after a delay.
    ///
    /// # Cancel safety
    ///
    /// Must be cancel safe: it is raced against shutdown.
    fn next(&mut self) -> BoxFuture<'_, Result<String, StoreError>>;
}

/// The storage behind the job engine. See the module docs for the obligations.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and benchmarks (`"memory"`, `"sqlite"`, `"postgres"`).
    fn name(&self) -> &'static str;

    /// Inserts jobs in one transaction; returns their ids in input order.
    fn job_insert_many(
        &self,
        params: JobInsertParams,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>>;

    /// Claims up to `limit` available jobs of a queue (priority desc, run_at, id) and leases
    /// them to `owner`: state `running`, `claims += 1`, `attempted_at = now`.
    fn job_claim(
        &self,
        params: JobClaimParams,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>>;

    /// Applies fenced finishes; returns, in input order, whether each applied.
    fn job_finish_many(
        &self,
        params: JobFinishParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>>;

    /// Renews fenced leases; returns, in input order, whether each is still held.
    fn job_heartbeat_many(
        &self,
        params: JobHeartbeatParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>>;

    /// Saves a running job's checkpoint and renews its lease; `false` if the lease is lost.
    fn job_checkpoint(
        &self,
        params: JobCheckpointParams,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Returns running jobs whose lease expired to `available` (or to `dead` past
    /// `max_rescues`, recording why).
    fn job_rescue_expired(
        &self,
        params: JobRescueParams,
    ) -> BoxFuture<'_, Result<RescueOutcome, StoreError>>;

    /// Moves available jobs of kinds the caller does not know, waiting for too long, to the
    /// dead set, and counts those still waiting (see [`JobExpireUnknownKindsParams`]).
    ///
    /// The default expires nothing and counts nothing (a store without it leaves such jobs
    /// waiting).
    fn job_expire_unknown_kinds(
        &self,
        params: JobExpireUnknownKindsParams,
    ) -> BoxFuture<'_, Result<UnknownKinds, StoreError>> {
        let _ = params;
        Box::pin(async { Ok(UnknownKinds::default()) })
    }

    /// Makes scheduled jobs whose time has come available; returns how many.
    fn job_promote_scheduled(
        &self,
        params: JobPromoteParams,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// One job, if it exists.
    fn job_get(&self, id: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>>;

    /// Jobs matching the filter, ordered by id.
    fn job_list(&self, params: JobListParams) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>>;

    /// Runs a dead or cancelled job again; `false` if it is in another state or missing.
    fn job_retry(&self, params: JobRetryParams) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Cancels a waiting job; `false` if it is not waiting or missing.
    fn job_cancel(&self, params: JobCancelParams) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Deletes old finalized jobs; returns how many.
    fn job_prune(&self, params: JobPruneParams) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Per-queue counts and latency, ordered by queue name.
    fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>>;

    /// Opens a wake-up listener, if this store has one (`None`: the engine polls).
    fn listen(&self) -> BoxFuture<'_, Result<Option<Box<dyn JobListener>>, StoreError>> {
        Box::pin(async { Ok(None) })
    }
}
