//! Several worker processes (`src/bin/crash_worker.rs`) on one PostgreSQL database.
//!
//! Four processes share 50,000 jobs: each job is completed exactly once in the store, runs
//! exactly once, and is claimed once (no two leases on one job). Then the same with one
//! process SIGKILLed and another SIGTERMed mid-run and a replacement started: nothing is lost,
//! and the only jobs that ran twice are jobs the SIGKILLed process ran whose lease the store
//! shows rescued; every run of a job had its own lease token.
//!
//! Needs `JOBS_TEST_DATABASE_URL` (skipped with a notice otherwise, failed under
//! `JOBS_TEST_REQUIRE_POSTGRES=1`). Each test works in its own schema `jt_<test>_<pid>`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::store::Store;
use jobs::{Client, EnqueueOptions, JobArgs};
use jobs_postgres::{PostgresOptions, PostgresStore, SchemaName};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

#[allow(dead_code)] // the crate's tests use the rest
use jobs_postgres_testkit as testkit;
use testkit::{connect, database_url, drop_schema, fresh_schema, test_schema};

/// Jobs per test.
const JOBS: u64 = 50_000;
/// Lease of the worker processes in the crash test: a SIGKILLed worker's jobs are rescued
/// within ~4 s. (Without crashes the default 30 s lease is used: no stall of a loaded CI
/// machine can make a live worker lose a lease there.)
const SHORT_LEASE_MS: u64 = 3_000;
const DEFAULT_LEASE_MS: u64 = 30_000;

#[derive(Serialize, Deserialize)]
struct Logged(u64);
impl JobArgs for Logged {
    const KIND: &'static str = "logged";
}

/// One test's database schema, log file and worker processes.
struct Scenario {
    url: String,
    schema: SchemaName,
    pool: PgPool,
    store: Arc<dyn Store>,
    dir: PathBuf,
    workers: Vec<Worker>,
}

