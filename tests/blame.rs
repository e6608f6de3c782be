//! Blame and rolling deploys with real processes (`src/bin/crash_worker.rs`), on a SQLite file
//! and on PostgreSQL (issue 9 items 6 and 8).
//!
//! * A poison pill (a job that aborts its process every time) among 40 bystanders of two
//!   seconds: the test restarts every process that dies. (Before suspects and quarantine,
//!   3 of the 40 ended dead as poison pills on either store, and the hook fired for them.) The culprit ends dead as a poison
//!   pill, every bystander completes, and the dead-job hook fires for the culprit only.
//! * A rolling deploy that adds a kind: an old process (kinds `logged`, `nap`) and a new one
//!   (also `fresh`) side by side on one store; every `fresh` job is completed by the new
//!   process and none is dead.
//!
//! The PostgreSQL tests need `JOBS_TEST_DATABASE_URL` (skipped with a notice otherwise,
//! failed under `JOBS_TEST_REQUIRE_POSTGRES=1`); each works in its own schema.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::store::Store;
use jobs::{Client, JobArgs, JobId, JobState};
use jobs_postgres::{PostgresOptions, PostgresStore, SchemaName};
use serde::{Deserialize, Serialize};

use jobs_postgres_testkit::{connect, database_url, drop_schema, fresh_schema, test_schema};

#[derive(Serialize, Deserialize)]
struct Poison;
impl JobArgs for Poison {
    const KIND: &'static str = "poison";
}

#[derive(Serialize, Deserialize)]
struct Nap(u64);
impl JobArgs for Nap {
    const KIND: &'static str = "nap";
}

#[derive(Serialize, Deserialize)]
struct Fresh(u64);
impl JobArgs for Fresh {
    const KIND: &'static str = "fresh";
}

/// Bystanders beside the poison pill.
const BYSTANDERS: u64 = 40;
/// The poison-pill limit of the worker processes.
const MAX_RESCUES: u32 = 2;
/// Lease of the worker processes: a dead process's jobs are rescued within ~2 s.
const LEASE_MS: u64 = 1_500;

/// Where the store lives, as `crash_worker` flags.
enum Backend {
    Sqlite(PathBuf),
    Postgres { url: String, schema: SchemaName },
}

