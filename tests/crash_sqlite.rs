//! Real process kill tests on a SQLite file: SIGTERM releases a checkpointing job at once and
//! the next process resumes it; SIGKILL leaves a lease that a new process rescues once it
//! expires; either way every job ends completed exactly once in the store.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::store::Store;
use jobs::{Client, EnqueueOptions, JobArgs, JobId, JobRecord, JobState};
use jobs_sqlite::SqliteStore;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Import {
    rows: u64,
}
impl JobArgs for Import {
    const KIND: &'static str = "import";
}

#[derive(Serialize, Deserialize)]
struct Logged(u64);
impl JobArgs for Logged {
    const KIND: &'static str = "logged";
}

struct Scenario {
    dir: PathBuf,
    store: Arc<dyn Store>,
}

impl Scenario {
    async fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jobs-crash-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(SqliteStore::open(dir.join("jobs.db")).await.unwrap());
        Scenario { dir, store }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("work.log")
    }

    fn spawn_worker(&self, lease_ms: u64) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_worker"))
            .arg("--sqlite")
            .arg(self.dir.join("jobs.db"))
            .arg("--log")
            .arg(self.log())
            .args([
                "--lease-ms",
                &lease_ms.to_string(),
                "--row-ms",
                "10",
                "--grace-ms",
                "10000",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("ready"), "worker did not start: {line:?}");
        child
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits (wall clock: real processes) until the log has `n` import rows.
    fn wait_for_rows(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .lines()
            .iter()
            .filter(|l| l.starts_with("import"))
            .count()
            < n
        {
            assert!(Instant::now() < deadline, "the worker made no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn job(&self, id: JobId) -> JobRecord {
        self.store.job_get(id).await.unwrap().unwrap()
    }

    async fn wait_until_all_completed(&self, total: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = self.store.queue_stats().await.unwrap();
            let completed: u64 = stats.iter().map(|q| q.count(JobState::Completed)).sum();
            if completed == total {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {completed} of {total} completed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every import row and every logged job appears in the log; returns how often each did.
    fn occurrences(&self) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for line in self.lines() {
            *seen.entry(line).or_insert(0) += 1;
        }
        seen
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn enqueue(scenario: &Scenario, rows: u64, logged: u64) -> (JobId, Vec<JobId>) {
    let client = Client::new(scenario.store.clone());
    let import = client.enqueue(&Import { rows }).await.unwrap();
    let others = client
        .enqueue_many((0..logged).map(Logged), EnqueueOptions::new())
        .await
        .unwrap();
    (import, others)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_import_at_once_and_the_next_process_resumes_from_its_checkpoint() {
    let scenario = Scenario::new("sigterm").await;
    let (import, others) = enqueue(&scenario, 300, 200).await;
    let mut worker = scenario.spawn_worker(30_000);
    scenario.wait_for_rows(50);
    let terminated = Instant::now();
    signal(&worker, "-TERM");
    let status = wait_exit(&mut worker, Duration::from_secs(5));
    assert!(status.success(), "clean shutdown exits 0: {status:?}");
    assert!(
        terminated.elapsed() < Duration::from_secs(3),
        "released at once, not after the grace"
    );

    let released = scenario.job(import).await;
    assert_eq!(
        (released.state, released.attempts, released.rescues),
        (JobState::Available, 0, 0)
    );
    let saved: u64 = serde_json::from_value(released.checkpoint.unwrap()).unwrap();
    let done_rows = scenario
        .lines()
        .iter()
        .filter(|l| l.starts_with("import"))
        .count() as u64;
    assert_eq!(
        saved, done_rows,
        "the checkpoint covers every processed row"
    );

    let mut worker = scenario.spawn_worker(30_000);
    scenario
        .wait_until_all_completed(1 + others.len() as u64)
        .await;
    signal(&worker, "-TERM");
    assert!(wait_exit(&mut worker, Duration::from_secs(10)).success());

    let seen = scenario.occurrences();
    for row in 0..300 {
        assert_eq!(
            seen.get(&format!("import {row}")),
            Some(&1),
            "row {row} processed exactly once"
        );
    }
    for id in others {
        assert!(seen.contains_key(&format!("job {id}")), "job {id} ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leaves_a_lease_that_a_new_process_rescues_when_it_expires() {
    let scenario = Scenario::new("sigkill").await;
    let (import, others) = enqueue(&scenario, 300, 200).await;
    let mut worker = scenario.spawn_worker(2_000);
    scenario.wait_for_rows(50);
    signal(&worker, "-KILL");
    wait_exit(&mut worker, Duration::from_secs(5));
    let orphan = scenario.job(import).await;
    assert_eq!(
        orphan.state,
        JobState::Running,
        "a SIGKILLed worker cannot release"
    );

    let restarted = Instant::now();
    let mut worker = scenario.spawn_worker(2_000);
    scenario
        .wait_until_all_completed(1 + others.len() as u64)
        .await;
    let took = restarted.elapsed();
    signal(&worker, "-TERM");
    assert!(wait_exit(&mut worker, Duration::from_secs(10)).success());
    assert!(
        took < Duration::from_secs(20),
        "rescued within about one lease period: {took:?}"
    );

    let done = scenario.job(import).await;
    assert_eq!((done.state, done.rescues), (JobState::Completed, 1));
    let seen = scenario.occurrences();
    for row in 0..300 {
        assert!(
            seen.contains_key(&format!("import {row}")),
            "row {row} processed"
        );
    }
    // At-least-once: rows after the last persisted checkpoint (at most ~1 s of work) may repeat.
    let repeated = seen
        .iter()
        .filter(|(line, n)| line.starts_with("import") && **n > 1)
        .count();
    assert!(
        repeated <= 110,
        "{repeated} rows repeated: more than one checkpoint interval"
    );
}
