//! The fetcher of one queue: claims jobs in batches while the queue has room.

use std::sync::Arc;

use supervisor::{ChildContext, ChildError};

use crate::context::RunState;
use crate::pool::shared::{QueueState, Shared};
use crate::store::JobClaimParams;

/// Claims jobs for `queue` until shutdown or drain. A store error (logged by the store facade)
/// ends the child with that error: its supervisor restarts it after a delay. A claim in flight is never cancelled
/// midway (that could orphan claimed jobs until their lease expires).
pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: Arc<QueueState>,
    ctx: ChildContext,
) -> Result<(), ChildError> {
    loop {
        if shared.stop_fetching.is_cancelled() || ctx.is_cancelled() {
            // Drained: stay idle until stopped, so a permanent child is not restarted.
            ctx.cancelled().await;
            return Ok(());
        }
        let room = queue.claim_room(&shared.config);
        if room == 0 {
            tokio::select! {
                () = queue.room.notified() => {}
                () = shared.stop_fetching.cancelled() => {}
                () = ctx.cancelled() => {}
            }
            continue;
        }
        let claimed = claim(&shared, &queue, room).await?;
        if claimed < room {
            tokio::select! {
                () = queue.wake.notified() => {}
                () = tokio::time::sleep(shared.config.poll_interval) => {}
                () = shared.stop_fetching.cancelled() => {}
                () = ctx.cancelled() => {}
            }
        }
    }
}

/// One claim round trip; returns how many jobs it got.
async fn claim(
    shared: &Arc<Shared>,
    queue: &QueueState,
    limit: usize,
) -> Result<usize, ChildError> {
    let params = JobClaimParams {
        queue: queue.name.clone(),
        owner: shared.worker_id.clone(),
        limit,
        lease_ttl: shared.config.lease_ttl,
        now: shared.client.clock().now(),
    };
    let claimed = shared.store().job_claim(params).await?;
    let count = claimed.len();
    for job in claimed {
        tracing::debug!(job_id = %job.record.id, queue = %queue.name, "claimed");
        let run = RunState::new(
            job.record,
            job.lease,
            shared.shutdown.clone(),
            shared.hard_stop.clone(),
            shared.client.clone(),
            shared.config.lease_ttl,
            shared.config.checkpoint_interval,
        );
        shared.admit(queue, Arc::new(run));
    }
    Ok(count)
}
