//! The heartbeat: renews the leases of every claimed job, and stops runs whose lease was
//! taken over (they were rescued while this process was frozen or partitioned). On a
//! multi-threaded runtime it runs on the lease keeper's thread (see [`keeper`]), with the
//! watchdog that reports jobs blocking their thread, so blocked threads cannot starve it.

use std::sync::Arc;
use std::time::Duration;

use supervisor::{ChildContext, ChildError};
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::pool::books::Books;
use crate::pool::{keeper, watchdog};
use crate::store::{JobHeartbeatParams, StoreError};

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
    /// heartbeats go on through the shutdown grace period), on the lease keeper's runtime
    /// when there is one.
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        let stop = ctx.token().child_token();
        let Some(keeper) = keeper::keeper() else {
            // One runtime thread: a job blocking it blocks a watchdog too, so none runs.
            return Ok(self.beats(&stop).await?);
        };
        // Stops the keeper's task too if this child is aborted.
        let _stop_on_exit = stop.clone().drop_guard();
        match keeper.spawn(self.keep(stop)).await {
            Ok(kept) => Ok(kept?),
            Err(join) => {
                Err(format!("the heartbeat on the lease keeper's thread failed: {join}").into())
            }
        }
    }

    /// Heartbeats and the watchdog until `stop` (on the lease keeper's thread); a store
    /// error ends both.
    async fn keep(self, stop: CancellationToken) -> Result<(), StoreError> {
        tokio::select! {
            kept = self.beats(&stop) => kept,
            () = watchdog::watch(&self.books, &stop) => Ok(()),
        }
    }

    /// Heartbeats every `interval` until `stop`.
    async fn beats(&self, stop: &CancellationToken) -> Result<(), StoreError> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop.cancelled() => return Ok(()),
            }
            self.beat().await?;
        }
    }

    async fn beat(&self) -> Result<(), StoreError> {
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
