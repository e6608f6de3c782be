//! [`SqliteStore`]: the [`Store`] implementation over the connections.

use std::path::Path;
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
use sqlx::SqliteConnection;

use crate::connections::Connections;
use crate::data_version::DataVersionPoll;
use crate::listener::Notifier;
use crate::options::SqliteStoreOptions;

/// The embedded durable [`Store`]: a SQLite database file in WAL mode, or a private
/// in-memory database.
///
/// Writes of one store go through its one writer connection, one at a time, each a single
/// statement or a `BEGIN IMMEDIATE` transaction; reads of a file use a small pool of
/// read-only connections that never wait for writes. Several stores (in one process or in
/// many) may open the same file: SQLite's locks serialise their writes, waiting up to the
/// [busy timeout](SqliteStoreOptions::busy_timeout).
///
/// Every method of [`Store`] returns [`StoreError::Closed`] after [`close`](Self::close).
#[derive(Debug)]
pub struct SqliteStore {
    conns: Arc<Connections>,
    notifier: Notifier,
    /// How often listeners poll `data_version` for other processes' writes (files only).
    wake_poll: Option<Duration>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` with the default
    /// [options](SqliteStoreOptions), and creates or migrates the schema.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the file cannot be opened or created,
    /// [`StoreError::Schema`] if it holds a newer schema than this version understands.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: creating or migrating the schema is one transaction, so a dropped call
    /// leaves the schema as it was or wholly migrated, never half; opening again goes on.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteStoreOptions::new().open(path).await
    }

    /// Opens a private in-memory database with the default options.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if SQLite cannot allocate it.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        SqliteStoreOptions::new().open_in_memory().await
    }

    /// Opens the store on the database of an application's own sqlx pool, with that pool's
    /// connect options (its file, its pragmas), and creates or migrates the schema. The store
    /// keeps its own writer and readers (the application's pool is not used, nor closed by
    /// [`close`](Self::close)); what it shares is the file, so the application can
    /// [`enqueue_in`](Self::enqueue_in) its own transactions.
    ///
    /// Build that pool from [`SqliteStoreOptions::connect_options`] to give it the store's
    /// pragmas: WAL journal mode is required (readers must not wait for writers); a busy
    /// timeout lets the application's writes and the store's wait for each other instead of
    /// failing with `SQLITE_BUSY`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a pool on `:memory:` (each connection of it is a database
    /// of its own: use a file, or [`open_in_memory`](Self::open_in_memory)),
    /// [`StoreError::Unavailable`] if the file cannot be opened, [`StoreError::Schema`] if it
    /// holds a newer schema than this version understands.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: creating or migrating the schema is one transaction, so a dropped call
    /// leaves the schema as it was or wholly migrated, never half.
    pub async fn from_pool(pool: &sqlx::SqlitePool) -> Result<Self, StoreError> {
        let connect = (*pool.connect_options()).clone();
        if connect.get_filename() == Path::new(":memory:") {
            return Err(StoreError::invalid(
                "from_pool: the pool is on `:memory:`, where each connection is a database of \
                 its own; open the pool on a file, or use SqliteStore::open_in_memory",
            ));
        }
        let options = SqliteStoreOptions::new();
        let conns = Connections::connect(&options, connect, true).await?;
        tracing::debug!(path = ?pool.connect_options().get_filename(), "sqlite job store opened on an application pool");
        Ok(SqliteStore {
            conns: Arc::new(conns),
            notifier: Notifier::new(),
            wake_poll: options.wake_poll_interval,
        })
    }

    /// Enqueues one job on the caller's connection, typically inside its own transaction on
    /// the same database file: the job exists if and only if that transaction commits. Takes
    /// what [`Client::enqueue_with`](jobs::Client::enqueue_with) takes and refuses what it
    /// refuses (the same [`JobInsertParams::validate`] rules). Inside a transaction the
    /// insert is a savepoint of it; on a connection outside any, it is a transaction of its
    /// own.
    ///
    /// Begin the transaction with `BEGIN IMMEDIATE` (as below), or write before enqueueing:
    /// a transaction that only read before its first write fails with `SQLITE_BUSY` if
    /// another connection wrote meanwhile.
    ///
    /// Waking the pool: SQLite has no notifications between connections, so after the
    /// commit call [`wake`](Self::wake) on the store the pool runs on, or the pool picks the
    /// job up at its next poll ([`PoolConfig::poll_interval`](jobs::PoolConfig::poll_interval),
    /// 1 s by default).
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user: i64 }
    /// # impl jobs::JobArgs for Welcome { const KIND: &'static str = "welcome"; }
    /// # async fn demo(app_pool: sqlx::SqlitePool, store: jobs_sqlite::SqliteStore) -> Result<(), Box<dyn std::error::Error>> {
    /// use jobs::EnqueueOptions;
    /// use sqlx::Connection;
    ///
    /// let mut conn = app_pool.acquire().await?;
    /// let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    /// sqlx::query("UPDATE accounts SET welcomed = 1 WHERE id = ?").bind(42_i64).execute(&mut *tx).await?;
    /// let id = store.enqueue_in(&mut tx, &Welcome { user: 42 }, EnqueueOptions::new()).await?;
    /// tx.commit().await?; // the update and the job land together, or neither does
    /// store.wake(jobs::DEFAULT_QUEUE); // this process's pool claims it now
    /// # let _ = id; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Any [`EnqueueError`]; nothing of it stays in the caller's transaction then.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it may leave the job inserted in the caller's transaction (or not): roll
    /// the transaction back rather than commit after a cancelled call.
    pub async fn enqueue_in<A: JobArgs>(
        &self,
        conn: &mut SqliteConnection,
        args: &A,
        options: EnqueueOptions,
    ) -> Result<JobId, EnqueueError> {
        let params = JobInsertParams::from_args::<A>([args], options, Timestamp::now())?;
        let ids = self.insert_in(conn, params).await?;
        JobInsertParams::only_id(ids)
    }

    /// Enqueues one job per item of `args`, all with `options`, on the caller's connection:
    /// [`enqueue_in`](Self::enqueue_in) for many jobs, as
    /// [`Client::enqueue_many`](jobs::Client::enqueue_many).
    ///
    /// # Errors
    ///
    /// Any [`EnqueueError`]; none of the jobs stays in the caller's transaction then.
    ///
    /// # Cancel safety
    ///
    /// As [`enqueue_in`](Self::enqueue_in).
    pub async fn enqueue_many_in<A: JobArgs>(
        &self,
        conn: &mut SqliteConnection,
        args: impl IntoIterator<Item = A>,
        options: EnqueueOptions,
    ) -> Result<Vec<JobId>, EnqueueError> {
        let params = JobInsertParams::from_args::<A>(args, options, Timestamp::now())?;
        Ok(self.insert_in(conn, params).await?)
    }

    async fn insert_in(
        &self,
        conn: &mut SqliteConnection,
        params: JobInsertParams,
    ) -> Result<Vec<JobId>, StoreError> {
        self.conns.check_open()?;
        params.validate()?;
        Ok(crate::insert::insert_in(conn, &params).await?.ids)
    }

    /// Wakes this store's listening pools for `queue`, as the store's own inserts do: call it
    /// after committing a transaction that enqueued jobs with [`enqueue_in`](Self::enqueue_in).
    /// Without it, the pool still sees the commit within its `wake_poll_interval` (the
    /// application's pool is another connection, so `PRAGMA data_version` changes), as pools
    /// of other processes on the same file do.
    pub fn wake(&self, queue: &str) {
        self.notifier.notify(vec![queue.to_owned()]);
    }

    pub(crate) async fn open_with(
        options: &SqliteStoreOptions,
        path: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let conns = Connections::open(options, path).await?;
        tracing::debug!(path = ?path, "sqlite job store opened");
        Ok(SqliteStore {
            conns: Arc::new(conns),
            notifier: Notifier::new(),
            wake_poll: path.and(options.wake_poll_interval),
        })
    }

    /// Closes the store: new calls fail with [`StoreError::Closed`], the write in flight
    /// finishes, every connection is closed (checkpointing the WAL into the file), and every
    /// listener ends with [`StoreError::Closed`]. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if cancelled, the store is closed to new calls but connections may be
    /// closed only when it is dropped.
    pub async fn close(&self) {
        self.notifier.close();
        self.conns.close().await;
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.conns.is_closed()
    }
}

impl Store for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn job_insert_many(
        &self,
        params: JobInsertParams,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        Box::pin(async move {
            let inserted = {
                let mut conn = self.conns.writer().await?;
                crate::insert::insert_many(&mut conn, &params).await?
            };
            self.notifier.notify(inserted.woken);
            Ok(inserted.ids)
        })
    }

    fn job_claim(
        &self,
        params: JobClaimParams,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::claim::claim(&mut conn, &params).await
        })
    }

    fn job_finish_many(
        &self,
        params: JobFinishParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            let finished = {
                let mut conn = self.conns.writer().await?;
                crate::finish::finish_many(&mut conn, &params).await?
            };
            self.notifier.notify(finished.woken);
            Ok(finished.applied)
        })
    }

    fn job_heartbeat_many(
        &self,
        params: JobHeartbeatParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::lease::heartbeat_many(&mut conn, &params).await
        })
    }

    fn job_checkpoint(
        &self,
        params: JobCheckpointParams,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::lease::checkpoint(&mut conn, &params).await
        })
    }

    fn job_rescue_expired(
        &self,
        params: JobRescueParams,
    ) -> BoxFuture<'_, Result<RescueOutcome, StoreError>> {
        Box::pin(async move {
            let (outcome, woken) = {
                let mut conn = self.conns.writer().await?;
                crate::rescue::rescue_expired(&mut conn, &params).await?
            };
            self.notifier.notify(woken);
            Ok(outcome)
        })
    }

    fn job_expire_unknown_kinds(
        &self,
        params: JobExpireUnknownKindsParams,
    ) -> BoxFuture<'_, Result<UnknownKinds, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::unknown_kinds::expire(&mut conn, &params).await
        })
    }

    fn job_promote_scheduled(
        &self,
        params: JobPromoteParams,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let (count, woken) = {
                let mut conn = self.conns.writer().await?;
                crate::maintenance::promote_scheduled(&mut conn, &params).await?
            };
            self.notifier.notify(woken);
            Ok(count)
        })
    }

    fn job_get(&self, id: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.reader().await?;
            crate::inspect::get(&mut conn, id).await
        })
    }

    fn job_list(&self, params: JobListParams) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.reader().await?;
            crate::inspect::list(&mut conn, &params).await
        })
    }

    fn job_retry(&self, params: JobRetryParams) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let queue = {
                let mut conn = self.conns.writer().await?;
                crate::maintenance::retry(&mut conn, &params).await?
            };
            let retried = queue.is_some();
            self.notifier.notify(queue.into_iter().collect());
            Ok(retried)
        })
    }

    fn job_cancel(&self, params: JobCancelParams) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::maintenance::cancel(&mut conn, &params).await
        })
    }

    fn job_prune(&self, params: JobPruneParams) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::maintenance::prune(&mut conn, &params).await
        })
    }

    fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.reader().await?;
            crate::inspect::stats(&mut conn).await
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<Option<Box<dyn JobListener>>, StoreError>> {
        Box::pin(async move {
            self.conns.check_open()?;
            let poll = self
                .wake_poll
                .map(|every| DataVersionPoll::new(Arc::downgrade(&self.conns), every));
            let listener = self.notifier.subscribe(poll).ok_or(StoreError::Closed)?;
            Ok(Some(Box::new(listener) as Box<dyn JobListener>))
        })
    }
}
