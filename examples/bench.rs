//! The job throughput benchmark of `shared/BENCHMARKS-PROTOCOL.md`.
//!
//! ```text
//! cargo run --release --example bench -- --store sqlite [--jobs 20000] [--runs 3] [--workers 10]
//! cargo run --release --example bench -- --store memory [--metrics]
//! JOBS_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo run --release --example bench -- --store postgres
//!     [--backlog 1000000] [--processes 4] [--explain] [--sync-leases]
//! cargo run --release --example bench -- --store sqlite --cross-process-pickup [--samples 100]
//! cargo run --release --example bench -- --store sqlite --prune [--jobs 200000]
//! ```
//!
//! Per run: empty the store; bulk-enqueue N no-op jobs (enqueue jobs/s); start one pool with
//! concurrency 10 and time until the store itself counts N completed (process jobs/s); then,
//! with the pool idle, enqueue single jobs and time until their handler starts (pickup latency,
//! median of 50 samples with 20-120 ms random gaps). Prints each run, then median and range,
//! with the CPU this process spent per 10,000 processed jobs (user + system, from
//! `/proc/self/stat`: less sensitive to a busy neighbour than jobs/s) and its peak RSS.
//!
//! `--prune` then also deletes the N completed jobs as the pool's pruner does (batches of
//! 5,000 through `job_prune`, until a batch comes back short) and reports the pruning rate.
//!
//! `--metrics` installs a metrics recorder first (`metrics-exporter-prometheus`'s, without its
//! HTTP listener), so every metric the engine records is recorded for real; compare with the
//! same command without it, alternating, to see what telemetry costs.
//!
//! PostgreSQL only:
//!
//! * `--backlog B` first enqueues B more jobs (untimed, priority -1, then `ANALYZE`), so the
//!   N measured jobs are enqueued into, claimed from and completed in a table where B + N jobs
//!   wait; the measured jobs come first (priority 0), and only they are counted. Pickup is not
//!   measured (the pool is busy with the backlog, not idle).
//! * `--processes P` runs the pools in P worker processes (this program, `--worker-process`),
//!   each with `--workers` concurrency, and times from spawning them until the store counts N
//!   completed. Pickup is not measured.
//! * `--sync-leases` makes lease writes (claims, finishes, heartbeats) wait for their WAL
//!   flush ([`jobs_postgres::LeaseCommit::Synchronous`]) instead of the default asynchronous
//!   commit.
//! * `--explain` prints the claim query's `EXPLAIN (ANALYZE, BUFFERS)` (rolled back) once the
//!   first run's jobs are enqueued.
//!
//! SQLite only: `--cross-process-pickup` measures pickup across processes instead: one worker
//! process (this program, `--worker-process`) runs an idle pool on a fresh file, and this
//! process enqueues single jobs into the same file (20-120 ms random gaps) and times until
//! the worker process's handler starts (wall clock, one machine); prints median, p90, max.
//! `--wake-poll-ms N` sets the worker's `SqliteStoreOptions::wake_poll_interval` (0: off).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use jobs::store::Store;
use jobs::{Client, EnqueueOptions, JobArgs, JobContext, JobError, JobState, Pool, Worker};
use jobs_postgres::PostgresStore;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Serialize, Deserialize)]
struct Noop(u64);
impl JobArgs for Noop {
    const KIND: &'static str = "noop";
}

