//! A worker process for the crash tests in `tests/`: they start it, SIGTERM or SIGKILL it,
//! and check the store afterwards. Not meant for users (see `examples/worker_pool.rs`).
//!
//! ```text
//! crash_worker (--sqlite PATH | --postgres URL --schema NAME) --log PATH
//!              [--lease-ms N] [--row-ms N] [--grace-ms N] [--concurrency N]
//!              [--max-connections N] [--log-lease] [--checkpoint-ms N]
//!              [--kinds K,K,...] [--max-rescues N] [--nap-ms N] [--dead-log PATH]
//! ```
//!
//! It runs three job kinds: `import` (rows one by one, checkpointing each, appending
//! `import <row>` to the log after processing a row), `steps` (forever: checkpoint, then
//! append `step <n> <pid>` as the step's side effect, then wait `--row-ms`) and `logged`
//! (appends `job <id>`, or with `--log-lease` `job <id> <token> <worker id>`: the run's
//! lease token and owner, so a test can tell runs apart; the worker id is then
//! `crash-<pid>`). `--checkpoint-ms` sets how often checkpoints are written at most
//! (default 1 s).
//! `--max-connections` sizes the PostgreSQL pool (default 10).
//!
//! For the blame and rolling-deploy tests it also runs `poison` (aborts the process, every
//! time), `nap` (sleeps `--nap-ms`, default 1000, then appends `nap <id> <pid>`) and `fresh`
//! (appends `fresh <id> <pid>`). `--kinds` registers only the kinds named (default: all of
//! them), as an older binary that does not know a newer kind would; `--max-rescues` sets the
//! pool's poison-pill limit; `--dead-log` makes the exhausted hook append `dead <id> <kind>`.
//! It prints `ready <worker id>` once its pool runs, and exits 0 after a clean shutdown on
//! SIGTERM/SIGINT.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jobs::store::Store;
use jobs::{JobArgs, JobContext, JobError, Pool, PoolConfig, Worker};
use serde::{Deserialize, Serialize};

/// A long import of `rows` rows.
#[derive(Serialize, Deserialize)]
pub struct Import {
    /// How many rows.
    pub rows: u64,
}
impl JobArgs for Import {
    const KIND: &'static str = "import";
}

/// A short job that logs its id.
#[derive(Serialize, Deserialize)]
pub struct Logged(pub u64);
impl JobArgs for Logged {
    const KIND: &'static str = "logged";
}

/// A job that aborts its process every time it runs (a poison pill).
#[derive(Serialize, Deserialize)]
pub struct Poison;
impl JobArgs for Poison {
    const KIND: &'static str = "poison";
}

/// A job that sleeps a while, then logs its id and the process id.
#[derive(Serialize, Deserialize)]
pub struct Nap(pub u64);
impl JobArgs for Nap {
    const KIND: &'static str = "nap";
}

/// A job of a kind only newer processes know; logs its id and the process id.
#[derive(Serialize, Deserialize)]
pub struct Fresh(pub u64);
impl JobArgs for Fresh {
    const KIND: &'static str = "fresh";
}

struct Log(PathBuf);

impl Log {
    fn line(&self, line: &str) -> Result<(), JobError> {
        // One write of a short line with O_APPEND: lines of concurrent processes never mix.
        let mut file = OpenOptions::new().create(true).append(true).open(&self.0)?;
        file.write_all(format!("{line}\n").as_bytes())?;
        Ok(())
    }
}

struct Importer {
    log: Arc<Log>,
    row_time: Duration,
}
impl Worker for Importer {
    type Args = Import;
    async fn perform(&self, ctx: JobContext, args: Import) -> Result<(), JobError> {
        let mut row: u64 = ctx.checkpoint_state()?.unwrap_or(0);
        while row < args.rows {
            tokio::time::sleep(self.row_time).await;
            self.log.line(&format!("import {row}"))?;
            row += 1;
            ctx.checkpoint(&row).await?;
        }
        Ok(())
    }
}

/// Steps forever, each one a side effect logged with this process's id.
#[derive(Serialize, Deserialize)]
pub struct Steps;
impl JobArgs for Steps {
    const KIND: &'static str = "steps";
}

