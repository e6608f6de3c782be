//! The run books: which runs this pool holds, so heartbeats renew their leases, a job claimed
//! again replaces its stale run, and a shutdown reports what it released.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::context::RunState;
use crate::fast_map::FastMap;
use crate::job::JobId;
use crate::pool::queues::{QueueState, Queues};

/// Locks a std mutex whose data stays consistent even if a holder panicked (every critical
/// section here is a single insert, remove or take).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Claimed runs by job, and the jobs released since shutdown started.
#[derive(Debug)]
pub(crate) struct Books {
    queues: Arc<Queues>,
    /// Claimed runs by job, for heartbeats (includes jobs waiting for a slot).
    running: Mutex<FastMap<JobId, Arc<RunState>>>,
    /// Jobs released back to their queue since `shutdown` was cancelled.
    released: Mutex<Vec<JobId>>,
    shutdown: CancellationToken,
    /// Notified whenever a run is retired (drain waits on it).
    retired: Notify,
}

impl Books {
    pub(crate) fn new(queues: Arc<Queues>, shutdown: CancellationToken) -> Self {
        Books {
            queues,
            running: Mutex::new(FastMap::default()),
            released: Mutex::new(Vec::new()),
            shutdown,
            retired: Notify::new(),
        }
    }

    /// Takes a freshly claimed run into the books.
    ///
    /// If this pool still has an earlier run of the same job, the store has handed the job
    /// out again (its lease ran out while this process could not renew it, and it was
    /// rescued): that run holds a stale lease, so it is stopped now and writes nothing, and
    /// the books follow the new run.
    pub(crate) fn admit(&self, queue: &QueueState, run: &Arc<RunState>) {
        queue.took();
        let stale = lock(&self.running).insert(run.record.id, Arc::clone(run));
        if let Some(stale) = stale {
            tracing::warn!(job_id = %run.record.id, stale_token = stale.lease.token,
                token = run.lease.token, "job claimed again while an earlier run of it was still going; stopping that run");
            stale.lose_lease();
        }
    }

    /// Takes a run out of the books once its outcome is written (or its lease was lost).
    /// A newer run of the same job that replaced it in the books (see [`Books::admit`])
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
        if let Some(queue) = self.queues.get(&run.record.queue) {
            queue.gave_back();
        }
        self.retired.notify_waiters();
    }

    /// Every claimed run (for heartbeats).
    pub(crate) fn running_runs(&self) -> Vec<Arc<RunState>> {
        lock(&self.running).values().cloned().collect()
    }

    /// How many jobs this pool holds (claimed and not yet written back).
    pub(crate) fn inflight(&self) -> usize {
        self.queues.inflight()
    }

    /// Resolves once the pool holds no job.
    pub(crate) async fn emptied(&self) {
        loop {
            let retired = self.retired.notified();
            if self.inflight() == 0 {
                return;
            }
            retired.await;
        }
    }

    /// Notes a job released back to its queue (reported by a shutdown).
    pub(crate) fn note_released(&self, id: JobId) {
        if self.shutdown.is_cancelled() {
            lock(&self.released).push(id);
        }
    }

    pub(crate) fn take_released(&self) -> Vec<JobId> {
        std::mem::take(&mut *lock(&self.released))
    }
}
