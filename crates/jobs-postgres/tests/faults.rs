//! PostgreSQL under hostile or unlucky conditions: a flood of spurious wake-ups on the
//! schema's channel, a role whose default `statement_timeout` is tiny, and jobs that block
//! every thread of the runtime.
//!
//! Wall-clock waits here are bounded polls of a real database, never fixed sleeps that a
//! slow machine could outrun, except the short settling time before the flood.

use jobs_postgres_testkit as testkit;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jobs::store::{
    ClaimedJob, JobCancelParams, JobCheckpointParams, JobClaimParams, JobExpireUnknownKindsParams,
    JobFinishParams, JobHeartbeatParams, JobInsertParams, JobListParams, JobListener,
    JobPromoteParams, JobPruneParams, JobRescueParams, JobRetryParams, RescueOutcome, Store,
    UnknownKinds,
};
use jobs::{
    EnqueueOptions, JobArgs, JobContext, JobError, JobId, JobRecord, JobState, Pool, QueueStats,
    StoreError, Worker,
};
use jobs_postgres::{PostgresOptions, PostgresStore};
use serde::{Deserialize, Serialize};

/// A store that counts the claims that reach it.
#[derive(Debug)]
struct CountingClaims {
    inner: Arc<dyn Store>,
    claims: AtomicUsize,
}

macro_rules! forward {
    ($name:ident, $params:ty, $out:ty) => {
        fn $name(&self, params: $params) -> BoxFuture<'_, Result<$out, StoreError>> {
            self.inner.$name(params)
        }
    };
}

impl Store for CountingClaims {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn job_claim(
        &self,
        params: JobClaimParams,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        self.inner.job_claim(params)
    }
    forward!(job_insert_many, JobInsertParams, Vec<JobId>);
    forward!(job_finish_many, JobFinishParams, Vec<bool>);
    forward!(job_heartbeat_many, JobHeartbeatParams, Vec<bool>);
    forward!(job_checkpoint, JobCheckpointParams, bool);
    forward!(job_rescue_expired, JobRescueParams, RescueOutcome);
    forward!(
        job_expire_unknown_kinds,
        JobExpireUnknownKindsParams,
        UnknownKinds
    );
    forward!(job_promote_scheduled, JobPromoteParams, u64);
    forward!(job_get, JobId, Option<JobRecord>);
    forward!(job_list, JobListParams, Vec<JobRecord>);
    forward!(job_retry, JobRetryParams, bool);
    forward!(job_cancel, JobCancelParams, bool);
    forward!(job_prune, JobPruneParams, u64);
    fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>> {
        self.inner.queue_stats()
    }
    fn listen(&self) -> BoxFuture<'_, Result<Option<Box<dyn JobListener>>, StoreError>> {
        self.inner.listen()
    }
}

#[derive(Serialize, Deserialize)]
struct Hello;
impl JobArgs for Hello {
    const KIND: &'static str = "hello";
}

struct HelloWorker;
impl Worker for HelloWorker {
    type Args = Hello;
    async fn perform(&self, _ctx: JobContext, _args: Hello) -> Result<(), JobError> {
        Ok(())
    }
}

