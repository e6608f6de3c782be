//! [`PostgresStore`]: construction, transactional enqueue, and the [`Store`] implementation.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jobs::store::{
    ClaimedJob, JobCancelParams, JobCheckpointParams, JobClaimParams, JobFinishParams,
    JobHeartbeatParams, JobInsertParams, JobListParams, JobListener, JobPromoteParams,
    JobPruneParams, JobRescueParams, JobRetryParams, RescueOutcome, Store,
};
use jobs::store::{JobExpireUnknownKindsParams, UnknownKinds};
use jobs::{
    EnqueueError, EnqueueOptions, JobArgs, JobId, JobRecord, QueueStats, StoreError, Timestamp,
};
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;

use crate::bound::CallBound;
use crate::error::{store_error, PostgresError};
use crate::lease_commit::LeaseCommit;
use crate::listener::ListenTarget;
use crate::migrations::check_schema;
use crate::options::{pool_options, PostgresOptions, DEFAULT_STATEMENT_TIMEOUT};

/// Connections of the pool heartbeats use, apart from every other call: the engine renews
/// leases from a thread of its own (so jobs that block the application's runtime cannot
/// starve it), and a connection opened there is served by that thread's runtime, so renewals
/// do not wait for the application's threads either.
pub const HEARTBEAT_CONNECTIONS: u32 = 2;
use crate::schema_name::SchemaName;
use crate::sql::Queries;
use crate::vacuum::{may_vacuum, Vacuum};
use crate::{finish, insert, inspect, lease, listener, maintenance};

/// The PostgreSQL job store: many worker processes on many machines share one database.
///
/// Cheap to clone (an `Arc` inside); every clone shares the pool. See the crate docs for
/// setup, migrations and the SQL enqueue function.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// Heartbeats' own connections (see [`HEARTBEAT_CONNECTIONS`]).
    heartbeat_pool: PgPool,
    /// Where listeners connect (each on a connection of its own).
    listen: ListenTarget,
    /// How long any call may take before it is abandoned.
    bound: CallBound,
    schema: SchemaName,
    queries: Queries,
    vacuum: Arc<Vacuum>,
    /// Whether lease writes commit synchronously ([`LeaseCommit::Synchronous`]).
    synchronous_leases: AtomicBool,
}

impl PostgresStore {
    /// Connects with `options` and opens the store, checking the schema version and the
    /// role's rights.
    ///
    /// # Errors
    ///
    /// Everything [`PostgresOptions::connect_pool`] and [`PostgresStore::open`] report.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only connects and reads.
    pub async fn connect(options: &PostgresOptions) -> Result<Self, PostgresError> {
        let pool = options.connect_pool().await?;
        let bound = options.call_bound();
        let store = Self::open_with(pool, options.schema_name().clone(), bound).await?;
        store.set_lease_commit(options.lease_commit_mode());
        Ok(store)
    }

