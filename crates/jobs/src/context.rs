//! `JobContext`: what a running job can ask of the engine.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::args::{EnqueueOptions, JobArgs};
use crate::client::Client;
use crate::error::EnqueueError;
use crate::job::{JobId, JobRecord};
use crate::lease_clock::{deadline_after, LeaseClock};
use crate::metadata::Metadata;
use crate::pool::watchdog::PollWatch;
use crate::store::{checkpoint_problem, ClaimedJob, JobCheckpointParams, Lease};
use crate::worker::JobError;

/// The running job's view of the engine: who it is, whether it should stop, and its
/// checkpoint. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    run: Arc<RunState>,
}

/// What every run a pool starts gets from it.
#[derive(Clone, Debug)]
pub(crate) struct RunEnv {
    /// The pool's shutdown: the job should stop at its next safe point.
    pub(crate) shutdown: CancellationToken,
    /// The pool's hard stop (grace over, second signal): the run must end now.
    pub(crate) hard_stop: CancellationToken,
    /// The pool's client: checkpoints, follow-up jobs, the clock.
    pub(crate) client: Client,
    /// The lease length a checkpoint renews.
    pub(crate) lease_ttl: Duration,
    /// How often a checkpoint is written at most while the pool is not stopping.
    pub(crate) checkpoint_interval: Duration,
}

/// The engine's state for one run of one job, shared by its context and its executor task.
pub(crate) struct RunState {
    pub(crate) record: JobRecord,
    pub(crate) lease: Lease,
    /// Why the job's stored row could not be read, if it could not: the run then moves it
    /// to the dead set without performing it.
    pub(crate) unreadable: Option<String>,
    env: Arc<RunEnv>,
    /// This run's lease was taken over: it must end now and write nothing.
    lost: CancellationToken,
    /// When this run's lease runs out on its own clock (renewed by heartbeats and
    /// checkpoints that held): past it, the run must end now.
    lease_clock: LeaseClock,
    checkpoint: Mutex<CheckpointState>,
    /// The run's polls, for the watchdog that reports jobs blocking their thread.
    pub(crate) poll_watch: PollWatch,
}

impl fmt::Debug for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunState")
            .field("job_id", &self.record.id)
            .field("lease", &self.lease)
            .field("lease_lost", &self.lease_lost())
            .field("lease_expired", &self.lease_expired())
            .finish_non_exhaustive()
    }
}

struct CheckpointState {
    /// The newest checkpoint the job gave (persisted or not).
    latest: Option<Value>,
    /// Counts the checkpoints the job gave: the version of `latest`.
    version: u64,
    /// Whether `latest` still has to be written to the store: until a write of its version
    /// held (a write in flight, dropped or failed leaves it unsaved).
    dirty: bool,
    last_write: Instant,
}

impl RunState {
    /// A run of a job claimed by a claim sent at `claim_sent` (its lease runs out one lease
    /// length later, unless renewed).
    pub(crate) fn new(claimed: ClaimedJob, env: Arc<RunEnv>, claim_sent: Instant) -> Self {
        let ClaimedJob {
            lease,
            record,
            unreadable,
        } = claimed;
        let latest = record.checkpoint.clone();
        let lease_clock = LeaseClock::new(deadline_after(claim_sent, env.lease_ttl));
        RunState {
            record,
            lease,
            unreadable,
            env,
            lost: CancellationToken::new(),
            lease_clock,
            checkpoint: Mutex::new(CheckpointState {
                latest,
                version: 0,
                dirty: false,
                last_write: Instant::now(),
            }),
            poll_watch: PollWatch::default(),
        }
    }

    /// What the run got from its pool.
    pub(crate) fn env(&self) -> &RunEnv {
        &self.env
    }

    /// The pool's client.
    pub(crate) fn client(&self) -> &Client {
        &self.env.client
    }

    fn checkpoint_state(&self) -> MutexGuard<'_, CheckpointState> {
        // A panic while holding this lock cannot leave the state inconsistent (plain fields).
        self.checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest checkpoint the run gave, or the one it started from.
    pub(crate) fn latest_checkpoint(&self) -> Option<Value> {
        self.checkpoint_state().latest.clone()
    }

