//! [`TestContext`]: a [`JobContext`] for calling `perform` directly, and a run of one job
//! through the engine's outcome mapping.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::args::{EnqueueOptions, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE};
use crate::client::Client;
use crate::context::{JobContext, RunState};
use crate::memory::MemoryStore;
use crate::metadata::Metadata;
use crate::pool::run::{bad_input, run_to_end};
use crate::store::NewJob;
use crate::time::Clock;
use crate::worker::{decode, Worker};

use super::run::{claim_new, run_env};
use crate::outcome::Outcome;

/// Builds the context of one job run for a test: which attempt it is, the checkpoint an
/// earlier run saved, whether the pool is already shutting down. The job lives in an
/// in-memory store of its own, so checkpoints and follow-up jobs land somewhere a test can
/// look ([`TestRun::client`]).
///
/// ```
/// use jobs::testing::TestContext;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, run) = TestContext::new().attempt(3).checkpoint(&40u64).build().await;
/// assert_eq!(ctx.attempt(), 3);
/// assert_eq!(ctx.checkpoint_state::<u64>().ok().flatten(), Some(40));
/// assert!(!ctx.is_shutting_down());
/// run.shutdown(); // as a SIGTERM would
/// assert!(ctx.is_shutting_down());
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TestContext {
    kind: String,
    queue: Option<String>,
    attempt: u32,
    max_attempts: Option<u32>,
    checkpoint: Option<Value>,
    shutting_down: bool,
    clock: Clock,
    metadata: Metadata,
}

impl Default for TestContext {
    fn default() -> Self {
        TestContext {
            kind: "test".to_owned(),
            queue: None,
            attempt: 1,
            max_attempts: None,
            checkpoint: None,
            shutting_down: false,
            clock: Clock::tokio(),
            metadata: Metadata::new(),
        }
    }
}

impl TestContext {
    /// A first attempt of a job of kind `"test"` in the default queue (for [`run`](Self::run):
    /// the kind's default queue), with the default `max_attempts`, no checkpoint, on a clock that follows tokio's (possibly paused) time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The job's kind (for [`run`](Self::run): the worker's, always).
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// The job's queue (for [`run`](Self::run): this overrides the kind's default).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Which attempt the run is (1-based; default 1).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// How many attempts the job may use (default [`DEFAULT_MAX_ATTEMPTS`]; for
    /// [`run`](Self::run): the kind's default).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts.max(1));
        self
    }

    /// The checkpoint an earlier run saved.
    ///
    /// # Panics
    ///
    /// If `state` does not serialize to JSON.
    pub fn checkpoint<T: Serialize + ?Sized>(mut self, state: &T) -> Self {
        let value = serde_json::to_value(state)
            .unwrap_or_else(|e| panic!("the test checkpoint does not serialize: {e}"));
        self.checkpoint = Some(value);
        self
    }

    /// Starts the run with the pool already shutting down: `ctx.checkpoint(..)` answers
    /// `Err(JobError::Interrupted)` at once.
    pub fn shutting_down(mut self) -> Self {
        self.shutting_down = true;
        self
    }

    /// Attaches `key = value` to the job's metadata ([`JobContext::metadata`]).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// The clock the run reads "now" from (default [`Clock::tokio`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The context for a direct `worker.perform(ctx, args)`, and the handle to steer and
    /// inspect the run.
    pub async fn build(self) -> (JobContext, TestRun) {
        let job = NewJob {
            kind: self.kind.clone(),
            args: Value::Null,
            queue: self
                .queue
                .clone()
                .unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
            priority: 0,
            max_attempts: self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            run_at: None,
            metadata: self.metadata.clone(),
        };
        let run = self.claim(job).await;
        (JobContext::new(Arc::clone(&run)), TestRun { run })
    }

    /// Runs `worker` on `args` as a pool would (args stored as JSON and decoded again, the
    /// worker's timeout, panics caught) and returns the outcome the engine would record,
    /// through the engine's own mapping.
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobs::testing::{Outcome, TestContext};
    /// use jobs::{JobArgs, JobContext, JobError, Worker};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Charge { cents: u64 }
    /// # impl JobArgs for Charge { const KIND: &'static str = "charge"; }
    /// struct Charger;
    /// impl Worker for Charger {
    ///     type Args = Charge;
    ///     async fn perform(&self, _: JobContext, args: Charge) -> Result<(), JobError> {
    ///         if args.cents == 0 { return Err(JobError::discard("nothing to charge")); }
    ///         Err(JobError::failed("card declined"))
    ///     }
    ///     fn backoff(&self, _attempt: u32) -> Duration { Duration::from_secs(60) }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let last = TestContext::new().attempt(5).max_attempts(5);
    /// assert_eq!(
    ///     last.run(&Charger, Charge { cents: 100 }).await,
    ///     Outcome::Dead { reason: "card declined".into() },
    /// );
    /// let first = TestContext::new().run(&Charger, Charge { cents: 100 }).await;
    /// assert!(matches!(first, Outcome::Retry { .. }));
    /// # }
    /// ```
    pub async fn run<W: Worker>(self, worker: &W, args: W::Args) -> Outcome {
        let mut options = EnqueueOptions::new();
        if let Some(queue) = &self.queue {
            options = options.queue(queue.clone());
        }
        if let Some(max_attempts) = self.max_attempts {
            options = options.max_attempts(max_attempts);
        }
        for (key, value) in self.metadata.iter() {
            options = options.metadata(key, value);
        }
        let job = match options.new_job(&args, self.clock.now()) {
            Ok(job) => job,
            Err(error) => panic!("the test job cannot be built: {error}"),
        };
        let run = self.claim(job).await;
        let args = match decode::<W::Args>(run.record.args.clone()) {
            Ok(args) => args,
            Err(bad) => return Outcome::of(&run, Some(&bad_input(&run, bad))),
        };
        let ctx = JobContext::new(Arc::clone(&run));
        let backoff = |attempt| worker.backoff(attempt);
        let finish = run_to_end(&run, worker.timeout(), &backoff, worker.perform(ctx, args)).await;
        Outcome::of(&run, finish.as_ref())
    }

    /// The claimed run of `job` on a store of its own, as this builder describes it.
    async fn claim(self, job: NewJob) -> Arc<RunState> {
        let client = Client::new(Arc::new(MemoryStore::new())).with_clock(self.clock);
        let env = run_env(client);
        if self.shutting_down {
            env.shutdown.cancel();
        }
        let attempt = self.attempt;
        let checkpoint = self.checkpoint;
        let adjust = move |record: &mut crate::job::JobRecord| {
            record.attempts = attempt - 1;
            record.checkpoint = checkpoint;
        };
        match claim_new(&env, job, adjust).await {
            Ok(run) => run,
            Err(error) => panic!("the test job could not be stored: {error}"),
        }
    }
}