/// A running `crash_worker`; SIGKILLed if the test ends (or panics) with it still running.
struct Worker {
    child: Child,
    id: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Scenario {
    async fn new(test: &str) -> Option<Scenario> {
        let url = database_url()?;
        let schema = test_schema(test);
        let options = PostgresOptions::new(&url)
            .expect("JOBS_TEST_DATABASE_URL is a valid URL")
            .schema(schema.clone())
            .max_connections(4);
        let pool = connect(options).await;
        fresh_schema(&pool, &schema).await;
        let store = PostgresStore::open(pool.clone(), schema.clone())
            .await
            .expect("opening a freshly migrated store");
        let dir = std::env::temp_dir().join(format!("jobs-mp-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test's directory");
        Some(Scenario {
            url,
            schema,
            pool,
            store: Arc::new(store),
            dir,
            workers: Vec::new(),
        })
    }

    fn log(&self) -> PathBuf {
        self.dir.join("work.log")
    }

    /// Starts a worker process and waits until its pool runs; returns its index.
    fn spawn_worker(&mut self, lease_ms: u64) -> usize {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_worker"))
            .args(["--postgres", &self.url, "--schema", self.schema.as_str()])
            .arg("--log")
            .arg(self.log())
            .args(["--lease-ms", &lease_ms.to_string(), "--grace-ms", "2000"])
            .args(["--concurrency", "10"])
            .args(["--max-connections", "4", "--log-lease"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting crash_worker");
        let mut line = String::new();
        let stdout = child.stdout.as_mut().expect("stdout is piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the worker's stdout");
        let id = line.strip_prefix("ready ").map(|id| id.trim().to_owned());
        let Some(id) = id else {
            let _ = child.kill();
            panic!("worker did not start: {line:?}");
        };
        self.workers.push(Worker { child, id });
        self.workers.len() - 1
    }

    fn signal(&self, worker: usize, signal: &str) {
        let pid = self.workers[worker].child.id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// SIGKILLs `worker` at a moment it holds leases, and returns how many. A process that
    /// runs no-op jobs holds none while its completions are flushed and its next claim is in
    /// flight, so it is frozen first (SIGSTOP), its lease count is read until two readings
    /// 50 ms apart agree (statements it had already sent have settled), and it is killed
    /// only if it holds leases; otherwise it goes on (SIGCONT) and is tried again.
    async fn kill_holding_leases(&mut self, worker: usize) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let sql = format!(
            "SELECT count(*) FROM {}.jobs WHERE state = 'running' AND lease_owner = $1",
            self.schema.quoted()
        );
        loop {
            self.signal(worker, "-STOP");
            let count = || async {
                sqlx::query_scalar::<_, i64>(&sql)
                    .bind(&self.workers[worker].id)
                    .fetch_one(&self.pool)
                    .await
                    .expect("counting leases")
            };
            let mut held = count().await;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let again = count().await;
                if again == held {
                    break;
                }
                held = again;
            }
            if held > 0 {
                self.signal(worker, "-KILL");
                self.wait_exit(worker, Duration::from_secs(5));
                return held;
            }
            self.signal(worker, "-CONT");
            assert!(
                Instant::now() < deadline,
                "worker {worker} never held a lease"
            );
            tokio::time::sleep(Duration::from_millis(7)).await;
        }
    }

    fn wait_exit(&mut self, worker: usize, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let child = &mut self.workers[worker].child;
        loop {
            if let Some(status) = child.try_wait().expect("polling a worker") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker {worker} did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERMs every worker still running; each must shut down cleanly.
    fn stop_all(&mut self) {
        for worker in 0..self.workers.len() {
            if self.workers[worker]
                .child
                .try_wait()
                .expect("polling a worker")
                .is_none()
            {
                self.signal(worker, "-TERM");
                let status = self.wait_exit(worker, Duration::from_secs(15));
                assert!(
                    status.success(),
                    "worker {worker} did not stop cleanly: {status:?}"
                );
            }
        }
    }

    /// Enqueues `JOBS` logged jobs through the bulk API, in five batches.
    async fn enqueue(&self) {
        let client = Client::new(self.store.clone());
        let batch = JOBS / 5;
        for start in (0..JOBS).step_by(batch as usize) {
            let jobs = (start..start + batch).map(Logged);
            let ids = client
                .enqueue_many(jobs, EnqueueOptions::new())
                .await
                .expect("enqueue");
            assert_eq!(ids.len() as u64, batch);
        }
    }

    async fn completed(&self) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM {}.jobs WHERE state = 'completed'",
            self.schema.quoted()
        );
        sqlx::query_scalar(&sql)
            .fetch_one(&self.pool)
            .await
            .expect("counting completed jobs")
    }

    /// Waits (wall clock: real processes) until the store counts every job completed.
    async fn wait_until_all_completed(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let completed = self.completed().await;
            if completed == JOBS as i64 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {completed} of {JOBS} completed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the log has at least `n` runs.
    async fn wait_for_runs(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.runs().len() < n {
            assert!(Instant::now() < deadline, "the workers made no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every logged run, in log order.
    fn runs(&self) -> Vec<Run> {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        text.lines().filter_map(Run::parse).collect()
    }

    /// Every job as the store has it now.
    async fn rows(&self) -> HashMap<i64, Row> {
        let sql = format!(
            "SELECT id, state, claims, rescues FROM {}.jobs",
            self.schema.quoted()
        );
        let rows: Vec<(i64, String, i64, i32)> = sqlx::query_as(&sql)
            .fetch_all(&self.pool)
            .await
            .expect("reading the jobs");
        rows.into_iter()
            .map(|(id, state, claims, rescues)| {
                (
                    id,
                    Row {
                        state,
                        claims,
                        rescues,
                    },
                )
            })
            .collect()
    }

    /// Drops the schema and the log after a test that passed.
    async fn cleanup(self) {
        drop_schema(&self.pool, &self.schema).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One line of the log: a run of a job under a lease token, by a worker.
#[derive(Debug, Clone)]
struct Run {
    job: i64,
    token: i64,
    owner: String,
}

impl Run {
    /// `job <id> <token> <worker id>`; a partial line (never written by `crash_worker`) is a
    /// test failure.
    fn parse(line: &str) -> Option<Run> {
        let mut parts = line.split(' ');
        if parts.next() != Some("job") {
            return None;
        }
        let parsed = (|| {
            let job = parts.next()?.parse().ok()?;
            let token = parts.next()?.parse().ok()?;
            let owner = parts.next()?.to_owned();
            Some(Run { job, token, owner })
        })();
        assert!(parsed.is_some(), "malformed log line {line:?}");
        parsed
    }
}

#[derive(Debug)]
struct Row {
    state: String,
    claims: i64,
    rescues: i32,
}

/// Every job is in the store, completed; returns the rows.
async fn all_completed(scenario: &Scenario) -> HashMap<i64, Row> {
    let rows = scenario.rows().await;
    assert_eq!(rows.len() as u64, JOBS, "every job is in the store");
    let not_completed: Vec<_> = rows
        .iter()
        .filter(|(_, r)| r.state != "completed")
        .take(5)
        .collect();
    assert!(
        not_completed.is_empty(),
        "jobs not completed: {not_completed:?}"
    );
    rows
}

/// The runs of each job.
fn runs_by_job(runs: &[Run]) -> HashMap<i64, Vec<&Run>> {
    let mut by_job: HashMap<i64, Vec<&Run>> = HashMap::new();
    for run in runs {
        by_job.entry(run.job).or_default().push(run);
    }
    by_job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_share_the_jobs_each_runs_once_under_a_single_lease() {
    let Some(mut scenario) = Scenario::new("share").await else {
        return;
    };
    let started = Instant::now();
    for _ in 0..4 {
        scenario.spawn_worker(DEFAULT_LEASE_MS);
    }
    scenario.enqueue().await;
    scenario.wait_until_all_completed().await;
    let took = started.elapsed();
    scenario.stop_all();

    let rows = all_completed(&scenario).await;
    for (id, row) in &rows {
        assert_eq!(
            (row.claims, row.rescues),
            (1, 0),
            "job {id} was claimed once, never rescued"
        );
    }
    let runs = scenario.runs();
    assert_eq!(runs.len() as u64, JOBS, "one run per job, no more");
    let by_job = runs_by_job(&runs);
    assert_eq!(by_job.len() as u64, JOBS, "every job ran");
    assert!(
        runs.iter().all(|run| run.token == 1),
        "every run held the job's first lease"
    );
    let owners: HashSet<&str> = runs.iter().map(|r| r.owner.as_str()).collect();
    let ids: HashSet<&str> = scenario.workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(
        owners, ids,
        "all four processes ran jobs, and only they did"
    );
    println!("4 processes: {JOBS} jobs in {took:?}");
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_and_a_sigtermed_process_lose_nothing_and_only_rescued_jobs_run_twice() {
    let Some(mut scenario) = Scenario::new("crash").await else {
        return;
    };
    let started = Instant::now();
    for _ in 0..4 {
        scenario.spawn_worker(SHORT_LEASE_MS);
    }
    scenario.enqueue().await;

    scenario.wait_for_runs(JOBS as usize / 5).await;
    let held = scenario.kill_holding_leases(0).await;
    let killed = scenario.workers[0].id.clone();

    scenario.wait_for_runs(JOBS as usize * 2 / 5).await;
    let terminated = Instant::now();
    scenario.signal(1, "-TERM");
    let status = scenario.wait_exit(1, Duration::from_secs(10));
    assert!(status.success(), "SIGTERM shuts down cleanly: {status:?}");
    assert!(
        terminated.elapsed() < Duration::from_secs(5),
        "short jobs finish at once, the rest are released"
    );
    scenario.spawn_worker(SHORT_LEASE_MS);

    scenario.wait_until_all_completed().await;
    let took = started.elapsed();
    scenario.stop_all();

    let rows = all_completed(&scenario).await;
    let runs = scenario.runs();
    let by_job = runs_by_job(&runs);
    assert_eq!(by_job.len() as u64, JOBS, "every job ran");
    let mut repeated = 0;
    for (id, job_runs) in &by_job {
        let row = &rows[id];
        let tokens: HashSet<i64> = job_runs.iter().map(|r| r.token).collect();
        assert_eq!(
            tokens.len(),
            job_runs.len(),
            "job {id}: two runs under one lease: {job_runs:?}"
        );
        // The run that completed the job held its last lease; every other run was the
        // SIGKILLed process's, whose lease then expired and was rescued.
        let last: Vec<_> = job_runs.iter().filter(|r| r.token == row.claims).collect();
        assert_eq!(
            last.len(),
            1,
            "job {id}: no run under its final lease {}: {job_runs:?}",
            row.claims
        );
        for run in job_runs.iter().filter(|r| r.token != row.claims) {
            assert_eq!(
                run.owner, killed,
                "job {id}: only the SIGKILLed process's runs repeat"
            );
            assert!(run.token < row.claims, "job {id}: a stale run");
            assert!(
                row.rescues >= 1,
                "job {id} ran twice but was never rescued: {row:?}"
            );
        }
        repeated += usize::from(job_runs.len() > 1);
    }
    let rescued = rows.values().filter(|r| r.rescues > 0).count();
    assert_eq!(
        rescued as i64, held,
        "exactly the leases the SIGKILLed process held were rescued"
    );
    println!("crash: {JOBS} jobs in {took:?}; {rescued} rescued, {repeated} ran twice");
    scenario.cleanup().await;
}
