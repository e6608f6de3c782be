//! The client: enqueue jobs and inspect the store, without running any.

use std::sync::Arc;
use std::time::Duration;

use crate::args::{EnqueueOptions, JobArgs};
use crate::error::EnqueueError;
use crate::job::{JobId, JobRecord, JobState};
use crate::store::{
    JobCancelParams, JobInsertParams, JobListParams, JobRetryParams, NewJob, QueueStats, Store,
    StoreError, StoreFacade,
};
use crate::time::{Clock, Timestamp};

/// Enqueues jobs and inspects the store. Cheap to clone; a process that only enqueues needs
/// only this and the args types.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Resize { image: String }
/// # impl jobs::JobArgs for Resize { const KIND: &'static str = "resize"; }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jobs::EnqueueError> {
/// let client = jobs::Client::new(std::sync::Arc::new(jobs::MemoryStore::new()));
/// let id = client.enqueue(&Resize { image: "cat.png".into() }).await?;
/// let later = jobs::EnqueueOptions::new().queue("images").run_in_str("5m")?;
/// client.enqueue_with(&Resize { image: "dog.png".into() }, later).await?;
/// # let _ = id; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    store: StoreFacade,
    clock: Clock,
}

/// The longest pause between two looks of [`Client::wait_for`].
const WAIT_POLL_MAX: Duration = Duration::from_millis(100);

