//! [`Harness`]: the engine without a pool, on an in-memory store: inline mode (an enqueue runs
//! the job at once) and manual mode (enqueues wait until [`Harness::drain`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use futures::future::BoxFuture;

use crate::client::Client;
use crate::context::{RunEnv, RunState};
use crate::job::{JobId, JobRecord, JobState};
use crate::memory::MemoryStore;
use crate::pool::run::perform;
use crate::store::{
    ClaimedJob, FinishOutcome, JobCancelParams, JobCheckpointParams, JobClaimParams, JobFinish,
    JobFinishParams, JobHeartbeatParams, JobInsertParams, JobListParams, JobListener,
    JobPromoteParams, JobPruneParams, JobRescueParams, JobRetryParams, QueueStats, RescueOutcome,
    Store, StoreError, StoreFacade,
};
use crate::time::Clock;
use crate::worker::{Registry, Worker};

use super::run::{run_env, TEST_LEASE, TEST_OWNER};
use crate::outcome::Outcome;

/// A drain that ran this many jobs is taken for a job that enqueues itself forever.
const MAX_RUNS_PER_DRAIN: usize = 100_000;
/// Jobs per claim, promote or list round trip of a drain.
const DRAIN_BATCH: usize = 1_000;

/// One run the harness made.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct JobRun {
    /// The job.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Which attempt the run was.
    pub attempt: u32,
    /// What it came to (as written to the store).
    pub outcome: Outcome,
}

/// Whether an enqueue runs the job at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Inline,
    Manual,
}

/// The engine without a pool, for tests: workers registered as on a
/// [`PoolBuilder`](crate::PoolBuilder), jobs enqueued through an ordinary [`Client`], runs
/// through the engine's own outcome mapping, outcomes written to an in-memory store.
///
/// * [`Harness::inline`]: every enqueue runs the job (and the jobs it enqueues) before it
///   returns.
/// * [`Harness::manual`]: enqueues only record; [`drain`](Harness::drain) runs everything
///   that is due, including the jobs those runs enqueue, until nothing is due.
///
/// Jobs run one at a time, in the order a pool would claim them. Retries and snoozes are
/// scheduled in the future as in production, so a drain leaves them waiting; advance
/// tokio's paused time (the harness's clock follows it) and drain again to run them.
///
/// ```
/// use jobs::testing::{assert_enqueued, Harness};
/// use jobs::{EnqueueOptions, JobArgs, JobContext, JobError, JobState, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SignUp { user: u64 }
/// impl JobArgs for SignUp { const KIND: &'static str = "sign_up"; }
///
/// #[derive(Serialize, Deserialize)]
/// struct Welcome { user: u64 }
/// impl JobArgs for Welcome { const KIND: &'static str = "welcome"; }
///
/// struct SignUps;
/// impl Worker for SignUps {
///     type Args = SignUp;
///     async fn perform(&self, ctx: JobContext, args: SignUp) -> Result<(), JobError> {
///         ctx.enqueue(&Welcome { user: args.user }, EnqueueOptions::new().queue("mail")).await?;
///         Ok(())
///     }
/// }
///
/// struct Mailer;
/// impl Worker for Mailer {
///     type Args = Welcome;
///     async fn perform(&self, _: JobContext, _: Welcome) -> Result<(), JobError> { Ok(()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let harness = Harness::manual().register(SignUps).register(Mailer);
/// let client = harness.client();
/// let id = client.enqueue(&SignUp { user: 7 }).await?;
/// assert_enqueued::<SignUp, _>(&client, |args, _| args.user == 7).await;
///
/// let runs = harness.drain().await; // the sign-up, then the welcome mail it enqueued
/// assert_eq!(runs.len(), 2);
/// assert!(runs.iter().all(|run| run.outcome.is_completed()));
/// assert_eq!(client.job(id).await?.map(|job| job.state), Some(JobState::Completed));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Harness {
    store: Arc<HarnessStore>,
}

impl Harness {
    /// Inline mode: an enqueue runs the job before it returns.
    pub fn inline() -> Self {
        Self::new(Mode::Inline)
    }

    /// Manual mode: jobs wait until [`drain`](Self::drain).
    pub fn manual() -> Self {
        Self::new(Mode::Manual)
    }

    fn new(mode: Mode) -> Self {
        let store = Arc::new_cyclic(|me| HarnessStore {
            memory: MemoryStore::new(),
            workers: Mutex::new(Registry::default()),
            mode,
            clock: Clock::tokio(),
            runs: Mutex::new(Vec::new()),
            me: Weak::clone(me),
        });
        Harness { store }
    }

    /// Registers the worker for its job kind (replacing an earlier one of the same kind).
    #[must_use]
    pub fn register<W: Worker>(self, worker: W) -> Self {
        lock(&self.store.workers).register(worker);
        self
    }

    /// A client on the harness's store, reading time from its clock (which follows tokio's,
    /// possibly paused, time). In inline mode its enqueues run the jobs.
    pub fn client(&self) -> Client {
        self.store.client()
    }

