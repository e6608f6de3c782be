//! Helpers shared by the engine tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use jobs::store::*;
use jobs::*;

pub fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// A pool builder on `store` with a clock that follows paused tokio time.
pub fn pool_on(store: &Arc<dyn Store>) -> PoolBuilder {
    Pool::builder(Arc::clone(store)).clock(Clock::tokio())
}

/// Polls `probe` (on paused time, so this costs no wall time) until it reaches `want`.
pub async fn wait_for<F, Fut>(probe: F, want: usize)
where
    F: Fn() -> Fut,
    Fut: Future<Output = usize>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let got = probe().await;
        if got >= want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 600 s for {want}, have {got}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn count(store: &Arc<dyn Store>, state: JobState) -> usize {
    store
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|q| q.count(state) as usize)
        .sum()
}

pub async fn job(store: &Arc<dyn Store>, id: JobId) -> JobRecord {
    store.job_get(id).await.unwrap().expect("the job exists")
}

/// Inserts a job without the typed client (as another program might).
pub async fn insert_raw(store: &Arc<dyn Store>, kind: &str, args: serde_json::Value) -> JobId {
    let job = NewJob {
        kind: kind.into(),
        args,
        queue: DEFAULT_QUEUE.into(),
        priority: 0,
        max_attempts: 5,
        run_at: None,
    };
    store
        .job_insert_many(JobInsertParams {
            jobs: vec![job],
            now: Timestamp::now(),
        })
        .await
        .unwrap()[0]
}

type Hook = Arc<dyn Fn(JobRecord) -> BoxFuture<'static, ()> + Send + Sync>;

/// An exhausted hook that collects the jobs it gets.
pub fn dead_hook() -> (
    impl Fn(JobRecord) -> BoxFuture<'static, ()> + Clone + Send + Sync + 'static,
    Arc<Mutex<Vec<JobRecord>>>,
) {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let sink = dead.clone();
    let hook: Hook = Arc::new(move |job| {
        sink.lock().unwrap().push(job);
        Box::pin(async {})
    });
    (move |job| hook(job), dead)
}

/// A store that fails every call while switched on (a lost database), counting calls; and
/// that can lose the reply of one finish write after applying it (a connection cut between
/// the commit and its acknowledgement).
#[derive(Debug)]
pub struct FlakyStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    lose_finish_reply: AtomicBool,
    hang_heartbeats: AtomicBool,
    calls: AtomicUsize,
}

impl FlakyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FlakyStore {
            inner,
            failing: AtomicBool::new(false),
            lose_finish_reply: AtomicBool::new(false),
            hang_heartbeats: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        }
    }

    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// The next `job_finish_many` is applied, then reported failed.
    pub fn lose_next_finish_reply(&self) {
        self.lose_finish_reply.store(true, Ordering::SeqCst);
    }

    /// Heartbeats sent from now on never answer (a hung connection, a frozen network).
    pub fn hang_heartbeats(&self, on: bool) {
        self.hang_heartbeats.store(on, Ordering::SeqCst);
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn gate(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("connection refused (test)".into()))
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
                return Err(StoreError::Unavailable(
                    "connection lost after the commit (test)".into(),
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
    forward!(job_checkpoint, JobCheckpointParams, bool);
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
