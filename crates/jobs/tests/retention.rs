//! Retention keeps pace: a backlog of finished jobs past their retention is pruned in one
//! pass, in bounded batches, on paused time and the in-memory store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jobs::{EnqueueOptions, JobArgs, JobContext, JobError, JobState, PoolConfig, Worker};
use serde::{Deserialize, Serialize};

mod support;
use support::*;

#[derive(Serialize, Deserialize)]
struct Tick(u32);
impl JobArgs for Tick {
    const KIND: &'static str = "tick";
}

struct TickWorker(Arc<AtomicUsize>);
impl Worker for TickWorker {
    type Args = Tick;
    async fn perform(&self, _ctx: JobContext, _args: Tick) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_backlog_of_finished_jobs_past_retention_is_pruned_in_one_pass() {
    const JOBS: u32 = 40_000;
    let store = memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let config = PoolConfig {
        retention: Duration::from_secs(1),
        ..PoolConfig::default()
    };
    let pool = pool_on(&store)
        .config(config)
        .register(TickWorker(runs.clone()))
        .start()
        .await
        .unwrap();
    pool.client()
        .enqueue_many((0..JOBS).map(Tick), EnqueueOptions::new())
        .await
        .unwrap();
    // The first pruning pass found nothing old enough; the next comes a minute later.
    wait_for(|| async { runs.load(Ordering::Relaxed) }, JOBS as usize).await;
    assert!(count(&store, JobState::Completed).await > 0);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        count(&store, JobState::Completed).await,
        0,
        "every completed job past its retention is gone after one pass"
    );
    assert!(pool.shutdown().await.clean);
}