struct Stepper {
    log: Arc<Log>,
    step_time: Duration,
}
impl Worker for Stepper {
    type Args = Steps;
    async fn perform(&self, ctx: JobContext, _args: Steps) -> Result<(), JobError> {
        let mut step: u64 = ctx.checkpoint_state()?.unwrap_or(0);
        loop {
            // The safe point comes before the side effect: a run that lost its lease stops here.
            ctx.checkpoint(&step).await?;
            self.log
                .line(&format!("step {step} {}", std::process::id()))?;
            step += 1;
            tokio::time::sleep(self.step_time).await;
        }
    }
}

struct LoggedWorker {
    log: Arc<Log>,
    /// With `--log-lease`: the pool's worker id, logged with each run's lease token.
    owner: Option<String>,
}
impl Worker for LoggedWorker {
    type Args = Logged;
    async fn perform(&self, ctx: JobContext, _args: Logged) -> Result<(), JobError> {
        match &self.owner {
            // `claims` as claimed is the run's lease token.
            Some(owner) => {
                self.log
                    .line(&format!("job {} {} {owner}", ctx.id(), ctx.record().claims))
            }
            None => self.log.line(&format!("job {}", ctx.id())),
        }
    }
}

struct PoisonWorker;
impl Worker for PoisonWorker {
    type Args = Poison;
    async fn perform(&self, _ctx: JobContext, _args: Poison) -> Result<(), JobError> {
        std::process::abort()
    }
}

struct NapWorker {
    log: Arc<Log>,
    nap: Duration,
}
impl Worker for NapWorker {
    type Args = Nap;
    async fn perform(&self, ctx: JobContext, _args: Nap) -> Result<(), JobError> {
        tokio::time::sleep(self.nap).await;
        self.log
            .line(&format!("nap {} {}", ctx.id(), std::process::id()))
    }
}

struct FreshWorker {
    log: Arc<Log>,
}
impl Worker for FreshWorker {
    type Args = Fresh;
    async fn perform(&self, ctx: JobContext, _args: Fresh) -> Result<(), JobError> {
        self.log
            .line(&format!("fresh {} {}", ctx.id(), std::process::id()))
    }
}

/// A worker process for the crash tests: runs its jobs until SIGTERM/SIGINT.
#[derive(Parser, Debug)]
#[command(name = "crash_worker")]
struct Flags {
    /// The SQLite database file.
    #[arg(long, value_name = "PATH", required_unless_present = "postgres")]
    sqlite: Option<PathBuf>,
    /// The PostgreSQL database URL.
    #[arg(long, value_name = "URL", conflicts_with = "sqlite")]
    postgres: Option<String>,
    /// The PostgreSQL schema of the jobs tables.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "jobs",
        requires = "postgres"
    )]
    schema: String,
    /// The file to append `import <row>` and `job <id>` lines to.
    #[arg(long, value_name = "PATH", default_value = "crash_worker.log")]
    log: PathBuf,
    /// The lease time to live, in milliseconds.
    #[arg(long = "lease-ms", value_name = "N", default_value = "30000", value_parser = millis)]
    lease: Duration,
    /// How long an import takes per row, in milliseconds.
    #[arg(long = "row-ms", value_name = "N", default_value = "20", value_parser = millis)]
    row_time: Duration,
    /// The shutdown grace period, in milliseconds.
    #[arg(long = "grace-ms", value_name = "N", default_value = "10000", value_parser = millis)]
    grace: Duration,
    /// Jobs run at once.
    #[arg(long, value_name = "N", default_value_t = 10)]
    concurrency: usize,
    /// The size of the PostgreSQL connection pool.
    #[arg(long, value_name = "N", default_value_t = jobs_postgres::DEFAULT_MAX_CONNECTIONS)]
    max_connections: u32,
    /// Log each `logged` job's lease token and owner, and use `crash-<pid>` as worker id.
    #[arg(long)]
    log_lease: bool,
    /// How often a checkpoint is written at most, in milliseconds (default: the pool's).
    #[arg(long = "checkpoint-ms", value_name = "N", value_parser = millis)]
    checkpoint_interval: Option<Duration>,
    /// Register only these kinds (comma-separated; default: all of them).
    #[arg(long, value_name = "K,K,...", value_delimiter = ',')]
    kinds: Option<Vec<String>>,
    /// The pool's poison-pill limit (default: the pool's).
    #[arg(long = "max-rescues", value_name = "N")]
    max_rescues: Option<u32>,
    /// How long a `nap` job sleeps, in milliseconds.
    #[arg(long = "nap-ms", value_name = "N", default_value = "1000", value_parser = millis)]
    nap: Duration,
    /// Make the exhausted hook append `dead <id> <kind>` to this file.
    #[arg(long = "dead-log", value_name = "PATH")]
    dead_log: Option<PathBuf>,
}