    /// The harness's store, for a [`Pool`](crate::Pool) or for inspection.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store) as Arc<dyn Store>
    }

    /// Runs every job that is due (scheduled jobs whose time has come included), one at a
    /// time, until none is; jobs the runs enqueue run too. Returns the runs in order.
    ///
    /// # Panics
    ///
    /// If a store call fails (the in-memory store fails only when misused), or after
    /// 100,000 runs (a job that enqueues itself forever).
    pub async fn drain(&self) -> Vec<JobRun> {
        self.store.drain().await
    }

    /// Every run the harness made so far, in order.
    pub fn runs(&self) -> Vec<JobRun> {
        lock(&self.store.runs).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single push, clone or insert.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The in-memory store under a harness, which in inline mode drains after every insert.
#[derive(Debug)]
struct HarnessStore {
    memory: MemoryStore,
    workers: Mutex<Registry>,
    mode: Mode,
    clock: Clock,
    runs: Mutex<Vec<JobRun>>,
    me: Weak<HarnessStore>,
}

impl HarnessStore {
    fn client(&self) -> Client {
        // `me` is this store's own Arc, alive while `&self` is.
        let me = self.me.upgrade().expect("a store is alive while borrowed");
        Client::new(me).with_clock(self.clock)
    }

    async fn drain(&self) -> Vec<JobRun> {
        let client = self.client();
        let env = run_env(client.clone());
        let workers = lock(&self.workers).clone();
        let mut runs = Vec::new();
        while let Some(claimed) = next_due(client.store(), self.clock).await {
            for job in claimed {
                let run = Arc::new(RunState::new(
                    job,
                    Arc::clone(&env),
                    tokio::time::Instant::now(),
                ));
                let finish = perform(&workers, &run).await;
                write(&env, &run, finish.as_ref()).await;
                let ran = JobRun {
                    id: run.record.id,
                    kind: run.record.kind.clone(),
                    queue: run.record.queue.clone(),
                    attempt: run.record.next_attempt(),
                    outcome: Outcome::of(&run, finish.as_ref()),
                };
                lock(&self.runs).push(ran.clone());
                runs.push(ran);
                assert!(
                    runs.len() < MAX_RUNS_PER_DRAIN,
                    "a drain ran {MAX_RUNS_PER_DRAIN} jobs: does a job enqueue itself forever?"
                );
            }
        }
        runs
    }
}

/// Promotes due scheduled jobs, then claims the next batch of one queue with jobs due;
/// `None` when nothing is due.
async fn next_due(store: &StoreFacade, clock: Clock) -> Option<Vec<ClaimedJob>> {
    let now = clock.now();
    let promote = JobPromoteParams {
        now,
        limit: DRAIN_BATCH,
    };
    while store
        .job_promote_scheduled(promote.clone())
        .await
        .expect_store()
        >= DRAIN_BATCH as u64
    {}
    let stats = store.queue_stats().await.expect_store();
    let queue = stats
        .into_iter()
        .find(|q| q.count(JobState::Available) > 0)?;
    let params = JobClaimParams {
        queue: queue.queue,
        owner: TEST_OWNER.to_owned(),
        limit: DRAIN_BATCH,
        lease_ttl: TEST_LEASE,
        now,
        kinds: None,
        suspects: false,
    };
    Some(store.job_claim(params).await.expect_store())
}

/// Writes a run's outcome as the pool's completer does: an unsaved checkpoint first, then
/// the finish.
async fn write(env: &RunEnv, run: &RunState, finish: Option<&FinishOutcome>) {
    let Some(outcome) = finish else {
        return;
    };
    let store = env.client.store();
    let now = env.client.clock().now();
    if let Some((checkpoint, version)) = run.unsaved_checkpoint() {
        let params = JobCheckpointParams {
            owner: TEST_OWNER.to_owned(),
            lease: run.lease,
            checkpoint,
            lease_ttl: TEST_LEASE,
            now,
        };
        store.job_checkpoint(params).await.expect_store();
        run.checkpoint_saved(version);
    }
    let params = JobFinishParams {
        owner: TEST_OWNER.to_owned(),
        finishes: vec![JobFinish {
            lease: run.lease,
            outcome: outcome.clone(),
        }],
        now,
    };
    store.job_finish_many(params).await.expect_store();
}

/// A harness's store calls cannot fail but by misuse; a failure is the test's bug.
trait ExpectStore<T> {
    fn expect_store(self) -> T;
}

impl<T> ExpectStore<T> for Result<T, StoreError> {
    fn expect_store(self) -> T {
        self.unwrap_or_else(|error| panic!("the test harness's store failed: {error}"))
    }
}

macro_rules! forward {
    ($name:ident, $params:ty, $out:ty) => {
        fn $name(&self, params: $params) -> BoxFuture<'_, Result<$out, StoreError>> {
            self.memory.$name(params)
        }
    };
}

impl Store for HarnessStore {
    fn name(&self) -> &'static str {
        "harness"
    }

    fn job_insert_many(
        &self,
        params: JobInsertParams,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        Box::pin(async move {
            let ids = self.memory.job_insert_many(params).await?;
            if self.mode == Mode::Inline {
                self.drain().await;
            }
            Ok(ids)
        })
    }
    forward!(job_claim, JobClaimParams, Vec<ClaimedJob>);
    forward!(job_finish_many, JobFinishParams, Vec<bool>);
    forward!(job_heartbeat_many, JobHeartbeatParams, Vec<bool>);
    forward!(job_checkpoint, JobCheckpointParams, bool);
    forward!(job_rescue_expired, JobRescueParams, RescueOutcome);
    forward!(job_promote_scheduled, JobPromoteParams, u64);
    forward!(job_get, JobId, Option<JobRecord>);
    forward!(job_list, JobListParams, Vec<JobRecord>);
    forward!(job_retry, JobRetryParams, bool);
    forward!(job_cancel, JobCancelParams, bool);
    forward!(job_prune, JobPruneParams, u64);

    fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>> {
        self.memory.queue_stats()
    }

    fn listen(&self) -> BoxFuture<'_, Result<Option<Box<dyn JobListener>>, StoreError>> {
        self.memory.listen()
    }
}
