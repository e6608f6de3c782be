//! Workers: the code that runs one job kind, and the outcomes a run can return.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::Value;
use supervisor::Backoff;

use crate::args::JobArgs;
use crate::context::JobContext;
use crate::error::BoxError;
use crate::fast_map::FastMap;

/// Runs jobs of one kind. Register it on a [`PoolBuilder`](crate::PoolBuilder).
///
/// `perform` returns `Ok(())` for success or a [`JobError`] saying what happens next; `?` on any
/// error type gives a retryable failure. A panic is a failure like any other.
///
/// # Obligations
///
/// * **Be idempotent: a job runs at least once.** A job whose outcome was not recorded runs
///   again: after a crash or SIGKILL (its lease expires and a rescuer returns it), after the
///   grace period of a shutdown (it is released and runs again elsewhere), after a lost
///   connection. Make the effects safe to repeat (an idempotency key at the payment
///   provider, an `INSERT … ON CONFLICT DO NOTHING`, a check of what is already done), and
///   resume from [`JobContext::checkpoint_state`] rather than start over.
/// * **Expect to be dropped at an `.await`.** Once the shutdown's grace period
///   ([`PoolConfig::grace`](crate::PoolConfig::grace)) is over, or the worker's
///   [`timeout`](Worker::timeout) has passed, or the job's lease was lost, the future is
///   dropped at whatever `.await` it is suspended in: code after it does not run, destructors
///   do. Keep the state that matters in the database or in checkpoints, not in local
///   variables that must reach a final step. Watch [`JobContext::is_shutting_down`] or call
///   [`JobContext::checkpoint`] in long loops to stop at a safe point before that happens.
/// * **Never block the runtime.** `perform` runs on the tokio runtime beside every other
///   job and the pool's fetchers and completer: CPU-heavy work or a blocking call (file I/O
///   with `std::fs`, a synchronous client, `std::thread::sleep`) holds a runtime thread, and
///   everything else waits for it. Use `tokio::task::spawn_blocking` (or an async client). A
///   blocking call cannot be dropped either, so it also defeats the grace period and the
///   worker's `timeout`. What the pool does about it: on a multi-threaded runtime, leases
///   are renewed from a thread of the pool's own (the lease keeper), so a job that blocks
///   every thread of the runtime makes no lease expire and nothing runs twice; and a job
///   that stays inside one poll for about a second is reported at `warn` with its `job_id`
///   ("a job has blocked its thread"). On a current-thread runtime a blocked thread stops
///   the heartbeat too, so a job blocking longer than its lease is rescued and runs again.
/// * **Be `Send + Sync + 'static`.** One worker value serves every job of its kind,
///   concurrently up to the queue's concurrency; share state through `Arc` and async locks.
///
/// ```
/// use jobs::{JobArgs, JobContext, JobError, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Import { rows: u64 }
/// impl JobArgs for Import { const KIND: &'static str = "import"; }
///
/// struct Importer;
///
/// impl Worker for Importer {
///     type Args = Import;
///
///     async fn perform(&self, ctx: JobContext, args: Import) -> Result<(), JobError> {
///         let mut next_row: u64 = ctx.checkpoint_state()?.unwrap_or(0);
///         while next_row < args.rows {
///             // ... import row `next_row` ...
///             next_row += 1;
///             ctx.checkpoint(&next_row).await?; // saves progress; Err(Interrupted) on shutdown
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Worker: Send + Sync + 'static {
    /// The job kind this worker runs.
    type Args: JobArgs;

    /// Runs one job.
    fn perform(
        &self,
        ctx: JobContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<(), JobError>> + Send;

    /// The longest one run may take before it is aborted and counted as a failed attempt
    /// (`None`, the default: no limit besides the lease, which heartbeats keep alive).
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// How long to wait before retrying after failed attempt number `attempt` (1-based).
    /// Default: [`default_retry_backoff`].
    fn backoff(&self, attempt: u32) -> Duration {
        default_retry_backoff().delay(attempt.saturating_sub(1))
    }
}

/// The default retry delays: exponential from 1 s doubling up to 1 h, ±20 % jitter
/// (attempt 1 waits ~1 s, attempt 5 ~16 s, attempt 10 ~8.5 min, then hourly).
pub fn default_retry_backoff() -> Backoff {
    Backoff::exponential(Duration::from_secs(1), Duration::from_secs(3600))
}

