//! The `Store` trait: the one seam between the engine and storage.
//!
//! Every operation is a Noun+Verb method taking one params struct, and every time-dependent
//! operation takes `now` from the engine's [`Clock`](crate::Clock), so tests control time
//! inside the store as well. Operations on running jobs are *fenced*: they name a [`Lease`]
//! (job id + claim token) and the owner that claimed it, and apply only while that exact
//! claim still holds, so a stale worker (rescued while frozen, or partitioned away) can never
//! overwrite a newer run.
//!
//! # Obligations of an implementation
//!
//! * Every batch operation is atomic per job and costs one round trip / one transaction for
//!   the whole batch, not one per job.
//! * `job_claim` never hands the same job to two claimers while a lease holds (SKIP
//!   LOCKED-style), orders by priority (high first), then `run_at`, then id.
//! * Fenced operations (`job_finish_many`, `job_heartbeat_many`, `job_checkpoint`) match on
//!   `id`, `claims == lease.token`, `lease_owner == owner` and `state == running`, and report
//!   per job whether they applied; a mismatch is not an error. (The owner matters where a
//!   store can lose an acknowledged claim, as PostgreSQL's asynchronous commits can in a
//!   server crash: the token could then be issued again, to another worker.)
//! * `job_rescue_expired` is atomic: two rescuers racing never both return the same job.
//! * Errors are [`StoreError`]s; transient ones (connection lost, database busy) say so
//!   with [`StoreError::is_transient`], and no failed call leaves a job half-written.
//!
//! The conformance suite (`jobs::conformance`, feature `conformance`) checks all of this, and
//! every store runs it.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::job::{AttemptError, JobId, JobRecord, JobState, NewJob};
use crate::time::Timestamp;

/// A store's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or the connection broke; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database is busy or locked; retrying later will work.
    #[error("store busy: {0}")]
    Busy(String),
    /// The store is closed (the pool or file was shut down); no call will work again.
    #[error("store closed")]
    Closed,
    /// A stored row could not be decoded into a job record.
    #[error("corrupt job {id}: {reason}")]
    Corrupt {
        /// The row's job id.
        id: i64,
        /// What was wrong with it.
        reason: String,
    },
    /// The schema is missing or of another version.
    #[error("schema problem: {0}")]
    Schema(String),
    /// A parameter was out of range (e.g. an empty queue name, zero limit).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// Any other database error.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether the same call may succeed later (connection loss, lock contention).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Busy(_))
    }
}

/// The proof of one claim on one running job: its id and the claim token.
///
/// The token is the job's `claims` counter after the claim; it changes on every claim, so
/// with the owner's name it identifies the lease holder and the run.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Lease {
    /// The job.
    pub job: JobId,
    /// Its claim token.
    pub token: i64,
}

/// A job handed to a worker by [`Store::job_claim`].
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    /// The lease the worker holds.
    pub lease: Lease,
    /// The job as it is now (state running, lease fields set).
    pub record: JobRecord,
}

/// Params for [`Store::job_insert_many`].
#[derive(Clone, Debug)]
pub struct JobInsertParams {
    /// Jobs to insert, all in one transaction.
    pub jobs: Vec<NewJob>,
    /// Now: jobs whose `run_at` is after it are `scheduled`, the others `available`
    /// (with `run_at = now` when none was given).
    pub now: Timestamp,
}

/// Params for [`Store::job_claim`].
#[derive(Clone, Debug)]
pub struct JobClaimParams {
    /// The queue to claim from.
    pub queue: String,
    /// The claiming worker's id, recorded as `lease_owner`.
    pub owner: String,
    /// At most this many jobs.
    pub limit: usize,
    /// Lease length: `lease_expires_at = now + lease_ttl`.
    pub lease_ttl: Duration,
    /// Now.
    pub now: Timestamp,
}

/// What a worker's run of a job came to. Only `Completed` clears the checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum FinishOutcome {
    /// Success: state `completed`, checkpoint cleared.
    Completed,
    /// A failed attempt to retry: attempt charged, error recorded, state `scheduled` at `run_at`
    /// (or `available` if `run_at <= now`).
    Retry {
        /// When to run again.
        run_at: Timestamp,
        /// The failure.
        error: AttemptError,
    },
    /// A failure for good (attempts exhausted, discarded, bad input, timeout on the last
    /// attempt): attempt charged, error recorded, state `dead`.
    Dead {
        /// The failure.
        error: AttemptError,
    },
    /// Run again later without charging an attempt: state `scheduled` at `run_at` (or
    /// `available` if `run_at <= now`).
    Snooze {
        /// When to run again.
        run_at: Timestamp,
    },
    /// Interrupted by shutdown: back to `available` at once, `run_at` unchanged, checkpoint kept,
    /// no attempt charged.
    Release,
}

/// One fenced finish.
#[derive(Clone, Debug)]
pub struct JobFinish {
    /// The lease the run held.
    pub lease: Lease,
    /// What it came to.
    pub outcome: FinishOutcome,
}

/// Params for [`Store::job_finish_many`].
#[derive(Clone, Debug)]
pub struct JobFinishParams {
    /// The worker whose leases these are (its claims' `owner`).
    pub owner: String,
    /// Finishes to apply, all in one transaction.
    pub finishes: Vec<JobFinish>,
    /// Now (`finalized_at`, error times are taken from the outcome).
    pub now: Timestamp,
}

