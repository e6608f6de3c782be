//! A worker process frozen past its lease (SIGSTOP) and then resumed (SIGCONT) does no
//! further work on a job another process took over meanwhile (issue 9 item 10), on SQLite and
//! PostgreSQL: the run checks its lease on its own clock at its safe point and stops there,
//! before any heartbeat could answer.
//!
//! The job (`steps` in `src/bin/crash_worker.rs`) checkpoints, then appends `step <n> <pid>`
//! to a log file as its side effect, every 20 ms. Checkpoints are written only every 10 min,
//! so only the lease check can stop the stale run at its safe point.
//!
//! PostgreSQL needs `JOBS_TEST_DATABASE_URL` (skipped with a notice otherwise, failed under
//! `JOBS_TEST_REQUIRE_POSTGRES=1`); the test works in its own schema.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::store::{JobPromoteParams, Store};
use jobs::{Client, JobArgs, Timestamp};
use jobs_postgres::{PostgresOptions, PostgresStore};
use jobs_postgres_testkit::{connect, database_url, drop_schema, fresh_schema, test_schema};
use jobs_sqlite::SqliteStoreOptions;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Steps;
impl JobArgs for Steps {
    const KIND: &'static str = "steps";
}

const LEASE_MS: u64 = 1_500;

/// A running `crash_worker`; SIGKILLed if the test ends (or panics) with it still running.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Worker {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} failed");
    }

    fn stop(mut self) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.0.try_wait().expect("polling a worker").is_none() {
            assert!(Instant::now() < deadline, "the worker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One test's store, the worker processes' store flags and the log of side effects.
struct Scenario {
    store: Arc<dyn Store>,
    store_args: Vec<String>,
    dir: PathBuf,
}

impl Scenario {
    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jobs-stale-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test's directory");
        dir
    }

    fn log(&self) -> PathBuf {
        self.dir.join("steps.log")
    }

    fn spawn_worker(&self) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_worker"))
            .args(&self.store_args)
            .arg("--log")
            .arg(self.log())
            .args(["--lease-ms", &LEASE_MS.to_string(), "--row-ms", "20"])
            .args(["--checkpoint-ms", "600000", "--grace-ms", "2000"])
            .args(["--max-connections", "4"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting crash_worker");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("reading the worker's stdout");
        let worker = Worker(child);
        assert!(line.starts_with("ready"), "worker did not start: {line:?}");
        worker
    }

    /// How many steps the process `pid` has logged.
    fn steps_of(&self, pid: u32) -> usize {
        let suffix = format!(" {pid}");
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with("step") && line.ends_with(&suffix))
            .count()
    }

    fn wait_for_steps(&self, pid: u32, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.steps_of(pid) < n {
            assert!(
                Instant::now() < deadline,
                "process {pid} logged only {} steps",
                self.steps_of(pid)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Freezes `worker` at a moment it holds no SQLite write lock (a write of ours gets
    /// through), so the other process can take the job over; a frozen PostgreSQL worker never
    /// blocks the others.
    async fn freeze(&self, worker: &Worker) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            worker.signal("-STOP");
            std::thread::sleep(Duration::from_millis(20));
            let write = self.store.job_promote_scheduled(JobPromoteParams {
                now: Timestamp::now(),
                limit: 1,
            });
            if write.await.is_ok() {
                return;
            }
            worker.signal("-CONT");
            assert!(Instant::now() < deadline, "never froze the worker idle");
            std::thread::sleep(Duration::from_millis(7));
        }
    }

    /// The scenario: A runs the job; A frozen past its lease; B takes the job over; A
    /// resumed: A logs no further step.
    async fn run(&self) {
        Client::new(self.store.clone())
            .enqueue(&Steps)
            .await
            .expect("enqueueing");
        let a = self.spawn_worker();
        self.wait_for_steps(a.pid(), 5);
        self.freeze(&a).await;
        let frozen_at = self.steps_of(a.pid());

        let b = self.spawn_worker();
        // B rescues the job once A's lease expired, claims it and steps.
        self.wait_for_steps(b.pid(), 20);
        assert_eq!(self.steps_of(a.pid()), frozen_at, "A is frozen");

        a.signal("-CONT");
        std::thread::sleep(Duration::from_millis(1_000));
        let b_steps = self.steps_of(b.pid());
        assert_eq!(
            self.steps_of(a.pid()),
            frozen_at,
            "the resumed stale run did a step after another process took its job over"
        );
        self.wait_for_steps(b.pid(), b_steps + 10);
        a.stop();
        b.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_run_resumed_after_its_lease_was_taken_over_does_no_further_step() {
    let dir = Scenario::dir("sqlite");
    let path = dir.join("jobs.db");
    let store = SqliteStoreOptions::new()
        .busy_timeout(Duration::from_millis(100))
        .open(&path)
        .await
        .expect("opening the store");
    let scenario = Scenario {
        store: Arc::new(store),
        store_args: vec!["--sqlite".into(), path.display().to_string()],
        dir,
    };
    scenario.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_run_resumed_after_its_lease_was_taken_over_does_no_further_step() {
    let Some(url) = database_url() else { return };
    let schema = test_schema("stale_run");
    let options = PostgresOptions::new(&url)
        .expect("JOBS_TEST_DATABASE_URL is a valid URL")
        .schema(schema.clone())
        .max_connections(2);
    let pool = connect(options).await;
    fresh_schema(&pool, &schema).await;
    let store = PostgresStore::open(pool.clone(), schema.clone())
        .await
        .expect("opening a freshly migrated store");
    let scenario = Scenario {
        store: Arc::new(store),
        store_args: vec![
            "--postgres".into(),
            url,
            "--schema".into(),
            schema.as_str().to_owned(),
        ],
        dir: Scenario::dir("postgres"),
    };
    scenario.run().await;
    drop_schema(&pool, &schema).await;
}