/// Why [`Client::wait_for`] returned without a finished job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The job had not finished when the time was up.
    #[error("job {id} had not finished after {}: it is {state}", humantime::format_duration(*.waited))]
    TimedOut {
        /// The job.
        id: JobId,
        /// Its state when the time was up.
        state: JobState,
        /// How long the wait was.
        waited: Duration,
    },
    /// No job has this id (never inserted, or pruned).
    #[error("job {0} does not exist")]
    NotFound(JobId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Jobs of any kinds to insert together, in one transaction.
#[must_use = "a batch does nothing until `Client::enqueue_batch`"]
#[derive(Debug, Default)]
pub struct Batch {
    jobs: Vec<NewJob>,
    now: Option<Timestamp>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a job, validating its options now.
    ///
    /// # Errors
    ///
    /// Any [`EnqueueError`] but `Store`; the batch is unchanged then.
    pub fn push<A: JobArgs>(
        &mut self,
        args: &A,
        options: EnqueueOptions,
    ) -> Result<&mut Self, EnqueueError> {
        let now = *self.now.get_or_insert_with(Timestamp::now);
        self.jobs.push(options.new_job(args, now)?);
        Ok(self)
    }

    /// How many jobs it holds.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

impl Client {
    /// A client on `store`, reading time from the system clock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Client {
            store: StoreFacade::new(store),
            clock: Clock::System,
        }
    }

    /// The same client reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The facade every store call of this client and its pool goes through.
    pub(crate) fn store(&self) -> &StoreFacade {
        &self.store
    }

    /// The clock this client reads "now" from.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Enqueues one job with its kind's default options.
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`]; on error nothing was inserted.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled enqueue may still have inserted (the insert may have
    /// committed before the future was dropped). Give the job a unique key, or check for it,
    /// if it must not be enqueued twice when retrying after a cancellation.
    pub async fn enqueue<A: JobArgs>(&self, args: &A) -> Result<JobId, EnqueueError> {
        self.enqueue_with(args, EnqueueOptions::default()).await
    }

    /// Enqueues one job with `options`.
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`]; on error nothing was inserted.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled enqueue may still have inserted (the insert may have
    /// committed before the future was dropped). Give the job a unique key, or check for it,
    /// if it must not be enqueued twice when retrying after a cancellation.
    pub async fn enqueue_with<A: JobArgs>(
        &self,
        args: &A,
        options: EnqueueOptions,
    ) -> Result<JobId, EnqueueError> {
        let now = self.clock.now();
        let job = options.new_job(args, now)?;
        let ids = self.insert(vec![job], now).await?;
        JobInsertParams::only_id(ids)
    }

    /// Enqueues many jobs of one kind with the same options, in one transaction.
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`]; on error none was inserted.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may still have inserted all the jobs (never some of
    /// them: the batch is one transaction).
    pub async fn enqueue_many<A: JobArgs>(
        &self,
        args: impl IntoIterator<Item = A>,
        options: EnqueueOptions,
    ) -> Result<Vec<JobId>, EnqueueError> {
        let params = JobInsertParams::from_args::<A>(args, options, self.clock.now())?;
        self.insert(params.jobs, params.now).await
    }

    /// Enqueues a [`Batch`] of jobs of any kinds, in one transaction.
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`]; on error none was inserted.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may still have inserted all the jobs (never some of
    /// them: the batch is one transaction).
    pub async fn enqueue_batch(&self, batch: Batch) -> Result<Vec<JobId>, EnqueueError> {
        self.insert(batch.jobs, self.clock.now()).await
    }

    async fn insert(&self, jobs: Vec<NewJob>, now: Timestamp) -> Result<Vec<JobId>, EnqueueError> {
        let count = jobs.len();
        let ids = self
            .store
            .job_insert_many(JobInsertParams { jobs, now })
            .await?;
        tracing::debug!(count, first_job_id = ?ids.first(), "enqueued");
        Ok(ids)
    }

    /// One job as the store has it.
    ///
    /// # Errors
    ///
    /// The store's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.store.job_get(id).await
    }

    /// Waits until job `id` is finished (completed, dead or cancelled) and returns it, for at
    /// most `timeout`: for tests and scripts that enqueue a job for a running pool (in this
    /// process or another) and need its result. It looks at the store with pauses growing
    /// from 1 ms to 100 ms, on tokio's clock (so on paused time it costs no wall time).
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use jobs::{JobArgs, JobContext, JobError, JobState, MemoryStore, Pool, Worker};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Ping;
    /// # impl JobArgs for Ping { const KIND: &'static str = "ping"; }
    /// # struct Pinger;
    /// # impl Worker for Pinger {
    /// #     type Args = Ping;
    /// #     async fn perform(&self, _: JobContext, _: Ping) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Pool::builder(Arc::new(MemoryStore::new())).register(Pinger).start().await?;
    /// let id = pool.client().enqueue(&Ping).await?;
    /// let job = pool.client().wait_for(id, Duration::from_secs(5)).await?;
    /// assert_eq!(job.state, JobState::Completed);
    /// # pool.shutdown().await; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] with the job's state then, [`WaitError::NotFound`], or the
    /// store's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn wait_for(&self, id: JobId, timeout: Duration) -> Result<JobRecord, WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let job = self.job(id).await?.ok_or(WaitError::NotFound(id))?;
            if job.state.is_terminal() {
                return Ok(job);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WaitError::TimedOut {
                    id,
                    state: job.state,
                    waited: timeout,
                });
            }
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause)).await;
            pause = (pause * 2).min(WAIT_POLL_MAX);
        }
    }

    /// Per-queue counts per state and the oldest available job; see [`QueueStats::latency`].
    ///
    /// # Errors
    ///
    /// The store's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.store.queue_stats().await
    }

    /// Jobs in `state` (optionally of one queue), oldest first, at most `limit`: running jobs
    /// show their worker (`lease_owner`) and lease expiry; dead jobs their errors.
    ///
    /// # Errors
    ///
    /// The store's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn jobs_in_state(
        &self,
        state: JobState,
        queue: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.store
            .job_list(JobListParams {
                state: Some(state),
                queue: queue.map(str::to_owned),
                after: None,
                limit,
            })
            .await
    }

    /// Runs a dead or cancelled job again (attempts reset, errors kept). `false` if the job is
    /// in another state or does not exist.
    ///
    /// # Errors
    ///
    /// The store's error.
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may still have retried the job; calling again is harmless (it answers
    /// `false` then).
    pub async fn retry_job(&self, id: JobId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        self.store.job_retry(JobRetryParams { id, now }).await
    }

    /// Cancels a waiting (scheduled or available) job. `false` if it is running, finished or
    /// missing.
    ///
    /// # Errors
    ///
    /// The store's error.
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may still have cancelled the job; calling again is harmless (it answers
    /// `false` then).
    pub async fn cancel_job(&self, id: JobId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        self.store.job_cancel(JobCancelParams { id, now }).await
    }
}
