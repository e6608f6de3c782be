//! End-to-end tests of the built `jobs` binary: one operator's session against a temporary
//! SQLite file and against a fresh PostgreSQL schema, asserting the tables, the `--json`
//! documents and the exit codes, bad input included.

use std::process::{Command, Output};
use std::sync::Arc;

use jobs::store::{FinishOutcome, JobClaimParams, JobFinish, JobFinishParams, Store};
use jobs::{AttemptError, Timestamp};
use serde_json::Value;

/// What one run of `jobs` gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {self:?}"))
    }

    /// Asserts success and returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        &self.stdout
    }

    /// Asserts exit `code` with a one-line error containing `message`.
    fn fails(&self, code: i32, message: &str) {
        assert_eq!(self.code, code, "{self:?}");
        let first = self.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(message),
            "{self:?}"
        );
        assert!(self.stdout.is_empty(), "{self:?}");
    }
}

/// Runs `jobs` with `args`, no database in the environment.
fn jobs(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_jobs"))
        .args(args)
        .env_remove("JOBS_DATABASE_URL")
        .env_remove("JOBS_SCHEMA")
        .output()
        .expect("the jobs binary runs");
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}

/// `jobs` on one database: `db` are the options naming it.
struct Cli {
    db: Vec<String>,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = self.db.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        jobs(&all)
    }

    fn ids(&self, args: &[&str]) -> (Vec<i64>, Value) {
        let mut all = vec!["list", "--json"];
        all.extend_from_slice(args);
        let page = self.run(&all).json();
        let ids = page["jobs"]
            .as_array()
            .expect("a jobs array")
            .iter()
            .map(|job| job["id"].as_i64().expect("an id"))
            .collect();
        (ids, page["next_after"].clone())
    }
}

/// The cells of the table row starting with `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{table}"))
}

/// Job 1 runs and dies ("smtp down"); job 4 is left running for worker-a.
async fn run_mail_jobs(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let claimed = store
        .job_claim(JobClaimParams {
            queue: "mail".into(),
            owner: "worker-a".into(),
            limit: 2,
            lease_ttl: std::time::Duration::from_secs(600),
            now,
            kinds: None,
            suspects: false,
        })
        .await
        .expect("claiming");
    let ids: Vec<_> = claimed.iter().map(|c| c.record.id.0).collect();
    assert_eq!(ids, [1, 4]);
    let error = AttemptError {
        attempt: 1,
        at: now,
        message: "smtp down".into(),
    };
    let applied = store
        .job_finish_many(JobFinishParams {
            owner: "worker-a".into(),
            finishes: vec![JobFinish {
                lease: claimed[0].lease,
                outcome: FinishOutcome::Dead { error },
            }],
            now,
        })
        .await
        .expect("finishing");
    assert_eq!(applied, [true]);
}

/// Everything before `migrate`: the database is not there yet.
fn before_migrate(cli: &Cli, missing: &str) {
    cli.run(&["stats"]).fails(1, missing);
    cli.run(&["show", "1"]).fails(1, missing);
}

