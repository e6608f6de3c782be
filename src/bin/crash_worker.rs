//! A worker process for the crash tests in `tests/`: they start it, SIGTERM or SIGKILL it,
//! and check the store afterwards. Not meant for users (see `examples/worker_pool.rs`).
//!
//! ```text
//! crash_worker (--sqlite PATH | --postgres URL --schema NAME) --log PATH
//!              [--lease-ms N] [--row-ms N] [--grace-ms N] [--concurrency N]
//!              [--max-connections N] [--log-lease] [--checkpoint-ms N]
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

/// A worker process for the crash tests: runs `import` and `logged` jobs until SIGTERM/SIGINT.
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
        checkpoint_interval: flags
            .checkpoint_interval
            .unwrap_or(PoolConfig::default().checkpoint_interval),
        ..PoolConfig::default()
    };
    let owner = flags
        .log_lease
        .then(|| format!("crash-{}", std::process::id()));
    let mut builder = Pool::builder(store)
        .config(config)
        .queue("default", flags.concurrency)
        .register(Importer {
            log: log.clone(),
            row_time: flags.row_time,
        })
        .register(Stepper {
            log: log.clone(),
            step_time: flags.row_time,
        })
        .register(LoggedWorker {
            log,
            owner: owner.clone(),
        });
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