    /// The newest checkpoint no write has saved yet, with its version, to persist before
    /// the job is released; once that write held, [`checkpoint_saved`](Self::checkpoint_saved).
    pub(crate) fn unsaved_checkpoint(&self) -> Option<(Value, u64)> {
        let state = self.checkpoint_state();
        if !state.dirty {
            return None;
        }
        state.latest.clone().map(|latest| (latest, state.version))
    }

    /// A write of checkpoint `version` held: it is saved, unless a newer one was given
    /// since.
    pub(crate) fn checkpoint_saved(&self, version: u64) {
        let mut state = self.checkpoint_state();
        if state.version == version {
            state.dirty = false;
        }
    }

    /// Marks the lease as taken over by someone else and stops the run.
    pub(crate) fn lose_lease(&self) {
        self.lost.cancel();
    }

    /// The worker that holds this run's lease (the claim recorded it; empty, and so never
    /// holding, if a store left it out).
    pub(crate) fn owner(&self) -> &str {
        self.record.lease_owner.as_deref().unwrap_or_default()
    }

    pub(crate) fn lease_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Whether this run's lease ran out on its own clock (no renewal held in time). The job
    /// may not have been taken over yet, so the run's writes stay fenced but may still apply.
    pub(crate) fn lease_expired(&self) -> bool {
        self.lease_clock.has_expired()
    }

    /// A renewal sent at `sent` (heartbeat or checkpoint) held: the lease runs one lease
    /// length from then.
    pub(crate) fn lease_renewed(&self, sent: Instant) {
        self.lease_clock
            .renewed(deadline_after(sent, self.env.lease_ttl));
    }

    /// Whether the run holds its lease no more: taken over, or run out on its own clock.
    fn lease_gone(&self) -> bool {
        self.lease_lost() || self.lease_expired()
    }

    /// Whether the job should stop at its next safe point.
    pub(crate) fn should_stop(&self) -> bool {
        self.env.shutdown.is_cancelled() || self.lease_gone()
    }

    /// Resolves when the job should stop at its next safe point (at once if it should now).
    pub(crate) async fn stopping(&self) {
        tokio::select! {
            biased;
            () = self.lease_clock.expired() => {}
            () = self.lost.cancelled() => {}
            () = self.env.shutdown.cancelled() => {}
        }
    }

    /// Resolves when the run must end now: hard stop, or its lease is gone (taken over, or
    /// run out on its own clock, so another worker may run the job already).
    pub(crate) async fn aborted(&self) {
        tokio::select! {
            biased;
            () = self.lease_clock.expired() => {}
            () = self.lost.cancelled() => {}
            () = self.env.hard_stop.cancelled() => {}
        }
    }
}

impl JobContext {
    pub(crate) fn new(run: Arc<RunState>) -> Self {
        JobContext { run }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.run.record.id
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.run.record.kind
    }

    /// The job's queue.
    pub fn queue(&self) -> &str {
        &self.run.record.queue
    }

    /// Which attempt this run is (1-based; snoozes and shutdown releases do not count).
    pub fn attempt(&self) -> u32 {
        self.run.record.next_attempt()
    }

    /// How many attempts the job may use.
    pub fn max_attempts(&self) -> u32 {
        self.run.record.max_attempts
    }

    /// What the enqueue attached beside the args (empty if nothing).
    pub fn metadata(&self) -> &Metadata {
        &self.run.record.metadata
    }

    /// The whole job record as it was claimed (args, errors of earlier attempts, ...).
    pub fn record(&self) -> &JobRecord {
        &self.run.record
    }

    /// Whether the job should stop now: the pool is shutting down, or this run's lease is
    /// gone (taken over, or run out on the run's own clock). Cheap (atomic loads and a clock
    /// read).
    pub fn is_shutting_down(&self) -> bool {
        self.run.should_stop()
    }

