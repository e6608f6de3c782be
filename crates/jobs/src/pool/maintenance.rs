//! The pool's background duties: rescuing expired leases, promoting scheduled jobs, pruning
//! old finished jobs, sampling queue depths, and listening for wake-ups. Each is a supervised
//! child; a store error (logged by the store facade) ends it and its supervisor restarts it
//! after a delay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use supervisor::{ChildContext, ChildError};

use crate::client::Client;
use crate::job::JobState;
use crate::pool::events::Events;
use crate::pool::hooks::Hooks;
use crate::pool::queues::Queues;
use crate::store::{
    JobExpireUnknownKindsParams, JobPromoteParams, JobPruneParams, JobRescueParams, StoreError,
    ANY_QUEUE,
};
use crate::telemetry;

/// Jobs per rescue or promote round trip.
const MAINTENANCE_BATCH: usize = 1_000;
/// How often the pruner looks for old finished jobs once it has caught up.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Jobs per prune round trip: small enough that a delete holds a store's writer (SQLite) or
/// its rows' locks (PostgreSQL) for milliseconds, so claims and finishes slip in between.
const PRUNE_BATCH: usize = 5_000;

/// Sleeps `period`; `false` if the child was stopped meanwhile.
async fn tick(ctx: &ChildContext, period: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => true,
        () = ctx.cancelled() => false,
    }
}

/// What the rescuer works with.
#[derive(Clone, Debug)]
pub(crate) struct Rescuer {
    /// The store and clock to rescue with.
    pub(crate) client: Client,
    /// Rescues after which a job is dead as a poison pill.
    pub(crate) max_rescues: u32,
    pub(crate) interval: Duration,
    /// Woken when jobs are back in their queue.
    pub(crate) queues: Arc<Queues>,
    /// Runs the exhausted hook for poison pills.
    pub(crate) hooks: Arc<Hooks>,
    /// Where `Rescued` events go.
    pub(crate) events: Arc<Events>,
}

impl Rescuer {
    /// Returns jobs whose lease expired (their worker died or froze) to their queue, and
    /// moves poison pills to the dead set.
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        loop {
            while self.rescue_batch().await? >= MAINTENANCE_BATCH {}
            if !tick(&ctx, self.interval).await {
                return Ok(());
            }
        }
    }

    /// One rescue round trip; returns how many jobs it found.
    async fn rescue_batch(&self) -> Result<usize, StoreError> {
        let params = JobRescueParams {
            now: self.client.clock().now(),
            max_rescues: self.max_rescues,
            limit: MAINTENANCE_BATCH,
        };
        let rescued = self.client.store().job_rescue_expired(params).await?;
        let found = rescued.requeued.len() + rescued.dead.len();
        if found == 0 {
            return Ok(0);
        }
        if !rescued.requeued.is_empty() {
            tracing::warn!(jobs = ?rescued.requeued_ids(), "rescued jobs whose lease expired");
            telemetry::rescued(&rescued.requeued);
            self.queues.wake_all();
        }
        let dead: Vec<_> = rescued.dead.iter().map(|job| job.id).collect();
        self.events.rescued(&rescued.requeued_ids(), &dead);
        for job in rescued.dead {
            telemetry::dead_in_rescue(&job.queue, &job.kind);
            self.hooks.exhausted(job);
        }
        Ok(found)
    }
}

/// What the scheduler works with.
#[derive(Clone, Debug)]
pub(crate) struct Scheduler {
    /// The store and clock to promote with.
    pub(crate) client: Client,
    pub(crate) promote_interval: Duration,
    /// How often the queue-depth gauges are sampled (`None`: never).
    pub(crate) queue_depth_interval: Option<Duration>,
    /// Woken when scheduled jobs become available.
    pub(crate) queues: Arc<Queues>,
    /// The kinds this pool has workers for.
    pub(crate) kinds: Arc<[String]>,
    /// Jobs of other kinds waiting longer than this go to the dead set.
    pub(crate) unknown_kind_ttl: Duration,
    /// Where the count of jobs of other kinds still waiting is kept (see
    /// [`Pool::waiting_unknown_kinds`](crate::Pool::waiting_unknown_kinds)).
    pub(crate) unknown_kinds: Arc<AtomicU64>,
    /// Runs the exhausted hook for them.
    pub(crate) hooks: Arc<Hooks>,
}

