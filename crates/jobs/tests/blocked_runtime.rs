//! Jobs that block their threads (`std::thread::sleep` in async code) on a small
//! multi-threaded runtime: no lease in the process runs out, every job runs once, and the
//! blocking jobs are reported by id.
//!
//! This test needs real threads blocked in real time, so it runs on the wall clock (about
//! 4 s): paused time cannot stand in for a thread that does not return.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::{
    Clock, EnqueueOptions, JobArgs, JobContext, JobError, JobState, MemoryStore, Pool, PoolConfig,
    Worker,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Block;
impl JobArgs for Block {
    const KIND: &'static str = "block";
}

/// Blocks its thread (what must not be done in async code, and what happens anyway).
struct BlockWorker(Arc<AtomicUsize>);
impl Worker for BlockWorker {
    type Args = Block;
    async fn perform(&self, _ctx: JobContext, _args: Block) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(4));
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Wait;
impl JobArgs for Wait {
    const KIND: &'static str = "wait";
}

/// A well-behaved job that waits asynchronously.
struct WaitWorker(Arc<AtomicUsize>);
impl Worker for WaitWorker {
    type Args = Wait;
    async fn perform(&self, _ctx: JobContext, _args: Wait) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    }
}

/// Log lines, for the warnings.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);
impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_block_every_thread_do_not_lose_anyones_lease() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .init();
    let store: Arc<dyn jobs::store::Store> = Arc::new(MemoryStore::new());
    let (blocks, waits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let config = PoolConfig {
        lease_ttl: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(500),
        rescue_interval: Duration::from_millis(500),
        ..PoolConfig::default()
    };
    let pool = Pool::builder(Arc::clone(&store))
        .clock(Clock::tokio())
        .config(config)
        .queue("default", 10)
        .register(BlockWorker(blocks.clone()))
        .register(WaitWorker(waits.clone()))
        .start()
        .await
        .unwrap();
    let client = pool.client();
    let waiting = client
        .enqueue_many((0..8).map(|_| Wait), EnqueueOptions::new())
        .await
        .unwrap();
    // Let the waiting jobs start, then block both threads of the runtime.
    while waits.load(Ordering::SeqCst) < 8 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let blocking = client
        .enqueue_many((0..2).map(|_| Block), EnqueueOptions::new())
        .await
        .unwrap();
    let all: Vec<_> = waiting.iter().chain(&blocking).copied().collect();
    for _ in 0..200 {
        let mut done = 0;
        for id in &all {
            if store.job_get(*id).await.unwrap().unwrap().state == JobState::Completed {
                done += 1;
            }
        }
        if done == all.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &all {
        let job = store.job_get(*id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed, "{id} finished");
        assert_eq!(job.rescues, 0, "{id}: its lease never ran out");
        assert_eq!(job.claims, 1, "{id} was claimed once");
    }
    assert_eq!(
        blocks.load(Ordering::SeqCst),
        2,
        "each blocking job ran once"
    );
    assert_eq!(waits.load(Ordering::SeqCst), 8, "each waiting job ran once");
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for id in &blocking {
        assert!(
            logged
                .lines()
                .any(|line| line.contains("blocked its thread")
                    && line.contains(&format!("job_id={id}"))),
            "the blocking job {id} is reported: {logged}"
        );
    }
    assert!(pool.shutdown().await.clean);
}
