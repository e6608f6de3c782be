//! A service: an HTTP server, the job pool and one more supervised child in one supervision
//! tree, and a request handler that writes a row and enqueues a job in the same database
//! transaction.
//!
//! ```text
//! service (one_for_one)
//! ├── jobs-pool   the worker pool (a supervisor child)      started first, stopped last
//! ├── reporter    logs queue depths every few seconds
//! └── http        axum: POST /signups, GET /signups/{id},   started last, stopped first
//!                 GET /jobs/{id}, GET /metrics (Prometheus)
//! ```
//!
//! One Ctrl-C or SIGTERM stops the tree in reverse start order: the server stops accepting
//! and finishes its requests, then the pool stops fetching, gives running jobs their grace
//! period and releases the rest (their checkpoints kept), so nothing is lost: the next run
//! resumes them.
//!
//! ```text
//! cargo run --example service                        # SQLite file service.db, port 3000
//! cargo run --example service -- --postgres postgres://postgres@127.0.0.1/test
//! curl -d '{"email":"ada@example.com"}' -H 'content-type: application/json' localhost:3000/signups
//! curl localhost:3000/signups/1
//! ```

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use jobs::store::Store;
use jobs::{
    Client, EnqueueError, EnqueueOptions, JobArgs, JobContext, JobError, JobId, PoolConfig,
    PoolStarted, Worker,
};
use jobs_postgres::{PostgresStore, SchemaName};
use jobs_sqlite::{SqliteStore, SqliteStoreOptions};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgPool, SqlitePool};
use supervisor::{ChildContext, ChildError, ChildSpec, Shutdown, Supervisor};

/// The service's flags.
#[derive(Debug, Parser)]
#[command(about = "An HTTP service whose requests enqueue jobs in their own transaction")]
struct Flags {
    /// The SQLite file for the application's rows and the jobs.
    #[arg(long, default_value = "service.db")]
    db: PathBuf,
    /// Use PostgreSQL at this URL instead of SQLite.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Where the HTTP server listens (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The grace period running jobs get on shutdown.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// How long one step of the welcome job takes.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    step: Duration,
}

/// The PostgreSQL schema of the example's tables and jobs.
const PG_SCHEMA: &str = "service_example";

// ---------------------------------------------------------------------------------------
// The job: welcome a new user, in steps, checkpointing each so a shutdown loses nothing.

#[derive(Serialize, Deserialize)]
struct Welcome {
    signup: i64,
    steps: u32,
}
impl JobArgs for Welcome {
    const KIND: &'static str = "welcome";
}

struct Welcomer {
    db: Db,
    step: Duration,
}