    /// Opens the store on an existing pool (for example the application's own), with
    /// [`LeaseCommit::Asynchronous`] lease writes (see [`PostgresStore::set_lease_commit`]).
    ///
    /// The store's session settings (its `statement_timeout`, server-side TCP keepalives)
    /// and the check of connections abandoned mid-call come with pools made by
    /// [`PostgresOptions::connect_pool`]; a pool built otherwise keeps its own settings, and
    /// the store bounds its calls assuming [`DEFAULT_STATEMENT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`PostgresError::SchemaMissing`], [`PostgresError::SchemaTooOld`] (run
    /// [`migrate`](crate::migrate)), [`PostgresError::SchemaTooNew`] (upgrade the binary),
    /// [`PostgresError::PermissionDenied`], or [`PostgresError::Store`] if the database
    /// cannot be reached.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn open(pool: PgPool, schema: SchemaName) -> Result<Self, PostgresError> {
        let acquire_timeout = pool.options().get_acquire_timeout();
        let bound = CallBound::new(acquire_timeout, DEFAULT_STATEMENT_TIMEOUT);
        Self::open_with(pool, schema, bound).await
    }

    async fn open_with(
        pool: PgPool,
        schema: SchemaName,
        bound: CallBound,
    ) -> Result<Self, PostgresError> {
        let checks = async {
            check_schema(&pool, &schema).await?;
            Ok::<_, PostgresError>(may_vacuum(&pool, &schema).await)
        };
        let may = match tokio::time::timeout(bound.limit(), checks).await {
            Ok(may) => may?,
            Err(_) => {
                return Err(PostgresError::Store(StoreError::unavailable(format!(
                    "PostgreSQL did not answer within {:?} while the store was opening",
                    bound.limit()
                ))))
            }
        };
        let queries = Queries::new(&schema);
        let vacuum = Arc::new(Vacuum::new(&schema, may, bound));
        let acquire_timeout = pool.options().get_acquire_timeout();
        let connect = (*pool.connect_options()).clone();
        let heartbeat_pool =
            pool_options(HEARTBEAT_CONNECTIONS, acquire_timeout).connect_lazy_with(connect.clone());
        let listen = ListenTarget {
            connect,
            acquire_timeout,
            bound,
            closed: CancellationToken::new(),
        };
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                heartbeat_pool,
                listen,
                bound,
                schema,
                queries,
                vacuum,
                synchronous_leases: AtomicBool::new(false),
            }),
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema holding the job tables.
    pub fn schema(&self) -> &SchemaName {
        &self.inner.schema
    }

    /// The LISTEN/NOTIFY channel inserts are announced on (`<schema>.jobs`, payload = queue).
    pub fn channel(&self) -> &str {
        &self.inner.queries.channel
    }

    /// Inserts jobs on the caller's connection, typically inside its own transaction, so the
    /// jobs exist if and only if that transaction commits (and their NOTIFY is sent only then).
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user: i64 }
    /// # impl jobs::JobArgs for Welcome { const KIND: &'static str = "welcome"; }
    /// # async fn demo(store: &jobs_postgres::PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    /// use jobs::{EnqueueOptions, Timestamp};
    /// use jobs::store::{JobInsertParams, NewJob};
    ///
    /// let mut tx = store.pool().begin().await?;
    /// sqlx::query("UPDATE accounts SET welcomed = true WHERE id = $1").bind(42_i64).execute(&mut *tx).await?;
    /// let job = NewJob::from_args(&Welcome { user: 42 }, EnqueueOptions::new())?;
    /// let ids = store
    ///     .insert_in(&mut tx, JobInsertParams { jobs: vec![job], now: Timestamp::now() })
    ///     .await?;
    /// tx.commit().await?; // the job and the update land together, or neither does
    /// # let _ = ids; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a batch the rules of [`JobInsertParams::validate`] refuse;
    /// database failures otherwise (the caller's transaction is then aborted).
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may have inserted the jobs in `conn`'s transaction; as for any
    /// statement, the transaction's commit or rollback decides whether they stay.
    pub async fn insert_in(
        &self,
        conn: &mut PgConnection,
        params: JobInsertParams,
    ) -> Result<Vec<JobId>, StoreError> {
        params.validate()?;
        insert::insert_jobs(conn, &self.inner.queries, &params).await
    }

    /// Enqueues one job on the caller's connection, typically inside its own transaction:
    /// the job exists if and only if that transaction commits. Takes what
    /// [`Client::enqueue_with`](jobs::Client::enqueue_with) takes and refuses what it refuses
    /// (the same [`JobInsertParams::validate`] rules). The wake-up `NOTIFY` is part of the
    /// transaction, so PostgreSQL delivers it at commit: a listening pool claims the job at
    /// once, and never before the job is visible.
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user: i64 }
    /// # impl jobs::JobArgs for Welcome { const KIND: &'static str = "welcome"; }
    /// # async fn demo(store: &jobs_postgres::PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    /// use jobs::EnqueueOptions;
    ///
    /// let mut tx = store.pool().begin().await?;
    /// sqlx::query("UPDATE accounts SET welcomed = true WHERE id = $1").bind(42_i64).execute(&mut *tx).await?;
    /// let id = store.enqueue_in(&mut tx, &Welcome { user: 42 }, EnqueueOptions::new()).await?;
    /// tx.commit().await?; // the update and the job land together, or neither does
    /// # let _ = id; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Any [`EnqueueError`]; on a database error the caller's transaction is aborted.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it may leave the job inserted in the caller's transaction (or not): roll
    /// the transaction back rather than commit after a cancelled call.
    pub async fn enqueue_in<A: JobArgs>(
        &self,
        conn: &mut PgConnection,
        args: &A,
        options: EnqueueOptions,
    ) -> Result<JobId, EnqueueError> {
        let params = JobInsertParams::from_args::<A>([args], options, Timestamp::now())?;
        let ids = self.insert_in(conn, params).await?;
        JobInsertParams::only_id(ids)
    }

    /// Enqueues one job per item of `args`, all with `options`, on the caller's connection
    /// in one statement: [`enqueue_in`](Self::enqueue_in) for many jobs, as
    /// [`Client::enqueue_many`](jobs::Client::enqueue_many).
    ///
    /// # Errors
    ///
    /// Any [`EnqueueError`]; none of the jobs is inserted then.
    ///
    /// # Cancel safety
    ///
    /// As [`enqueue_in`](Self::enqueue_in).
    pub async fn enqueue_many_in<A: JobArgs>(
        &self,
        conn: &mut PgConnection,
        args: impl IntoIterator<Item = A>,
        options: EnqueueOptions,
    ) -> Result<Vec<JobId>, EnqueueError> {
        let params = JobInsertParams::from_args::<A>(args, options, Timestamp::now())?;
        Ok(self.insert_in(conn, params).await?)
    }

    /// Runs the claim query under `EXPLAIN (ANALYZE, BUFFERS)` in a transaction that is
    /// rolled back (nothing is claimed) and returns the plan, for diagnosing a slow queue.
    ///
    /// # Errors
    ///
    /// Database failures, or [`StoreError::Invalid`] for a zero `limit` or an invalid queue
    /// name (the rules of [`JobClaimParams::validate`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the transaction is rolled back whether or not the call completes.
    pub async fn explain_claim(&self, queue: &str, limit: usize) -> Result<String, StoreError> {
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", self.queries().claim);
        let params = JobClaimParams {
            queue: queue.to_owned(),
            owner: "explain".to_owned(),
            limit,
            lease_ttl: Duration::ZERO,
            now: jobs::Timestamp::now(),
            kinds: None,
            suspects: false,
        };
        params.validate()?;
        let sql_limit = lease::sql_limit(limit);
        let mut tx = self.pool().begin().await.map_err(store_error)?;
        let rows = lease::claim_query(&sql, &params, sql_limit, self.lease_commit())
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.rollback().await.map_err(store_error)?;
        let lines = rows
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        Ok(lines.join("\n"))
    }

    /// Whether lease writes (claims, finishes, heartbeats, checkpoints, rescues, promotions)
    /// wait for their WAL flush; see [`LeaseCommit`].
    pub fn lease_commit(&self) -> LeaseCommit {
        if self.inner.synchronous_leases.load(Ordering::Relaxed) {
            LeaseCommit::Synchronous
        } else {
            LeaseCommit::Asynchronous
        }
    }

    /// Chooses whether lease writes wait for their WAL flush (default
    /// [`LeaseCommit::Asynchronous`]; see [`LeaseCommit`] for what a database crash can undo).
    /// Takes effect for the next statement; every clone of the store shares the setting.
    pub fn set_lease_commit(&self, commit: LeaseCommit) {
        let synchronous = commit == LeaseCommit::Synchronous;
        self.inner
            .synchronous_leases
            .store(synchronous, Ordering::Relaxed);
    }

    /// Whether the store vacuums the job table by itself when claims have left enough dead
    /// rows (on by default when the role owns the table; see [`PostgresStore::vacuum`]).
    pub fn auto_vacuum(&self) -> bool {
        self.inner.vacuum.enabled()
    }

    /// Turns the opportunistic vacuum on or off (for example when a DBA schedules vacuums).
    pub fn set_auto_vacuum(&self, on: bool) {
        self.inner.vacuum.set_enabled(on);
    }

    /// Runs `VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, TRUNCATE OFF)` on the job table now.
    ///
    /// Claims leave dead entries at the head of the claim index, where every later claim
    /// starts reading, until a vacuum removes them; under sustained load that costs claims
    /// more than anything else. Autovacuum gets to a table at most once a minute by default,
    /// so the store also vacuums by itself, in the background, if the role owns the table:
    /// after every 5,000 + 25 × √(table rows) jobs this process claims, and when the
    /// statistics (read at most once a second) show twice that many dead rows. Call this for the
    /// same effect on your own schedule.
    ///
    /// # Errors
    ///
    /// Database failures. A role that does not own the table gets a server warning and
    /// nothing is vacuumed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a `VACUUM` cut short leaves the table as it was, to be vacuumed later.
    pub async fn vacuum(&self) -> Result<(), StoreError> {
        let statement = self.inner.vacuum.statement();
        self.bounded("vacuum", async move {
            sqlx::query(&statement)
                .execute(self.pool())
                .await
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    /// Closes the pool; every later call fails with [`StoreError::Closed`], and open
    /// listeners' `next()` fails with [`StoreError::Closed`] at once.
    ///
    /// Waits for borrowed connections to come back.
    ///
    /// # Cancel safety
    ///
    /// Once polled, the pool is closed to new calls even if the future is dropped; only
    /// the wait for borrowed connections is cut short.
    pub async fn close(&self) {
        self.inner.listen.closed.cancel();
        self.inner.heartbeat_pool.close().await;
        self.inner.pool.close().await;
    }

    /// `call` within the store's call bound (see [`crate::bound`]).
    fn bounded<'a, T: Send + 'a>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(self.inner.bound.run(op, call))
    }

    fn queries(&self) -> &Queries {
        &self.inner.queries
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("pool_size", &self.inner.pool.size())
            .field("pool_idle", &self.inner.pool.num_idle())
            .field("closed", &self.inner.pool.is_closed())
            .field("lease_commit", &self.lease_commit())
            .finish_non_exhaustive()
    }
}

impl Store for PostgresStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn job_insert_many(
        &self,
        params: JobInsertParams,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        self.bounded("job_insert_many", async move {
            let mut conn = self.pool().acquire().await.map_err(store_error)?;
            insert::insert_jobs(&mut conn, self.queries(), &params).await
        })
    }

    fn job_claim(
        &self,
        params: JobClaimParams,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        self.bounded("job_claim", async move {
            let claimed =
                lease::claim(self.pool(), self.queries(), params, self.lease_commit()).await;
            if let Ok(jobs) = &claimed {
                self.inner.vacuum.note_claimed(jobs.len());
            }
            self.inner.vacuum.poke(self.pool());
            claimed
        })
    }

    fn job_finish_many(
        &self,
        params: JobFinishParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        self.bounded(
            "job_finish_many",
            finish::finish_many(self.pool(), self.queries(), params, self.lease_commit()),
        )
    }

    fn job_heartbeat_many(
        &self,
        params: JobHeartbeatParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        self.bounded(
            "job_heartbeat_many",
            lease::heartbeat_many(
                &self.inner.heartbeat_pool,
                self.queries(),
                params,
                self.lease_commit(),
            ),
        )
    }

    fn job_checkpoint(
        &self,
        params: JobCheckpointParams,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.bounded(
            "job_checkpoint",
            lease::checkpoint(self.pool(), self.queries(), params, self.lease_commit()),
        )
    }

    fn job_rescue_expired(
        &self,
        params: JobRescueParams,
    ) -> BoxFuture<'_, Result<RescueOutcome, StoreError>> {
        self.bounded("job_rescue_expired", async move {
            let commit = self.lease_commit();
            let outcome =
                maintenance::rescue_expired(self.pool(), self.queries(), params, commit).await;
            self.inner.vacuum.poke(self.pool());
            outcome
        })
    }

    fn job_promote_scheduled(
        &self,
        params: JobPromoteParams,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.bounded("job_promote_scheduled", async move {
            let commit = self.lease_commit();
            let promoted =
                maintenance::promote_scheduled(self.pool(), self.queries(), params, commit).await;
            self.inner.vacuum.poke(self.pool());
            promoted
        })
    }

    fn job_get(&self, id: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        self.bounded("job_get", inspect::get(self.pool(), self.queries(), id))
    }

    fn job_list(&self, params: JobListParams) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        self.bounded(
            "job_list",
            inspect::list(self.pool(), self.queries(), params),
        )
    }

    fn job_retry(&self, params: JobRetryParams) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.bounded(
            "job_retry",
            inspect::retry(self.pool(), self.queries(), params),
        )
    }

    fn job_cancel(&self, params: JobCancelParams) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.bounded(
            "job_cancel",
            inspect::cancel(self.pool(), self.queries(), params),
        )
    }

    fn job_prune(&self, params: JobPruneParams) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.bounded(
            "job_prune",
            maintenance::prune(self.pool(), self.queries(), params),
        )
    }

    fn job_expire_unknown_kinds(
        &self,
        params: JobExpireUnknownKindsParams,
    ) -> BoxFuture<'_, Result<UnknownKinds, StoreError>> {
        self.bounded(
            "job_expire_unknown_kinds",
            maintenance::expire_unknown_kinds(self.pool(), self.queries(), params),
        )
    }

    fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>> {
        self.bounded(
            "queue_stats",
            inspect::queue_stats(self.pool(), self.queries()),
        )
    }

    fn listen(&self) -> BoxFuture<'_, Result<Option<Box<dyn JobListener>>, StoreError>> {
        Box::pin(async move {
            let listener =
                listener::PgJobListener::open(&self.inner.listen, self.channel()).await?;
            Ok(Some(Box::new(listener) as Box<dyn JobListener>))
        })
    }
}
