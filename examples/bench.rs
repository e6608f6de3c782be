//! The job throughput benchmark of `shared/BENCHMARKS-PROTOCOL.md`.
//!
//! ```text
//! cargo run --release --example bench -- --store sqlite [--jobs 20000] [--runs 3] [--workers 10]
//! cargo run --release --example bench -- --store memory
//! JOBS_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo run --release --example bench -- --store postgres
//! ```
//!
//! Per run: empty the store; bulk-enqueue N no-op jobs (enqueue jobs/s); start one pool with
//! concurrency 10 and time until the store itself counts N completed (process jobs/s); then,
//! with the pool idle, enqueue single jobs and time until their handler starts (pickup latency,
//! median of 50 samples with 20-120 ms random gaps). Prints each run, then median and range.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::{Client, EnqueueOptions, JobArgs, JobContext, JobError, JobState, Pool, Store, Worker};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Serialize, Deserialize)]
struct Noop(u64);
impl JobArgs for Noop {
    const KIND: &'static str = "noop";
}

/// Counts runs; for pickup samples, reports when the handler started.
struct NoopWorker {
    runs: Arc<AtomicU64>,
    started: mpsc::UnboundedSender<(u64, Instant)>,
}
impl Worker for NoopWorker {
    type Args = Noop;
    async fn perform(&self, _ctx: JobContext, Noop(n): Noop) -> Result<(), JobError> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        if n >= PICKUP_BASE {
            let _ = self.started.send((n, Instant::now()));
        }
        Ok(())
    }
}

const PICKUP_BASE: u64 = 1 << 40;

struct Options {
    store: String,
    jobs: u64,
    runs: usize,
    workers: usize,
    samples: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        store: "sqlite".into(),
        jobs: 20_000,
        runs: 3,
        workers: 10,
        samples: 50,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => options.store = value()?,
            "--jobs" => options.jobs = value()?.parse().map_err(|e| format!("--jobs: {e}"))?,
            "--runs" => options.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--workers" => {
                options.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?
            }
            "--samples" => {
                options.samples = value()?.parse().map_err(|e| format!("--samples: {e}"))?
            }
            other => return Err(format!("unknown flag {other}; see the file's docs")),
        }
    }
    Ok(options)
}

async fn fresh_store(kind: &str) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    Ok(match kind {
        "memory" => Arc::new(jobs::MemoryStore::new()),
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("jobs-bench-{}.db", std::process::id()));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            Arc::new(jobs_sqlite::SqliteStore::open(&path).await?)
        }
        "postgres" => {
            let url = std::env::var("JOBS_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let schema = jobs_postgres::SchemaName::new("jobs_bench")?;
            let options = jobs_postgres::PostgresOptions::new(&url)?.schema(schema.clone());
            let pool = options.connect_pool().await?;
            sqlx::query("DROP SCHEMA IF EXISTS jobs_bench CASCADE")
                .execute(&pool)
                .await?;
            jobs_postgres::migrate(&pool, &schema).await?;
            Arc::new(jobs_postgres::PostgresStore::open(pool, schema).await?)
        }
        other => return Err(format!("unknown store {other}: memory, sqlite or postgres").into()),
    })
}

struct RunResult {
    enqueue_per_s: f64,
    process_per_s: f64,
    pickup_ms: f64,
}

async fn completed(store: &Arc<dyn Store>) -> Result<u64, jobs::StoreError> {
    Ok(store
        .queue_stats()
        .await?
        .iter()
        .map(|q| q.count(JobState::Completed))
        .sum())
}

async fn one_run(options: &Options) -> Result<RunResult, Box<dyn std::error::Error>> {
    let store = fresh_store(&options.store).await?;
    let client = Client::new(store.clone());

    let started = Instant::now();
    let ids = client
        .enqueue_many((0..options.jobs).map(Noop), EnqueueOptions::new())
        .await?;
    let enqueue = started.elapsed();
    assert_eq!(ids.len() as u64, options.jobs);

    let (tx, mut started_rx) = mpsc::unbounded_channel();
    let runs = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let pool = Pool::builder(store.clone())
        .queue("default", options.workers)
        .register(NoopWorker {
            runs: runs.clone(),
            started: tx,
        })
        .start()
        .await?;
    // Cheap in-process wait until every handler ran, then ask the store (a count over the
    // whole table) until it reports them all completed: batched acknowledgements count.
    while runs.load(Ordering::Relaxed) < options.jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while completed(&store).await? < options.jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let process = started.elapsed();
    let done = completed(&store).await?;
    if done != options.jobs {
        return Err(format!("expected {} completed, the store has {done}", options.jobs).into());
    }

    let mut latencies = Vec::with_capacity(options.samples);
    let seed = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    for i in 0..options.samples as u64 {
        let gap = 20 + next_random(&seed) % 101;
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let sent = Instant::now();
        client.enqueue(&Noop(PICKUP_BASE + i)).await?;
        let (n, at) = started_rx.recv().await.ok_or("pool stopped")?;
        assert_eq!(n, PICKUP_BASE + i);
        latencies.push(at.duration_since(sent).as_secs_f64() * 1000.0);
    }
    pool.shutdown().await;
    Ok(RunResult {
        enqueue_per_s: options.jobs as f64 / enqueue.as_secs_f64(),
        process_per_s: options.jobs as f64 / process.as_secs_f64(),
        pickup_ms: median(&mut latencies),
    })
}

fn next_random(state: &AtomicU64) -> u64 {
    let mut x = state.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.store(x, Ordering::Relaxed);
    x
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn summary(name: &str, values: &mut [f64], unit: &str) {
    let med = median(values);
    println!(
        "  {name:<10} median {med:>12.2} {unit}  (range {:.2} .. {:.2})",
        values[0],
        values[values.len() - 1]
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_args()?;
    println!(
        "store={} jobs={} workers={} runs={} pickup samples={}",
        options.store, options.jobs, options.workers, options.runs, options.samples
    );
    let mut results = Vec::new();
    for run in 1..=options.runs {
        let r = one_run(&options).await?;
        println!(
            "run {run}: enqueue {:>10.0} jobs/s   process {:>10.0} jobs/s   pickup {:>6.2} ms",
            r.enqueue_per_s, r.process_per_s, r.pickup_ms
        );
        results.push(r);
    }
    println!("{} ({} runs):", options.store, options.runs);
    summary(
        "enqueue",
        &mut results.iter().map(|r| r.enqueue_per_s).collect::<Vec<_>>(),
        "jobs/s",
    );
    summary(
        "process",
        &mut results.iter().map(|r| r.process_per_s).collect::<Vec<_>>(),
        "jobs/s",
    );
    summary(
        "pickup",
        &mut results.iter().map(|r| r.pickup_ms).collect::<Vec<_>>(),
        "ms",
    );
    Ok(())
}
