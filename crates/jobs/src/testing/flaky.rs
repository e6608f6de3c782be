//! [`FlakyStore`]: a store wrapper that injects the failures a real database has.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::job::{JobId, JobRecord};
use crate::store::{
    ClaimedJob, JobCancelParams, JobCheckpointParams, JobClaimParams, JobFinishParams,
    JobHeartbeatParams, JobInsertParams, JobListParams, JobPromoteParams, JobPruneParams,
    JobRescueParams, JobRetryParams, QueueStats, RescueOutcome, Store, StoreError,
};

/// A store that fails every call while switched on (a lost database), counts calls, and can
/// lose the reply of one finish write after applying it (a connection cut between the commit
/// and its acknowledgement). The project's own engine tests use it to check that a pool
/// rides out an outage; use it the same way for your pool setup. It has no wake-up
/// listener, so a pool on it polls.
///
/// ```
/// use std::sync::Arc;
/// use jobs::testing::FlakyStore;
/// use jobs::{Client, MemoryStore};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Ping;
/// # impl jobs::JobArgs for Ping { const KIND: &'static str = "ping"; }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Arc::new(FlakyStore::new(Arc::new(MemoryStore::new())));
/// let client = Client::new(store.clone());
/// store.fail(true);
/// assert!(client.enqueue(&Ping).await.is_err());
/// store.fail(false);
/// assert!(client.enqueue(&Ping).await.is_ok());
/// assert_eq!(store.calls(), 2);
/// # }
/// ```
#[derive(Debug)]
pub struct FlakyStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    lose_finish_reply: AtomicBool,
    hang_heartbeats: AtomicBool,
    hang_checkpoints: AtomicBool,
    calls: AtomicUsize,
}

impl FlakyStore {
    /// Wraps `inner`, passing every call through until told otherwise.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FlakyStore {
            inner,
            failing: AtomicBool::new(false),
            lose_finish_reply: AtomicBool::new(false),
            hang_heartbeats: AtomicBool::new(false),
            hang_checkpoints: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        }
    }

    /// While `on`, every call fails with a transient [`StoreError::Unavailable`].
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// The next `job_finish_many` is applied, then reported failed.
    pub fn lose_next_finish_reply(&self) {
        self.lose_finish_reply.store(true, Ordering::SeqCst);
    }

    /// Heartbeats sent from now on never answer (a hung connection, a frozen network), until
    /// switched off again.
    pub fn hang_heartbeats(&self, on: bool) {
        self.hang_heartbeats.store(on, Ordering::SeqCst);
    }

    /// Checkpoint writes sent from now on never answer (and are never applied), until
    /// switched off again; those sent after that pass.
    pub fn hang_checkpoints(&self, on: bool) {
        self.hang_checkpoints.store(on, Ordering::SeqCst);
    }

    /// How many calls reached this store.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn gate(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::unavailable("connection refused (test)"))
        } else {
            Ok(())
        }
    }
}

macro_rules! forward {
    ($name:ident, $params:ty, $out:ty) => {
        fn $name(&self, params: $params) -> BoxFuture<'_, Result<$out, StoreError>> {
            Box::pin(async move {
                self.gate()?;
                self.inner.$name(params).await
            })
        }
    };
}

impl Store for FlakyStore {
    fn name(&self) -> &'static str {
        "flaky"
    }
    forward!(job_insert_many, JobInsertParams, Vec<JobId>);
    forward!(job_claim, JobClaimParams, Vec<ClaimedJob>);
    fn job_finish_many(
        &self,
        params: JobFinishParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            self.gate()?;
            let applied = self.inner.job_finish_many(params).await?;
            if self.lose_finish_reply.swap(false, Ordering::SeqCst) {
                return Err(StoreError::unavailable(
                    "connection lost after the commit (test)",
                ));
            }
            Ok(applied)
        })
    }
    fn job_heartbeat_many(
        &self,
        params: JobHeartbeatParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            self.gate()?;
            if self.hang_heartbeats.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            self.inner.job_heartbeat_many(params).await
        })
    }
    fn job_checkpoint(
        &self,
        params: JobCheckpointParams,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.gate()?;
            if self.hang_checkpoints.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            self.inner.job_checkpoint(params).await
        })
    }
    forward!(job_rescue_expired, JobRescueParams, RescueOutcome);
    forward!(job_promote_scheduled, JobPromoteParams, u64);
    forward!(job_get, JobId, Option<JobRecord>);
    forward!(job_list, JobListParams, Vec<JobRecord>);
    forward!(job_retry, JobRetryParams, bool);
    forward!(job_cancel, JobCancelParams, bool);
    forward!(job_prune, JobPruneParams, u64);
    fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.queue_stats().await
        })
    }
}
