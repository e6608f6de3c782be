//! A supervised worker pool on the embedded SQLite store: the project's main example.
//!
//! ```text
//! cargo run --release --example worker_pool
//! ```
//!
//! On its first run it enqueues a few thousand demo jobs into `worker_pool.db` in the working
//! directory: quick emails (some fail once and are retried with backoff), thumbnails, and one
//! long CSV import that checkpoints every row. It shows a live status line. Press Ctrl-C: the
//! pool stops fetching, running jobs get a grace period, the import saves its place and is
//! released. Run it again: it resumes where it left off. Ctrl-C twice skips the grace period.
//!
//! Flags: `--seconds N` shuts down by itself after N seconds; `--fresh` deletes the database
//! first; `--db PATH` uses another file.
//!
//! The same on PostgreSQL (the example applies the migrations itself, to the schema
//! `worker_pool`, which `--fresh` drops first); start it in several terminals to watch
//! processes share the work:
//!
//! ```text
//! cargo run --release --example worker_pool -- --postgres postgres://postgres@127.0.0.1:5432/test
//! ```

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use jobs::store::Store;
use jobs::{
    Client, EnqueueOptions, JobArgs, JobContext, JobError, JobState, Pool, PoolConfig, QueueStats,
    Worker,
};
use jobs_postgres::{migrate, PostgresOptions, PostgresStore, SchemaName};
use jobs_sqlite::SqliteStore;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct SendEmail {
    to: String,
    /// The demo's flaky SMTP server refuses this address once.
    bounces_once: bool,
}
impl JobArgs for SendEmail {
    const KIND: &'static str = "send_email";
    fn default_options() -> EnqueueOptions {
        EnqueueOptions::new().queue("mailers").max_attempts(5)
    }
}

/// Sends an email (20 ms); some addresses bounce on the first attempt and are retried.
struct Mailer;
impl Worker for Mailer {
    type Args = SendEmail;
    async fn perform(&self, ctx: JobContext, email: SendEmail) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if email.bounces_once && ctx.attempt() == 1 {
            return Err(JobError::failed(format!(
                "SMTP 451 for {}: try again later",
                email.to
            )));
        }
        Ok(())
    }
    fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_secs(2 * u64::from(attempt))
    }
}

#[derive(Serialize, Deserialize)]
struct Thumbnail {
    image: u32,
}
impl JobArgs for Thumbnail {
    const KIND: &'static str = "thumbnail";
}

