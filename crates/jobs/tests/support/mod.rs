//! Helpers shared by the engine tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
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
        metadata: Default::default(),
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

/// The fault-injecting store, as the testing kit offers it to users.
#[allow(unused_imports)] // not every test binary uses it
pub use jobs::testing::FlakyStore;
