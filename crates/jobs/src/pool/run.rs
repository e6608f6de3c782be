//! One run of one job: wait for a slot, decode, perform with timeout and panic capture, and
//! turn what happened into a [`FinishOutcome`]. A run that is dropped before it has an
//! outcome (grace over, hard stop) releases its job.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;

use crate::context::{JobContext, RunState};
use crate::job::{AttemptError, JobRecord};
use crate::pool::channels::Outcomes;
use crate::pool::events::Events;
use crate::pool::quarantine::Lane;
use crate::pool::queues::{QueueState, Queues};
use crate::pool::watchdog::watched;
use crate::store::FinishOutcome;
use crate::trace_context;
use crate::worker::{BadInput, ErasedWorker, JobError, Registry};

/// How long a job of a kind this pool has no worker for is handed back for (no attempt
/// charged) when one reaches it anyway (the pool's claims name its kinds, so only a job
/// claimed by other means, such as a store that ignores the list, gets here).
const UNKNOWN_KIND_SNOOZE: Duration = Duration::from_secs(60);

/// What every run of the pool needs: the workers, the queues' slots, the quarantine lane,
/// and where outcomes go.
#[derive(Debug)]
pub(crate) struct Runner {
    pub(crate) registry: Registry,
    pub(crate) queues: Arc<Queues>,
    pub(crate) outcomes: Outcomes,
    /// Held shared by every normal run, exclusively by a suspect's.
    pub(crate) lane: Arc<Lane>,
    /// Where `Started` events go.
    pub(crate) events: Arc<Events>,
}

/// A run holding an executor slot, counted in its queue's `jobs_running` gauge until dropped.
struct Running<'a>(&'a metrics::Gauge);

impl<'a> Running<'a> {
    fn start(gauge: &'a metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Running(gauge)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Releases the job if the run ends without an outcome (aborted or dropped).
struct ReleaseOnDrop {
    runner: Arc<Runner>,
    run: Option<Arc<RunState>>,
}

impl ReleaseOnDrop {
    /// Hands the outcome to the completer (or retires the run if it has none to write).
    fn finish(mut self, outcome: Option<FinishOutcome>) {
        if let Some(run) = self.run.take() {
            match outcome {
                Some(outcome) => self.runner.outcomes.complete(run, outcome),
                None => self.runner.outcomes.retire(&run),
            }
        }
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            if run.lease_lost() {
                self.runner.outcomes.retire(&run);
            } else {
                tracing::info!(job_id = %run.record.id, "releasing unfinished job");
                self.runner.outcomes.complete(run, FinishOutcome::Release);
            }
        }
    }
}

impl Runner {
    /// Runs one claimed job to its outcome.
    pub(crate) async fn execute(self: Arc<Self>, run: Arc<RunState>) {
        let guard = ReleaseOnDrop {
            runner: Arc::clone(&self),
            run: Some(Arc::clone(&run)),
        };
        let Some(queue) = self.queues.get(&run.record.queue).cloned() else {
            return; // claimed from a queue this pool declared, so unreachable; the guard releases
        };
        if run.should_stop() {
            return; // never started: released by the guard
        }
        // The waits below watch for a stop too; the uncontended cases (a free slot, no
        // suspect running) skip them, which saves registering a timer and two wake-ups.
        let permit = match queue.slots.try_acquire() {
            Some(permit) => permit,
            None => tokio::select! {
                biased;
                () = run.stopping() => return, // never started: released by the guard
                permit = queue.slots.acquire(run.record.priority) => permit,
            },
        };
        let lane = match self.lane.try_read() {
            Ok(lane) => lane,
            Err(_) => tokio::select! {
                biased;
                () = run.stopping() => return, // never started: released by the guard
                lane = self.lane.read() => lane,
            },
        };
        let outcome = self.perform_measured(&run, &queue).await;
        drop(lane);
        drop(permit);
        guard.finish(outcome);
    }

    /// Runs one suspect alone (see [`quarantine`](crate::pool::quarantine)): once every
    /// normal run has ended, and with none starting until it is over. It takes no slot of
    /// its queue.
    pub(crate) async fn execute_alone(self: Arc<Self>, run: Arc<RunState>) {
        let guard = ReleaseOnDrop {
            runner: Arc::clone(&self),
            run: Some(Arc::clone(&run)),
        };
        let alone = tokio::select! {
            biased;
            () = run.stopping() => return, // never started: released by the guard
            alone = self.lane.write() => alone,
        };
        let outcome = match self.queues.get(&run.record.queue).cloned() {
            Some(queue) => self.perform_measured(&run, &queue).await,
            // claimed from a queue this pool declared, so unreachable; the guard releases
            None => return,
        };
        drop(alone);
        guard.finish(outcome);
    }