fn millis(value: &str) -> Result<Duration, std::num::ParseIntError> {
    value.parse().map(Duration::from_millis)
}

async fn open_store(flags: &Flags) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    if let Some(path) = &flags.sqlite {
        return Ok(Arc::new(jobs_sqlite::SqliteStore::open(path).await?));
    }
    let Some(url) = &flags.postgres else {
        return Err("give --sqlite PATH or --postgres URL".into());
    };
    let schema = jobs_postgres::SchemaName::new(&flags.schema)?;
    let options = jobs_postgres::PostgresOptions::new(url)?
        .schema(schema)
        .max_connections(flags.max_connections);
    let pool = options.connect_pool().await?;
    jobs_postgres::migrate(&pool, options.schema_name()).await?;
    Ok(Arc::new(
        jobs_postgres::PostgresStore::open(pool, options.schema_name().clone()).await?,
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    let store = open_store(&flags).await?;
    let log = Arc::new(Log(flags.log.clone()));
    let lease_ms = flags.lease.as_millis() as u64;
    let config = PoolConfig {
        lease_ttl: flags.lease,
        heartbeat_interval: Duration::from_millis(lease_ms / 3),
        rescue_interval: Duration::from_millis(lease_ms / 4),
        promote_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(100),
        grace: flags.grace,
        shutdown_timeout: flags.grace + Duration::from_secs(5),
        max_rescues: flags
            .max_rescues
            .unwrap_or(PoolConfig::default().max_rescues),
        checkpoint_interval: flags
            .checkpoint_interval
            .unwrap_or(PoolConfig::default().checkpoint_interval),
        ..PoolConfig::default()
    };
    let knows = |kind: &str| match &flags.kinds {
        Some(kinds) => kinds.iter().any(|k| k == kind),
        None => true,
    };
    let owner = flags
        .log_lease
        .then(|| format!("crash-{}", std::process::id()));
    let mut builder = Pool::builder(store)
        .config(config)
        .queue("default", flags.concurrency);
    if knows(Import::KIND) {
        builder = builder.register(Importer {
            log: log.clone(),
            row_time: flags.row_time,
        });
    }
    if knows(Steps::KIND) {
        builder = builder.register(Stepper {
            log: log.clone(),
            step_time: flags.row_time,
        });
    }
    if knows(Logged::KIND) {
        builder = builder.register(LoggedWorker {
            log: log.clone(),
            owner: owner.clone(),
        });
    }
    if knows(Poison::KIND) {
        builder = builder.register(PoisonWorker);
    }
    if knows(Nap::KIND) {
        builder = builder.register(NapWorker {
            log: log.clone(),
            nap: flags.nap,
        });
    }
    if knows(Fresh::KIND) {
        builder = builder.register(FreshWorker { log });
    }
    if let Some(path) = flags.dead_log.clone() {
        let dead_log = Arc::new(Log(path));
        builder = builder.on_exhausted(move |job: jobs::JobRecord| {
            let dead_log = Arc::clone(&dead_log);
            async move {
                let _ = dead_log.line(&format!("dead {} {}", job.id, job.kind));
            }
        });
    }
    if let Some(owner) = owner {
        builder = builder.worker_id(owner);
    }
    let pool = builder.start().await?;
    println!("ready {}", pool.worker_id());
    std::io::stdout().flush()?;
    let report = pool.run_until_signal().await?;
    println!(
        "stopped clean={} released={:?}",
        report.clean, report.released
    );
    std::process::exit(if report.clean { 0 } else { 1 });
}