/// Waits (wall clock: a real database) until `probe` holds, at most `within`.
async fn eventually<F, Fut>(within: Duration, probe: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_spurious_notifications_does_not_make_fetchers_spin() {
    let Some(store) = testkit::fresh_store("notify_flood").await else {
        return;
    };
    let counting = Arc::new(CountingClaims {
        inner: Arc::new(store.clone()),
        claims: AtomicUsize::new(0),
    });
    let pool = Pool::builder(counting.clone())
        .register(HelloWorker)
        .start()
        .await
        .unwrap();
    // Let the listener open its connection and the first claims come back empty.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = counting.claims.load(Ordering::SeqCst);
    let flood = Duration::from_secs(2);
    let started = Instant::now();
    let mut sent = 0_u32;
    while started.elapsed() < flood {
        // One transaction each: PostgreSQL folds identical notifications of one transaction.
        sqlx::query("SELECT pg_notify($1, 'default')")
            .bind(store.channel())
            .execute(store.pool())
            .await
            .unwrap();
        sent += 1;
    }
    let claims = counting.claims.load(Ordering::SeqCst) - before;
    assert!(sent > 1_000, "the flood was a flood: {sent} notifications");
    // At most one claim per 20 ms on wake-ups, plus the polls.
    assert!(
        claims <= 120,
        "{claims} claims for {sent} spurious notifications in {flood:?}"
    );
    // Real wake-ups still work.
    let id = pool.client().enqueue(&Hello).await.unwrap();
    let done = eventually(Duration::from_secs(5), || async {
        store.job_get(id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    assert!(done, "the job enqueued after the flood ran");
    assert!(pool.shutdown().await.clean);
}

/// Runs SQL as the test's superuser.
async fn exec(pool: &sqlx::PgPool, sql: &str) {
    if let Err(error) = sqlx::raw_sql(sql).execute(pool).await {
        panic!("{sql}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_default_statement_timeout_cannot_cancel_the_stores_own_statements() {
    let Some(url) = testkit::database_url() else {
        return;
    };
    let admin = testkit::test_pool(&url).await;
    let schema = testkit::test_schema("role_timeout");
    testkit::fresh_schema(&admin, &schema).await;
    let role = format!("jt_short_{}", std::process::id());
    exec(&admin, &format!("DROP ROLE IF EXISTS \"{role}\"")).await;
    let q = schema.quoted();
    exec(
        &admin,
        &format!(
            "CREATE ROLE \"{role}\" LOGIN;
             ALTER ROLE \"{role}\" SET statement_timeout = '20ms';
             GRANT USAGE ON SCHEMA {q} TO \"{role}\";
             GRANT SELECT ON {q}.schema_version TO \"{role}\";
             ALTER TABLE {q}.jobs OWNER TO \"{role}\";
             GRANT USAGE ON SEQUENCE {q}.jobs_id_seq TO \"{role}\""
        ),
    )
    .await;

    let base = PostgresOptions::new(&url).unwrap();
    let connect = base.connect_options().clone().username(&role);
    let options = PostgresOptions::from_connect_options(connect).schema(schema.clone());
    let store = PostgresStore::connect(&options).await.unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        timeout, "30s",
        "the store's own setting, not the role's 20ms"
    );
    // A statement well past the role's 20 ms runs to its end on the store's sessions.
    sqlx::query("SELECT pg_sleep(0.2)")
        .execute(store.pool())
        .await
        .expect("not cancelled by the role's statement_timeout");
    store
        .vacuum()
        .await
        .expect("the store's vacuum is not cancelled");

    let pool = Pool::builder(Arc::new(store.clone()))
        .register(HelloWorker)
        .start()
        .await
        .unwrap();
    let ids = pool
        .client()
        .enqueue_many((0..500).map(|_| Hello), EnqueueOptions::new())
        .await
        .unwrap();
    let last = *ids.last().unwrap();
    let done = eventually(Duration::from_secs(20), || async {
        store.job_get(last).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    assert!(done, "the pool processes jobs as the short-timeout role");
    assert!(pool.shutdown().await.clean);
    store.close().await;
    testkit::drop_schema(&admin, &schema).await;
    exec(
        &admin,
        &format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""),
    )
    .await;
}

#[derive(Serialize, Deserialize)]
struct Block;
impl JobArgs for Block {
    const KIND: &'static str = "block";
}

/// Blocks its thread (what must not be done in async code, and what happens anyway).
struct BlockWorker;
impl Worker for BlockWorker {
    type Args = Block;
    async fn perform(&self, _ctx: JobContext, _args: Block) -> Result<(), JobError> {
        std::thread::sleep(Duration::from_secs(6));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_block_every_thread_keep_everyones_lease() {
    let Some(store) = testkit::fresh_store("blocked_runtime").await else {
        return;
    };
    let config = jobs::PoolConfig {
        // Twice the lease is spent blocked; ten beats per lease leave room for a busy CI
        // machine (with two, one run in five lost a lease there).
        lease_ttl: Duration::from_secs(3),
        heartbeat_interval: Duration::from_millis(300),
        rescue_interval: Duration::from_millis(500),
        ..jobs::PoolConfig::default()
    };
    let pool = Pool::builder(Arc::new(store.clone()))
        .config(config)
        .queue("default", 10)
        .register(BlockWorker)
        .register(HelloWorker)
        .start()
        .await
        .unwrap();
    let mut ids = pool
        .client()
        .enqueue_many((0..2).map(|_| Block), EnqueueOptions::new())
        .await
        .unwrap();
    ids.extend(
        pool.client()
            .enqueue_many((0..20).map(|_| Hello), EnqueueOptions::new())
            .await
            .unwrap(),
    );
    let done = eventually(Duration::from_secs(20), || async {
        let mut done = true;
        for id in &ids {
            done &= store.job_get(*id).await.unwrap().unwrap().state == JobState::Completed;
        }
        done
    })
    .await;
    assert!(done, "every job completed");
    for id in &ids {
        let job = store.job_get(*id).await.unwrap().unwrap();
        assert_eq!(
            (job.claims, job.rescues),
            (1, 0),
            "{id}: one claim, no lease ran out"
        );
    }
    assert!(pool.shutdown().await.clean);
}
