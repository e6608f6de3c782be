//! The heartbeat: renews the leases of every claimed job, and stops runs whose lease was
//! taken over (they were rescued while this process was frozen or partitioned).

use std::sync::Arc;

use supervisor::{ChildContext, ChildError};

use crate::pool::shared::Shared;
use crate::store::JobHeartbeatParams;

/// Leases renewed per round trip.
const HEARTBEAT_BATCH: usize = 1_000;

/// Renews leases every `heartbeat_interval` until stopped (it stops after the executor, so
/// heartbeats go on through the shutdown grace period).
pub(crate) async fn run(shared: Arc<Shared>, ctx: ChildContext) -> Result<(), ChildError> {
    loop {
        tokio::select! {
            () = tokio::time::sleep(shared.config.heartbeat_interval) => {}
            () = ctx.cancelled() => return Ok(()),
        }
        beat(&shared).await?;
    }
}

async fn beat(shared: &Shared) -> Result<(), ChildError> {
    let runs = shared.running_runs();
    for chunk in runs.chunks(HEARTBEAT_BATCH) {
        let params = JobHeartbeatParams {
            owner: shared.worker_id.clone(),
            leases: chunk.iter().map(|run| run.lease).collect(),
            lease_ttl: shared.config.lease_ttl,
            now: shared.client.clock().now(),
        };
        let held = shared.store().job_heartbeat_many(params).await?;
        for (run, held) in chunk.iter().zip(held) {
            if !held && !run.lease_lost() {
                tracing::warn!(job_id = %run.record.id, "lease lost; stopping the run");
                run.lose_lease();
            }
        }
    }
    Ok(())
}