impl Scheduler {
    /// Makes scheduled jobs whose time has come available, expires jobs of unknown kinds and
    /// samples queue depths.
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        // The first look for unknown kinds waits one interval: it scans every available job,
        // which a pool starting on a large backlog should not pay before its first claims
        // (and a job of an unknown kind waits days before it expires).
        let mut last_kinds_check = tokio::time::Instant::now();
        let mut last_sample: Option<tokio::time::Instant> = None;
        loop {
            self.promote().await?;
            if last_kinds_check.elapsed() >= PRUNE_INTERVAL {
                self.expire_unknown_kinds().await?;
                last_kinds_check = tokio::time::Instant::now();
            }
            if let Some(interval) = self.queue_depth_interval {
                if last_sample.is_none_or(|at| at.elapsed() >= interval) {
                    telemetry::queue_depth(&self.client.queue_stats().await?);
                    last_sample = Some(tokio::time::Instant::now());
                }
            }
            if !tick(&ctx, self.promote_interval).await {
                return Ok(());
            }
        }
    }

    async fn promote(&self) -> Result<(), StoreError> {
        loop {
            let params = JobPromoteParams {
                now: self.client.clock().now(),
                limit: MAINTENANCE_BATCH,
            };
            let promoted = self.client.store().job_promote_scheduled(params).await?;
            if promoted > 0 {
                tracing::debug!(promoted, "scheduled jobs are now available");
                self.queues.wake_all();
            }
            if promoted < MAINTENANCE_BATCH as u64 {
                return Ok(());
            }
        }
    }

    /// Moves jobs of kinds this pool does not know, waiting longer than `unknown_kind_ttl`,
    /// to the dead set, and reports those still waiting.
    async fn expire_unknown_kinds(&self) -> Result<(), StoreError> {
        if self.kinds.is_empty() {
            return Ok(()); // a pool without workers knows no kind: it expires nothing
        }
        let now = self.client.clock().now();
        let params = JobExpireUnknownKindsParams {
            known: Arc::clone(&self.kinds),
            waiting_since: now - self.unknown_kind_ttl,
            now,
            limit: MAINTENANCE_BATCH,
        };
        let outcome = self.client.store().job_expire_unknown_kinds(params).await?;
        self.unknown_kinds.store(outcome.waiting, Ordering::Relaxed);
        telemetry::unknown_kinds_waiting(outcome.waiting);
        if outcome.waiting > 0 {
            tracing::warn!(waiting = outcome.waiting, known = ?self.kinds,
                "jobs of kinds this pool has no worker for are waiting for a process that knows them");
        }
        for job in outcome.dead {
            tracing::error!(job_id = %job.id, kind = %job.kind,
                "no process claimed this job's kind within unknown_kind_ttl; moved to the dead set");
            self.hooks.exhausted(job);
        }
        Ok(())
    }
}

/// What the pruner works with.
#[derive(Clone, Debug)]
pub(crate) struct Pruner {
    /// The store and clock to prune with.
    pub(crate) client: Client,
    /// Completed and cancelled jobs are pruned this long after they finished.
    pub(crate) retention: Duration,
}

impl Pruner {
    /// Deletes completed and cancelled jobs older than the retention: batch after batch while
    /// batches come back full, so it keeps pace with any rate of finished jobs, then once per
    /// [`PRUNE_INTERVAL`]. It is a child of its own, so a long backlog never delays promotions.
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        loop {
            while self.prune_batch().await? >= PRUNE_BATCH as u64 {
                if ctx.is_cancelled() {
                    return Ok(());
                }
                // Let the pool's other tasks (claims, finishes) run between batches.
                tokio::task::yield_now().await;
            }
            if !tick(&ctx, PRUNE_INTERVAL).await {
                return Ok(());
            }
        }
    }

    /// One prune round trip; returns how many jobs it deleted.
    async fn prune_batch(&self) -> Result<u64, StoreError> {
        let params = JobPruneParams {
            states: vec![JobState::Completed, JobState::Cancelled],
            finalized_before: self.client.clock().now() - self.retention,
            limit: PRUNE_BATCH,
        };
        let pruned = self.client.store().job_prune(params).await?;
        if pruned > 0 {
            tracing::debug!(pruned, "pruned finished jobs");
        }
        Ok(pruned)
    }
}

/// What the listener works with.
#[derive(Clone, Debug)]
pub(crate) struct Listener {
    /// The store to listen on.
    pub(crate) client: Client,
    /// Woken by the store's wake-ups.
    pub(crate) queues: Arc<Queues>,
}

impl Listener {
    /// Wakes fetchers when the store reports new jobs (PostgreSQL NOTIFY, in-process
    /// channel, SQLite's `data_version`; [`ANY_QUEUE`] wakes them all). Stores without wake-ups leave this child idle; fetchers poll.
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        let Some(mut listener) = self.client.store().listen().await? else {
            ctx.cancelled().await;
            return Ok(());
        };
        // Jobs may have arrived while no listener was open.
        self.queues.wake_all();
        loop {
            let queue = tokio::select! {
                queue = listener.next() => queue?,
                () = ctx.cancelled() => return Ok(()),
            };
            if queue == ANY_QUEUE {
                self.queues.wake_all();
            } else if let Some(state) = self.queues.get(&queue) {
                state.wake.notify_one();
            }
        }
    }
}