/// Params for [`Store::job_heartbeat_many`].
#[derive(Clone, Debug)]
pub struct JobHeartbeatParams {
    /// The worker whose leases these are (its claims' `owner`).
    pub owner: String,
    /// Leases to renew.
    pub leases: Vec<Lease>,
    /// New lease length from now.
    pub lease_ttl: Duration,
    /// Now.
    pub now: Timestamp,
}

/// Params for [`Store::job_checkpoint`].
#[derive(Clone, Debug)]
pub struct JobCheckpointParams {
    /// The worker whose lease it is (its claim's `owner`).
    pub owner: String,
    /// The lease the run holds.
    pub lease: Lease,
    /// Progress to keep for this and later runs.
    pub checkpoint: Value,
    /// New lease length from now (a checkpoint renews the lease).
    pub lease_ttl: Duration,
    /// Now.
    pub now: Timestamp,
}

/// Params for [`Store::job_rescue_expired`].
///
/// A running job is rescued when `lease_expires_at < now` (a lease expiring exactly at `now`
/// still holds). Every rescue increments `rescues`. A job whose `rescues` was below
/// `max_rescues` goes back to `available` (no error recorded, no attempt charged, `claims`
/// and `run_at` kept, lease cleared); one whose `rescues` already equalled `max_rescues` is a
/// poison pill: it goes to `dead` with one error (attempt 0) whose message says it was
/// rescued too many times.
#[derive(Clone, Debug)]
pub struct JobRescueParams {
    /// Leases that expired before this are rescued.
    pub now: Timestamp,
    /// A job already rescued this many times goes to the dead set instead (poison pill).
    pub max_rescues: u32,
    /// At most this many jobs per call.
    pub limit: usize,
}

/// What [`Store::job_rescue_expired`] did.
#[derive(Clone, Debug, Default)]
pub struct RescueOutcome {
    /// Jobs returned to `available` (`rescues` incremented, lease cleared).
    pub requeued: Vec<JobId>,
    /// Poison pills moved to `dead`, as they are now (for the exhausted hook).
    pub dead: Vec<JobRecord>,
}

/// Params for [`Store::job_promote_scheduled`].
#[derive(Clone, Debug)]
pub struct JobPromoteParams {
    /// Scheduled jobs whose `run_at <= now` become available.
    pub now: Timestamp,
    /// At most this many per call.
    pub limit: usize,
}

/// Params for [`Store::job_list`]. The default lists the first 100 jobs of any state.
#[derive(Clone, Debug)]
pub struct JobListParams {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs in this queue.
    pub queue: Option<String>,
    /// Only jobs with an id above this (for paging).
    pub after: Option<JobId>,
    /// At most this many, ordered by id.
    pub limit: usize,
}

impl Default for JobListParams {
    fn default() -> Self {
        JobListParams {
            state: None,
            queue: None,
            after: None,
            limit: 100,
        }
    }
}

/// Params for [`Store::job_retry`].
#[derive(Clone, Debug)]
pub struct JobRetryParams {
    /// A dead or cancelled job to run again: state `available` at `now`, attempts and rescues
    /// reset to 0, errors kept.
    pub id: JobId,
    /// Now.
    pub now: Timestamp,
}

/// Params for [`Store::job_cancel`].
#[derive(Clone, Debug)]
pub struct JobCancelParams {
    /// A waiting (scheduled or available) job to cancel.
    pub id: JobId,
    /// Now (`finalized_at`).
    pub now: Timestamp,
}

/// Params for [`Store::job_prune`].
#[derive(Clone, Debug)]
pub struct JobPruneParams {
    /// Delete jobs in these terminal states...
    pub states: Vec<JobState>,
    /// ...finalized before this.
    pub finalized_before: Timestamp,
    /// At most this many per call.
    pub limit: usize,
}

/// Counts of one queue's jobs per state, and its latency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Jobs scheduled for later.
    pub scheduled: u64,
    /// Jobs ready to run.
    pub available: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs completed (until pruned).
    pub completed: u64,
    /// Jobs in the dead set.
    pub dead: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// The `run_at` of the oldest available job: `now - this` is the queue's latency.
    pub oldest_available_at: Option<Timestamp>,
}

impl QueueStats {
    /// How many jobs of this queue are in `state`.
    pub fn count(&self, state: JobState) -> u64 {
        match state {
            JobState::Scheduled => self.scheduled,
            JobState::Available => self.available,
            JobState::Running => self.running,
            JobState::Completed => self.completed,
            JobState::Dead => self.dead,
            JobState::Cancelled => self.cancelled,
        }
    }

    /// How long the oldest available job has waited at `now`.
    pub fn latency(&self, now: Timestamp) -> std::time::Duration {
        self.oldest_available_at
            .map_or(Duration::ZERO, |oldest| now.duration_since(oldest))
    }
}

/// A source of "jobs were inserted in queue Q" wake-ups (PostgreSQL LISTEN/NOTIFY, or an
/// in-process channel), so idle fetchers wake at once instead of polling tightly.
pub trait JobListener: Send + fmt::Debug {
    /// The next queue that received jobs. An error ends the listener; the engine's supervisor
    /// opens a new one after a delay.
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