    /// Resolves when the job should stop (see [`is_shutting_down`](Self::is_shutting_down)):
    /// at once if it should now, and at the latest when the run's lease runs out on its own
    /// clock, without waiting for a heartbeat's answer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: use it in `tokio::select!` beside the job's work.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + '_ {
        self.run.stopping()
    }

    /// The newest checkpoint: saved by an earlier run, or given in this one.
    ///
    /// # Errors
    ///
    /// [`JobError::Failed`] if the saved checkpoint does not deserialize into `T`.
    pub fn checkpoint_state<T: DeserializeOwned>(&self) -> Result<Option<T>, JobError> {
        let latest = self.run.checkpoint_state().latest.clone();
        latest
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| JobError::failed(format!("saved checkpoint does not deserialize: {e}")))
    }

    /// The safe point: records progress, persists it (renewing the lease) when the pool is
    /// stopping or at most once per checkpoint interval (default 1 s) otherwise, and tells
    /// the job whether to go on.
    ///
    /// Returns `Err(JobError::Interrupted)` when the job should stop: the progress is already
    /// saved, so `ctx.checkpoint(&state).await?` in the job's loop is all it takes to be
    /// released at once on shutdown and resume here on its next run. A progress not yet
    /// written when the run ends is written before the job is released.
    ///
    /// Before anything else it checks the run's lease on the run's own clock: once the lease
    /// has run out (heartbeats did not renew it in time: the process was frozen, or the
    /// store unreachable) or was taken over, it returns `Err(JobError::LeaseLost)` at once,
    /// without waiting for the store, so a stale run does no further work.
    ///
    /// # Errors
    ///
    /// `LeaseLost` and `Interrupted` as above; `Failed` if `state` does not serialize or
    /// nests arrays and objects deeper than [`MAX_JSON_DEPTH`](crate::store::MAX_JSON_DEPTH)
    /// (nothing is saved then).
    ///
    /// # Cancel safety
    ///
    /// A cancelled call has recorded `state` as the newest progress in this run; whether it
    /// reached the store is unknown. Call it again at the next safe point.
    pub async fn checkpoint<T: Serialize + ?Sized>(&self, state: &T) -> Result<(), JobError> {
        if self.run.lease_gone() {
            return Err(JobError::LeaseLost);
        }
        let value = serde_json::to_value(state)
            .map_err(|e| JobError::failed(format!("checkpoint does not serialize: {e}")))?;
        if let Some(problem) = checkpoint_problem(&value) {
            // Refused here, before it is kept: a checkpoint no store could read back must
            // never reach a write (the completer's among them).
            return Err(JobError::failed(problem));
        }
        let write_now = {
            let mut saved = self.run.checkpoint_state();
            saved.latest = Some(value.clone());
            saved.version += 1;
            saved.dirty = true;
            let due = saved.last_write.elapsed() >= self.run.env.checkpoint_interval;
            if due || self.is_shutting_down() {
                // Still unsaved until the write holds: a run dropped mid-write (grace over)
                // has it written by its release.
                saved.last_write = Instant::now();
                Some(saved.version)
            } else {
                None
            }
        };
        if let Some(version) = write_now {
            self.write_checkpoint(value, version).await;
        }
        if self.run.lease_gone() {
            return Err(JobError::LeaseLost);
        }
        if self.is_shutting_down() {
            return Err(JobError::Interrupted);
        }
        Ok(())
    }

    async fn write_checkpoint(&self, checkpoint: Value, version: u64) {
        let sent = Instant::now();
        let params = JobCheckpointParams {
            owner: self.run.owner().to_owned(),
            lease: self.run.lease,
            checkpoint,
            lease_ttl: self.run.env.lease_ttl,
            now: self.run.env.client.clock().now(),
        };
        match self.run.env.client.store().job_checkpoint(params).await {
            Ok(true) => {
                self.run.lease_renewed(sent);
                self.run.checkpoint_saved(version);
            }
            Ok(false) => {
                tracing::warn!(job_id = %self.id(), "lease lost while checkpointing; stopping the run");
                self.run.lose_lease();
            }
            Err(_) => {
                // Still unsaved: the next due checkpoint, or the release, writes it.
                tracing::debug!(job_id = %self.id(), "checkpoint write failed; will retry");
            }
        }
    }

    /// A client on the same store, to enqueue follow-up jobs or inspect.
    pub fn client(&self) -> &Client {
        &self.run.env.client
    }

    /// Enqueues a follow-up job.
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled enqueue may still have inserted. A follow-up that must
    /// not be enqueued twice when this job runs again (it runs at least once) wants a unique
    /// key, or a check in the job's own data.
    pub async fn enqueue<A: JobArgs>(
        &self,
        args: &A,
        options: EnqueueOptions,
    ) -> Result<JobId, EnqueueError> {
        self.run.env.client.enqueue_with(args, options).await
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id())
            .field("kind", &self.kind())
            .field("attempt", &self.attempt())
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}
