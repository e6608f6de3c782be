//! State shared by the pool's children; it outlives any one of them, so a restarted child
//! picks up where the last one stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::Client;
use crate::context::RunState;
use crate::job::{JobId, JobRecord};
use crate::pool::config::PoolConfig;
use crate::store::{FinishOutcome, StoreFacade};
use crate::worker::Registry;

/// The application's hook for jobs that reached the dead set.
pub(crate) type ExhaustedHook = Arc<dyn Fn(JobRecord) -> BoxFuture<'static, ()> + Send + Sync>;

/// A finished run waiting to be written.
pub(crate) struct Completion {
    pub(crate) run: Arc<RunState>,
    pub(crate) outcome: FinishOutcome,
}

/// One queue's slots and wake-ups.
pub(crate) struct QueueState {
    pub(crate) name: String,
    pub(crate) concurrency: usize,
    /// Executor slots: a claimed job waits for one before it runs.
    pub(crate) slots: Semaphore,
    /// Jobs claimed and not yet written back (running, waiting for a slot, or finishing).
    inflight: AtomicUsize,
    /// Rolling average run time in microseconds (`u64::MAX` until the first run ends).
    avg_job_micros: AtomicU64,
    /// Wakes the fetcher: jobs were inserted (listener, scheduler).
    pub(crate) wake: Notify,
    /// Wakes the fetcher: room to claim again.
    pub(crate) room: Notify,
}

impl QueueState {
    pub(crate) fn new(name: String, concurrency: usize) -> Self {
        QueueState {
            name,
            concurrency,
            slots: Semaphore::new(concurrency),
            inflight: AtomicUsize::new(0),
            avg_job_micros: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
            room: Notify::new(),
        }
    }

    /// How many jobs the fetcher should claim now (0: wait for room).
    ///
    /// While every slot is busy, the local buffer is refilled only once it is half empty, so
    /// claims (and the completions that follow them) travel in large batches; a free slot
    /// with nothing waiting for it is filled at once.
    pub(crate) fn claim_room(&self, config: &PoolConfig) -> usize {
        let short_jobs = self.avg_job_micros.load(Ordering::Relaxed)
            <= config.prefetch_max_job_time.as_micros() as u64;
        let cap = self.concurrency + if short_jobs { config.prefetch } else { 0 };
        let room = cap.saturating_sub(self.inflight.load(Ordering::Acquire));
        let starving = self.slots.available_permits() > 0;
        if starving || room >= cap / 2 {
            room.min(config.claim_batch)
        } else {
            0
        }
    }

    pub(crate) fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// Folds one run's duration into the rolling average (weight 1/8).
    pub(crate) fn record_run_time(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX - 1)) as u64;
        let old = self.avg_job_micros.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.avg_job_micros.store(new, Ordering::Relaxed);
    }
}

/// Everything the pool's children share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: PoolConfig,
    pub(crate) registry: Registry,
    pub(crate) worker_id: String,
    pub(crate) queues: HashMap<String, Arc<QueueState>>,
    /// Claimed runs by job, for heartbeats (includes jobs waiting for a slot).
    running: Mutex<HashMap<JobId, Arc<RunState>>>,
    /// Cancelled when shutdown starts: jobs see `is_shutting_down()`.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled by shutdown or drain: fetchers stop claiming.
    pub(crate) stop_fetching: CancellationToken,
    /// Cancelled to skip the grace period: running jobs are aborted and released at once.
    pub(crate) hard_stop: CancellationToken,
    pub(crate) runs_tx: mpsc::UnboundedSender<Arc<RunState>>,
    pub(crate) runs_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Arc<RunState>>>,
    pub(crate) completions_tx: mpsc::UnboundedSender<Completion>,
    pub(crate) completions_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Completion>>,
    /// A batch whose write failed, retried first by the next completer.
    pub(crate) unflushed: Mutex<Vec<Completion>>,
    /// Jobs released back to their queue since shutdown started.
    released: Mutex<Vec<JobId>>,
    /// Notified whenever a run is retired (drain waits on it).
    pub(crate) retired: Notify,
    pub(crate) exhausted_hook: Option<ExhaustedHook>,
    pub(crate) hook_tasks: TaskTracker,
}