/// Runs `worker` on `args` as a pool would, as the first attempt, and returns the outcome
/// the engine would record. [`TestContext::run`] sets the attempt, checkpoint or shutdown.
///
/// ```
/// use jobs::testing::{run_job, Outcome};
/// # use jobs::{JobArgs, JobContext, JobError, Worker};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Ping;
/// # impl JobArgs for Ping { const KIND: &'static str = "ping"; }
/// # struct Pinger;
/// # impl Worker for Pinger {
/// #     type Args = Ping;
/// #     async fn perform(&self, _: JobContext, _: Ping) -> Result<(), JobError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(run_job(&Pinger, Ping).await, Outcome::Completed);
/// # }
/// ```
pub async fn run_job<W: Worker>(worker: &W, args: W::Args) -> Outcome {
    TestContext::new().run(worker, args).await
}

/// The handle on a run built by [`TestContext::build`]: trigger its shutdown, read what it
/// saved, see what it enqueued.
#[derive(Debug, Clone)]
pub struct TestRun {
    run: Arc<RunState>,
}

impl TestRun {
    /// Starts the pool's shutdown as the run sees it: `is_shutting_down()` turns true,
    /// `stopping()` resolves and the next `checkpoint` answers `Err(JobError::Interrupted)`.
    pub fn shutdown(&self) {
        self.run.env().shutdown.cancel();
    }

    /// The newest checkpoint the run gave (or the one it started from), decoded.
    ///
    /// # Panics
    ///
    /// If it does not deserialize into `T`.
    pub fn checkpoint<T: DeserializeOwned>(&self) -> Option<T> {
        self.run.latest_checkpoint().map(|value| {
            serde_json::from_value(value)
                .unwrap_or_else(|e| panic!("the run's checkpoint does not deserialize: {e}"))
        })
    }

    /// The client on the run's own store: the jobs the run enqueued are there
    /// (see [`enqueued`](super::enqueued)).
    pub fn client(&self) -> Client {
        self.run.client().clone()
    }
}