/// Counts runs of measured jobs; for pickup samples, reports when the handler started.
struct NoopWorker {
    runs: Arc<AtomicU64>,
    started: mpsc::UnboundedSender<(u64, Instant)>,
}
impl Worker for NoopWorker {
    type Args = Noop;
    async fn perform(&self, _ctx: JobContext, Noop(n): Noop) -> Result<(), JobError> {
        if n >= BACKLOG_BASE {
            return Ok(());
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        if n >= PICKUP_BASE {
            let _ = self.started.send((n, Instant::now()));
        }
        Ok(())
    }
}

const PICKUP_BASE: u64 = 1 << 40;
/// Arguments of backlog jobs start here (they are not counted).
const BACKLOG_BASE: u64 = 1 << 41;
/// The PostgreSQL schema the benchmark recreates on every run.
const PG_SCHEMA: &str = "jobs_bench";

/// The job throughput benchmark (see the file's docs).
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Options {
    /// The store under test.
    #[arg(long, default_value = "sqlite", value_parser = ["memory", "sqlite", "postgres"])]
    store: String,
    /// Measured jobs per run.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    jobs: u64,
    /// Runs (the median and range are reported).
    #[arg(long, value_name = "N", default_value_t = 3)]
    runs: usize,
    /// The pool's concurrency (per process).
    #[arg(long, value_name = "N", default_value_t = 10)]
    workers: usize,
    /// Pickup latency samples per run.
    #[arg(long, value_name = "N", default_value_t = 50)]
    samples: usize,
    /// PostgreSQL: jobs waiting behind the measured ones.
    #[arg(long, value_name = "N", default_value_t = 0)]
    backlog: u64,
    /// PostgreSQL: worker processes.
    #[arg(long, value_name = "N", default_value_t = 1)]
    processes: usize,
    /// PostgreSQL: print the claim query's plan once.
    #[arg(long)]
    explain: bool,
    /// PostgreSQL: lease writes wait for their WAL flush.
    #[arg(long)]
    sync_leases: bool,
    /// Run as one of the `--processes` worker processes (spawned by the benchmark itself).
    #[arg(long, hide = true)]
    worker_process: bool,
    /// Also measure pruning the completed jobs (jobs/s).
    #[arg(long)]
    prune: bool,
    /// Install a metrics recorder (Prometheus, no HTTP listener) before the pools start.
    #[arg(long)]
    metrics: bool,
    /// SQLite: measure pickup of jobs enqueued by another process on the same file.
    #[arg(long)]
    cross_process_pickup: bool,
    /// SQLite: the database file (a fresh temporary one by default).
    #[arg(long, value_name = "PATH")]
    sqlite_path: Option<std::path::PathBuf>,
    /// SQLite: the store's `wake_poll_interval` in milliseconds (0 turns it off).
    #[arg(long, value_name = "MS")]
    wake_poll_ms: Option<u64>,
}

fn parse_args() -> Result<Options, String> {
    let options = Options::parse();
    let postgres_only =
        options.backlog > 0 || options.processes != 1 || options.explain || options.sync_leases;
    if postgres_only && options.store != "postgres" {
        return Err(
            "--backlog, --processes, --explain and --sync-leases need --store postgres".into(),
        );
    }
    if options.cross_process_pickup && options.store != "sqlite" {
        return Err("--cross-process-pickup needs --store sqlite".into());
    }
    if options.processes == 0 {
        return Err("--processes must be at least 1".into());
    }
    Ok(options)
}

/// The store under test; for PostgreSQL also the concrete store (SQL counts, `EXPLAIN`).
struct Target {
    store: Arc<dyn Store>,
    postgres: Option<PostgresStore>,
}

async fn fresh_store(options: &Options) -> Result<Target, Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = match options.store.as_str() {
        "memory" => Arc::new(jobs::MemoryStore::new()),
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("jobs-bench-{}.db", std::process::id()));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            Arc::new(jobs_sqlite::SqliteStore::open(&path).await?)
        }
        "postgres" => {
            let store = open_postgres(options, true).await?;
            return Ok(Target {
                store: Arc::new(store.clone()),
                postgres: Some(store),
            });
        }
        other => return Err(format!("unknown store {other}: memory, sqlite or postgres").into()),
    };
    Ok(Target {
        store,
        postgres: None,
    })
}

/// The benchmark's PostgreSQL store with default settings (but `--sync-leases`); `fresh`
/// drops the schema first.
async fn open_postgres(
    bench: &Options,
    fresh: bool,
) -> Result<PostgresStore, Box<dyn std::error::Error>> {
    let url = std::env::var("JOBS_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = jobs_postgres::SchemaName::new(PG_SCHEMA)?;
    let options = jobs_postgres::PostgresOptions::new(&url)?.schema(schema.clone());
    let pool = options.connect_pool().await?;
    if fresh {
        sqlx::query("DROP SCHEMA IF EXISTS jobs_bench CASCADE")
            .execute(&pool)
            .await?;
        jobs_postgres::migrate(&pool, &schema).await?;
    }
    let store = PostgresStore::open(pool, schema).await?;
    if bench.sync_leases {
        store.set_lease_commit(jobs_postgres::LeaseCommit::Synchronous);
    }
    Ok(store)
}

struct RunResult {
    enqueue_per_s: f64,
    process_per_s: f64,
    pickup_ms: Option<f64>,
    prune_per_s: Option<f64>,
    /// CPU seconds this process spent per 10,000 processed jobs (user + system, all threads;
    /// the worker processes' own with `--processes`, which this does not see).
    cpu_per_10k: Option<f64>,
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux; 10 ms
/// ticks, so measure at least a second of work).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, in parentheses): utime is the
    // 14th field of the line, stime the 15th.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    const TICKS_PER_SECOND: f64 = 100.0; // USER_HZ on Linux
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// The peak resident set size of this process in MiB, from `/proc/self/status` (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn completed(store: &Arc<dyn Store>) -> Result<u64, jobs::StoreError> {
    Ok(store
        .queue_stats()
        .await?
        .iter()
        .map(|q| q.count(JobState::Completed))
        .sum())
}

/// Measured jobs (priority 0, not the backlog) the PostgreSQL store counts completed; an
/// index scan of finished jobs, not a scan of the whole table.
async fn measured_completed(store: &PostgresStore) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "SELECT count(*) FROM {PG_SCHEMA}.jobs \
          WHERE finalized_at IS NOT NULL AND state = 'completed' AND priority >= 0"
    );
    let n: i64 = sqlx::query_scalar(&sql).fetch_one(store.pool()).await?;
    Ok(n as u64)
}