/// Locks a std mutex whose data stays consistent even if a holder panicked (every critical
/// section here is a single insert, remove or take).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        client: Client,
        config: PoolConfig,
        registry: Registry,
        worker_id: String,
        queues: Vec<(String, usize)>,
        exhausted_hook: Option<ExhaustedHook>,
    ) -> Self {
        let (runs_tx, runs_rx) = mpsc::unbounded_channel();
        let (completions_tx, completions_rx) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        Shared {
            client,
            config,
            registry,
            worker_id,
            queues: queues
                .into_iter()
                .map(|(name, concurrency)| {
                    (name.clone(), Arc::new(QueueState::new(name, concurrency)))
                })
                .collect(),
            running: Mutex::new(HashMap::new()),
            stop_fetching: shutdown.child_token(),
            shutdown,
            hard_stop: CancellationToken::new(),
            runs_tx,
            runs_rx: tokio::sync::Mutex::new(runs_rx),
            completions_tx,
            completions_rx: tokio::sync::Mutex::new(completions_rx),
            unflushed: Mutex::new(Vec::new()),
            released: Mutex::new(Vec::new()),
            retired: Notify::new(),
            exhausted_hook,
            hook_tasks: TaskTracker::new(),
        }
    }

    pub(crate) fn store(&self) -> &StoreFacade {
        self.client.store()
    }

    pub(crate) fn queue(&self, name: &str) -> Option<&Arc<QueueState>> {
        self.queues.get(name)
    }

    /// Takes a freshly claimed run into the books and hands it to the executor.
    ///
    /// If this pool still has an earlier run of the same job, the store has handed the job
    /// out again (its lease ran out while this process could not renew it, and it was
    /// rescued): that run holds a stale lease, so it is stopped now and writes nothing, and
    /// the books follow the new run.
    pub(crate) fn admit(&self, queue: &QueueState, run: Arc<RunState>) {
        queue.inflight.fetch_add(1, Ordering::AcqRel);
        let stale = lock(&self.running).insert(run.record.id, Arc::clone(&run));
        if let Some(stale) = stale {
            tracing::warn!(job_id = %run.record.id, stale_token = stale.lease.token,
                token = run.lease.token, "job claimed again while an earlier run of it was still going; stopping that run");
            stale.lose_lease();
        }
        if let Err(unsent) = self.runs_tx.send(run) {
            // The receiver lives in `self`, so the channel cannot be closed while we exist.
            self.retire(&unsent.0);
        }
    }

    /// Takes a run out of the books once its outcome is written (or its lease was lost).
    /// A newer run of the same job that replaced it in the books (see [`Shared::admit`])
    /// stays there.
    pub(crate) fn retire(&self, run: &RunState) {
        {
            let mut running = lock(&self.running);
            if running
                .get(&run.record.id)
                .is_some_and(|booked| std::ptr::eq(Arc::as_ptr(booked), run))
            {
                running.remove(&run.record.id);
            }
        }
        if let Some(queue) = self.queue(&run.record.queue) {
            queue.inflight.fetch_sub(1, Ordering::AcqRel);
            queue.room.notify_one();
        }
        self.retired.notify_waiters();
    }

    /// Every claimed run (for heartbeats).
    pub(crate) fn running_runs(&self) -> Vec<Arc<RunState>> {
        lock(&self.running).values().cloned().collect()
    }

    /// How many jobs this pool holds (claimed and not yet written back).
    pub(crate) fn inflight(&self) -> usize {
        self.queues.values().map(|q| q.inflight()).sum()
    }

    pub(crate) fn note_released(&self, id: JobId) {
        if self.shutdown.is_cancelled() {
            lock(&self.released).push(id);
        }
    }

    pub(crate) fn take_released(&self) -> Vec<JobId> {
        std::mem::take(&mut *lock(&self.released))
    }

    /// Queues a finished run for the completer.
    pub(crate) fn complete(&self, run: Arc<RunState>, outcome: FinishOutcome) {
        if let Err(unsent) = self.completions_tx.send(Completion { run, outcome }) {
            // The receiver lives in `self`: unreachable, but never leave a run in the books.
            self.retire(&unsent.0.run);
        }
    }

    /// Runs the exhausted hook for a job that reached the dead set.
    pub(crate) fn exhausted(&self, job: JobRecord) {
        tracing::warn!(job_id = %job.id, kind = %job.kind, attempts = job.attempts,
            error = job.errors.last().map(|e| e.message.as_str()).unwrap_or(""), "job is dead");
        if let Some(hook) = &self.exhausted_hook {
            self.hook_tasks.spawn(hook(job));
        }
    }

    /// Wakes every queue's fetcher (jobs may have become available).
    pub(crate) fn wake_all(&self) {
        for queue in self.queues.values() {
            queue.wake.notify_one();
        }
    }
}
