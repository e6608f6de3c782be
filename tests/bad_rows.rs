//! A row that cannot be read, in one claim batch with 40 good jobs, on SQLite and PostgreSQL:
//! the 40 complete, the bad one goes to the dead set with a reason naming its row, and the
//! exhausted hook sees it once. (Before, the whole batch failed to decode at every claim and
//! was rescued again and again, until innocent jobs died as poison pills.)
//!
//! The PostgreSQL case needs `JOBS_TEST_DATABASE_URL` (skipped with a notice otherwise,
//! failed under `JOBS_TEST_REQUIRE_POSTGRES=1`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs::store::Store;
use jobs::{JobArgs, JobContext, JobError, JobId, JobRecord, JobState, Pool, Worker};
use jobs_postgres_testkit as testkit;
use serde::{Deserialize, Serialize};
use sqlx::{ConnectOptions, Connection};

const GOOD: usize = 40;

#[derive(Serialize, Deserialize)]
struct Count(usize);

impl JobArgs for Count {
    const KIND: &'static str = "count";
}

struct Counter(Arc<AtomicUsize>);

impl Worker for Counter {
    type Args = Count;
    async fn perform(&self, _ctx: JobContext, _args: Count) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Args nested deeper than serde_json reads back (its limit is 128 levels).
fn too_deep() -> String {
    format!("{}1{}", "[".repeat(200), "]".repeat(200))
}

/// Enqueues 41 jobs, lets `damage` make one row unreadable, runs a pool until all 41 are
/// finished and checks what became of them.
async fn one_bad_row_among_good_ones<F, Fut>(store: Arc<dyn Store>, damage: F)
where
    F: FnOnce(JobId) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let client = jobs::Client::new(Arc::clone(&store));
    let ids = client
        .enqueue_many((0..=GOOD).map(Count), jobs::EnqueueOptions::new())
        .await
        .expect("enqueue");
    let bad = ids[GOOD / 2];
    damage(bad).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let hooked: Arc<Mutex<Vec<JobRecord>>> = Arc::default();
    let sink = Arc::clone(&hooked);
    let pool = Pool::builder(Arc::clone(&store))
        .register(Counter(Arc::clone(&ran)))
        .queue(jobs::DEFAULT_QUEUE, 64)
        .on_exhausted(move |job| {
            sink.lock().unwrap().push(job);
            async {}
        })
        .start()
        .await
        .expect("pool");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ran.load(Ordering::SeqCst) < GOOD || hooked.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "ran {ran:?}, hooked {hooked:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(pool.shutdown().await.clean);
    assert_eq!(ran.load(Ordering::SeqCst), GOOD, "every good job ran once");
    let hooked = hooked.lock().unwrap().clone();
    assert_eq!(hooked.len(), 1, "the hook ran once: {hooked:?}");
    assert_eq!(hooked[0].id, bad);
    let reason = &hooked[0].errors.last().expect("the reason").message;
    assert!(reason.contains(&format!("job {bad}")), "{reason}");
    assert!(reason.contains("cannot be read"), "{reason}");
    let stats = client.queue_stats().await.expect("stats");
    let default = stats
        .iter()
        .find(|s| s.queue == jobs::DEFAULT_QUEUE)
        .expect("queue");
    assert_eq!(
        (default.completed, default.dead),
        (GOOD as u64, 1),
        "{default:?}"
    );
    for id in ids.iter().filter(|id| **id != bad) {
        let job = client.job(*id).await.expect("get").expect("exists");
        assert_eq!(job.state, JobState::Completed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_bad_row_goes_dead_and_the_batch_runs() {
    let path = std::env::temp_dir().join(format!("jobs-bad-rows-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let store = Arc::new(jobs_sqlite::SqliteStore::open(&path).await.expect("open"));
    let raw_path = path.clone();
    one_bad_row_among_good_ones(store.clone(), |bad| async move {
        let mut raw = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&raw_path)
            .connect()
            .await
            .expect("raw connection");
        sqlx::query("UPDATE jobs SET args = ?1 WHERE id = ?2")
            .bind(too_deep())
            .bind(bad.0)
            .execute(&mut raw)
            .await
            .expect("damage the row");
        raw.close().await.expect("close");
    })
    .await;
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_bad_row_goes_dead_and_the_batch_runs() {
    let Some(store) = testkit::fresh_store("bad_rows").await else {
        return;
    };
    let pool = store.pool().clone();
    let table = format!("{}.jobs", store.schema().quoted());
    one_bad_row_among_good_ones(Arc::new(store.clone()), |bad| async move {
        sqlx::query(&format!(
            "UPDATE {table} SET args = $1::jsonb WHERE id = $2"
        ))
        .bind(too_deep())
        .bind(bad.0)
        .execute(&pool)
        .await
        .expect("damage the row");
    })
    .await;
    store.close().await;
}