/// `migrate`, then enqueues jobs 1 to 4.
fn migrate_and_enqueue(cli: &Cli, backend: &str) {
    let migrated = cli.run(&["migrate", "--json"]).json();
    assert_eq!(migrated["backend"], backend);
    assert!(
        migrated["schema_version"].as_i64().unwrap() > 0,
        "{migrated}"
    );
    assert!(cli.run(&["migrate"]).ok().contains("is at schema version"));

    let email = ["enqueue", "email", "--args", r#"{"to":"a@example.com"}"#];
    let first = cli.run(&[&email[..], &["--queue", "mail", "--json"]].concat());
    assert_eq!(
        first.json(),
        serde_json::json!({"id": 1, "state": "available"})
    );
    let resize = cli.run(&[
        "enqueue",
        "resize",
        "--args",
        "[1,2]",
        "--in",
        "5m",
        "--priority",
        "-2",
    ]);
    assert_eq!(resize.ok().trim(), "job 2 enqueued: it is scheduled");
    let report = cli.run(&[
        "enqueue",
        "report",
        "--at",
        "2030-01-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(report.json()["state"], "scheduled");
    cli.run(&[&email[..], &["--queue", "mail"]].concat()).ok();
}

/// `stats`, `list`, `show` on the four jobs (1 dead, 2 and 3 scheduled, 4 running).
fn inspect(cli: &Cli) {
    let stats = cli.run(&["stats"]);
    let header = row(stats.ok(), "QUEUE");
    assert_eq!(
        header,
        [
            "QUEUE",
            "SCHEDULED",
            "AVAILABLE",
            "RUNNING",
            "COMPLETED",
            "DEAD",
            "CANCELLED",
            "LATENCY"
        ]
    );
    assert_eq!(
        row(&stats.stdout, "mail"),
        ["mail", "0", "0", "1", "0", "1", "0", "0s"]
    );
    assert_eq!(row(&stats.stdout, "default")[1], "2");
    let queues = cli.run(&["stats", "--json"]).json();
    let mail = &queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "mail")
        .unwrap();
    assert_eq!(
        (mail["dead"].as_u64(), mail["running"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(mail["latency_seconds"], 0.0);

    let listed = cli.run(&["list"]);
    assert_eq!(listed.ok().lines().count(), 5, "{}", listed.stdout);
    assert_eq!(
        row(&listed.stdout, "ID")[..4],
        ["ID", "KIND", "QUEUE", "STATE"]
    );
    assert_eq!(
        row(&listed.stdout, "1")[1..5],
        ["email", "mail", "dead", "0"]
    );
    assert_eq!(
        row(&listed.stdout, "2")[1..6],
        ["resize", "default", "scheduled", "-2", "0/20"]
    );
    assert_eq!(cli.ids(&["--state", "dead"]), (vec![1], Value::Null));
    assert_eq!(cli.ids(&["--queue", "default"]).0, [2, 3]);
    assert_eq!(cli.ids(&["--kind", "email"]).0, [1, 4]);
    assert_eq!(
        cli.ids(&["--kind", "email", "--limit", "1"]),
        (vec![1], 1.into())
    );
    assert_eq!(
        cli.ids(&["--kind", "email", "--after", "1"]),
        (vec![4], Value::Null)
    );
    let to_ada = ["--args-contain", r#"{"to":"a@example.com"}"#];
    assert_eq!(cli.ids(&to_ada).0, [1, 4]);
    assert_eq!(cli.ids(&["--args-contain", "[2]"]).0, [2]);
    assert_eq!(
        cli.ids(&[&to_ada[..], &["--state", "running"]].concat()).0,
        [4]
    );
    assert_eq!(cli.ids(&["--older-than", "1h"]).0, Vec::<i64>::new());
    assert_eq!(cli.ids(&["--older-than", "0s"]).0, [1, 2, 3, 4]);
    assert_eq!(cli.ids(&["--limit", "2"]), (vec![1, 2], 2.into()));
    assert_eq!(
        cli.ids(&["--limit", "3", "--after", "2"]),
        (vec![3, 4], Value::Null)
    );
    let more = cli.run(&["list", "--limit", "2"]);
    assert!(more.ok().ends_with("more: --after 2\n"), "{}", more.stdout);

    let dead = cli.run(&["show", "1"]);
    assert_eq!(row(dead.ok(), "state:"), ["state:", "dead"]);
    assert_eq!(
        row(&dead.stdout, "attempts:"),
        ["attempts:", "1", "of", "20"]
    );
    assert!(
        dead.stdout
            .contains("args:\n  {\n    \"to\": \"a@example.com\"\n  }"),
        "{}",
        dead.stdout
    );
    assert_eq!(row(&dead.stdout, "1")[2..], ["smtp", "down"]);
    let running = cli.run(&["show", "4", "--json"]).json();
    assert_eq!(running["state"], "running");
    assert_eq!(running["lease_owner"], "worker-a");
    assert!(
        running["lease_expires_at"].as_str().unwrap().ends_with('Z'),
        "{running}"
    );
    assert_eq!(running["args"]["to"], "a@example.com");
    let dead = cli.run(&["show", "1", "--json"]).json();
    assert_eq!(dead["errors"][0]["message"], "smtp down");
    assert_eq!(dead["errors"][0]["attempt"], 1);
    let report = cli.run(&["show", "3", "--json"]).json();
    assert_eq!(report["run_at"], "2030-01-01T00:00:00.000000Z");
}

/// `retry`, `cancel`, `purge`, with their refusals.
fn operate(cli: &Cli) {
    cli.run(&["retry", "4"])
        .fails(1, "job 4 is running: only dead or cancelled");
    cli.run(&["retry", "99"]).fails(1, "job 99 does not exist");
    assert_eq!(
        cli.run(&["retry", "1"]).ok().trim(),
        "job 1 retried: it is available"
    );
    cli.run(&["cancel", "4"])
        .fails(1, "job 4 is running: only waiting");
    let cancelled = cli.run(&["cancel", "2", "--json"]).json();
    assert_eq!(
        cancelled,
        serde_json::json!({"id": 2, "state": "cancelled"})
    );
    cli.run(&["cancel", "2"]).fails(1, "job 2 is cancelled");

    let kept = cli
        .run(&["purge", "--older-than", "7d", "--yes", "--json"])
        .json();
    assert_eq!(kept["deleted"], 0);
    let purged = cli.run(&[
        "purge",
        "--older-than",
        "0s",
        "--state",
        "cancelled",
        "--yes",
    ]);
    assert_eq!(
        purged.ok().trim(),
        "deleted 1 cancelled jobs finished more than 0s ago"
    );
    cli.run(&["show", "2"]).fails(1, "job 2 does not exist");
    assert_eq!(cli.ids(&[]).0, [1, 3, 4]);
}

/// Bad input: one line on stderr, exit 2, nothing changed.
fn bad_input(cli: &Cli) {
    cli.run(&["enqueue", "x", "--args", "{bad"])
        .fails(2, "invalid JSON");
    cli.run(&["enqueue", "x", "--in", "soon"])
        .fails(2, "--in <DURATION>");
    cli.run(&["enqueue", "x", "--at", "tomorrow"])
        .fails(2, "--at <TIME>");
    cli.run(&["enqueue", "bad kind!"])
        .fails(2, "invalid job kind");
    cli.run(&["enqueue", "x", "--queue", ""])
        .fails(2, "invalid queue name");
    cli.run(&["list", "--args-contain", "{"])
        .fails(2, "invalid JSON");
    cli.run(&["list", "--older-than", "old"])
        .fails(2, "--older-than <DURATION>");
    cli.run(&["list", "--state", "zombie"])
        .fails(2, "unknown job state \"zombie\"");
    cli.run(&["purge", "--older-than", "1d", "--state", "running"])
        .fails(2, "not finished");
    cli.run(&["show", "one"]).fails(2, "invalid value 'one'");
    cli.run(&["frobnicate"]).fails(2, "unrecognized subcommand");
    assert_eq!(cli.ids(&[]).0, [1, 3, 4]);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The whole session; `store` opens the same database in the test, on `runtime`.
fn session(
    cli: &Cli,
    backend: &str,
    missing: &str,
    runtime: &tokio::runtime::Runtime,
    store: impl AsyncFnOnce() -> Arc<dyn Store>,
) {
    before_migrate(cli, missing);
    migrate_and_enqueue(cli, backend);
    runtime.block_on(async { run_mail_jobs(store().await).await });
    inspect(cli);
    operate(cli);
    bad_input(cli);
}

#[test]
fn a_session_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let url = format!("sqlite:{}", path.display());
    let cli = Cli {
        db: vec!["--database".into(), url],
    };
    session(
        &cli,
        "sqlite",
        "no SQLite database at",
        &runtime(),
        async || {
            let store: Arc<dyn Store> =
                Arc::new(jobs_sqlite::SqliteStore::open(&path).await.unwrap());
            store
        },
    );
}

#[test]
fn a_session_on_postgres() {
    let Some(url) = jobs_postgres_testkit::database_url() else {
        return;
    };
    let schema = jobs_postgres_testkit::test_schema("cli_session");
    let runtime = runtime();
    let pool = runtime.block_on(async {
        let pool = jobs_postgres_testkit::test_pool(&url).await;
        jobs_postgres_testkit::drop_schema(&pool, &schema).await;
        pool
    });
    let cli = Cli {
        db: vec![
            "--database".into(),
            url,
            "--schema".into(),
            schema.as_str().into(),
        ],
    };
    session(
        &cli,
        "postgres",
        "does not exist in this database",
        &runtime,
        async || {
            let store = jobs_postgres::PostgresStore::open(pool.clone(), schema.clone()).await;
            let store: Arc<dyn Store> = Arc::new(store.unwrap());
            store
        },
    );
    runtime.block_on(jobs_postgres_testkit::drop_schema(&pool, &schema));
}

#[test]
fn the_database_must_be_named_and_reachable() {
    jobs(&["stats"]).fails(2, "no database given: pass --database");
    jobs(&["-d", "mysql://db/app", "stats"]).fails(2, "unsupported database URL");
    jobs(&["-d", "postgres://db:port/app", "stats"]).fails(2, "invalid PostgreSQL URL");
    jobs(&["-d", "postgres://db/app", "--schema", "1x", "stats"]).fails(2, "invalid schema name");
    jobs(&["-d", "jobs.db", "--schema", "bg", "stats"]).fails(2, "PostgreSQL only");
    let unreachable = ["-d", "postgres://jobs@127.0.0.1:1/app", "stats"];
    jobs(&unreachable).fails(
        1,
        "cannot reach PostgreSQL at postgres://jobs@127.0.0.1:1/app",
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let alone = jobs(&[]);
    assert_eq!(alone.code, 2, "{alone:?}");
    assert!(alone.stderr.contains("Exit codes:"), "{alone:?}");
    let help = jobs(&["--help"]);
    assert!(
        help.ok().contains("Exit codes:\n  0  success"),
        "{}",
        help.stdout
    );
    for command in [
        "migrate", "stats", "list", "show", "retry", "cancel", "enqueue", "purge",
    ] {
        assert!(
            help.stdout.contains(command),
            "{command} missing from\n{}",
            help.stdout
        );
    }
}

/// Runs `jobs args` on a pseudo-terminal (util-linux `script`), typing `input`; returns the
/// exit code and what the terminal showed.
fn jobs_on_a_terminal(args: &[&str], input: &str) -> (i32, String) {
    use std::io::Write;
    let command = std::iter::once(env!("CARGO_BIN_EXE_jobs"))
        .chain(args.iter().copied())
        .map(|arg| format!("'{arg}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("JOBS_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("typing");
    drop(stdin);
    let output = child.wait_with_output().expect("script exits");
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().expect("exited"), shown)
}

#[test]
fn purge_asks_on_a_terminal_unless_told_yes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let cli = Cli {
        db: vec!["--database".into(), path.display().to_string()],
    };
    cli.run(&["migrate"]).ok();
    for _ in 0..2 {
        cli.run(&["enqueue", "email"]).ok();
    }
    cli.run(&["cancel", "1"]).ok();
    let database = path.display().to_string();
    let purge = [
        "-d",
        &database,
        "purge",
        "--older-than",
        "0s",
        "--state",
        "cancelled",
    ];

    let (code, shown) = jobs_on_a_terminal(&purge, "n\n");
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("Delete cancelled jobs finished more than 0s ago from SQLite database"),
        "{shown}"
    );
    assert!(
        shown.contains("[y/N]") && shown.contains("error: aborted: nothing was changed"),
        "{shown}"
    );
    assert_eq!(cli.ids(&[]).0, [1, 2]);

    let (code, shown) = jobs_on_a_terminal(&purge, "y\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("deleted 1 cancelled jobs"), "{shown}");
    assert_eq!(cli.ids(&[]).0, [2]);

    cli.run(&["cancel", "2"]).ok();
    let (code, shown) = jobs_on_a_terminal(&[&purge[..], &["--yes"]].concat(), "");
    assert_eq!(code, 0, "{shown}");
    assert!(
        !shown.contains("[y/N]") && shown.contains("deleted 1"),
        "{shown}"
    );
    assert_eq!(cli.ids(&[]).0, Vec::<i64>::new());
}