/// One test's store, log files and worker processes.
struct Scenario {
    backend: Backend,
    store: Arc<dyn Store>,
    dir: PathBuf,
    workers: Vec<Option<Child>>,
    /// For PostgreSQL: the pool and schema to drop at the end.
    pg: Option<(sqlx::PgPool, SchemaName)>,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        for child in self.workers.iter_mut().flatten() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jobs-blame-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Scenario {
    async fn sqlite(name: &str) -> Scenario {
        let dir = scratch_dir(name);
        let path = dir.join("jobs.db");
        let store = Arc::new(jobs_sqlite::SqliteStore::open(&path).await.unwrap());
        Scenario {
            backend: Backend::Sqlite(path),
            store,
            dir,
            workers: Vec::new(),
            pg: None,
        }
    }

    async fn postgres(name: &str) -> Option<Scenario> {
        let url = database_url()?;
        let schema = test_schema(name);
        let options = PostgresOptions::new(&url)
            .expect("JOBS_TEST_DATABASE_URL is a valid URL")
            .schema(schema.clone())
            .max_connections(4);
        let pool = connect(options).await;
        fresh_schema(&pool, &schema).await;
        let store = PostgresStore::open(pool.clone(), schema.clone())
            .await
            .expect("opening a freshly migrated store");
        Some(Scenario {
            backend: Backend::Postgres {
                url,
                schema: schema.clone(),
            },
            store: Arc::new(store),
            dir: scratch_dir(name),
            workers: Vec::new(),
            pg: Some((pool, schema)),
        })
    }

    fn log(&self) -> PathBuf {
        self.dir.join("work.log")
    }

    fn dead_log(&self) -> PathBuf {
        self.dir.join("dead.log")
    }

    /// Starts a worker process that knows `kinds`; returns once its pool runs, or once it
    /// died (a poison pill can abort it before it says it is ready).
    fn spawn(&self, kinds: &str) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crash_worker"));
        match &self.backend {
            Backend::Sqlite(path) => command.arg("--sqlite").arg(path),
            Backend::Postgres { url, schema } => command
                .args(["--postgres", url, "--schema", schema.as_str()])
                .args(["--max-connections", "4"]),
        };
        let mut child = command
            .arg("--log")
            .arg(self.log())
            .arg("--dead-log")
            .arg(self.dead_log())
            .args(["--lease-ms", &LEASE_MS.to_string()])
            .args(["--max-rescues", &MAX_RESCUES.to_string()])
            .args(["--kinds", kinds, "--nap-ms", "2000", "--concurrency", "4"])
            .args(["--grace-ms", "2000"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        // Nothing at all: its stdout closed, it died.
        assert!(
            line.starts_with("ready") || line.is_empty(),
            "worker did not start: {line:?}"
        );
        child
    }

    fn lines(path: PathBuf) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    async fn state(&self, id: JobId) -> JobState {
        self.store.job_get(id).await.unwrap().unwrap().state
    }

    async fn finish(mut self) {
        for child in self.workers.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some((pool, schema)) = self.pg.take() {
            drop_schema(&pool, &schema).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The poison pill and its bystanders; see the module docs.
async fn poison_pill_blames_the_culprit_only(scenario: Scenario) {
    let mut scenario = scenario;
    let client = Client::new(Arc::clone(&scenario.store));
    let culprit = client.enqueue(&Poison).await.unwrap();
    let mut bystanders = Vec::new();
    for n in 0..BYSTANDERS {
        bystanders.push(client.enqueue(&Nap(n)).await.unwrap());
    }
    let kinds = "poison,nap";
    scenario.workers = vec![Some(scenario.spawn(kinds)), Some(scenario.spawn(kinds))];
    let started = Instant::now();
    let mut crashes = 0;
    loop {
        for slot in 0..scenario.workers.len() {
            let died = match scenario.workers[slot].as_mut() {
                Some(child) => child.try_wait().unwrap().is_some(),
                None => true,
            };
            if died {
                crashes += 1;
                scenario.workers[slot] = Some(scenario.spawn(kinds));
            }
        }
        let stats = &scenario.store.queue_stats().await.unwrap()[0];
        if stats.completed + stats.dead == BYSTANDERS + 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not settled after 90 s ({crashes} crashes): {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let culprit_job = scenario.store.job_get(culprit).await.unwrap().unwrap();
    assert_eq!(culprit_job.state, JobState::Dead, "{culprit_job:?}");
    // One rescue beside others (no strike), then `MAX_RESCUES + 1` alone in quarantine.
    assert_eq!(
        (culprit_job.rescues, culprit_job.suspect),
        (MAX_RESCUES + 2, Some(MAX_RESCUES + 1)),
        "{culprit_job:?}"
    );
    let mut dead_bystanders = Vec::new();
    for id in &bystanders {
        if scenario.state(*id).await != JobState::Completed {
            dead_bystanders.push(*id);
        }
    }
    assert!(
        dead_bystanders.is_empty(),
        "{} of {BYSTANDERS} bystanders did not complete: {dead_bystanders:?}",
        dead_bystanders.len()
    );
    let dead_log = Scenario::lines(scenario.dead_log());
    assert_eq!(
        dead_log,
        vec![format!("dead {culprit} poison")],
        "the dead-job hook fired for the culprit only"
    );
    eprintln!(
        "poison pill: {crashes} crashes, settled in {:?}",
        started.elapsed()
    );
    scenario.finish().await;
}

/// A rolling deploy that adds a kind; see the module docs.
async fn a_kind_only_new_processes_know_waits_for_them(scenario: Scenario) {
    let mut scenario = scenario;
    let client = Client::new(Arc::clone(&scenario.store));
    let old = scenario.spawn("logged,nap");
    let old_pid = old.id();
    scenario.workers.push(Some(old));
    let mut fresh = HashSet::new();
    for n in 0..200 {
        fresh.insert(client.enqueue(&Fresh(n)).await.unwrap());
    }
    // The old process alone for a while: it must leave them waiting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = &scenario.store.queue_stats().await.unwrap()[0];
    assert_eq!((stats.available, stats.dead), (200, 0), "{stats:?}");
    let new = scenario.spawn("logged,nap,fresh");
    let new_pid = new.id();
    scenario.workers.push(Some(new));
    let started = Instant::now();
    loop {
        let stats = &scenario.store.queue_stats().await.unwrap()[0];
        assert_eq!(stats.dead, 0, "{stats:?}");
        if stats.completed == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not done after 30 s: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = Scenario::lines(scenario.log());
    assert_eq!(runs.len(), 200, "each ran once");
    for line in &runs {
        let pid: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(
            pid, new_pid,
            "run by the new process, not {old_pid}: {line}"
        );
    }
    for id in fresh {
        let job = scenario.store.job_get(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Completed, 0));
    }
    scenario.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_poison_pill_blames_the_culprit_only() {
    poison_pill_blames_the_culprit_only(Scenario::sqlite("poison").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_poison_pill_blames_the_culprit_only() {
    if let Some(scenario) = Scenario::postgres("blame_poison").await {
        poison_pill_blames_the_culprit_only(scenario).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_kind_only_new_processes_know_waits_for_them() {
    a_kind_only_new_processes_know_waits_for_them(Scenario::sqlite("deploy").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_kind_only_new_processes_know_waits_for_them() {
    if let Some(scenario) = Scenario::postgres("blame_deploy").await {
        a_kind_only_new_processes_know_waits_for_them(scenario).await;
    }
}
