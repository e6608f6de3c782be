//! The heartbeat: renews the leases of every claimed job, and stops runs whose lease was
//! taken over (they were rescued while this process was frozen or partitioned).

use std::sync::Arc;
use std::time::Duration;

use supervisor::{ChildContext, ChildError};

use crate::client::Client;
use crate::pool::books::Books;
use crate::store::JobHeartbeatParams;

/// Leases renewed per round trip.
const HEARTBEAT_BATCH: usize = 1_000;

/// What the heartbeat works with.
#[derive(Clone, Debug)]
pub(crate) struct Heartbeat {
    /// The claimed runs whose leases it renews.
    pub(crate) books: Arc<Books>,
    /// The store and clock to renew with.
    pub(crate) client: Client,
    /// The lease owner the renewals are fenced with.
    pub(crate) owner: Arc<str>,
    /// The lease length each renewal grants from now.
    pub(crate) lease_ttl: Duration,
    pub(crate) interval: Duration,
}

impl Heartbeat {
    /// Renews leases every `interval` until stopped (it stops after the executor, so
    /// heartbeats go on through the shutdown grace period).
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = ctx.cancelled() => return Ok(()),
            }
            self.beat().await?;
        }
    }

    async fn beat(&self) -> Result<(), ChildError> {
        let runs = self.books.running_runs();
        for chunk in runs.chunks(HEARTBEAT_BATCH) {
            let sent = tokio::time::Instant::now();
            let params = JobHeartbeatParams {
                owner: self.owner.to_string(),
                leases: chunk.iter().map(|run| run.lease).collect(),
                lease_ttl: self.lease_ttl,
                now: self.client.clock().now(),
            };
            let held = self.client.store().job_heartbeat_many(params).await?;
            for (run, held) in chunk.iter().zip(held) {
                if held {
                    run.lease_renewed(sent);
                } else if !run.lease_lost() {
                    tracing::warn!(job_id = %run.record.id, "lease lost; stopping the run");
                    run.lose_lease();
                }
            }
        }
        Ok(())
    }
}