    /// [`perform`](Self::perform), announced (`Started`), counted in the queue's
    /// `jobs_running` gauge, timed into its run-time average and metrics, and recorded on
    /// the job span.
    async fn perform_measured(
        &self,
        run: &Arc<RunState>,
        queue: &QueueState,
    ) -> Option<FinishOutcome> {
        let started = Instant::now();
        let running = Running::start(&queue.metrics.running);
        let waited = run.client().clock().now().duration_since(run.record.run_at);
        self.events.started(run);
        let outcome = watched(&run.poll_watch, self.perform(run)).await;
        let took = started.elapsed();
        drop(running);
        queue.record_run_time(took);
        queue.metrics.kind(&run.record.kind, |metrics| {
            metrics.queue_wait_seconds.record(waited);
            metrics.run_seconds.record(took);
        });
        let span = tracing::Span::current();
        span.record(
            "outcome",
            outcome.as_ref().map_or("lease_lost", outcome_name),
        );
        span.record("elapsed_ms", took.as_millis() as u64);
        outcome
    }

    /// Performs the job; `None` when the lease was lost (someone else owns the job now).
    async fn perform(&self, run: &Arc<RunState>) -> Option<FinishOutcome> {
        if run.unreadable.is_some() {
            return perform(&self.registry, run).await;
        }
        match self.registry.get(&run.record.kind) {
            Ok(worker) => perform_with(worker, run).await,
            Err(bad) => Some(unknown_kind(run, bad)),
        }
    }
}

/// The `job` span of a run (the quarantine's marked `quarantine`), which records `outcome` and
/// `elapsed_ms` when the run ends. With the `opentelemetry` feature it continues the trace
/// of the job's enqueue (the context in its metadata).
pub(crate) fn job_span(record: &JobRecord, worker_id: &str, quarantine: bool) -> tracing::Span {
    let span = if quarantine {
        tracing::info_span!("job", job_id = %record.id, queue = %record.queue,
            kind = %record.kind, attempt = record.next_attempt(), worker_id = %worker_id,
            quarantine = true, outcome = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty)
    } else {
        tracing::info_span!("job", job_id = %record.id, queue = %record.queue,
            kind = %record.kind, attempt = record.next_attempt(), worker_id = %worker_id,
            outcome = tracing::field::Empty, elapsed_ms = tracing::field::Empty)
    };
    trace_context::set_parent(&span, &record.metadata);
    span
}

/// Runs a claimed job with its registered worker and maps how it ended to the outcome the
/// store records (bad input: the dead set); `None` when the lease was lost.
pub(crate) async fn perform(registry: &Registry, run: &Arc<RunState>) -> Option<FinishOutcome> {
    let record = &run.record;
    if let Some(reason) = &run.unreadable {
        let reason = reason.clone();
        return Some(bad_input(run, BadInput::UnreadableRow { reason }));
    }
    match registry.get(&record.kind) {
        Ok(worker) => perform_with(worker, run).await,
        Err(bad) => Some(bad_input(run, bad)),
    }
}

/// Runs a claimed, readable job with `worker` (see [`perform`]).
async fn perform_with(
    worker: &Arc<dyn ErasedWorker>,
    run: &Arc<RunState>,
) -> Option<FinishOutcome> {
    let worker = Arc::clone(worker);
    let ctx = JobContext::new(Arc::clone(run));
    let record = &run.record;
    let future = match Arc::clone(&worker).run(ctx, record.args.clone()) {
        Ok(future) => future,
        Err(bad) => return Some(bad_input(run, bad)),
    };
    run_to_end(
        run,
        worker.timeout(),
        &|attempt| worker.backoff(attempt),
        future,
    )
    .await
}

/// Awaits a started run (the worker's `timeout`, panics caught) and maps how it ended to the
/// outcome the store records, retries spaced by `backoff`; `None` when the lease was lost.
///
/// The one outcome mapping: the executor and `jobs::testing` both run jobs through it.
pub(crate) async fn run_to_end<F>(
    run: &RunState,
    timeout: Option<Duration>,
    backoff: &(dyn Fn(u32) -> Duration + Sync),
    future: F,
) -> Option<FinishOutcome>
where
    F: std::future::Future<Output = Result<(), JobError>>,
{
    let guarded = AssertUnwindSafe(future).catch_unwind();
    let mut work = std::pin::pin!(with_timeout(timeout, guarded));
    // A job that ends in its first poll needs no watch for aborts (which costs a lease timer
    // and a wake-up registration per run); one whose lease is already gone does not start.
    let first = if run.lease_expired() || run.lease_lost() {
        None
    } else {
        match futures::poll!(work.as_mut()) {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => None,
        }
    };
    let result = match first {
        Some(result) => result,
        None => tokio::select! {
            biased;
            () = run.aborted() => {
                if run.lease_expired() && !run.lease_lost() {
                    tracing::warn!(job_id = %run.record.id, "the run's lease ran out on its own clock (no heartbeat held in time); stopping the run and handing the job back");
                }
                return (!run.lease_lost()).then_some(FinishOutcome::Release);
            }
            result = &mut work => result,
        },
    };
    if run.lease_lost() {
        return None;
    }
    Some(outcome(run, backoff, result))
}

/// How a run ended, before it is mapped to an outcome.
enum Ended {
    Returned(Result<(), JobError>),
    Panicked(String),
    TimedOut(Duration),
}

async fn with_timeout<F>(limit: Option<Duration>, future: F) -> Ended
where
    F: std::future::Future<Output = Result<Result<(), JobError>, Box<dyn Any + Send>>>,
{
    let ended = |result: Result<Result<(), JobError>, Box<dyn Any + Send>>| match result {
        Ok(returned) => Ended::Returned(returned),
        Err(panic) => Ended::Panicked(panic_message(&*panic)),
    };
    match limit {
        None => ended(future.await),
        Some(limit) => match tokio::time::timeout(limit, future).await {
            Ok(result) => ended(result),
            Err(_) => Ended::TimedOut(limit),
        },
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

fn outcome(
    run: &RunState,
    backoff: &(dyn Fn(u32) -> Duration + Sync),
    ended: Ended,
) -> FinishOutcome {
    let now = run.client().clock().now();
    let failed = |message: String| {
        let attempt = run.record.next_attempt();
        let error = AttemptError {
            attempt,
            at: now,
            message,
        };
        if attempt >= run.record.max_attempts {
            FinishOutcome::Dead { error }
        } else {
            FinishOutcome::Retry {
                run_at: now + backoff(attempt),
                error,
            }
        }
    };
    match ended {
        Ended::Returned(Ok(())) => FinishOutcome::Completed,
        Ended::Returned(Err(JobError::Failed(error))) => failed(error.to_string()),
        Ended::Returned(Err(JobError::Discard(reason))) => FinishOutcome::Dead {
            error: AttemptError {
                attempt: run.record.next_attempt(),
                at: now,
                message: format!("discarded: {reason}"),
            },
        },
        Ended::Returned(Err(JobError::Snooze(delay))) => FinishOutcome::Snooze {
            run_at: now + delay,
        },
        Ended::Returned(Err(JobError::Interrupted | JobError::LeaseLost)) => FinishOutcome::Release,
        Ended::Panicked(message) => failed(format!("panicked: {message}")),
        Ended::TimedOut(limit) => failed(format!(
            "timed out after {} (the worker's timeout)",
            humantime::format_duration(limit)
        )),
    }
}

/// A job of a kind this pool cannot run: handed back without charging an attempt, for a
/// process that knows its kind (it never goes to the dead set for being unknown here).
fn unknown_kind(run: &RunState, bad: BadInput) -> FinishOutcome {
    tracing::warn!(job_id = %run.record.id, kind = %run.record.kind, error = %bad,
        "no worker for this kind here; handing the job back without charging an attempt");
    FinishOutcome::Snooze {
        run_at: run.client().clock().now() + UNKNOWN_KIND_SNOOZE,
    }
}

/// The name of an outcome, for the job span's `outcome` field.
fn outcome_name(outcome: &FinishOutcome) -> &'static str {
    match outcome {
        FinishOutcome::Completed => "completed",
        FinishOutcome::Retry { .. } => "retry",
        FinishOutcome::Dead { .. } => "dead",
        FinishOutcome::Snooze { .. } => "snoozed",
        FinishOutcome::Release => "released",
    }
}

/// The outcome of a job that could not even start: the dead set, with the reason.
pub(crate) fn bad_input(run: &RunState, bad: BadInput) -> FinishOutcome {
    tracing::error!(job_id = %run.record.id, error = %bad, "bad input; moving the job to the dead set");
    FinishOutcome::Dead {
        error: AttemptError {
            attempt: run.record.next_attempt(),
            at: run.client().clock().now(),
            message: bad.to_string(),
        },
    }
}