impl Worker for Welcomer {
    type Args = Welcome;
    async fn perform(&self, ctx: JobContext, args: Welcome) -> Result<(), JobError> {
        let resumed_from: u32 = ctx.checkpoint_state()?.unwrap_or(0);
        if resumed_from > 0 {
            tracing::info!(
                signup = args.signup,
                step = resumed_from,
                "welcome resumes from its checkpoint"
            );
        }
        for step in resumed_from..args.steps {
            tokio::time::sleep(self.step).await; // one step of the work
            ctx.checkpoint(&(step + 1)).await?; // on shutdown: released here, step kept
        }
        self.db.mark_welcomed(args.signup, resumed_from).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The application's database: its own rows beside the jobs, on SQLite or PostgreSQL.

#[derive(Clone)]
enum Db {
    Sqlite {
        pool: SqlitePool,
        store: Arc<SqliteStore>,
    },
    Postgres {
        pool: PgPool,
        store: Arc<PostgresStore>,
    },
}

/// A signup as the API shows it.
#[derive(Serialize)]
struct Signup {
    id: i64,
    email: String,
    job: i64,
    welcomed: bool,
    /// The step the welcome job's last run started from (0: it ran in one go).
    resumed_from: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
enum DbError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

type SignupRow = (i64, String, i64, bool, Option<i64>);

impl Db {
    async fn open(flags: &Flags) -> Result<Self, Box<dyn Error>> {
        match &flags.postgres {
            Some(url) => {
                let pool = PgPool::connect(url).await?;
                let schema = SchemaName::new(PG_SCHEMA)?;
                jobs_postgres::migrate(&pool, &schema).await?;
                sqlx::raw_sql(&format!(
                    "CREATE TABLE IF NOT EXISTS {}.signups (id bigserial PRIMARY KEY, \
                     email text NOT NULL, job bigint NOT NULL DEFAULT 0, \
                     welcomed boolean NOT NULL DEFAULT false, resumed_from bigint)",
                    schema.quoted()
                ))
                .execute(&pool)
                .await?;
                let store = Arc::new(PostgresStore::open(pool.clone(), schema).await?);
                Ok(Db::Postgres { pool, store })
            }
            None => {
                let connect = SqliteStoreOptions::new().connect_options(&flags.db);
                let pool = SqlitePool::connect_with(connect).await?;
                sqlx::raw_sql(
                    "CREATE TABLE IF NOT EXISTS signups (id INTEGER PRIMARY KEY, \
                     email TEXT NOT NULL, job INTEGER NOT NULL DEFAULT 0, \
                     welcomed BOOLEAN NOT NULL DEFAULT 0, resumed_from INTEGER)",
                )
                .execute(&pool)
                .await?;
                let store = Arc::new(SqliteStore::from_pool(&pool).await?);
                Ok(Db::Sqlite { pool, store })
            }
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite { store, .. } => store.clone(),
            Db::Postgres { store, .. } => store.clone(),
        }
    }

    /// Writes the signup and enqueues its welcome job in one transaction: both or neither.
    async fn sign_up(&self, email: &str, steps: u32) -> Result<(i64, JobId), DbError> {
        let welcome = |signup| Welcome { signup, steps };
        match self {
            Db::Sqlite { pool, store } => {
                let mut conn = pool.acquire().await?;
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let id: i64 =
                    sqlx::query_scalar("INSERT INTO signups (email) VALUES (?) RETURNING id")
                        .bind(email)
                        .fetch_one(&mut *tx)
                        .await?;
                let job = store
                    .enqueue_in(&mut tx, &welcome(id), EnqueueOptions::new())
                    .await?;
                sqlx::query("UPDATE signups SET job = ? WHERE id = ?")
                    .bind(job.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                store.wake(jobs::DEFAULT_QUEUE); // SQLite has no NOTIFY between connections
                Ok((id, job))
            }
            Db::Postgres { pool, store } => {
                let mut tx = pool.begin().await?;
                let insert =
                    format!("INSERT INTO {PG_SCHEMA}.signups (email) VALUES ($1) RETURNING id");
                let id: i64 = sqlx::query_scalar(&insert)
                    .bind(email)
                    .fetch_one(&mut *tx)
                    .await?;
                let job = store
                    .enqueue_in(&mut tx, &welcome(id), EnqueueOptions::new())
                    .await?;
                sqlx::query(&format!(
                    "UPDATE {PG_SCHEMA}.signups SET job = $1 WHERE id = $2"
                ))
                .bind(job.0)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?; // the NOTIFY inside it wakes the pool now
                Ok((id, job))
            }
        }
    }

    async fn mark_welcomed(&self, id: i64, resumed_from: u32) -> Result<(), sqlx::Error> {
        let resumed_from = i64::from(resumed_from);
        match self {
            Db::Sqlite { pool, .. } => {
                sqlx::query("UPDATE signups SET welcomed = 1, resumed_from = ? WHERE id = ?")
                    .bind(resumed_from)
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
            Db::Postgres { pool, .. } => {
                let sql = format!(
                    "UPDATE {PG_SCHEMA}.signups SET welcomed = true, resumed_from = $1 WHERE id = $2"
                );
                sqlx::query(&sql)
                    .bind(resumed_from)
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn signup(&self, id: i64) -> Result<Option<Signup>, sqlx::Error> {
        let row: Option<SignupRow> = match self {
            Db::Sqlite { pool, .. } => {
                sqlx::query_as(
                    "SELECT id, email, job, welcomed, resumed_from FROM signups WHERE id = ?",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?
            }
            Db::Postgres { pool, .. } => {
                let sql = format!(
                    "SELECT id, email, job, welcomed, resumed_from FROM {PG_SCHEMA}.signups WHERE id = $1"
                );
                sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
            }
        };
        Ok(row.map(|(id, email, job, welcomed, resumed_from)| Signup {
            id,
            email,
            job,
            welcomed,
            resumed_from,
        }))
    }
}

// ---------------------------------------------------------------------------------------
// The HTTP server.

#[derive(Clone)]
struct App {
    db: Db,
    jobs: Client,
    metrics: PrometheusHandle,
}

#[derive(Deserialize)]
struct NewSignup {
    email: String,
    /// Steps of the welcome job (default 1).
    steps: Option<u32>,
}

#[derive(Serialize)]
struct Created {
    id: i64,
    job: i64,
}

type Reply<T> = Result<T, (StatusCode, String)>;

fn internal(error: impl std::fmt::Display) -> (StatusCode, String) {
    tracing::error!(%error, "request failed");
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

async fn create_signup(
    State(app): State<App>,
    Json(new): Json<NewSignup>,
) -> Reply<(StatusCode, Json<Created>)> {
    let (id, job) = app
        .db
        .sign_up(&new.email, new.steps.unwrap_or(1))
        .await
        .map_err(internal)?;
    tracing::info!(signup = id, job_id = %job, "signed up");
    Ok((StatusCode::CREATED, Json(Created { id, job: job.0 })))
}

async fn show_signup(State(app): State<App>, Path(id): Path<i64>) -> Reply<Json<Signup>> {
    match app.db.signup(id).await.map_err(internal)? {
        Some(signup) => Ok(Json(signup)),
        None => Err((StatusCode::NOT_FOUND, format!("no signup {id}"))),
    }
}

async fn show_job(State(app): State<App>, Path(id): Path<i64>) -> Reply<String> {
    match app.jobs.job(JobId(id)).await.map_err(internal)? {
        Some(job) => Ok(job.state.to_string()),
        None => Err((StatusCode::NOT_FOUND, format!("no job {id}"))),
    }
}

/// The pool's metrics (and any others recorded) in Prometheus's text format.
async fn metrics(State(app): State<App>) -> String {
    app.metrics.render()
}

/// The service's routes.
fn routes(app: App) -> Router {
    Router::new()
        .route("/signups", post(create_signup))
        .route("/signups/{id}", get(show_signup))
        .route("/jobs/{id}", get(show_job))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// The HTTP server as a supervised child: it serves until its supervisor stops it, then
/// stops accepting and finishes the requests in flight (axum's graceful shutdown).
fn http_child(
    listener: std::net::TcpListener,
    db: Db,
    pool: PoolStarted,
    metrics: PrometheusHandle,
) -> ChildSpec {
    let listener = Arc::new(listener);
    ChildSpec::new("http", move |ctx: ChildContext| {
        let (listener, db, mut pool) = (listener.clone(), db.clone(), pool.clone());
        let metrics = metrics.clone();
        async move {
            // Started after the pool, so this resolves at once; no polling.
            let jobs = pool.wait().await?.client();
            let listener = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
            let stop = ctx.token().clone().cancelled_owned();
            axum::serve(listener, routes(App { db, jobs, metrics }))
                .with_graceful_shutdown(stop)
                .await?;
            Ok::<(), ChildError>(())
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

/// One more supervised child: logs queue depths every few seconds.
fn reporter_child(client: Client) -> ChildSpec {
    ChildSpec::new("reporter", move |ctx: ChildContext| {
        let client = client.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = ctx.cancelled() => return Ok(()),
                }
                for queue in client.queue_stats().await? {
                    tracing::info!(queue = %queue.queue, available = queue.count(jobs::JobState::Available),
                        running = queue.count(jobs::JobState::Running), "queue depth");
                }
            }
        }
    })
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn Error>> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let flags = Flags::parse();
    // The metrics recorder goes in before the pool starts (the pool builds its handles then).
    let metrics = PrometheusBuilder::new()
        .set_buckets(jobs::telemetry::SECONDS_BUCKETS)?
        .install_recorder()?;
    let db = Db::open(&flags).await?;
    let config = PoolConfig {
        grace: flags.grace,
        shutdown_timeout: flags.grace + Duration::from_secs(5),
        ..PoolConfig::default()
    };
    let (pool, started) = jobs::Pool::builder(db.store())
        .config(config)
        .register(Welcomer {
            db: db.clone(),
            step: flags.step,
        })
        .build()?
        .child_spec();
    let listener = std::net::TcpListener::bind(flags.listen)?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let app = Supervisor::builder("service")
        .child(pool) // started first, stopped last
        .child(reporter_child(Client::new(db.store())))
        .child(http_child(listener, db, started, metrics)) // started last, stopped first
        .build()?
        .start()
        .await?;
    println!("listening on {address}");
    let bound = flags.grace + Duration::from_secs(10);
    let outcome = supervisor::run_until_signal(app, bound).await?;
    println!("stopped: {outcome}");
    Ok(outcome.exit_code())
}
