//! The pool's background duties: rescuing expired leases, promoting scheduled jobs, pruning
//! old finished jobs, and listening for wake-ups. Each is a supervised child; a store error
//! (logged by the store facade) ends it and its supervisor restarts it after a delay.

use std::sync::Arc;
use std::time::Duration;

use supervisor::{ChildContext, ChildError};

use crate::job::JobState;
use crate::pool::shared::Shared;
use crate::store::{JobPromoteParams, JobPruneParams, JobRescueParams, StoreError};

/// Jobs per rescue, promote or prune round trip.
const MAINTENANCE_BATCH: usize = 1_000;
/// How often old finished jobs are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Sleeps `period`; `false` if the child was stopped meanwhile.
async fn tick(ctx: &ChildContext, period: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => true,
        () = ctx.cancelled() => false,
    }
}

/// Returns jobs whose lease expired (their worker died or froze) to their queue, and moves
/// poison pills to the dead set.
pub(crate) async fn rescuer(shared: Arc<Shared>, ctx: ChildContext) -> Result<(), ChildError> {
    loop {
        loop {
            let params = JobRescueParams {
                now: shared.client.clock().now(),
                max_rescues: shared.config.max_rescues,
                limit: MAINTENANCE_BATCH,
            };
            let rescued = shared.store().job_rescue_expired(params).await?;
            let found = rescued.requeued.len() + rescued.dead.len();
            if !rescued.requeued.is_empty() {
                tracing::warn!(jobs = ?rescued.requeued, "rescued jobs whose lease expired");
                shared.wake_all();
            }
            for job in rescued.dead {
                shared.exhausted(job);
            }
            if found < MAINTENANCE_BATCH {
                break;
            }
        }
        if !tick(&ctx, shared.config.rescue_interval).await {
            return Ok(());
        }
    }
}

/// Makes scheduled jobs whose time has come available, and prunes old finished jobs.
pub(crate) async fn scheduler(shared: Arc<Shared>, ctx: ChildContext) -> Result<(), ChildError> {
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        promote(&shared).await?;
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
            prune(&shared).await?;
            last_prune = Some(tokio::time::Instant::now());
        }
        if !tick(&ctx, shared.config.promote_interval).await {
            return Ok(());
        }
    }
}

async fn promote(shared: &Shared) -> Result<(), StoreError> {
    loop {
        let params = JobPromoteParams {
            now: shared.client.clock().now(),
            limit: MAINTENANCE_BATCH,
        };
        let promoted = shared.store().job_promote_scheduled(params).await?;
        if promoted > 0 {
            tracing::debug!(promoted, "scheduled jobs are now available");
            shared.wake_all();
        }
        if promoted < MAINTENANCE_BATCH as u64 {
            return Ok(());
        }
    }
}

async fn prune(shared: &Shared) -> Result<(), StoreError> {
    let params = JobPruneParams {
        states: vec![JobState::Completed, JobState::Cancelled],
        finalized_before: shared.client.clock().now() - shared.config.retention,
        limit: MAINTENANCE_BATCH * 10,
    };
    let pruned = shared.store().job_prune(params).await?;
    if pruned > 0 {
        tracing::debug!(pruned, "pruned finished jobs");
    }
    Ok(())
}

/// Wakes fetchers when the store reports new jobs (PostgreSQL NOTIFY, in-process channel).
/// Stores without wake-ups leave this child idle; fetchers poll.
pub(crate) async fn listener(shared: Arc<Shared>, ctx: ChildContext) -> Result<(), ChildError> {
    let Some(mut listener) = shared.store().listen().await? else {
        ctx.cancelled().await;
        return Ok(());
    };
    // Jobs may have arrived while no listener was open.
    shared.wake_all();
    loop {
        let queue = tokio::select! {
            queue = listener.next() => queue?,
            () = ctx.cancelled() => return Ok(()),
        };
        if let Some(state) = shared.queue(&queue) {
            state.wake.notify_one();
        }
    }
}