struct Thumbnailer;
impl Worker for Thumbnailer {
    type Args = Thumbnail;
    async fn perform(&self, _ctx: JobContext, _args: Thumbnail) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct ImportCsv {
    rows: u64,
}
impl JobArgs for ImportCsv {
    const KIND: &'static str = "import_csv";
    fn default_options() -> EnqueueOptions {
        EnqueueOptions::new().queue("imports")
    }
}

/// A long import: one row every 50 ms, progress saved at every row.
struct Importer;
impl Worker for Importer {
    type Args = ImportCsv;
    async fn perform(&self, ctx: JobContext, args: ImportCsv) -> Result<(), JobError> {
        let mut row: u64 = ctx.checkpoint_state()?.unwrap_or(0);
        if row > 0 {
            tracing::info!(row, "import resumes from its checkpoint");
        }
        while row < args.rows {
            tokio::time::sleep(Duration::from_millis(50)).await; // import one row
            row += 1;
            ctx.checkpoint(&row).await?;
        }
        Ok(())
    }
}

/// A supervised worker pool on SQLite (or PostgreSQL): Ctrl-C stops it cleanly, the next run
/// resumes.
#[derive(Parser, Debug)]
#[command(name = "worker_pool")]
struct Flags {
    /// Shut down by itself after this many seconds.
    #[arg(long, value_name = "N")]
    seconds: Option<u64>,
    /// Delete the database (or drop the PostgreSQL schema) first.
    #[arg(long)]
    fresh: bool,
    /// The SQLite database file.
    #[arg(long, value_name = "PATH", default_value = "worker_pool.db")]
    db: PathBuf,
    /// Use PostgreSQL at this URL instead of SQLite.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

/// The PostgreSQL schema of the demo (`--postgres`).
const PG_SCHEMA: &str = "worker_pool";

async fn enqueue_demo_jobs(client: &Client) -> Result<(), jobs::EnqueueError> {
    let emails = (0..2_000).map(|i| SendEmail {
        to: format!("user{i}@example.com"),
        bounces_once: i % 7 == 0,
    });
    client.enqueue_many(emails, EnqueueOptions::new()).await?;
    client
        .enqueue_many(
            (0..2_000).map(|image| Thumbnail { image }),
            EnqueueOptions::new(),
        )
        .await?;
    client.enqueue(&ImportCsv { rows: 600 }).await?;
    Ok(())
}

fn total(stats: &[QueueStats], states: &[JobState]) -> u64 {
    stats
        .iter()
        .flat_map(|q| states.iter().map(|s| q.count(*s)))
        .sum()
}

/// One refresh of the status line: counts, and throughput since `since` (when `done_then`
/// jobs were done).
fn status_line(stats: &[QueueStats], done_then: u64, since: Instant) -> String {
    let done = total(stats, &[JobState::Completed, JobState::Dead]);
    let rate = done.saturating_sub(done_then) as f64 / since.elapsed().as_secs_f64().max(0.001);
    format!(
        "\r{done:>5} done  {:>4} running  {:>5} waiting ({:>3} retrying)  {rate:>7.0} jobs/s   ",
        total(stats, &[JobState::Running]),
        total(stats, &[JobState::Available, JobState::Scheduled]),
        total(stats, &[JobState::Scheduled]),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    let (store, place) = match &flags.postgres {
        Some(url) => (open_postgres(url, flags.fresh).await?, PG_SCHEMA.to_owned()),
        None => (
            open_sqlite(&flags.db, flags.fresh).await?,
            flags.db.display().to_string(),
        ),
    };
    let client = Client::new(store.clone());
    if client.queue_stats().await?.is_empty() {
        enqueue_demo_jobs(&client).await?;
        println!("enqueued 4,001 demo jobs into {place}");
    } else {
        println!("resuming the jobs in {place}");
    }

    let config = PoolConfig {
        grace: Duration::from_secs(10),
        ..PoolConfig::default()
    };
    let pool = Pool::builder(store)
        .config(config)
        .queue("default", 10)
        .queue("mailers", 20)
        .queue("imports", 1)
        .register(Mailer)
        .register(Thumbnailer)
        .register(Importer)
        .on_exhausted(|job| async move {
            eprintln!(
                "\ndead: job {} ({}) after {} attempts: {:?}",
                job.id,
                job.kind,
                job.attempts,
                job.errors.last()
            );
        })
        .start()
        .await?;

    let progress = tokio::spawn({
        let client = client.clone();
        async move {
            let since = Instant::now();
            let mut done_then = None;
            loop {
                if let Ok(stats) = client.queue_stats().await {
                    let done = total(&stats, &[JobState::Completed, JobState::Dead]);
                    print!(
                        "{}",
                        status_line(&stats, *done_then.get_or_insert(done), since)
                    );
                    let _ = std::io::stdout().flush();
                    let states = [JobState::Available, JobState::Scheduled, JobState::Running];
                    if total(&stats, &states) == 0 {
                        println!("\nall jobs done");
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });

    let report = tokio::select! {
        report = pool.run_until_signal() => report?,
        _ = sleep_or_forever(flags.seconds) => pool.shutdown().await,
        _ = progress => pool.shutdown().await,
    };
    println!(
        "\nstopped in {:.1?}: {} job(s) released back to their queue{}",
        report.took,
        report.released.len(),
        if report.clean {
            ""
        } else {
            " (unclean shutdown: see the log)"
        }
    );
    Ok(())
}

/// The SQLite file, deleted first with `--fresh`.
async fn open_sqlite(db: &Path, fresh: bool) -> Result<Arc<dyn Store>, Box<dyn Error>> {
    if fresh {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
    Ok(Arc::new(SqliteStore::open(db).await?))
}

/// The demo's schema on PostgreSQL, dropped first with `--fresh`, migrated to this version.
async fn open_postgres(url: &str, fresh: bool) -> Result<Arc<dyn Store>, Box<dyn Error>> {
    let schema = SchemaName::new(PG_SCHEMA)?;
    let pool = PostgresOptions::new(url)?
        .schema(schema.clone())
        .connect_pool()
        .await?;
    if fresh {
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.quoted());
        jobs_postgres::sqlx::query(&drop).execute(&pool).await?;
    }
    migrate(&pool, &schema).await?;
    Ok(Arc::new(PostgresStore::open(pool, schema).await?))
}

async fn sleep_or_forever(seconds: Option<u64>) {
    match seconds {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => std::future::pending().await,
    }
}