/// What a run that did not succeed comes to.
///
/// Anything that converts into a `Box<dyn Error + Send + Sync>` converts into
/// [`JobError::Failed`], so `?` works in `perform` on `std::io::Error`, `serde_json::Error`,
/// `anyhow::Error`, `eyre::Report`, a `String` or a `&str`:
///
/// ```
/// use jobs::{JobArgs, JobContext, JobError, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Charge { cents: i64 }
/// impl JobArgs for Charge { const KIND: &'static str = "charge"; }
///
/// fn validate(cents: i64) -> Result<(), String> {
///     if cents > 0 { Ok(()) } else { Err(format!("cannot charge {cents} cents")) }
/// }
///
/// fn call_the_bank(cents: i64) -> anyhow::Result<()> {
///     anyhow::ensure!(cents < 1_000_000, "the bank refused {cents} cents");
///     Ok(())
/// }
///
/// struct Charger;
/// impl Worker for Charger {
///     type Args = Charge;
///     async fn perform(&self, _ctx: JobContext, args: Charge) -> Result<(), JobError> {
///         validate(args.cents)?; // a String error
///         call_the_bank(args.cents)?; // an anyhow::Error
///         Ok(())
///     }
/// }
///
/// // The conversions `?` makes, with the cause kept for the attempt's error record:
/// let from_anyhow: JobError = anyhow::anyhow!("the bank refused").into();
/// assert!(matches!(&from_anyhow, JobError::Failed(e) if e.to_string() == "the bank refused"));
/// let from_string: JobError = String::from("cannot charge -5 cents").into();
/// assert!(matches!(from_string, JobError::Failed(_)));
/// ```
#[non_exhaustive]
pub enum JobError {
    /// A failed attempt: retried after the worker's backoff until `max_attempts`, then the
    /// job goes to the dead set and the exhausted hook runs.
    Failed(BoxError),
    /// Give up now, no retry: the job goes to the dead set with this reason.
    Discard(String),
    /// Run again after this delay without charging an attempt.
    Snooze(Duration),
    /// The job stopped at a safe point because the pool is shutting down (or the job was
    /// cancelled): it is released back to its queue at once, checkpoint kept, no attempt charged.
    Interrupted,
    /// The run's lease is gone: it ran out on the run's own clock (heartbeats did not renew
    /// it in time: the process was frozen, or the store unreachable), or another worker took
    /// the job over. [`JobContext::checkpoint`](crate::JobContext::checkpoint) returns it;
    /// the run must stop now, as another worker may already be running the job. Nothing is
    /// charged: the engine hands the job back fenced by the run's lease, which is a no-op if
    /// it was taken over.
    LeaseLost,
}

impl JobError {
    /// A retryable failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        JobError::Failed(message.into().into())
    }

    /// Give up without retrying.
    pub fn discard(reason: impl Into<String>) -> Self {
        JobError::Discard(reason.into())
    }

    /// Run again after `delay`, no attempt charged.
    pub fn snooze(delay: Duration) -> Self {
        JobError::Snooze(delay)
    }
}

/// `?` in `perform` on anything that converts into a boxed error: every
/// `std::error::Error + Send + Sync`, `anyhow::Error`, `eyre::Report`, `String` and `&str`.
/// (`JobError` is deliberately not an `Error` itself, which is what lets this impl exist.)
impl<E: Into<BoxError>> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::Failed(error.into())
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(e) => f.debug_tuple("Failed").field(&e.to_string()).finish(),
            JobError::Discard(r) => f.debug_tuple("Discard").field(r).finish(),
            JobError::Snooze(d) => f.debug_tuple("Snooze").field(d).finish(),
            JobError::Interrupted => f.write_str("Interrupted"),
            JobError::LeaseLost => f.write_str("LeaseLost"),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(e) => write!(f, "{e}"),
            JobError::Discard(r) => write!(f, "discarded: {r}"),
            JobError::Snooze(d) => write!(f, "snoozed for {}", humantime::format_duration(*d)),
            JobError::Interrupted => f.write_str("interrupted by shutdown"),
            JobError::LeaseLost => f.write_str("the run's lease ran out or was taken over"),
        }
    }
}

/// Why a job could not even be started: recorded on the job, which goes to the dead set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadInput {
    /// No worker is registered for the job's kind on this pool.
    #[error("unknown job kind {kind:?}: no worker registered for it on this pool (register one with PoolBuilder::register)")]
    UnknownKind {
        /// The job's kind.
        kind: String,
    },
    /// The args did not deserialize into the worker's args type.
    #[error("args of job kind {kind:?} do not deserialize: {reason}")]
    UndecodableArgs {
        /// The job's kind.
        kind: String,
        /// The deserializer's message.
        reason: String,
    },
    /// The job's stored row could not be read (see
    /// [`ClaimedJob::unreadable`](crate::store::ClaimedJob::unreadable)).
    #[error("{reason}; moved to the dead set without running")]
    UnreadableRow {
        /// What could not be read, naming the row's id ("the stored row of job 42 cannot be
        /// read: …").
        reason: String,
    },
}

/// Decodes a job's stored args as the engine does before a run.
pub(crate) fn decode<A: JobArgs>(args: Value) -> Result<A, BadInput> {
    serde_json::from_value(args).map_err(|e| BadInput::UndecodableArgs {
        kind: A::KIND.to_owned(),
        reason: e.to_string(),
    })
}

/// A worker with its args type erased, so workers of all kinds live in one map.
pub(crate) trait ErasedWorker: Send + Sync {
    fn run(self: Arc<Self>, ctx: JobContext, args: Value) -> Result<RunFuture, BadInput>;
    fn timeout(&self) -> Option<Duration>;
    fn backoff(&self, attempt: u32) -> Duration;
}

pub(crate) type RunFuture = BoxFuture<'static, Result<(), JobError>>;

struct Erased<W>(W);

impl<W: Worker> ErasedWorker for Erased<W> {
    fn run(self: Arc<Self>, ctx: JobContext, args: Value) -> Result<RunFuture, BadInput> {
        let args = decode::<W::Args>(args)?;
        Ok(async move { self.0.perform(ctx, args).await }.boxed())
    }

    fn timeout(&self) -> Option<Duration> {
        self.0.timeout()
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.0.backoff(attempt)
    }
}

/// The workers of a pool, by kind.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    workers: FastMap<&'static str, Arc<dyn ErasedWorker>>,
}

impl Registry {
    pub(crate) fn register<W: Worker>(&mut self, worker: W) {
        self.workers.insert(W::Args::KIND, Arc::new(Erased(worker)));
    }

    pub(crate) fn get(&self, kind: &str) -> Result<&Arc<dyn ErasedWorker>, BadInput> {
        self.workers.get(kind).ok_or_else(|| BadInput::UnknownKind {
            kind: kind.to_owned(),
        })
    }

    pub(crate) fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.workers.keys().copied()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.workers.keys()).finish()
    }
}