/// Whether any job still waits or runs (two partial-index probes).
async fn any_left(store: &PostgresStore) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {PG_SCHEMA}.jobs WHERE state = 'available' AND queue = 'default') \
             OR EXISTS (SELECT 1 FROM {PG_SCHEMA}.jobs WHERE lease_expires_at IS NOT NULL)"
    );
    sqlx::query_scalar(&sql).fetch_one(store.pool()).await
}

/// Enqueues the untimed backlog behind the measured jobs and refreshes the statistics.
async fn enqueue_backlog(
    client: &Client,
    store: &PostgresStore,
    backlog: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let chunk = 100_000;
    for start in (0..backlog).step_by(chunk as usize) {
        let jobs = (start..backlog.min(start + chunk)).map(|i| Noop(BACKLOG_BASE + i));
        client
            .enqueue_many(jobs, EnqueueOptions::new().priority(-1))
            .await?;
    }
    sqlx::query(&format!("VACUUM ANALYZE {PG_SCHEMA}.jobs"))
        .execute(store.pool())
        .await?;
    Ok(())
}

async fn one_run(options: &Options, first: bool) -> Result<RunResult, Box<dyn std::error::Error>> {
    let target = fresh_store(options).await?;
    let store = target.store.clone();
    let client = Client::new(store.clone());
    if let (Some(pg), true) = (&target.postgres, options.backlog > 0) {
        enqueue_backlog(&client, pg, options.backlog).await?;
    }

    let started = Instant::now();
    let ids = client
        .enqueue_many((0..options.jobs).map(Noop), EnqueueOptions::new())
        .await?;
    let enqueue = started.elapsed();
    assert_eq!(ids.len() as u64, options.jobs);
    if let (Some(pg), true) = (&target.postgres, options.explain && first) {
        println!(
            "claim plan with {} waiting jobs:\n{}",
            options.jobs + options.backlog,
            pg.explain_claim("default", 100).await?
        );
    }

    if options.processes > 1 {
        let pg = target
            .postgres
            .as_ref()
            .ok_or("--processes needs postgres")?;
        let process = in_processes(options, pg).await?;
        return Ok(RunResult {
            enqueue_per_s: options.jobs as f64 / enqueue.as_secs_f64(),
            process_per_s: options.jobs as f64 / process.as_secs_f64(),
            pickup_ms: None,
            prune_per_s: None,
            cpu_per_10k: None,
        });
    }

    let (tx, mut started_rx) = mpsc::unbounded_channel();
    let runs = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds();
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
    let count = || async {
        match (&target.postgres, options.backlog > 0) {
            (Some(pg), true) => {
                Ok::<u64, Box<dyn std::error::Error>>(measured_completed(pg).await?)
            }
            _ => Ok(completed(&store).await?),
        }
    };
    while count().await? < options.jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let process = started.elapsed();
    let cpu_per_10k = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / options.jobs as f64 * 10_000.0);
    let done = count().await?;
    if done != options.jobs {
        return Err(format!("expected {} completed, the store has {done}", options.jobs).into());
    }

    let pickup_ms = if options.backlog == 0 {
        Some(pickup(options, &client, &mut started_rx).await?)
    } else {
        None
    };
    let _ = pool.shutdown().await;
    let prune_per_s = if options.prune {
        Some(prune(&store).await?)
    } else {
        None
    };
    Ok(RunResult {
        enqueue_per_s: options.jobs as f64 / enqueue.as_secs_f64(),
        process_per_s: options.jobs as f64 / process.as_secs_f64(),
        pickup_ms,
        prune_per_s,
        cpu_per_10k,
    })
}

