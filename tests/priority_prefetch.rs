//! Prefetch never delays priority (issue 9 item 13): behind 10,000 waiting priority-0 jobs,
//! with a pool of concurrency C whose local buffer is full of prefetched jobs, a newly
//! enqueued priority-10 job starts after at most C other starts, on the memory store (paused
//! time) and on SQLite.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::store::Store;
use jobs::{Clock, EnqueueOptions, JobArgs, JobContext, JobError, Pool, PoolConfig, Worker};
use serde::{Deserialize, Serialize};

const CONCURRENCY: usize = 10;
const WAITING: u64 = 10_000;
const URGENT: u64 = u64::MAX;

#[derive(Serialize, Deserialize)]
struct Work(u64);
impl JobArgs for Work {
    const KIND: &'static str = "work";
}

/// Records the order jobs start in, then works for 20 ms.
struct Recorder(Arc<Mutex<Vec<u64>>>);
impl Worker for Recorder {
    type Args = Work;
    async fn perform(&self, _ctx: JobContext, Work(n): Work) -> Result<(), JobError> {
        self.0.lock().unwrap().push(n);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(())
    }
}

/// How many other jobs started between the urgent job's enqueue and its start.
async fn starts_before_the_urgent_job(store: Arc<dyn Store>, clock: Clock) -> usize {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let config = PoolConfig {
        // Count these 20 ms jobs as short, so the pool prefetches (100 jobs by default).
        prefetch_max_job_time: Duration::from_secs(1),
        ..PoolConfig::default()
    };
    let pool = Pool::builder(store)
        .clock(clock)
        .config(config)
        .queue("default", CONCURRENCY)
        .register(Recorder(starts.clone()))
        .start()
        .await
        .unwrap();
    let client = pool.client();
    client
        .enqueue_many((0..WAITING).map(Work), EnqueueOptions::new())
        .await
        .unwrap();
    // Steady state: the buffer holds running and prefetched jobs.
    while starts.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = starts.lock().unwrap().len();
    client
        .enqueue_with(&Work(URGENT), EnqueueOptions::new().priority(10))
        .await
        .unwrap();
    let started_at = loop {
        if let Some(at) = starts.lock().unwrap().iter().position(|n| *n == URGENT) {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    pool.skip_grace();
    let _ = pool.shutdown().await;
    let others = started_at - before;
    println!("{others} other jobs started before the urgent one");
    others
}

#[tokio::test(start_paused = true)]
async fn memory_an_urgent_job_starts_after_at_most_concurrency_others() {
    let others =
        starts_before_the_urgent_job(Arc::new(jobs::MemoryStore::new()), Clock::tokio()).await;
    assert!(
        others <= CONCURRENCY,
        "{others} jobs started between the urgent job's enqueue and its start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_urgent_job_starts_after_at_most_concurrency_others() {
    let dir = std::env::temp_dir().join(format!("jobs-priority-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = jobs_sqlite::SqliteStore::open(dir.join("jobs.db"))
        .await
        .unwrap();
    let others = starts_before_the_urgent_job(Arc::new(store), Clock::System).await;
    assert!(
        others <= CONCURRENCY,
        "{others} jobs started between the urgent job's enqueue and its start"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
