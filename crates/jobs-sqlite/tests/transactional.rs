//! Transactional enqueue on the application's own sqlx pool: the job follows the
//! application's transaction (commit: visible, and a pool runs it; rollback: no job), and is
//! validated as `Client::enqueue` validates it.

use std::sync::Arc;
use std::time::Duration;

use jobs::{EnqueueError, EnqueueOptions, JobArgs, JobContext, JobError, JobState, Pool, Worker};
use jobs_sqlite::{SqliteStore, SqliteStoreOptions};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, SqlitePool};
use tokio::sync::mpsc;

#[derive(Serialize, Deserialize)]
struct Welcome {
    user: i64,
}
impl JobArgs for Welcome {
    const KIND: &'static str = "welcome";
}

struct Welcomer(mpsc::UnboundedSender<i64>);
impl Worker for Welcomer {
    type Args = Welcome;
    async fn perform(&self, _ctx: JobContext, args: Welcome) -> Result<(), JobError> {
        let _ = self.0.send(args.user);
        Ok(())
    }
}

/// The application's pool on a file, with a table of its own, and the store opened on it.
async fn app(dir: &tempfile::TempDir) -> (SqlitePool, Arc<SqliteStore>) {
    let connect = SqliteStoreOptions::new().connect_options(dir.path().join("app.db"));
    let pool = SqlitePool::connect_with(connect).await.unwrap();
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let store = SqliteStore::from_pool(&pool).await.unwrap();
    (pool, Arc::new(store))
}

async fn users(pool: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_committed_enqueue_is_visible_and_runs_a_rolled_back_one_leaves_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let (app_pool, store) = app(&dir).await;
    let (ran, mut runs) = mpsc::unbounded_channel();
    let pool = Pool::builder(store.clone())
        .register(Welcomer(ran))
        .start()
        .await
        .unwrap();

    let mut conn = app_pool.acquire().await.unwrap();
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'rolled back')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rolled_back = store
        .enqueue_in(&mut tx, &Welcome { user: 1 }, EnqueueOptions::new())
        .await
        .unwrap();
    let many = store
        .enqueue_many_in(
            &mut tx,
            (10..20).map(|user| Welcome { user }),
            EnqueueOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(many.len(), 10);
    tx.rollback().await.unwrap();
    assert_eq!(users(&app_pool).await, 0);
    for id in std::iter::once(rolled_back).chain(many) {
        assert_eq!(pool.client().job(id).await.unwrap(), None, "rolled back");
    }

    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO users (id, name) VALUES (2, 'committed')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let id = store
        .enqueue_in(&mut tx, &Welcome { user: 2 }, EnqueueOptions::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store.wake(jobs::DEFAULT_QUEUE);
    assert_eq!(users(&app_pool).await, 1);
    let user = tokio::time::timeout(Duration::from_secs(10), runs.recv())
        .await
        .expect("the committed job runs")
        .unwrap();
    assert_eq!(user, 2);
    let report = pool.shutdown().await;
    assert!(report.clean);
    let job = pool
        .client()
        .job(id)
        .await
        .unwrap()
        .expect("the job exists");
    assert_eq!(job.state, JobState::Completed);
    assert!(runs.try_recv().is_err(), "no rolled-back job ever ran");
}

#[tokio::test]
async fn enqueue_in_refuses_what_the_client_refuses_and_leaves_the_transaction_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (app_pool, store) = app(&dir).await;
    let client = jobs::Client::new(store.clone());
    let bad = || EnqueueOptions::new().queue("no spaces allowed");
    let by_client = client.enqueue_with(&Welcome { user: 1 }, bad()).await;
    let mut tx = app_pool.begin().await.unwrap();
    let in_tx = store.enqueue_in(&mut tx, &Welcome { user: 1 }, bad()).await;
    assert!(matches!(by_client, Err(EnqueueError::InvalidQueue(_))));
    assert_eq!(
        in_tx.map_err(|e| e.to_string()),
        by_client.map_err(|e| e.to_string())
    );
    let no_attempts = EnqueueOptions::new().max_attempts(0);
    assert!(matches!(
        store
            .enqueue_in(&mut tx, &Welcome { user: 1 }, no_attempts)
            .await,
        Err(EnqueueError::InvalidMaxAttempts(_))
    ));
    let id = store
        .enqueue_in(&mut tx, &Welcome { user: 1 }, EnqueueOptions::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(client.job(id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_pool_whose_connections_are_separate_in_memory_databases_is_refused() {
    // Each connection of a pool on `:memory:` is a database of its own (sqlx's
    // `sqlite::memory:` URL instead names one shared in-memory database, which works).
    let connect = sqlx::sqlite::SqliteConnectOptions::new().filename(":memory:");
    let pool = SqlitePool::connect_with(connect).await.unwrap();
    assert!(matches!(
        SqliteStore::from_pool(&pool).await,
        Err(jobs::StoreError::Invalid { .. })
    ));
}