/// Deletes every completed job as the pool's pruner does (batches of 5,000 until one comes
/// back short); the rate in jobs/s.
async fn prune(store: &Arc<dyn Store>) -> Result<f64, Box<dyn std::error::Error>> {
    const BATCH: usize = 5_000;
    let started = Instant::now();
    let mut pruned = 0;
    loop {
        let params = jobs::store::JobPruneParams {
            states: vec![JobState::Completed, JobState::Cancelled],
            finalized_before: jobs::Timestamp::now() + Duration::from_secs(3600),
            limit: BATCH,
        };
        let batch = store.job_prune(params).await?;
        pruned += batch;
        if batch < BATCH as u64 {
            break;
        }
    }
    Ok(pruned as f64 / started.elapsed().as_secs_f64())
}

/// Median pickup latency of single jobs enqueued to the idle pool.
async fn pickup(
    options: &Options,
    client: &Client,
    started_rx: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
) -> Result<f64, Box<dyn std::error::Error>> {
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
    Ok(median(&mut latencies))
}

/// Spawns `--processes` worker processes, times until the store counts every job completed,
/// then stops them.
async fn in_processes(
    options: &Options,
    store: &PostgresStore,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 0..options.processes {
        let child = Command::new(&exe)
            .args(["--store", "postgres", "--worker-process"])
            .args(["--workers", &options.workers.to_string()])
            .args(options.sync_leases.then_some("--sync-leases"))
            .args(options.metrics.then_some("--metrics"))
            .stdout(Stdio::piped())
            .spawn()?;
        children.push(Workers(child));
    }
    while any_left(store).await? {
        for child in &mut children {
            if let Some(status) = child.0.try_wait()? {
                return Err(format!("a worker process exited early with {status}").into());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while measured_completed(store).await? < options.jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let process = started.elapsed();
    for child in &mut children {
        // Each said `ready` long ago; read it so a process that failed to start is reported.
        let mut line = String::new();
        if let Some(out) = child.0.stdout.as_mut() {
            BufReader::new(out).read_line(&mut line)?;
        }
        if !line.starts_with("ready") {
            return Err(format!("a worker process did not start: {line:?}").into());
        }
    }
    for child in &mut children {
        Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()?;
    }
    for child in &mut children {
        let status = child.0.wait()?;
        if !status.success() {
            return Err(format!("a worker process exited with {status}").into());
        }
    }
    Ok(process)
}

/// A worker process; killed if the benchmark stops early.
struct Workers(Child);

impl Drop for Workers {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `--worker-process`: one pool with default settings on the benchmark's schema (or SQLite
/// file), until SIGTERM. Prints `started <n> <unix µs>` when a pickup job's handler starts.
async fn worker_process(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = match &options.sqlite_path {
        Some(path) => Arc::new(sqlite_options(options).open(path).await?),
        None => Arc::new(open_postgres(options, false).await?),
    };
    let (tx, mut started_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    tokio::spawn(async move {
        while let Some((n, _)) = started_rx.recv().await {
            println!("started {n} {}", jobs::Timestamp::now().as_micros());
            let _ = std::io::stdout().flush();
        }
    });
    let pool = Pool::builder(store)
        .queue("default", options.workers)
        .register(NoopWorker {
            runs: Arc::default(),
            started: tx,
        })
        .start()
        .await?;
    println!("ready {}", pool.worker_id());
    std::io::stdout().flush()?;
    let report = pool.run_until_signal().await?;
    std::process::exit(if report.clean { 0 } else { 1 });
}

/// SQLite's default options, but `--wake-poll-ms` (0: off).
fn sqlite_options(options: &Options) -> jobs_sqlite::SqliteStoreOptions {
    let defaults = jobs_sqlite::SqliteStoreOptions::new();
    match options.wake_poll_ms {
        Some(0) => defaults.wake_poll_interval(None),
        Some(ms) => defaults.wake_poll_interval(Some(Duration::from_millis(ms))),
        None => defaults,
    }
}

/// `--cross-process-pickup`: pickup latency of single jobs enqueued here into a SQLite file
/// that an idle pool in another process works on.
async fn cross_process_pickup(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("jobs-bench-xp-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store: Arc<dyn Store> = Arc::new(jobs_sqlite::SqliteStore::open(&path).await?);
    let client = Client::new(store);
    let mut worker = Workers(
        Command::new(std::env::current_exe()?)
            .args(["--store", "sqlite", "--worker-process", "--sqlite-path"])
            .arg(&path)
            .args(
                options
                    .wake_poll_ms
                    .map(|ms| ["--wake-poll-ms".to_owned(), ms.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut out = BufReader::new(worker.0.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if !line.starts_with("ready") {
        return Err(format!("the worker process did not start: {line:?}").into());
    }
    let seed = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let mut latencies = Vec::with_capacity(options.samples);
    for i in 0..options.samples as u64 {
        let gap = 20 + next_random(&seed) % 101;
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let sent = jobs::Timestamp::now();
        client.enqueue(&Noop(PICKUP_BASE + i)).await?;
        line.clear();
        out.read_line(&mut line)?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(n), Some(at)) = (fields.get(1), fields.get(2)) else {
            return Err(format!("unexpected line from the worker: {line:?}").into());
        };
        assert_eq!(n.parse::<u64>()?, PICKUP_BASE + i);
        let at = jobs::Timestamp::from_micros(at.parse()?);
        latencies.push(at.duration_since(sent).as_secs_f64() * 1000.0);
    }
    Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()?;
    worker.0.wait()?;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "sqlite cross-process pickup ({} samples): median {:.2} ms  p90 {:.2} ms  max {:.2} ms  (load {})",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(1.0),
        load_average()
    );
    Ok(())
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
    if values.is_empty() {
        println!("  {name:<10} not measured");
        return;
    }
    let med = median(values);
    println!(
        "  {name:<10} median {med:>12.2} {unit}  (range {:.2} .. {:.2})",
        values[0],
        values[values.len() - 1]
    );
}

/// The 1-minute load average, printed with each run: the machine is shared.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_args()?;
    // Installed before any pool starts, as an application does (without it, no recorder).
    let prometheus = options
        .metrics
        .then(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(jobs::telemetry::SECONDS_BUCKETS)
                .and_then(|builder| builder.install_recorder())
        })
        .transpose()?;
    if options.worker_process {
        return worker_process(&options).await;
    }
    if options.cross_process_pickup {
        return cross_process_pickup(&options).await;
    }
    println!(
        "store={} jobs={} workers={} runs={} pickup samples={} backlog={} processes={} metrics={}",
        options.store,
        options.jobs,
        options.workers,
        options.runs,
        options.samples,
        options.backlog,
        options.processes,
        if prometheus.is_some() {
            "prometheus"
        } else {
            "none"
        }
    );
    let mut results = Vec::new();
    for run in 1..=options.runs {
        let load = load_average();
        let r = one_run(&options, run == 1).await?;
        let pickup = r
            .pickup_ms
            .map_or_else(|| "     -".to_owned(), |ms| format!("{ms:>6.2}"));
        let prune = r
            .prune_per_s
            .map_or_else(String::new, |rate| format!("   prune {rate:>10.0} jobs/s"));
        let cpu = r
            .cpu_per_10k
            .map_or_else(|| "    -".to_owned(), |s| format!("{s:>5.3}"));
        println!(
            "run {run}: enqueue {:>10.0} jobs/s   process {:>10.0} jobs/s   cpu {cpu} s/10k jobs   pickup {pickup} ms{prune}   (load {load})",
            r.enqueue_per_s, r.process_per_s
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
        "cpu/10k",
        &mut results
            .iter()
            .filter_map(|r| r.cpu_per_10k)
            .collect::<Vec<_>>(),
        "s",
    );
    summary(
        "pickup",
        &mut results
            .iter()
            .filter_map(|r| r.pickup_ms)
            .collect::<Vec<_>>(),
        "ms",
    );
    if options.prune {
        summary(
            "prune",
            &mut results
                .iter()
                .filter_map(|r| r.prune_per_s)
                .collect::<Vec<_>>(),
            "jobs/s",
        );
    }
    if let Some(rss) = peak_rss_mib() {
        println!("  peak RSS   {rss:.1} MiB (this process)");
    }
    if let Some(prometheus) = prometheus {
        let rendered = prometheus.render();
        let completed = rendered
            .lines()
            .filter(|line| line.starts_with(jobs::telemetry::JOBS_COMPLETED))
            .count();
        println!(
            "metrics: {} lines rendered, {completed} completed series",
            rendered.lines().count()
        );
    }
    Ok(())
}
