//! A store closed under a running pool (the database went away for good): the pool keeps
//! running without a hot loop, shuts down within its bound, and loses no job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::store::Store;
use jobs::{Client, EnqueueOptions, JobArgs, JobContext, JobError, JobState, Pool, Worker};
use jobs_sqlite::SqliteStore;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Slow;
impl JobArgs for Slow {
    const KIND: &'static str = "slow";
}

struct SlowWorker;
impl Worker for SlowWorker {
    type Args = Slow;
    async fn perform(&self, ctx: JobContext, _args: Slow) -> Result<(), JobError> {
        ctx.stopping().await;
        Err(JobError::Interrupted)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_database_never_takes_the_pool_down_nor_loses_jobs() {
    let dir = std::env::temp_dir().join(format!("jobs-closed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jobs.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let client = Client::new(store.clone());
    client
        .enqueue_many((0..20).map(|_| Slow), EnqueueOptions::new())
        .await
        .unwrap();
    let pool = Pool::builder(store.clone())
        .register(SlowWorker)
        .start()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.busy() < 10 {
        assert!(Instant::now() < deadline, "the pool did not claim");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.close().await;
    let error = client.enqueue(&Slow).await.unwrap_err();
    assert!(
        matches!(error, jobs::EnqueueError::Store(jobs::StoreError::Closed)),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pool.supervisor().is_finished(),
        "the pool survives a closed store"
    );

    let started = Instant::now();
    let report = pool.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(26),
        "within the shutdown bound"
    );
    assert!(
        !report.clean,
        "the releases could not be written: not clean"
    );

    // Reopened (the database came back): every job is still there, none finished or lost;
    // the ten that were running are rescued once their lease expires.
    let reopened = SqliteStore::open(&path).await.unwrap();
    let stats = reopened.queue_stats().await.unwrap();
    let count = |state| stats.iter().map(|q| q.count(state)).sum::<u64>();
    assert_eq!(count(JobState::Running) + count(JobState::Available), 20);
    assert_eq!(count(JobState::Running), 10);
}
